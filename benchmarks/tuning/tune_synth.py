"""Tune any method's recipe on a VALIDATION split of synth-actions (never on the test split).

    python -m benchmarks.tuning.tune_synth --recipe configs/synth-actions/dc-ipc1.yaml \
        --grid lr=0.01,0.05,0.2 --set iterations=100 --out benchmarks/results/3-tuning/tune_dc_synth.json

Every value of ``--grid KEY=V1,V2,..`` (dotted keys reach component options, e.g.
``objective.lr_net``) is distilled from the recipe with ``--set`` overrides applied, then
evaluated on the validation clips (the synth-actions generator with ``seed=1``, test split:
disjoint from both the benchmark's training and test clips) with the ``cpu`` protocol. The
recipe's own initialisation (its ``init`` selector at the same IPC) is evaluated alongside, since
that is what the optimisation must improve on. Cells already in ``--out`` are skipped, so an
interrupted sweep resumes. MTT recipes are pointed at ``--experts``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from benchmarks.common import load_results, set_dotted, validation_store
from videodd.config import load_yaml
from videodd.data.synthetic import SynthActionsConfig, synth_actions_stores
from videodd.distill import NonFiniteError, distill, resolve_config
from videodd.evaluate import evaluate, get_protocol
from videodd.io import write_json


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipe", required=True)
    parser.add_argument("--grid", required=True, help="KEY=V1,V2,... (one key)")
    parser.add_argument("--set", action="append", default=[], help="KEY=VALUE applied to every cell")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--experts", default="benchmarks/work/methods/experts")
    parser.add_argument("--work", default="benchmarks/work")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()

    work, out = Path(args.work), Path(args.out)
    train, _ = synth_actions_stores(work / "data", SynthActionsConfig())
    val = validation_store(work, train)
    protocol = get_protocol("cpu").with_runs(args.runs)
    base = load_yaml(args.recipe)
    method = base.pop("method")
    for item in args.set:
        set_dotted(base, *item.split("=", 1))
    if method.endswith("mtt"):
        set_dotted(base, "objective.experts", str(Path(args.experts).resolve()))
    results = load_results(out)
    results.update({"recipe": args.recipe, "set": args.set, "protocol": protocol.name, "runs": args.runs,
                    "split": "validation (synth-actions seed 1)"})
    cells = results.setdefault("cells", {})

    init_method = {"real": "random", "noise": None}.get(base.get("init", "real"), base.get("init"))
    if init_method and "init" not in cells and method not in ("random", "herding", "kcenter"):
        init_dir = work / "tune" / f"{init_method}-ipc{base['ipc']}"
        res = distill(train, resolve_config(init_method, {"ipc": base["ipc"]}), init_dir, resume=True,
                      overwrite=True)
        rep = evaluate(res.distilled, val, protocol, references=())
        cells["init"] = {"method": init_method, "val_top1_mean": rep.result.top1_mean,
                         "val_top1_std": rep.result.top1_std}
        print(json.dumps(cells["init"]), flush=True)
        write_json(out, results)

    key, values = args.grid.split("=", 1)
    for value in values.split(","):
        name = f"{key}={value}"
        if name in cells:
            print(f"{name}: done", flush=True)
            continue
        cfg_dict = json.loads(json.dumps(base))
        set_dotted(cfg_dict, key, value)
        tag = "-".join(f"{k}{v}" for k, v in [(key, value), *(s.split("=", 1) for s in args.set)])
        run_dir = work / "tune" / f"{method}-ipc{base['ipc']}-{tag}"
        start = time.perf_counter()
        try:
            res = distill(train, resolve_config(method, cfg_dict), run_dir, resume=True, overwrite=True)
        except NonFiniteError as err:  # too large a step: record it and go on
            cells[name] = {"error": str(err).split(";")[0]}
            write_json(out, results)
            continue
        rep = evaluate(res.distilled, val, protocol, references=())
        cells[name] = {"val_top1_mean": rep.result.top1_mean, "val_top1_std": rep.result.top1_std,
                       "val_top1_runs": [r.top1 for r in rep.result.runs], "diverged": rep.result.diverged,
                       "seconds_per_iteration": res.seconds_per_iteration, "seconds": time.perf_counter() - start}
        print(name, json.dumps(cells[name]), flush=True)
        write_json(out, results)
    done = {k: v for k, v in cells.items() if k != "init" and "val_top1_mean" in v}
    if done:
        best = max(done, key=lambda k: done[k]["val_top1_mean"])
        results["chosen"] = best
        print(f"best on validation: {best} ({100 * done[best]['val_top1_mean']:.1f}%)")
        write_json(out, results)


if __name__ == "__main__":
    main()
