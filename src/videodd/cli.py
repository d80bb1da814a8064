"""The ``videodd`` command: prepare, distill, evaluate, info, methods, models, demo."""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from videodd import __version__

EPILOG = """examples:
  videodd prepare synth-actions --out data/synth
  videodd distill --method dm --ipc 1 --data data/synth --out runs/dm-ipc1
  videodd evaluate runs/dm-ipc1/distilled.safetensors --data data/synth --protocol cpu
  videodd info runs/dm-ipc1/distilled.safetensors
"""


# -- helpers ---------------------------------------------------------------------------------
def _stores(data: str):
    """``DIR/train`` and ``DIR/test`` as written by ``videodd prepare``."""
    from videodd.data.store import ClipStore

    root = Path(data)
    return ClipStore(root / "train"), ClipStore(root / "test")


def _device(name: str) -> str:
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return name


def _add_dataclass_flags(parser: argparse.ArgumentParser, cls: type, docs: dict[str, str], skip: set[str]) -> None:
    """One ``--field`` flag per dataclass field; default None means 'keep the recipe value'."""
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        flag = "--" + f.name.replace("_", "-")
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
        help_text = f"{docs.get(f.name, '')} (default: {default})"
        hint = hints[f.name]
        if hint is bool:
            parser.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction, default=None, help=help_text)
        elif typing.get_origin(hint) is tuple:
            parser.add_argument(flag, dest=f.name, type=lambda s: tuple(x for x in s.split(",") if x), default=None,
                                help=help_text + "; comma-separated, empty string for none", metavar="A,B")
        else:
            base = hint if hint in (int, float, str) else str
            parser.add_argument(flag, dest=f.name, type=base, default=None, help=help_text)


def _field_docs(cls: type) -> dict[str, str]:
    doc = cls.__doc__ or ""
    out = {}
    for f in dataclasses.fields(cls):
        for ln in doc.splitlines():
            if ln.strip().startswith(f"{f.name}:"):
                out[f.name] = ln.strip().partition(":")[2].strip()
    return out


# -- commands ----------------------------------------------------------------------------------
def cmd_prepare(args: argparse.Namespace) -> int:
    from videodd.data.sources import SOURCES

    source = SOURCES.get(args.dataset)
    options = {"num_classes": args.classes, "frames": args.frames, "size": args.size, "seed": args.seed,
               "train_per_class": args.train_per_class, "test_per_class": args.test_per_class}
    start = time.perf_counter()
    train, test = source(args.out, **options)
    print(f"wrote {train}\nwrote {test}\nin {time.perf_counter() - start:.1f} s")
    return 0


def _parse_set(item: str) -> tuple[str, str, Any]:
    """``objective.syn_steps=20`` -> ("objective", "syn_steps", 20); the value is parsed as YAML."""
    import yaml

    from videodd.config import ConfigError
    from videodd.distill import COMPONENTS

    target, eq, raw = item.partition("=")
    part, dot, key = target.partition(".")
    if not eq or not dot or part not in COMPONENTS or not key:
        raise ConfigError(f"--set {item!r}: expected PART.KEY=VALUE with PART one of {list(COMPONENTS)}")
    return part, key, yaml.safe_load(raw)


def cmd_distill(args: argparse.Namespace) -> int:
    from videodd.config import load_yaml
    from videodd.distill import DistillConfig, distill, resolve_config

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
        part, key, value = _parse_set(item)
        overrides[part] = {**(overrides.get(part) or {}), key: value}
    cfg = resolve_config(method, overrides)
    train, _ = _stores(args.data)
    out = Path(args.out or f"runs/{train.meta.dataset}-{cfg.method}-ipc{cfg.ipc}-s{cfg.seed}")
    result = distill(train, cfg, out, resume=args.resume, device=_device(args.device), progress=not args.quiet)
    extra = f", {result.seconds_per_iteration:.3f} s/iteration" if result.seconds_per_iteration else ""
    resumed = f" (resumed from iteration {result.resumed_from})" if result.resumed_from else ""
    print(f"{cfg.method} IPC {cfg.ipc}: {result.distilled.num_videos} videos in {result.seconds:.1f} s{extra}{resumed}")
    print(f"wrote {out / 'distilled.safetensors'}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from videodd.distilled import DistilledSet
    from videodd.evaluate import evaluate, get_protocol
    from videodd.report import markdown_table, rows_from_report

    distilled = DistilledSet.load(args.distilled)
    train, test = _stores(args.data)
    protocol = get_protocol(args.protocol)
    if args.runs:
        protocol = protocol.with_runs(args.runs)
    models = args.models.split(",") if args.models else [protocol.model]
    refs = tuple(r for r in args.references.split(",") if r)
    reports = []
    for model in models:
        report = evaluate(distilled, test, protocol.with_model(model), train_store=train, references=refs,
                          seed=args.seed, device=_device(args.device), progress=not args.quiet,
                          cache_dir=Path(args.data) / "references")  # references do not depend on the method
        reports.append(report)
        print(f"\nmodel {model}, protocol {protocol.name} v{protocol.version}")
        print(markdown_table(rows_from_report(report)))
    out = Path(args.out) if args.out else Path(args.distilled).with_name("report.json")
    from videodd.io import write_json

    write_json(out, [r.to_json() for r in reports] if len(reports) > 1 else reports[0].to_json())
    print(f"\nwrote {out}")
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    path = Path(args.path)
    if path.is_dir():
        from videodd.data.store import ClipStore

        store = ClipStore(path)
        m = store.meta
        print(f"ClipStore {path}\n  dataset: {m.dataset} ({m.split})\n  clips: {len(store)}  shape (C, T, H, W): "
              f"{store.video_shape}  bytes: {store.nbytes:,}\n  classes ({store.num_classes}): "
              f"{', '.join(store.classes[:8])}{' ...' if store.num_classes > 8 else ''}\n  spec: {m.spec.to_dict()}\n"
              f"  mean: {[round(x, 4) for x in m.mean]}  std: {[round(x, 4) for x in m.std]}\n"
              f"  fingerprint: {m.fingerprint}\n  failures: {len(m.failures)}")
        return 0
    from videodd.distilled import DistilledSet

    print(DistilledSet.load(path).describe())
    return 0


def cmd_methods(args: argparse.Namespace) -> int:
    from videodd.methods import METHODS

    for name in METHODS:
        spec = METHODS.get(name)
        parts = f"selector={spec.selector}" if spec.selector else f"{spec.parametrization} x {spec.objective}"
        print(f"{name:12s} {parts:22s} {spec.description}")
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    from videodd.models import MODELS

    for name in MODELS:
        print(f"{name:16s} {MODELS.doc(name)}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from videodd.demo import run_demo

    run_demo(Path(args.out), iterations=args.iterations, runs=args.runs, ipc=args.ipc, device=_device(args.device),
             progress=not args.quiet)
    return 0


# -- parser ------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    from videodd.data.sources import SOURCES
    from videodd.distill import DistillConfig
    from videodd.evaluate import PROTOCOLS
    from videodd.methods import METHODS

    parser = argparse.ArgumentParser(
        prog="videodd", description="Distil labelled video datasets into a few videos per class, and evaluate them.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"videodd {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default: auto)")
        p.add_argument("--quiet", action="store_true", help="no progress bars")

    p = sub.add_parser("prepare", help="build train/test ClipStores from a dataset",
                       description="Build OUT/train and OUT/test ClipStores (uint8 clips, labels, manifest).")
    p.add_argument("dataset", help=f"dataset source: {', '.join(SOURCES)}")
    p.add_argument("--out", required=True, help="output folder; OUT/train and OUT/test are written atomically")
    p.add_argument("--classes", type=int, default=None, help="synth-actions: number of classes (default 10)")
    p.add_argument("--frames", type=int, default=None, help="synth-actions: frames per clip (default 8)")
    p.add_argument("--size", type=int, default=None, help="synth-actions: frame height = width (default 32)")
    p.add_argument("--train-per-class", type=int, default=None, help="synth-actions: training clips per class")
    p.add_argument("--test-per-class", type=int, default=None, help="synth-actions: test clips per class")
    p.add_argument("--seed", type=int, default=None, help="synth-actions: generator seed (default 0)")
    p.set_defaults(func=cmd_prepare)

    p = sub.add_parser("distill", help="distil a training store into a DistilledSet",
                       description="Run a method on DATA/train. Flags override the method's defaults and --config.")
    p.add_argument("--method", default=None, help=f"method: {', '.join(METHODS)}")
    p.add_argument("--data", required=True, help="folder written by `videodd prepare` (uses DATA/train)")
    p.add_argument("--out", default=None, help="run folder (default runs/DATASET-METHOD-ipcK-sSEED)")
    p.add_argument("--config", default=None, help="YAML recipe with DistillConfig fields (see configs/)")
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.safetensors")
    _add_dataclass_flags(p, DistillConfig, _field_docs(DistillConfig),
                         skip={"method", "objective", "parametrization", "selector"})
    p.add_argument("--set", dest="set_options", action="append", default=[], metavar="PART.KEY=VALUE",
                   help="a component option, e.g. --set objective.syn_steps=20 or --set selector.feature_epochs=5 "
                        "(PART is objective, parametrization or selector; VALUE is read as YAML); repeatable")
    common(p)
    p.set_defaults(func=cmd_distill)

    p = sub.add_parser("evaluate", help="train fresh models on a DistilledSet and test them",
                       description="Evaluate a DistilledSet under a fixed protocol, with references.")
    p.add_argument("distilled", help="a .safetensors DistilledSet")
    p.add_argument("--data", required=True,
                   help="folder written by `videodd prepare` (DATA/test, and DATA/train for references)")
    p.add_argument("--protocol", default="default", help=f"protocol: {', '.join(PROTOCOLS)} (default: default)")
    p.add_argument("--runs", type=int, default=None, help="override the protocol's number of runs")
    p.add_argument("--models", default=None, help="comma-separated evaluation models (cross-architecture)")
    p.add_argument("--references", default="random,full",
                   help="references to compute: random (random real clips at the same IPC), full (whole training set)")
    p.add_argument("--seed", type=int, default=0, help="seed of the evaluation runs (default 0)")
    p.add_argument("--out", default=None, help="report JSON path (default: report.json next to the set)")
    common(p)
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("info", help="describe a DistilledSet file or a ClipStore folder")
    p.add_argument("path")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("methods", help="list the distillation methods")
    p.set_defaults(func=cmd_methods)
    p = sub.add_parser("models", help="list the registered models")
    p.set_defaults(func=cmd_models)

    p = sub.add_parser("demo", help="prepare synth-actions, distil random and DM, evaluate, print a table")
    p.add_argument("--out", default="demo-out", help="working folder (default demo-out)")
    p.add_argument("--ipc", type=int, default=1, help="videos per class (default 1)")
    p.add_argument("--iterations", type=int, default=None, help="DM iterations (default: the demo recipe's)")
    p.add_argument("--runs", type=int, default=3, help="evaluation runs per set (default 3)")
    common(p)
    p.set_defaults(func=cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from videodd.errors import USER_ERRORS

    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except USER_ERRORS as err:
        print(f"videodd {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
