"""``videodd evaluate``: train fresh models on a DistilledSet under a fixed protocol, test them on
DATA/test, compare with references, and write report.json + report.md (one report per model)."""

from __future__ import annotations

import argparse
from pathlib import Path

import videodd.distributed as distributed
from videodd.cli.common import add_common_flags, data_stores, positive_int, resolve_device
from videodd.distilled import DistilledSet
from videodd.evaluate import PROTOCOLS, check_references, evaluate, get_protocol
from videodd.io import atomic_path, write_json
from videodd.models import MODELS
from videodd.report import cross_arch_table, markdown_table, rows_from_report


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("evaluate", help="train fresh models on a DistilledSet and test them",
                       description="Evaluate a DistilledSet under a fixed protocol, with references.")
    p.add_argument("distilled", help="a .safetensors DistilledSet")
    p.add_argument("--data", required=True,
                   help="folder written by `videodd prepare` (DATA/test, and DATA/train for references)")
    p.add_argument("--protocol", default="default", help=f"protocol: {', '.join(PROTOCOLS)} (default: default)")
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
    p.add_argument("--out", default=None,
                   help="report JSON path (default: report.json next to the set); markdown beside it (.md)")
    add_common_flags(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    distilled = DistilledSet.load(args.distilled)
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
    out = Path(args.out) if args.out else Path(args.distilled).with_name("report.json")
    # one report per model: a list when there are several
    write_json(out, [r.to_json() for r in reports] if len(reports) > 1 else reports[0].to_json())
    with atomic_path(out.with_suffix(".md")) as tmp:
        tmp.write_text(text + "\n", encoding="utf-8")
    print(f"\nwrote {out} and {out.with_suffix('.md')}")
    return 0
