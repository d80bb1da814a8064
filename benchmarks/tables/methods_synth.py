"""Every distillation method on synth-actions (CPU scale) at several IPCs, one table.

    python -m benchmarks.tables.methods_synth --ipcs 1,5 --methods random,herding,kcenter,dm,mtt,dc,frepo \
        --protocol default --runs 3 [--cross-models convnet3d-s-bn,convnet-s-mean,convnet-s-gru,resnet3d-18-s]

Each method runs its recipe ``configs/synth-actions/METHOD-ipcK.yaml`` when there is one (the
method's defaults at that IPC otherwise), so the table is the recipes as shipped. MTT's experts
are trained first, as the recipe's comment says, into ``WORK/experts``. Results are written to
``--out`` after every cell, and cells already there are skipped, so an interrupted benchmark
resumes. Every cell records the recipe it ran. ``--redo METHODS`` measures those methods' cells
again where the recipe has changed since (or was not recorded): the old cell is appended to
``"superseded"`` in ``--out`` and its run folder becomes ``NAME-superseded``. A cell already run
with the current recipe is kept, so a ``--redo`` benchmark that was interrupted resumes too.
``--cross-models`` adds a cross-architecture table for DM and MTT at IPC 1.

Static-dynamic methods (``vdsd-dm``, ``vdsd-mtt``) read the stills of this benchmark's own
``vdsd-static`` run at the same IPC (run first when it is listed). ``METHOD@VARIANT`` runs an
ablation of a recipe (``VARIANTS``), e.g. ``vdsd-dm@statics-only`` and ``vdsd-dm@frozen-h``:

    python -m benchmarks.tables.methods_synth --ipcs 1 \
        --methods vdsd-static,vdsd-dm@statics-only,vdsd-dm@frozen-h,vdsd-dm \
        --out benchmarks/results/8-vdsd/vdsd_synth.json
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path
from typing import Any

from benchmarks.common import (
    SYNTH_ACTIONS,
    SYNTH_EXPERTS,
    add_protocol_args,
    load_results,
    shipped_recipe,
)
from videodd.data.synthetic import SynthActionsConfig, synth_actions_stores
from videodd.distill import distill, resolve_config
from videodd.evaluate import evaluate, get_protocol
from videodd.io import write_json
from videodd.report import cross_arch_table, markdown_table, rows_from_report
from videodd.teachers.experts import train_experts

# Ablations of a recipe, run as METHOD@VARIANT (the static-dynamic paper's ablation rows).
VARIANTS: dict[str, dict[str, Any]] = {
    # the stage-1 stills repeated over the T frames: no dynamic memory, no hallucinator
    "statics-only": {"iterations": 0, "parametrization": {"dynamics": False}},
    # stills + dynamic maps, the hallucinator frozen at its initialisation
    "frozen-h": {"parametrization": {"train_h": False}},
}


def recipe(name: str, ipc: int, work: Path) -> dict[str, Any]:
    """The shipped recipe's overrides for ``name`` (``METHOD`` or ``METHOD@VARIANT``) at ``ipc``.

    MTT objectives are pointed at ``WORK/experts``, static-dynamic stills at ``WORK``'s own
    ``vdsd-static`` run at the same IPC.
    """
    method, _, variant = name.partition("@")
    overrides = shipped_recipe(method, ipc)
    if method.endswith("mtt"):
        overrides["objective"] = {**overrides.get("objective", {}), "experts": str(work / "experts")}
    if method.startswith("vdsd-") and method != "vdsd-static":
        statics = work / "runs" / f"vdsd-static-ipc{ipc}" / "distilled.safetensors"
        overrides["parametrization"] = {**overrides.get("parametrization", {}), "statics": str(statics)}
    for key, value in VARIANTS[variant].items() if variant else ():
        overrides[key] = {**overrides.get(key, {}), **value} if isinstance(value, dict) else value
    return overrides


def supersede(results: dict[str, Any], key: str, run_dir: Path, part: str = "cells", why: str = "") -> None:
    """Append ``key``'s cell of ``results[part]`` to ``results["superseded"][key]`` (with ``why`` and the kept
    run folder's name) and keep its run folder as ``NAME-superseded``, so that the benchmark measures the cell
    again (the old figures stay on record)."""
    cell = {**results[part].pop(key), "run_dir": f"{run_dir.parent.name}/{run_dir.name}-superseded",
            **({"superseded_because": why} if why else {})}
    results.setdefault("superseded", {}).setdefault(key, []).append(cell)
    if run_dir.exists():
        old = run_dir.with_name(f"{run_dir.name}-superseded")
        if old.exists():
            shutil.rmtree(old)  # only the latest superseded run is kept; its cell is in the JSON
        run_dir.rename(old)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ipcs", default="1,5")
    parser.add_argument("--methods", default="random,herding,kcenter,dm,mtt,dc,frepo")
    add_protocol_args(parser)
    parser.add_argument("--redo", default="", help="methods whose finished cells are superseded and run again")
    parser.add_argument("--cross-models", default="", help="evaluation models for the DM/MTT cross-architecture table")
    parser.add_argument("--work", default="benchmarks/work/methods")
    parser.add_argument("--out", default="benchmarks/results/7-methods/methods_synth.json")
    args = parser.parse_args()

    work, out = Path(args.work), Path(args.out)
    train, test = synth_actions_stores(work / "data", SynthActionsConfig())
    protocol = get_protocol(args.protocol).with_runs(args.runs)
    methods = [m for m in args.methods.split(",") if m]
    results = load_results(out, benchmark=SYNTH_ACTIONS, protocol=protocol.name, runs=args.runs)
    cells = results.setdefault("cells", {})
    experts = work / "experts"
    unknown = [m for m in methods if m.partition("@")[2] not in ("", *VARIANTS)]
    if unknown:
        raise SystemExit(f"unknown variant in {unknown}; valid: {', '.join(VARIANTS)}")
    methods.sort(key=lambda m: m != "vdsd-static")  # stage 1 before the stage-2 runs that read it
    if any(m.partition("@")[0].endswith("mtt") for m in methods):
        res = train_experts(train, experts, SYNTH_EXPERTS, seed=0, resume=True)
        print(f"experts: {res.total_bytes / 2**20:.1f} MiB in {experts}")
    reports = {}
    for ipc in [int(x) for x in args.ipcs.split(",")]:
        for method in methods:
            key = f"{method}/ipc{ipc}"
            run_dir = work / "runs" / f"{method}-ipc{ipc}"
            overrides = recipe(method, ipc, work)
            ran = json.loads(json.dumps(overrides))  # as the cell stores it (JSON: tuples become lists)
            if method in args.redo.split(",") and key in cells and cells[key].get("recipe") != ran:
                supersede(results, key, run_dir)
                write_json(out, results)
            if key in cells and (run_dir / "distilled.safetensors").exists():
                print(f"{key}: done")
                continue
            start = time.perf_counter()
            if method == "vdsd-static":  # stage 1: stills (T = 1), read by the stage-2 runs, not evaluated
                if not (run_dir / "distilled.safetensors").exists():
                    result = distill(train, resolve_config(method, overrides), run_dir, resume=True)
                    stored = result.distilled.storage_bytes()["total"]
                    cells[key] = {"method": method, "ipc": ipc, "recipe": ran, "storage_bytes": stored,
                                  "distill_seconds": result.seconds}
                    write_json(out, results)
                continue
            result = distill(train, resolve_config(method.partition("@")[0], overrides), run_dir, resume=True,
                             overwrite=True)
            report = evaluate(result.distilled, test, protocol, train_store=train, references=("random", "full"),
                              cache_dir=work / "references")
            report.save(run_dir / "report.json")
            reports[key] = report
            rows = rows_from_report(report, distill_seconds=result.seconds)
            cells[key] = {
                "method": method, "ipc": ipc, "recipe": ran,
                "top1_mean": report.result.top1_mean, "top1_std": report.result.top1_std,
                "top1_runs": [r.top1 for r in report.result.runs], "storage_bytes": report.storage_bytes,
                "distill_seconds": result.seconds, "eval_seconds": report.wall_seconds,
                "seconds": time.perf_counter() - start,
                "references": {n: {"top1_mean": s.top1_mean, "top1_std": s.top1_std}
                               for n, s in report.references.items()},
                "table": markdown_table(rows),
            }
            print(cells[key]["table"], flush=True)
            write_json(out, results)
    if args.cross_models:
        from videodd.distilled import DistilledSet

        models = args.cross_models.split(",")
        cross = results.setdefault("cross_arch", {})
        for method in ("dm", "mtt"):
            run_dir = work / "runs" / f"{method}-ipc1"
            if not (run_dir / "distilled.safetensors").exists():
                continue
            distilled = DistilledSet.load(run_dir / "distilled.safetensors")
            done = cross.setdefault(method, {}).setdefault("models", {})
            for model in models:  # one cell per (method, model), written as it finishes: resumable
                if model in done:
                    continue
                report = evaluate(distilled, test, protocol.with_model(model), train_store=train,
                                  references=("random",), cache_dir=work / "references")
                report.save(run_dir / f"report-{model}.json")
                header, rule, row = cross_arch_table([report]).split("\n")
                random_ref = report.references["random real IPC 1"]
                done[model] = {"top1_mean": report.result.top1_mean, "top1_std": report.result.top1_std,
                               "top1_runs": [r.top1 for r in report.result.runs],
                               "random_top1_mean": random_ref.top1_mean, "random_top1_std": random_ref.top1_std,
                               "eval_seconds": report.wall_seconds, "head": [header, rule], "row": row}
                print(row, flush=True)
                write_json(out, results)
            rows = [done[m] for m in models if m in done]
            cross[method]["table"] = "\n".join([*rows[0]["head"], *[r["row"] for r in rows]])
            print(f"{method}, IPC 1:\n{cross[method]['table']}", flush=True)
            write_json(out, results)

if __name__ == "__main__":
    main()
