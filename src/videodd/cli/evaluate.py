"""``videodd evaluate``: train fresh models on a DistilledSet under a fixed protocol, test them on
DATA/test, compare with references, and write report.json + report.md (one report per model).

``--test-selected`` also evaluates every snapshot of the run folder and reports the best by test accuracy, as
the published code reports its number, labelled "test-selected, as published: optimistic", beside the final
set's figure (which stays the report's result)."""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path
from typing import Any

import videodd.distributed as distributed
from videodd.cli.common import add_common_flags, data_stores, positive_int, resolve_device
from videodd.data.store import ClipStore
from videodd.distilled import DistilledSet
from videodd.errors import ConfigError
from videodd.evaluate import (
    PROTOCOLS,
    TEST_SELECTED_LABEL,
    EvalProtocol,
    EvalReport,
    check_references,
    evaluate,
    get_protocol,
    run_snapshots,
    select_on_test,
)
from videodd.guards import VideoddWarning
from videodd.io import atomic_path, write_json
from videodd.models import MODELS
from videodd.report import cross_arch_table, markdown_table, rows_from_report


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("evaluate", help="train fresh models on a DistilledSet and test them",
                       description="Evaluate a DistilledSet under a fixed protocol, with references.")
    p.add_argument("distilled", metavar="RUN_OR_SET",
                   help="a .safetensors DistilledSet, or a run folder (its distilled.safetensors)")
    p.add_argument("--data", required=True,
                   help="folder written by `videodd prepare` (DATA/test, and DATA/train for references)")
    aliases = ", ".join(f"{a} = {t}" for a, t in PROTOCOLS.aliases().items())
    p.add_argument("--protocol", default="default",
                   help=f"protocol: {', '.join(PROTOCOLS)} ({aliases}; default: default)")
    p.add_argument("--runs", type=positive_int, default=None, help="override the protocol's number of runs (>= 1)")
    p.add_argument("--models", default=None,
                   help="comma-separated evaluation models (cross-architecture: one report per model and a "
                        "combined table; see `videodd models`)")
    p.add_argument("--epochs", type=positive_int, default=None,
                   help="override the protocol's training epochs on the set (and on random real clips); the "
                        "protocol is renamed NAME+epochs=E in the report")
    p.add_argument("--references", default="random,bytes,h264,full",
                   help="references to compute: random (random real clips at the same IPC), bytes (random real uint8 "
                        "clips in the set's bytes), h264 (random real clips as H.264 in the set's bytes), full (the "
                        "whole training set); '' for none")
    p.add_argument("--seed", type=int, default=0, help="seed of the evaluation runs (default 0)")
    p.add_argument("--test-selected", action="store_true",
                   help="also evaluate every snapshot of the run (RUN/snapshots, `videodd distill --snapshots`) and "
                        "report the best by TEST accuracy, as the published code does, labelled "
                        f"'{TEST_SELECTED_LABEL}', beside the final set's figure")
    p.add_argument("--out", default=None,
                   help="report JSON path (default: report.json next to the set); markdown beside it (.md)")
    add_common_flags(p)
    p.set_defaults(func=run)


def set_path(path: str | Path) -> Path:
    """A run folder's ``distilled.safetensors``, or the set file given."""
    path = Path(path)
    return path / "distilled.safetensors" if path.is_dir() else path


def run(args: argparse.Namespace) -> int:
    set_file = set_path(args.distilled)
    distilled = DistilledSet.load(set_file)
    snapshots = run_snapshots(set_file.parent) if args.test_selected else []
    if args.test_selected and not snapshots:
        raise ConfigError(f"--test-selected: {set_file.parent / 'snapshots'} holds no snapshots (distill with "
                          "--snapshots 0,500,... to keep the sets the published code evaluates)")
    train, test = data_stores(args.data)
    protocol = get_protocol(args.protocol)
    if args.runs is not None:
        protocol = protocol.with_runs(args.runs)
    if args.epochs:
        protocol = protocol.with_epochs(args.epochs)
    models = [m for m in args.models.split(",") if m] if args.models else [protocol.model]
    for model in models:  # a typo in the last model should fail now, not after the others have trained
        if model != "auto":
            MODELS.get(model)
    refs = tuple(r for r in args.references.split(",") if r)
    check_references(refs)
    reports = []
    for model in models:
        report = evaluate(distilled, test, protocol.with_model(model), train_store=train, references=refs,
                          seed=args.seed, device=resolve_device(args.device), progress=not args.quiet,
                          cache_dir=Path(args.data) / "references")  # references do not depend on the method
        if snapshots:
            report.test_selected = _test_selected(report, snapshots, test, protocol.with_model(model), args)
        reports.append(report)
        print(f"\nmodel {report.model}, protocol {protocol.name} v{protocol.version}")
        print(markdown_table(rows_from_report(report)))
    text = "\n\n".join(r.to_markdown() for r in reports)
    if len(reports) > 1:
        title = (f"cross-architecture: {distilled.manifest.method} IPC {distilled.ipc} on "
                 f"{distilled.manifest.dataset}, protocol {protocol.name} v{protocol.version}")
        table = cross_arch_table(reports)
        print(f"\n{title}\n{table}")
        text = f"## {title}\n\n{table}\n\n{text}"
    if not distributed.is_main():  # under torchrun rank 0 writes the report
        return 0
    out = Path(args.out) if args.out else set_file.with_name("report.json")
    # one report per model: a list when there are several
    write_json(out, [r.to_json() for r in reports] if len(reports) > 1 else reports[0].to_json())
    with atomic_path(out.with_suffix(".md")) as tmp:
        tmp.write_text(text + "\n", encoding="utf-8")
    print(f"\nwrote {out} and {out.with_suffix('.md')}")
    return 0


def _test_selected(report: EvalReport, snapshots: list[tuple[str, int, Path]], test: ClipStore,
                   protocol: EvalProtocol, args: argparse.Namespace) -> dict[str, Any]:
    """Each snapshot under the protocol (the final set's seeds, no references), then :func:`select_on_test`."""
    results = []
    for name, iteration, path in snapshots:
        with warnings.catch_warnings():  # the test store's warnings were given once, for the final set
            warnings.simplefilter("ignore", VideoddWarning)
            snap = evaluate(DistilledSet.load(path), test, protocol, references=(), seed=args.seed,
                            device=resolve_device(args.device), progress=not args.quiet)
        results.append((name, iteration, snap.result))
        print(f"snapshot {name}: {snap.result.fmt()}")
    chosen = select_on_test(report.result, results)
    print(f"{TEST_SELECTED_LABEL}: {100 * chosen['top1_mean']:.1f} ± {100 * chosen['top1_std']:.1f} "
          f"({chosen['chosen']}); final set: {report.result.fmt()}")
    return chosen
