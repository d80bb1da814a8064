"""``videodd demo``: the main job end to end on synth-actions (:mod:`videodd.demo`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from videodd.cli.common import add_common_flags, resolve_device
from videodd.demo import run_demo
from videodd.evaluate import check_references


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="prepare synth-actions, distil random, herding and DM, evaluate, print a table",
                       description="The main job end to end on the embedded synth-actions benchmark: prepare it, "
                                   "distil random real clips, herding and DM at IPC 1, evaluate each under the cpu "
                                   "protocol with every reference (random real clips at the same IPC and bytes, H.264 "
                                   "real clips at the same bytes, the full training set), print the table and the "
                                   "paired differences, and write a study with plots (OUT/report/). A second run "
                                   "reuses OUT.")
    p.add_argument("--out", default="demo-out", help="working folder (default demo-out)")
    p.add_argument("--ipc", type=int, default=1, help="videos per class (default 1)")
    p.add_argument("--iterations", type=int, default=None, help="DM iterations (default: the demo recipe's)")
    p.add_argument("--runs", type=int, default=3, help="evaluation runs per set (default 3)")
    p.add_argument("--references", default="random,bytes,h264,full",
                   help="references to compute (default all; random,full halves the evaluation time)")
    add_common_flags(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    refs = tuple(r for r in args.references.split(",") if r)
    check_references(refs)
    run_demo(Path(args.out), iterations=args.iterations, runs=args.runs, ipc=args.ipc, references=refs,
             device=resolve_device(args.device), progress=not args.quiet)
    return 0
