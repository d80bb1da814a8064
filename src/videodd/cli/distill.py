"""``videodd distill``: run a method on DATA/train; flags and ``--set PART.KEY=VALUE`` override the
method's recipe and ``--config``."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
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
from videodd.config import ConfigError, from_dict, load_yaml
from videodd.distill import COMPONENTS, DistillConfig, distill, resolve_config
from videodd.methods import METHODS
from videodd.tune import TuneConfig, distill_tuned, tuning_table


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("distill", help="distil a training store into a DistilledSet",
                       description="Run a method on DATA/train. Flags override the method's defaults and --config.")
    p.add_argument("--method", default=None, help=f"method: {', '.join(METHODS)}")
    p.add_argument("--data", required=True, help="folder written by `videodd prepare` (uses DATA/train)")
    p.add_argument("--out", default=None, help="run folder (default runs/DATASET-METHOD-ipcK-sSEED)")
    p.add_argument("--config", default=None, help="YAML recipe with DistillConfig fields (see configs/)")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in OUT from its last checkpoint (same settings; a larger --iterations "
                        "extends a finished run)")
    p.add_argument("--force", action="store_true",
                   help="replace the run in OUT; the old run is kept until the new one is complete")
    add_dataclass_flags(p, DistillConfig, field_docs(DistillConfig), skip={"method", *COMPONENTS})
    p.add_argument("--set", dest="set_options", action="append", default=[], metavar="PART.KEY=VALUE",
                   help="a component option, e.g. --set objective.syn_steps=20 or --set selector.feature_epochs=5 "
                        "(PART is objective, parametrization, selector or builder; VALUE is read as YAML); repeatable")
    g = p.add_argument_group("tuning on a validation split of DATA/train (a recipe's `tune:` mapping sets the same)")
    g.add_argument("--tune", dest="tune_grid", action="append", default=[], metavar="KEY=V1,V2,...",
                   help="candidate values of a setting, e.g. --tune lr=1,10,100 or --tune objective.syn_steps=5,10; "
                        "every combination is distilled on a split of DATA/train, scored on the held-out part, and "
                        "the best is run on all of DATA/train (RUN/tune/ keeps the table); repeatable")
    g.add_argument("--tune-iterations", type=int, default=None, metavar="N",
                   help="iterations of each candidate (default: the run's)")
    g.add_argument("--tune-epochs", type=positive_int, default=None, metavar="E",
                   help=f"epochs of each candidate's evaluation (default {TuneConfig().epochs})")
    g.add_argument("--tune-runs", type=positive_int, default=None, metavar="R",
                   help=f"evaluation runs per candidate (default {TuneConfig().runs})")
    g.add_argument("--val-fraction", type=float, default=None, metavar="F",
                   help=f"share of each class held out for validation (default {TuneConfig().val_fraction})")
    g.add_argument("--no-tune", action="store_true", help="ignore the recipe's tune: mapping")
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
    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError as err:
        raise ConfigError(f"--set {item!r}: the value is not valid YAML ({str(err).splitlines()[0]})") from None
    if isinstance(value, str):  # YAML 1.1 reads "1e3" as a string; users mean a number
        with contextlib.suppress(ValueError):
            value = float(value)
    return part, key, value


def tune_config(recipe: Any, args: argparse.Namespace) -> TuneConfig | None:
    """The recipe's ``tune:`` mapping with the ``--tune*`` flags on top; None when there is nothing to tune."""
    if args.no_tune:
        return None
    data = dict(recipe or {})
    grid = dict(data.get("grid") or {})
    for item in args.tune_grid:
        key, eq, values = item.partition("=")
        if not eq or not key or not values:
            raise ConfigError(f"--tune {item!r}: expected KEY=V1,V2,... (e.g. --tune lr=1,10,100)")
        grid[key] = [yaml.safe_load(v) for v in values.split(",")]
    data["grid"] = grid
    for name, flag in (("iterations", "tune_iterations"), ("epochs", "tune_epochs"), ("runs", "tune_runs"),
                       ("val_fraction", "val_fraction")):
        if getattr(args, flag) is not None:
            data[name] = getattr(args, flag)
    if not grid:
        return None
    return from_dict(TuneConfig, data, "tune")


def run(args: argparse.Namespace) -> int:
    overrides: dict[str, Any] = load_yaml(args.config) if args.config else {}
    tune = tune_config(overrides.pop("tune", None), args)
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
    if tune is None:
        result = distill(train, cfg, out, resume=args.resume, overwrite=args.force, device=resolve_device(args.device),
                         progress=not args.quiet)
    else:
        if int(os.environ.get("WORLD_SIZE", "1")) > 1:
            raise ConfigError("--tune runs in one process: start it without torchrun")
        result, tuned = distill_tuned(train, cfg, out, tune, resume=args.resume, overwrite=args.force,
                                      device=resolve_device(args.device), progress=not args.quiet)
        print(f"tuned on {tuned.split['fit_clips']} + {tuned.split['val_clips']} training clips (fit + validation):")
        print(tuning_table(tuned.rows, tuned.chosen["key"]))
    extra = f", {result.seconds_per_iteration:.3f} s/iteration" if result.seconds_per_iteration else ""
    resumed = f" (resumed from iteration {result.resumed_from})" if result.resumed_from else ""
    print(f"{cfg.method} IPC {result.distilled.ipc}: {result.distilled.num_videos} videos in {result.seconds:.1f} s"
          f"{extra}{resumed}")
    for note in result.distilled.storage_detail().notes:
        print(note)
    print(f"wrote {out / 'distilled.safetensors'}")
    return 0
