"""Calibrate an embedded benchmark (``synth-actions``, or ``synth-motion`` with ``--benchmark``) with the CPU
evaluation model.

Measures, at one generator config (the default unless overridden with ``--gen key=value``):

* ``full``: ``convnet3d-s`` trained on the whole training set (the upper reference);
* ``ipc1``: the same model trained on 1 random real training clip per class, over several
  seeds (the lower reference a distillation method must beat);
* ``single_frame``: the model trained and tested on clips whose frames are all replaced by the
  middle frame (what appearance alone can do; it should be clearly below ``full``).

Writes a JSON file with the numbers, timings, per-class accuracies and the config::

    .venv/bin/python -m benchmarks.tables.calibrate_synth --out benchmarks/results/1-calibration/calibrate_synth.json
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from videodd.data.store import ClipStore
from videodd.data.synth_motion import SynthMotionConfig, prepare_synth_motion
from videodd.data.synthetic import SynthActionsConfig, prepare_synth_actions
from videodd.io import write_json
from videodd.models import create_model
from videodd.seeding import make_generator, seeded
from videodd.train import StoreData, TrainConfig, VideoData, fit, predict

#: the embedded benchmarks: generator config and the function that writes its train/test stores
GENERATORS: dict[str, tuple[type, Any]] = {"synth-actions": (SynthActionsConfig, prepare_synth_actions),
                                           "synth-motion": (SynthMotionConfig, prepare_synth_motion)}

#: Calibration targets at the default config (10 classes): accuracy ranges and the least gap
#: between the full-clip and the single-frame model.
TARGETS: dict[str, Any] = {"full": (0.55, 0.85), "ipc1": (0.15, 0.30), "single_frame_gap": 0.15}


@dataclasses.dataclass
class MiddleFrameData(StoreData):
    """A store's clips with every frame replaced by the middle frame ``T // 2`` (no motion left)."""

    def get(self, indices: np.ndarray, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = super().get(indices, device)  # (n, C, T, H, W)
        mid = x.shape[2] // 2
        return x[:, :, mid : mid + 1].expand_as(x).contiguous(), y


def train_and_test(train: VideoData, test: VideoData, store: ClipStore, cfg: TrainConfig, seed: int,
                   model_name: str) -> dict[str, Any]:
    """Train a fresh ``model_name`` on ``train`` with ``cfg`` and return its test accuracy."""
    gen = make_generator(seed)
    with seeded(gen):
        model = create_model(model_name, store.num_classes, input_shape=store.video_shape)
    result = fit(model, train, cfg, generator=gen)
    pred = predict(model, test)
    last = result.epoch_losses[-1]
    k = store.num_classes
    confusion = np.zeros((k, k), dtype=np.int64)  # rows: true class, columns: predicted class
    np.add.at(confusion, (pred.labels.numpy(), pred.logits.argmax(1).numpy()), 1)
    return {
        "accuracy": pred.topk(1),
        "per_class": pred.per_class(k),
        "confusion": confusion.tolist(),
        # None when the loss became NaN/Inf: the optimizer diverged and the model is at chance
        "final_train_loss": last if math.isfinite(last) else None,
        "diverged": not math.isfinite(last),
        "seconds": result.seconds,
    }


def parse_overrides(items: list[str], config: type = SynthActionsConfig) -> dict[str, Any]:
    """``key=value`` strings -> a dict of generator overrides (ints, floats)."""
    fields = {f.name: f for f in dataclasses.fields(config)}
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or key not in fields:
            raise SystemExit(f"--gen {item!r}: expected key=value with key in {sorted(fields)}")
        default = getattr(config(), key)
        out[key] = int(value) if isinstance(default, int) else float(value)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="benchmarks/results/1-calibration/calibrate_synth.json", help="result JSON path")
    p.add_argument("--benchmark", default="synth-actions", choices=sorted(GENERATORS), help="which generator")
    p.add_argument("--data", default=None, help="folder for the generated stores (default: a temporary one)")
    p.add_argument("--gen", action="append", default=[], metavar="KEY=VALUE",
                   help="override a SynthActionsConfig field (repeatable), e.g. --gen noise_std=0.1")
    p.add_argument("--model", default="convnet3d-s", help="evaluation model (default convnet3d-s)")
    p.add_argument("--epochs", type=int, default=30, help="epochs of the full-data and single-frame runs")
    p.add_argument("--batch-size", type=int, default=64, help="batch size of the full and single-frame runs")
    p.add_argument("--ipc-epochs", type=int, default=300, help="epochs of the IPC-1 runs")
    p.add_argument("--ipc-batch-size", type=int, default=256, help="batch size of the IPC-1 runs")
    p.add_argument("--ipc-seeds", type=int, default=3, help="IPC-1 runs (different clips and init)")
    p.add_argument("--seed", type=int, default=0, help="training seed (model init, shuffling)")
    p.add_argument("--skip", default="", help="comma-separated parts to skip: full, single_frame, ipc1")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}

    config, prepare = GENERATORS[args.benchmark]
    gen_cfg = config(**parse_overrides(args.gen, config))
    tmp = None
    if args.data is None:
        tmp = tempfile.TemporaryDirectory(prefix="calibrate_synth_")
        data_dir = Path(tmp.name)
    else:
        data_dir = Path(args.data)
    start = time.perf_counter()
    train, test = prepare(data_dir, gen_cfg)
    gen_seconds = time.perf_counter() - start
    chance = 1.0 / train.num_classes
    print(f"generated {len(train)} train / {len(test)} test clips in {gen_seconds:.1f} s; "
          f"chance {chance:.3f}")

    full_cfg = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=0.01, momentum=0.9,
                           weight_decay=5e-4, lr_milestones=(0.5,))
    ipc_cfg = TrainConfig(epochs=args.ipc_epochs, batch_size=args.ipc_batch_size, lr=0.01, momentum=0.9,
                          weight_decay=5e-4, lr_milestones=(0.5,))
    result: dict[str, Any] = {
        "benchmark": args.benchmark,
        "generator": gen_cfg.to_dict(),
        "classes": gen_cfg.classes,
        "train_clips": len(train),
        "test_clips": len(test),
        "chance": chance,
        "generation_seconds": gen_seconds,
        "model": args.model,
        "torch_threads": torch.get_num_threads(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "torch": torch.__version__,
    }

    if "full" not in skip:
        r = train_and_test(StoreData(train), StoreData(test), train, full_cfg, args.seed, args.model)
        result["full"] = {**r, "train": dataclasses.asdict(full_cfg)}
        print(f"full data: {r['accuracy']:.3f} ({args.epochs} epochs, {r['seconds']:.0f} s)")

    if "single_frame" not in skip:
        r = train_and_test(MiddleFrameData(train), MiddleFrameData(test), train, full_cfg, args.seed,
                           args.model)
        result["single_frame"] = {**r, "train": dataclasses.asdict(full_cfg)}
        print(f"single (middle) frame: {r['accuracy']:.3f} ({args.epochs} epochs, {r['seconds']:.0f} s)")

    if "ipc1" not in skip:
        runs = []
        for s in range(args.ipc_seeds):
            rng = np.random.default_rng([args.seed, 1000 + s])
            picks = np.array([rng.choice(train.class_indices(c)) for c in range(train.num_classes)])
            r = train_and_test(StoreData(train, picks), StoreData(test), train, ipc_cfg, args.seed + 1 + s,
                               args.model)
            r["train_indices"] = picks.tolist()
            runs.append(r)
            print(f"random IPC 1, run {s}: {r['accuracy']:.3f} "
                  f"({args.ipc_epochs} epochs, {r['seconds']:.0f} s)")
        accs = np.array([r["accuracy"] for r in runs])
        finite = np.array([not r["diverged"] for r in runs])
        result["ipc1"] = {
            "mean": float(accs.mean()),
            "std": float(accs.std()),
            "accuracies": accs.tolist(),
            "diverged_runs": int((~finite).sum()),
            "mean_of_converged_runs": float(accs[finite].mean()) if finite.any() else None,
            "runs": runs,
            "train": dataclasses.asdict(ipc_cfg),
        }
        print(f"random IPC 1: {accs.mean():.3f} ± {accs.std():.3f} over {len(accs)} runs"
              f" ({int((~finite).sum())} diverged)")

    checks: dict[str, bool] = {}
    if "full" in result:
        checks["full_in_target"] = TARGETS["full"][0] <= result["full"]["accuracy"] <= TARGETS["full"][1]
    if "ipc1" in result:
        checks["ipc1_in_target"] = TARGETS["ipc1"][0] <= result["ipc1"]["mean"] <= TARGETS["ipc1"][1]
    if "full" in result and "single_frame" in result:
        checks["single_frame_clearly_below_full"] = (
            result["single_frame"]["accuracy"] <= result["full"]["accuracy"] - TARGETS["single_frame_gap"])
    result["targets"] = TARGETS
    result["checks"] = checks
    result["total_seconds"] = time.perf_counter() - start
    for name, ok in checks.items():
        print(f"{name}: {'yes' if ok else 'NO'}")
    out = Path(args.out)
    write_json(out, result)
    print(f"wrote {out} ({result['total_seconds']:.0f} s in all)")
    if tmp is not None:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
