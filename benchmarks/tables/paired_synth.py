"""Methods over several distillation seeds, compared by *paired* differences, on an embedded benchmark.

    OMP_NUM_THREADS=1 python -m benchmarks.tables.paired_synth --benchmark synth-motion --ipc 1 \\
        --methods random,herding,dm,mtt --seeds 0,1,2 \\
        --out benchmarks/results/11-distil-own-data/paired_synth_motion_ipc1.json

Every method runs its shipped synth-actions recipe (``configs/synth-actions/METHOD-ipcK.yaml``, never
tuned on synth-motion) with each seed, and every set is evaluated on the test clips with the
protocol's runs. A seed fixes a method's starting clips:
- ``random`` with seed s holds the clips that a recipe with ``init: real`` starts from with seed s;
- ``herding`` with seed s holds the start of a recipe with ``init: herding``.

So each seed gives a *paired* difference:
- against random real clips of the same draw;
- against herding;
- against the method's own start.

The table reports each difference's mean over the seeds and its spread (the std over seeds). A
method *beats* a reference when the mean difference exceeds that spread. ``--set METHOD:KEY=VALUE``
overrides one method's recipe (dotted keys reach component options). Cells resume.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import (
    SYNTH_EXPERTS,
    add_protocol_args,
    apply_sets,
    benchmark_stores,
    load_results,
    machine_info,
    shipped_recipe,
)
from videodd.distill import distill, resolve_config
from videodd.evaluate import evaluate, get_protocol
from videodd.io import write_json
from videodd.teachers.experts import train_experts


def recipe_for(method: str, ipc: int, seed: int, sets: list[str], experts: Path) -> dict[str, Any]:
    """The shipped recipe of ``method`` at ``ipc`` with ``seed``, the experts and the ``--set`` overrides."""
    cfg = shipped_recipe(method, ipc)
    cfg["seed"] = seed
    if method.endswith("mtt"):
        cfg["objective"] = {**cfg.get("objective", {}), "experts": str(experts)}
    return apply_sets(cfg, method, sets)


def format_paired(d: dict[str, Any] | None) -> str:
    """A :func:`paired` difference as a table cell, in points: ``+1.9 ± 0.6 (beats)``; ``-`` when missing."""
    if d is None:
        return "-"
    return f"{100 * d['mean']:+.1f} ± {100 * d['std']:.1f}{' (beats)' if d['beats'] else ''}"


def paired(cells: dict[str, Any], method: str, other: str, seeds: list[int]) -> dict[str, Any] | None:
    """``method - other`` per seed (mean of each set's runs), their mean and std over seeds."""
    pairs = [(cells.get(f"{method}/seed{s}"), cells.get(f"{other}/seed{s}")) for s in seeds]
    if not all(a and b for a, b in pairs):
        return None
    diffs = np.array([a["top1_mean"] - b["top1_mean"] for a, b in pairs])
    return {"per_seed": diffs.tolist(), "mean": float(diffs.mean()), "std": float(diffs.std()),
            "beats": bool(diffs.mean() > diffs.std())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--benchmark", default="synth-actions", choices=("synth-actions", "synth-motion"))
    parser.add_argument("--methods", default="random,herding,dm,mtt")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--ipc", type=int, default=1)
    add_protocol_args(parser, protocol="cpu")
    parser.add_argument("--set", action="append", default=[], metavar="METHOD:KEY=VALUE",
                        help="override one method's recipe, e.g. dm:iterations=1000")
    parser.add_argument("--work", default=None, help="default benchmarks/work/paired-BENCHMARK")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()

    work, out = Path(args.work or f"benchmarks/work/paired-{args.benchmark}"), Path(args.out)
    train, test, _ = benchmark_stores(args.benchmark, work)
    protocol = get_protocol(args.protocol).with_runs(args.runs)
    methods, seeds = args.methods.split(","), [int(s) for s in args.seeds.split(",")]
    results = load_results(out)
    results.update({"benchmark": args.benchmark, "ipc": args.ipc, "protocol": protocol.name, "runs": args.runs,
                    "set": args.set, **machine_info()})
    cells = results.setdefault("cells", {})
    if any(m.endswith("mtt") for m in methods):
        train_experts(train, work / "experts", SYNTH_EXPERTS, seed=0, resume=True)
    for method in methods:
        for seed in seeds:
            key = f"{method}/seed{seed}"
            if key in cells:
                continue
            cfg = resolve_config(method, recipe_for(method, args.ipc, seed, args.set, work / "experts"))
            run_dir = work / "runs" / f"{method}-ipc{args.ipc}-seed{seed}"
            result = distill(train, cfg, run_dir, resume=True, overwrite=True)
            report = evaluate(result.distilled, test, protocol, train_store=train, references=("random", "full"),
                              cache_dir=work / "references")
            report.save(run_dir / "report.json")
            cells[key] = {"method": method, "seed": seed, "init": cfg.init, "iterations": cfg.iterations,
                          "top1_mean": report.result.top1_mean, "top1_std": report.result.top1_std,
                          "top1_runs": [r.top1 for r in report.result.runs], "collapsed": report.result.collapsed,
                          "warnings": result.distilled.manifest.warnings, "distill_seconds": result.seconds}
            results["references"] = {n: {"top1_mean": s.top1_mean, "top1_std": s.top1_std}
                                     for n, s in report.references.items()}
            print(f"{key}: {100 * report.result.top1_mean:.1f} ± {100 * report.result.top1_std:.1f}", flush=True)
            write_json(out, results)

    lines = ["| method | per-seed top-1 (%) | mean of seeds | - random (paired) | - herding (paired) | "
             "- its start (paired) |", "|---|---|---|---|---|---|"]
    summary = results.setdefault("summary", {})
    for method in methods:
        done = [cells[f"{method}/seed{s}"] for s in seeds if f"{method}/seed{s}" in cells]
        if not done:
            continue
        means = np.array([c["top1_mean"] for c in done])
        start = "herding" if done[0]["init"] == "herding" else "random"
        diffs = {name: paired(cells, method, other, seeds) for name, other in
                 (("vs_random", "random"), ("vs_herding", "herding"), ("vs_start", start))}
        summary[method] = {"seed_means": means.tolist(), "mean": float(means.mean()), "std": float(means.std()),
                           "start": start, **diffs}
        lines.append(f"| {method} | {', '.join(f'{100 * m:.1f}' for m in means)} | {100 * means.mean():.1f} ± "
                     f"{100 * means.std():.1f} | {format_paired(diffs['vs_random'])} | "
                     f"{format_paired(diffs['vs_herding'])} | "
                     f"{format_paired(diffs['vs_start']) if method not in ('random', 'herding') else '-'} |")
    for name, ref in results.get("references", {}).items():
        lines.append(f"| {name} (reference) | - | {100 * ref['top1_mean']:.1f} ± {100 * ref['top1_std']:.1f} | "
                     "- | - | - |")
    results["table"] = "\n".join(lines)
    print(results["table"])
    write_json(out, results)


if __name__ == "__main__":
    main()
