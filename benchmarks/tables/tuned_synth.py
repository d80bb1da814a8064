"""The auto-tuned generic recipes (``configs/generic/METHOD-ipc1.yaml``, each with its ``tune:`` grid) on an
embedded benchmark, over several seeds, paired with the ``paired_synth`` cells of the same seeds.

    OMP_NUM_THREADS=1 python -m benchmarks.tables.tuned_synth --benchmark synth-motion --methods mtt,dm \\
        --seeds 0,1,2 --paired benchmarks/results/11-distil-own-data/paired_synth_motion_ipc1.json \\
        --out benchmarks/results/11-distil-own-data/tuned_synth_motion_ipc1.json

Each seed runs exactly what a user types (``videodd distill --config configs/generic/METHOD-ipc1.yaml --seed S``
then ``videodd evaluate --protocol cpu --runs 3``) in ``WORK/tuned/METHOD-ipc1-seedS``; finished runs are kept.
A seed's start is the ``random`` cell of the same seed in ``--paired`` (the recipes start from real clips), so
each seed gives a paired difference against random clips and against herding, as in ``paired_synth``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import SYNTH_EXPERTS, benchmark_stores, machine_info
from benchmarks.tables.paired_synth import format_paired, paired
from videodd.cli import main as videodd
from videodd.io import write_json
from videodd.teachers.experts import train_experts

GENERIC = Path(__file__).resolve().parents[2] / "configs" / "generic"


def run_seed(method: str, seed: int, work: Path) -> dict[str, Any]:
    """Distil (tuning first) and evaluate one seed through the CLI; its report and tuning table."""
    run = work / "tuned" / f"{method}-ipc1-seed{seed}"
    data = work / "data"
    if not (run / "report.json").exists():
        extra = ["--set", f"objective.experts={work / 'experts'}"] if method == "mtt" else []
        code = videodd(["distill", "--config", str(GENERIC / f"{method}-ipc1.yaml"), "--data", str(data), "--out",
                        str(run), "--seed", str(seed), "--resume", "--quiet", *extra])
        code = code or videodd(["evaluate", str(run / "distilled.safetensors"), "--data", str(data), "--protocol",
                                "cpu", "--runs", "3", "--references", "random", "--out", str(run / "report.json"),
                                "--quiet"])
        if code:  # e.g. the chosen settings diverged on the whole training store: a result, kept as one
            tune = json.loads((run / "tune" / "tune.json").read_text())
            return {"failed": f"videodd exited {code} (its error is in the run's log)", "chosen": tune["chosen"]}
    report = json.loads((run / "report.json").read_text())["result"]
    tune = json.loads((run / "tune" / "tune.json").read_text())
    rows = [{"key": r["key"], "val_top1_mean": r["val_top1_mean"], "val_top1_std": r["val_top1_std"],
             "diverged": r.get("diverged")} for r in tune["rows"]]
    return {"top1_mean": report["top1_mean"], "top1_std": report["top1_std"], "chosen": tune["chosen"],
            "tune_rows": rows}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--benchmark", default="synth-motion", choices=("synth-actions", "synth-motion"))
    parser.add_argument("--methods", default="mtt,dm")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--paired", required=True, help="paired_synth results at IPC 1 (random and herding cells)")
    parser.add_argument("--work", default=None, help="default benchmarks/work/paired-BENCHMARK")
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    work = Path(args.work or f"benchmarks/work/paired-{args.benchmark}")
    train, _, _ = benchmark_stores(args.benchmark, work)  # the stores paired_synth uses (its seeds are paired here)
    if "mtt" in args.methods.split(","):  # the experts paired_synth trains (kept when they exist)
        train_experts(train, work / "experts", SYNTH_EXPERTS, seed=0, resume=True)
    paired_cells = json.loads(Path(args.paired).read_text())["cells"]
    seeds = [int(s) for s in args.seeds.split(",")]
    results: dict[str, Any] = {"benchmark": args.benchmark, "ipc": 1, "protocol": "cpu", "runs": 3,
                               **machine_info(), "cells": {}, "summary": {}}
    lines = ["| recipe | chosen per seed | per-seed top-1 (%) | mean of seeds | - random (paired) "
             "| - herding (paired) |", "|---|---|---|---|---|---|"]
    for method in args.methods.split(","):
        cells = {s: run_seed(method, s, work) for s in seeds}
        results["cells"].update({f"{method}/seed{s}": c for s, c in cells.items()})
        failed = [s for s, c in cells.items() if "failed" in c]
        cells = {s: c for s, c in cells.items() if s not in failed}  # paired over the seeds that finished
        means = np.array([c["top1_mean"] for c in cells.values()])
        joined = {**paired_cells, **{f"tuned/seed{s}": c for s, c in cells.items()}}
        summary = {"mean": float(means.mean()), "std": float(means.std()), "failed_seeds": failed,
                   **{f"vs_{ref}": paired(joined, "tuned", ref, list(cells)) for ref in ("random", "herding")}}
        results["summary"][method] = summary
        write_json(Path(args.out), results)
        lines.append(f"| generic {method}{f' (seeds {failed} failed)' if failed else ''} | "
                     f"{', '.join(c['chosen'] for c in cells.values())} | "
                     f"{', '.join(f'{100 * m:.1f}' for m in means)} | {100 * means.mean():.1f} ± "
                     f"{100 * means.std():.1f} | {format_paired(summary['vs_random'])} | "
                     f"{format_paired(summary['vs_herding'])} |")
    results["table"] = "\n".join(lines)
    write_json(Path(args.out), results)
    print(results["table"])


if __name__ == "__main__":
    main()
