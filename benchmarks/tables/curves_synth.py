"""Accuracy against distillation iterations, on validation, then once on test at the point validation picks.

    OMP_NUM_THREADS=1 python -m benchmarks.tables.curves_synth --benchmark synth-actions --method dm --ipc 1 \\
        --iterations 2000 --points 0,100,200,500,1000,1500,2000 \\
        --out benchmarks/results/11-distil-own-data/curve_synth_actions_dm_ipc1.json

The method runs its shipped synth-actions recipe (``configs/synth-actions/METHOD-ipcK.yaml``) with the
iterations raised and ``snapshots`` at the points; every snapshot is evaluated on the validation clips
(the generator's test split with seed 1, never the test clips) under the protocol, the point with the
best validation mean is chosen (ties: the earliest), and that set alone is evaluated on the test clips.
Each point records the seconds the run had taken. MTT's experts are the recipe's buffer
(``benchmarks/common.py: SYNTH_EXPERTS``), trained on the benchmark's own training clips. Everything
resumes: the run from its checkpoint, evaluated points from the results file.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from benchmarks.common import (
    SYNTH_EXPERTS,
    add_protocol_args,
    benchmark_stores,
    load_results,
    machine_info,
    set_dotted,
    shipped_recipe,
)
from videodd.distill import distill, resolve_config
from videodd.distilled import DistilledSet
from videodd.evaluate import evaluate, get_protocol
from videodd.io import write_json
from videodd.teachers.experts import train_experts


def seconds_at(run_dir: Path, iteration: int) -> float | None:
    """Wall seconds of the run when it finished ``iteration`` (from its metrics; None for iteration 0)."""
    for line in (run_dir / "metrics.jsonl").read_text().splitlines():
        row = json.loads(line)
        if row["iteration"] == iteration:
            return row["seconds"]
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--benchmark", default="synth-actions", choices=("synth-actions", "synth-motion"))
    parser.add_argument("--method", default="dm")
    parser.add_argument("--ipc", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--iterations", type=int, default=2000)
    parser.add_argument("--points", default="0,100,200,500,1000,1500,2000")
    parser.add_argument("--set", action="append", default=[], help="KEY=VALUE applied to the recipe")
    add_protocol_args(parser, protocol="cpu")
    parser.add_argument("--work", default=None, help="default benchmarks/work/curves-BENCHMARK")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()

    work = Path(args.work or f"benchmarks/work/curves-{args.benchmark}")
    train, test, val = benchmark_stores(args.benchmark, work)
    protocol = get_protocol(args.protocol).with_runs(args.runs)
    points = sorted({int(x) for x in args.points.split(",")} | {args.iterations})
    recipe = shipped_recipe(args.method, args.ipc)
    recipe.update(seed=args.seed, iterations=args.iterations, snapshots=points, log_every=10,
                  checkpoint_every=100)
    for item in args.set:
        set_dotted(recipe, *item.split("=", 1))
    if args.method.endswith("mtt"):
        train_experts(train, work / "experts", SYNTH_EXPERTS, seed=0, resume=True)
        recipe["objective"] = {**recipe.get("objective", {}), "experts": str(work / "experts")}
    label = f"{args.method}-ipc{args.ipc}-s{args.seed}" + "".join(f"-{x}" for x in args.set)
    run_dir = work / "runs" / label
    out = Path(args.out)
    results = load_results(out)
    results.update({"benchmark": args.benchmark, "method": args.method, "ipc": args.ipc, "seed": args.seed,
                    "recipe": recipe, "protocol": protocol.name, "runs": args.runs, **machine_info()})
    result = distill(train, resolve_config(args.method, recipe), run_dir, resume=True, overwrite=True)
    results["warnings"] = result.distilled.manifest.warnings
    curve = results.setdefault("validation", {})
    for point in points:
        if str(point) in curve:
            continue
        dset = DistilledSet.load(run_dir / "snapshots" / f"iter-{point:06d}.safetensors")
        report = evaluate(dset, val, protocol, train_store=train, references=("random",),
                          cache_dir=work / "references-val")
        (ref_name, ref), = report.references.items()
        curve[str(point)] = {"top1_mean": report.result.top1_mean, "top1_std": report.result.top1_std,
                             "top1_runs": [r.top1 for r in report.result.runs], "collapsed": report.result.collapsed,
                             "seconds": seconds_at(run_dir, point), "learned_lr": dset.manifest.learned_lr}
        results["validation_reference"] = {"name": ref_name, "top1_mean": ref.top1_mean, "top1_std": ref.top1_std}
        print(f"iteration {point}: validation {100 * report.result.top1_mean:.1f} ± "
              f"{100 * report.result.top1_std:.1f} (random real {100 * ref.top1_mean:.1f})", flush=True)
        write_json(out, results)
    best = max(points, key=lambda p: (curve[str(p)]["top1_mean"], -p))
    if results.get("chosen", {}).get("iteration") != best:
        dset = DistilledSet.load(run_dir / "snapshots" / f"iter-{best:06d}.safetensors")
        report = evaluate(dset, test, protocol, train_store=train, references=("random", "full"),
                          cache_dir=work / "references")
        report.save(run_dir / f"report-test-iter{best}.json")
        results["chosen"] = {"iteration": best, "test_top1_mean": report.result.top1_mean,
                             "test_top1_std": report.result.top1_std,
                             "test_top1_runs": [r.top1 for r in report.result.runs],
                             "test_references": {n: {"top1_mean": s.top1_mean, "top1_std": s.top1_std}
                                                 for n, s in report.references.items()}}
        write_json(out, results)
    c = results["chosen"]
    print(f"chosen on validation: iteration {best}; test {100 * c['test_top1_mean']:.1f} ± "
          f"{100 * c['test_top1_std']:.1f}", flush=True)


if __name__ == "__main__":
    main()
