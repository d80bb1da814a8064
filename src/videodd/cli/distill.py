"""``videodd distill``: run a method on DATA/train; flags and ``--set PART.KEY=VALUE`` override the
method's recipe and ``--config``."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
from pathlib import Path
from typing import Any

import yaml

from videodd.cli.common import (
    add_common_flags,
    add_dataclass_flags,
    data_stores,
    field_docs,
    positive_int,
    resolve_device,
)
from videodd.config import ConfigError, load_yaml
from videodd.distill import COMPONENTS, DistillConfig, distill, resolve_config
from videodd.methods import METHODS


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("distill", help="distil a training store into a DistilledSet",
                       description="Run a method on DATA/train. Flags override the method's defaults and --config.")
    p.add_argument("--method", default=None, help=f"method: {', '.join(METHODS)}")
    p.add_argument("--data", required=True, help="folder written by `videodd prepare` (uses DATA/train)")
    p.add_argument("--out", default=None, help="run folder (default runs/DATASET-METHOD-ipcK-sSEED)")
    p.add_argument("--config", default=None, help="YAML recipe with DistillConfig fields (see configs/)")
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.safetensors")
    add_dataclass_flags(p, DistillConfig, field_docs(DistillConfig), skip={"method", *COMPONENTS})
    p.add_argument("--set", dest="set_options", action="append", default=[], metavar="PART.KEY=VALUE",
                   help="a component option, e.g. --set objective.syn_steps=20 or --set selector.feature_epochs=5 "
                        "(PART is objective, parametrization, selector or builder; VALUE is read as YAML); repeatable")
    g = p.add_argument_group("equal storage (latent method)")
    g.add_argument("--match-ipc", dest="match_ipc", type=positive_int, default=None, metavar="K",
                   help="the largest latent IPC whose stored bytes fit pixel IPC K at float32 (overrides --ipc); "
                        "same as --set builder.match_ipc=K")
    g.add_argument("--budget-bytes", dest="budget_bytes", type=positive_int, default=None, metavar="B",
                   help="the largest latent IPC whose stored bytes fit B bytes (overrides --ipc); "
                        "same as --set builder.budget_bytes=B")
    add_common_flags(p)
    p.set_defaults(func=run)


def parse_set(item: str) -> tuple[str, str, Any]:
    """``objective.syn_steps=20`` -> ("objective", "syn_steps", 20); the value is parsed as YAML."""
    target, eq, raw = item.partition("=")
    part, dot, key = target.partition(".")
    if not eq or not dot or part not in COMPONENTS or not key:
        raise ConfigError(f"--set {item!r}: expected PART.KEY=VALUE with PART one of {list(COMPONENTS)}")
    value = yaml.safe_load(raw)
    if isinstance(value, str):  # YAML 1.1 reads "1e3" as a string; users mean a number
        with contextlib.suppress(ValueError):
            value = float(value)
    return part, key, value


def run(args: argparse.Namespace) -> int:
    overrides: dict[str, Any] = load_yaml(args.config) if args.config else {}
    method = args.method or overrides.pop("method", None)
    if method is None:
        raise SystemExit("videodd distill: error: --method is required (or a --config with a method field)")
    overrides.pop("method", None)
    for f in dataclasses.fields(DistillConfig):
        value = getattr(args, f.name, None)
        if value is not None and f.name != "method":
            overrides[f.name] = value
    for item in args.set_options:
        part, key, value = parse_set(item)
        overrides[part] = {**(overrides.get(part) or {}), key: value}
    for key in ("match_ipc", "budget_bytes"):  # equal-storage shorthands for --set builder.KEY=VALUE
        if getattr(args, key) is not None:
            overrides["builder"] = {**(overrides.get("builder") or {}), key: getattr(args, key)}
    cfg = resolve_config(method, overrides)
    train, _ = data_stores(args.data)
    out = Path(args.out or f"runs/{train.meta.dataset}-{cfg.method}-ipc{cfg.ipc}-s{cfg.seed}")
    result = distill(train, cfg, out, resume=args.resume, device=resolve_device(args.device),
                     progress=not args.quiet)
    extra = f", {result.seconds_per_iteration:.3f} s/iteration" if result.seconds_per_iteration else ""
    resumed = f" (resumed from iteration {result.resumed_from})" if result.resumed_from else ""
    print(f"{cfg.method} IPC {result.distilled.ipc}: {result.distilled.num_videos} videos in {result.seconds:.1f} s"
          f"{extra}{resumed}")
    for note in result.distilled.storage_detail().notes:
        print(note)
    print(f"wrote {out / 'distilled.safetensors'}")
    return 0
