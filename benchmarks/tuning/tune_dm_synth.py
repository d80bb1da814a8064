"""Choose DM's step size on a VALIDATION split of synth-actions (never on the test split).

    python -m benchmarks.tuning.tune_dm_synth --lrs 1,10,100 --iterations 200

The validation clips come from the same generator with another seed (``seed=1``, test split),
so they are disjoint from both the training and the test clips of the benchmark (``seed=0``).
Writes ``benchmarks/results/3-tuning/tune_dm_synth.json``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from benchmarks.common import DM_RANDOM_INIT, validation_store
from videodd.data.synthetic import SynthActionsConfig, synth_actions_stores
from videodd.distill import NonFiniteError, distill, resolve_config
from videodd.evaluate import evaluate, get_protocol


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lrs", default="1,10,100")
    parser.add_argument("--iterations", type=int, default=DM_RANDOM_INIT["iterations"])
    parser.add_argument("--ipc", type=int, default=1)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--models", default="convnet3d-s", help="comma-separated DM embedding networks to try")
    parser.add_argument("--init", default="real", help="DM initialisation: real (random clips), herding, kcenter")
    parser.add_argument("--work", default="benchmarks/work")
    parser.add_argument("--out", default="benchmarks/results/3-tuning/tune_dm_synth.json")
    args = parser.parse_args()

    work = Path(args.work)
    cfg = SynthActionsConfig()
    train, _ = synth_actions_stores(work / "data", cfg)
    val = validation_store(work, train)
    protocol = get_protocol("cpu").with_runs(args.runs)
    # the DM initialisation (random real clips, same seed) on validation: what DM must improve on
    init_method = "random" if args.init == "real" else args.init
    tune = work / "tune"
    init = distill(train, resolve_config(init_method, {"ipc": args.ipc}), tune / f"{init_method}-ipc{args.ipc}",
                   resume=True, overwrite=True)
    init_report = evaluate(init.distilled, val, protocol, references=())
    results = [{"method": f"{init_method} (DM init)", "val_top1_mean": init_report.result.top1_mean,
                "val_top1_std": init_report.result.top1_std}]
    print(json.dumps(results[0]))
    for model in args.models.split(","):
        for lr in [float(x) for x in args.lrs.split(",")]:
            dcfg = resolve_config("dm", {**DM_RANDOM_INIT, "iterations": args.iterations, "lr": lr, "ipc": args.ipc,
                                         "model": model, "init": args.init})
            start = time.perf_counter()
            try:
                name = f"dm-ipc{args.ipc}-{model}-lr{lr:g}-it{args.iterations}-{args.init}"
                res = distill(train, dcfg, tune / name, resume=True, overwrite=True)
            except NonFiniteError as err:  # too large a step: record it and go on
                results.append({"method": "dm", "model": model, "lr": lr, "iterations": args.iterations,
                                "val_top1_mean": float("nan"), "error": str(err).split(";")[0]})
                print(json.dumps(results[-1]))
                continue
            report = evaluate(res.distilled, val, protocol, references=())
            row = {"method": "dm", "model": model, "lr": lr, "iterations": args.iterations,
                   "val_top1_mean": report.result.top1_mean, "val_top1_std": report.result.top1_std,
                   "diverged": report.result.diverged, "seconds_per_iteration": res.seconds_per_iteration,
                   "seconds": time.perf_counter() - start}
            print(json.dumps(row))
            results.append(row)
    best = max((r for r in results if r["method"] == "dm" and "error" not in r), key=lambda r: r["val_top1_mean"])
    print(f"best on validation: {best['model']} lr {best['lr']:g} ({100 * best['val_top1_mean']:.1f}%)")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    summary = {"protocol": protocol.name, "runs": args.runs, "ipc": args.ipc, "results": results,
               "chosen": {"model": best["model"], "lr": best["lr"]}}
    out.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
