"""Accuracy of distillation methods on synth-actions (CPU scale) under a fixed protocol.

    python -m benchmarks.tables.accuracy_synth --ipc 1 --methods random,dm --protocol default --runs 3

Writes ``benchmarks/results/2-dm-ipc1/accuracy_synth_ipc{K}.json`` and prints a markdown table with the
random-real and full-data references measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from benchmarks.common import DM_RANDOM_INIT, SYNTH_ACTIONS, add_protocol_args, machine_info, references_summary
from videodd.data.synthetic import SynthActionsConfig, synth_actions_stores
from videodd.evaluate import get_protocol
from videodd.pipeline import run_methods
from videodd.report import markdown_table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ipc", type=int, default=1)
    parser.add_argument("--methods", default="random,dm")
    add_protocol_args(parser)
    parser.add_argument("--dm-iterations", type=int, default=DM_RANDOM_INIT["iterations"])
    parser.add_argument("--dm-lr", type=float, default=DM_RANDOM_INIT["lr"])
    parser.add_argument("--dm-model", default=DM_RANDOM_INIT["model"], help="DM embedding network")
    parser.add_argument("--dm-init", default=DM_RANDOM_INIT.get("init", "real"),
                        help="DM pixel initialisation: real (random clips), noise, herding, kcenter")
    parser.add_argument("--work", default="benchmarks/work", help="scratch folder (data, runs)")
    parser.add_argument("--out", default=None,
                        help="JSON result (default benchmarks/results/2-dm-ipc1/accuracy_synth_ipcK.json)")
    args = parser.parse_args()

    torch.set_num_threads(torch.get_num_threads())
    work = Path(args.work)
    train, test = synth_actions_stores(work / "data", SynthActionsConfig())
    protocol = get_protocol(args.protocol).with_runs(args.runs)
    overrides = {"dm": {**DM_RANDOM_INIT, "iterations": args.dm_iterations, "lr": args.dm_lr, "model": args.dm_model,
                        "init": args.dm_init}}
    methods = [(m, {**overrides.get(m, {}), "ipc": args.ipc}) for m in args.methods.split(",")]
    start = time.perf_counter()
    runs, rows = run_methods(train, test, methods, protocol, work / f"ipc{args.ipc}", progress=False, say=print)
    table = markdown_table(rows)
    print(table)
    result = {
        "benchmark": SYNTH_ACTIONS,
        "protocol": protocol.name,
        "runs": args.runs,
        "ipc": args.ipc,
        **machine_info(),
        "seconds": time.perf_counter() - start,
        "methods": {
            r.report.method: {
                "top1_mean": r.report.result.top1_mean,
                "top1_std": r.report.result.top1_std,
                "top1_runs": [x.top1 for x in r.report.result.runs],
                "storage_bytes": r.report.storage_bytes,
                "distill_seconds": r.distill.seconds,
                "seconds_per_iteration": r.distill.seconds_per_iteration,
                "eval_seconds": r.report.wall_seconds,
            }
            for r in runs
        },
        "references": references_summary(runs[-1].report),
        "table": table,
    }
    out = Path(args.out or f"benchmarks/results/2-dm-ipc1/accuracy_synth_ipc{args.ipc}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
