"""Does the evaluation's arithmetic change its figures? fp32 against bf16 on synth-actions, paired by run.

    OMP_NUM_THREADS=2 python -m benchmarks.tables.precision_synth \
        --out benchmarks/results/12-precision/precision_synth.json

The ``cpu`` protocol (300 epochs) trains on random real clips at IPC 1 and IPC 5; run ``r`` trains on the
same clips, from the same initialisation and shuffling, at fp32 and at bf16 (autocast; on this CPU
through AVX512-BF16/AMX), so each run gives a paired difference. The question is whether the mean
difference is inside the run-to-run spread (the std over runs at fp32), and what bf16 saves in time.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import time
from pathlib import Path
from typing import Any

from benchmarks.common import BENCHMARKS, benchmark_stores, machine_info
from videodd.evaluate import get_protocol, run_protocol
from videodd.seeding import make_generator
from videodd.selection import select_random
from videodd.train import StoreData


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--ipcs", default="1,5")
    parser.add_argument("--work", default=str(BENCHMARKS / "work" / "synth-actions"))
    parser.add_argument("--out", default=str(BENCHMARKS / "results" / "12-precision" / "precision_synth.json"))
    args = parser.parse_args(argv)
    train, test, _ = benchmark_stores("synth-actions", Path(args.work))
    base = get_protocol("cpu").with_runs(args.runs)
    results: dict[str, Any] = {"benchmark": "synth-actions", "protocol": base.name, "runs": args.runs,
                               **machine_info(), "cells": {}}
    rows = ["| IPC | fp32 top-1 (%) | bf16 top-1 (%) | bf16 - fp32 (paired) | fp32 run spread | time bf16 / fp32 |",
            "|---|---|---|---|---|---|"]
    for ipc in (int(x) for x in args.ipcs.split(",")):
        datas = [StoreData(train, select_random(train, ipc, make_generator(10_000 + r))) for r in range(args.runs)]
        cell: dict[str, Any] = {}
        for kind in ("fp32", "bf16"):
            protocol = dataclasses.replace(base, precision=kind)
            start = time.perf_counter()
            summary = run_protocol(datas, test, protocol, protocol.train, seeds=list(range(args.runs)))
            cell[kind] = {"top1": [100 * r.top1 for r in summary.runs], "seconds": time.perf_counter() - start}
            print(f"IPC {ipc} {kind}: {cell[kind]['top1']}", flush=True)
        diffs = [b - a for a, b in zip(cell["fp32"]["top1"], cell["bf16"]["top1"], strict=True)]
        cell["paired_diff_mean"], cell["paired_diff_std"] = statistics.mean(diffs), statistics.pstdev(diffs)
        cell["fp32_spread"] = statistics.pstdev(cell["fp32"]["top1"])
        cell["time_ratio"] = cell["bf16"]["seconds"] / cell["fp32"]["seconds"]
        results["cells"][f"ipc{ipc}"] = cell
        f32, b16 = cell["fp32"]["top1"], cell["bf16"]["top1"]
        rows.append(f"| {ipc} | {statistics.mean(f32):.1f} ± {statistics.pstdev(f32):.1f} | "
                    f"{statistics.mean(b16):.1f} ± {statistics.pstdev(b16):.1f} | "
                    f"{cell['paired_diff_mean']:+.1f} ± {cell['paired_diff_std']:.1f} | {cell['fp32_spread']:.1f} | "
                    f"{cell['time_ratio']:.2f} |")
    results["table"] = "\n".join(rows)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=1) + "\n")
    print(results["table"])


if __name__ == "__main__":
    main()
