"""A quick check of MTT's pixel step size on synth-actions, on a VALIDATION split (never on test).

    python -m benchmarks.tuning.tune_mtt_synth --lrs 100,1000,10000 --iterations 40

Experts (CPU scale, in ``--work/mtt_experts``, resumable): convnet3d-s, SGD lr 0.05, batch 64,
momentum 0, no augmentation, 6 epochs, every epoch kept. The published lr 0.01 at batch 256
barely moves a no-norm net in a few epochs on 1000 clips (training loss 2.31 -> 2.24 after 6
epochs at batch 64), so the trajectories would carry little; lr 0.05 reaches 1.21. MTT: IPC 1,
syn_steps 10, expert_epochs 1, max_start_epoch 5, student lr initialised at the experts' 0.05.
Validation clips: the synth-actions generator with seed 1 (as ``tune_dm_synth.py``).
Writes ``benchmarks/results/unreferenced/tune_mtt_synth.json`` (no RESULTS.md table cites it).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

from benchmarks.common import validation_store
from videodd.data.synthetic import SynthActionsConfig, synth_actions_stores
from videodd.distill import NonFiniteError, distill, resolve_config
from videodd.evaluate import evaluate, get_protocol
from videodd.teachers.experts import ExpertConfig, train_experts

# as measured: experts without the published flips/renormalization/z-score, experts drawn with replacement
EXPERTS = ExpertConfig(model="convnet3d-s", epochs=6, lr=0.05, batch_size=64, num_experts=2, flip=0.0, zscore=False,
                       renormalize=None)
MTT = {"syn_steps": 10, "expert_epochs": 1, "max_start_epoch": 5, "lr_init": 0.05, "expert_order": "replacement"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lrs", default="100,1000,10000")
    parser.add_argument("--iterations", type=int, default=40)
    parser.add_argument("--num-experts", type=int, default=EXPERTS.num_experts)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--eval-epochs", type=int, default=None, help="shorter evaluation than the cpu protocol's 300")
    parser.add_argument("--work", default="benchmarks/work")
    parser.add_argument("--out", default="benchmarks/results/unreferenced/tune_mtt_synth.json")
    args = parser.parse_args()

    work = Path(args.work)
    train, _ = synth_actions_stores(work / "data", SynthActionsConfig())
    val = validation_store(work, train)
    start = time.perf_counter()
    experts = train_experts(train, work / "mtt_experts", ExpertConfig(**{**EXPERTS.__dict__,
                                                                         "num_experts": args.num_experts}))
    print(f"experts: {experts.manifest['num_experts']} in {time.perf_counter() - start:.0f} s, "
          f"losses {[e['epoch_losses'] for e in experts.manifest['experts']]}", flush=True)
    protocol = get_protocol("cpu").with_runs(args.runs)
    if args.eval_epochs:
        protocol = dataclasses.replace(protocol, name=f"cpu-{args.eval_epochs}ep",
                                       train=dataclasses.replace(protocol.train, epochs=args.eval_epochs))
    init = distill(train, resolve_config("random", {"ipc": 1}), work / "tune" / "random-ipc1", resume=True,
                   overwrite=True)
    init_report = evaluate(init.distilled, val, protocol, references=())
    results = [{"method": "random (MTT init)", "val_top1_mean": init_report.result.top1_mean,
                "val_top1_std": init_report.result.top1_std}]
    print(json.dumps(results[0]), flush=True)
    for lr in [float(x) for x in args.lrs.split(",")]:
        cfg = resolve_config("mtt", {"ipc": 1, "lr": lr, "iterations": args.iterations, "log_every": 1,
                                     "objective": {**MTT, "experts": str(work / "mtt_experts")}})
        run_dir = work / "tune" / f"mtt-ipc1-lr{lr:g}-it{args.iterations}"
        row = {"method": "mtt", "lr": lr, "iterations": args.iterations, **MTT}
        try:
            res = distill(train, cfg, run_dir, resume=True, overwrite=True)
        except NonFiniteError as err:
            results.append({**row, "error": str(err)})
            print(json.dumps(results[-1]), flush=True)
            continue
        losses = [json.loads(ln)["loss"] for ln in (run_dir / "metrics.jsonl").read_text().splitlines()]
        report = evaluate(res.distilled, val, protocol, references=())
        quarter = max(1, len(losses) // 4)
        row.update({"loss_first_quarter": sum(losses[:quarter]) / quarter,
                    "loss_last_quarter": sum(losses[-quarter:]) / quarter,
                    "learned_lr": res.distilled.manifest.learned_lr,
                    "seconds_per_iteration": res.seconds_per_iteration,
                    "val_top1_mean": report.result.top1_mean, "val_top1_std": report.result.top1_std})
        results.append(row)
        print(json.dumps(row), flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"experts": EXPERTS.__dict__ | {"num_experts": args.num_experts},
                                          "protocol": protocol.name, "runs": args.runs, "results": results},
                                         indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
