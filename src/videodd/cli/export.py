"""``videodd export SET --format mp4|gif|png|npz|hf --out DIR``: look at what was distilled, or train on it
with your own code."""

from __future__ import annotations

import argparse
from pathlib import Path

from videodd.cli.common import positive_int
from videodd.distilled import DistilledSet
from videodd.export import FORMATS, describe, export_set


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="write a distilled set as mp4/gif/png files, npz or a Hugging Face dataset",
                       description="Materialize a DistilledSet of any kind, denormalize it with its own mean/std and "
                                   "write it: one mp4/gif/png (frame strip) per video with a contact sheet per "
                                   "class, an npz of uint8 arrays, or a Hugging Face datasets folder (parquet; "
                                   "needs the hf extra).")
    p.add_argument("distilled", help="a distilled.safetensors file")
    p.add_argument("--format", required=True, choices=FORMATS)
    p.add_argument("--out", required=True, help="the folder to write")
    p.add_argument("--classes", default=None, help="comma-separated class names (default: all)")
    p.add_argument("--max-per-class", type=positive_int, default=None, help="at most N videos per class")
    p.add_argument("--fps", type=positive_int, default=8, help="frame rate of mp4 and gif files (default 8)")
    p.add_argument("--scale", type=positive_int, default=None,
                   help="integer upscaling of media files (default: enough for a 128-pixel short side)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    distilled = DistilledSet.load(args.distilled)
    classes = [c for c in args.classes.split(",") if c] if args.classes else None
    result = export_set(distilled, Path(args.out), args.format, classes=classes, max_per_class=args.max_per_class,
                        fps=args.fps, scale=args.scale)
    print(describe(result))
    return 0
