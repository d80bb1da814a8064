"""Speed and memory at scale, side by side with the structures they replace, in one process and one run.

    python -m benchmarks.gpu_scale --scale miniucf --device cuda      # 50 classes x 64 clips, 16x112x112
    OMP_NUM_THREADS=2 python -m benchmarks.gpu_scale --scale cpu      # 8 classes x 16 clips, 8x32x32

Random uint8 clips (accuracy is not the point here) are written with ``write_store``; the library's own
``distill``, ``fit`` and ``fit_runs`` are timed. Sections, each against a baseline measured in the same run:

- ``dm``: one DM iteration (IPC 1, ``batch_real`` clips per class, bf16 autocast on CUDA, no augmentation)
  as ``videodd.distill`` runs it (real pass in chunks of ``max_batch`` clips; and in one pass), against the
  published loop structure written here: a Python loop over classes, each class's clips indexed from a
  float32 copy of the data in host RAM and moved to the device, fp32;
- ``eval``: one evaluation training step and the projected 500-epoch run at IPC 1 and 5, per precision
  (fp32, TF32 on CUDA, bf16);
- ``runs``: R evaluation runs at IPC 1 at once (``fit_runs``) against R runs one after the other;
- ``mtt``: one MTT iteration at IPC 5 with 10 student steps, plain unroll against the checkpointed one.

Memory: ``torch.cuda.max_memory_allocated`` on CUDA. On a CPU it is not measured (``null``): within one
process the allocator reuses what earlier blocks freed, so the resident set hides a block's peak
(``benchmarks/tables/mtt_memory.py`` measures CPU peaks, each in a fresh subprocess).

Writes ``benchmarks/results/12-gpu-scale/SCALE-DEVICE.json``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchmarks.common import BENCHMARKS, machine_info


@dataclass(frozen=True)
class Scale:
    """One benchmark size."""

    classes: int
    per_class: int
    frames: int
    size: int
    batch_real: int
    iterations: int  # timed DM iterations (after one warm-up)
    eval_epochs: int  # timed evaluation epochs (the 500-epoch run is projected from them)
    runs: int  # evaluation runs at once vs one after the other


SCALES = {
    "cpu": Scale(classes=8, per_class=16, frames=8, size=32, batch_real=16, iterations=3, eval_epochs=4, runs=5),
    "miniucf": Scale(classes=50, per_class=64, frames=16, size=112, batch_real=64, iterations=3, eval_epochs=10,
                     runs=5),
}


def measure(device: torch.device, block: Callable[[], Any]) -> tuple[Any, float, int | None]:
    """``block()``'s result, wall seconds and peak device memory in bytes above the level before it (None on a
    CPU)."""
    cuda = device.type == "cuda"
    if cuda:
        torch.cuda.synchronize()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    out = block()
    if cuda:
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    return out, seconds, int(torch.cuda.max_memory_allocated() - base) if cuda else None


def make_store(root: Path, scale: Scale):
    from videodd.data.spec import ClipSpec
    from videodd.data.store import write_store

    rng = np.random.default_rng(0)
    n = scale.classes * scale.per_class
    clips = rng.integers(0, 256, size=(n, scale.frames, scale.size, scale.size, 3), dtype=np.uint8)
    labels = np.repeat(np.arange(scale.classes), scale.per_class)
    spec = ClipSpec(frames=scale.frames, size=scale.size, stride=1, train_sampling="center")
    return write_store(root / "train", clips, labels, dataset="gpu-scale", split="train",
                       classes=[f"c{c}" for c in range(scale.classes)], spec=spec)


# -- DM ---------------------------------------------------------------------------------------------
def published_dm(store, scale: Scale, model: str, device: torch.device) -> dict[str, Any]:
    """Seconds per iteration and peak memory of the published DM loop structure (fp32, per-class loop, data
    from host RAM)."""
    from videodd.models import create_model

    mean = torch.tensor(store.meta.mean).view(1, 3, 1, 1, 1)
    std = torch.tensor(store.meta.std).view(1, 3, 1, 1, 1)
    # the published scripts load every clip into one float tensor in RAM: (N, C, T, H, W)
    images_all = ((torch.from_numpy(np.array(store.clips)).permute(0, 4, 1, 2, 3).float() / 255) - mean) / std
    indices = [np.flatnonzero(np.asarray(store.labels) == c) for c in range(scale.classes)]
    syn = images_all[[ix[0] for ix in indices]].clone().to(device).requires_grad_(True)  # (K, C, T, H, W)
    opt = torch.optim.SGD([syn], lr=1.0, momentum=0.5)
    gen = torch.Generator().manual_seed(0)

    def iteration() -> None:
        net = create_model(model, scale.classes, tuple(syn.shape[1:])).to(device)
        net.train()
        net.requires_grad_(False)
        loss = torch.zeros((), device=device)
        for c in range(scale.classes):
            take = indices[c][torch.randperm(len(indices[c]), generator=gen)[: scale.batch_real].numpy()]
            img_real = images_all[take].to(device)  # a pageable host-to-device copy per class
            out_real = net.embed(img_real).detach()
            out_syn = net.embed(syn[c : c + 1])
            loss = loss + ((out_real.mean(0) - out_syn.mean(0)) ** 2).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()

    iteration()  # warm-up
    _, seconds, peak = measure(device, lambda: [iteration() for _ in range(scale.iterations)])
    return {"seconds_per_iteration": seconds / scale.iterations, "peak_bytes": peak}


def dm_section(store, scale: Scale, model: str, device: torch.device, work: Path) -> dict[str, Any]:
    from videodd.distill import GPU_MAX_BATCH, resolve_config
    from videodd.distill import distill as run_distill

    out: dict[str, Any] = {}
    whole = scale.classes * scale.batch_real
    bounds = {"videodd (chunks)": GPU_MAX_BATCH if device.type == "cuda" else max(whole // 4, scale.batch_real),
              "videodd (one pass)": whole}
    for name, bound in bounds.items():
        # iterations 2 .. N+1 are timed: the first warms up, the last writes the final checkpoint
        cfg = resolve_config("dm", {"ipc": 1, "iterations": scale.iterations + 2, "batch_real": scale.batch_real,
                                    "augment": [], "model": model, "max_batch": bound, "checkpoint_every": 1000,
                                    "log_every": 1000})
        stamps: list[float] = []

        def stamp(_it: int, _param: Any, stamps: list[float] = stamps) -> None:
            if device.type == "cuda":
                torch.cuda.synchronize()
            stamps.append(time.perf_counter())

        _, _, peak = measure(device, lambda cfg=cfg, bound=bound, stamp=stamp: run_distill(
            store, cfg, work / f"dm-{bound}", overwrite=True, device=device, on_iteration=stamp))
        per_iteration = (stamps[-2] - stamps[0]) / scale.iterations
        out[name] = {"seconds_per_iteration": per_iteration, "peak_bytes": peak, "max_batch": bound}
    out["published loop"] = published_dm(store, scale, model, device)
    base = out["published loop"]["seconds_per_iteration"]
    for row in out.values():
        row["speedup_vs_published"] = base / row["seconds_per_iteration"]
    return out


# -- evaluation -------------------------------------------------------------------------------------
def _eval_data(scale: Scale, ipc: int, device: torch.device, seed: int = 0):
    from videodd.train import TensorData

    g = torch.Generator().manual_seed(seed)
    videos = torch.randn(scale.classes * ipc, 3, scale.frames, scale.size, scale.size, generator=g)
    return TensorData(videos.to(device), torch.arange(scale.classes).repeat_interleave(ipc).to(device))


def eval_section(scale: Scale, model: str, device: torch.device) -> dict[str, Any]:
    from videodd.evaluate import get_protocol
    from videodd.models import create_model
    from videodd.seeding import make_generator, seeded
    from videodd.train import fit

    train_cfg = get_protocol("default").train
    cfg = type(train_cfg)(**{**train_cfg.__dict__, "epochs": scale.eval_epochs})
    kinds = ["fp32", "tf32", "bf16"] if device.type == "cuda" else ["fp32", "bf16"]
    out: dict[str, Any] = {}
    for ipc in (1, 5):
        data = _eval_data(scale, ipc, device)
        steps_per_epoch = -(-len(data.videos) // cfg.batch_size)
        for kind in kinds:
            with seeded(make_generator(0)):
                net = create_model(model, scale.classes, tuple(data.videos.shape[1:]))
            fit(net, data, type(cfg)(**{**cfg.__dict__, "epochs": 1}), generator=make_generator(0), device=device,
                precision_kind=kind)  # warm-up (cuDNN autotuning, allocator)
            result, seconds, peak = measure(device, lambda net=net, kind=kind, data=data: fit(
                net, data, cfg, generator=make_generator(1), device=device, precision_kind=kind))
            step = seconds / (scale.eval_epochs * steps_per_epoch)
            out[f"ipc{ipc}-{kind}"] = {"seconds_per_step": step, "projected_500_epoch_run_s": step * steps_per_epoch
                                       * train_cfg.epochs, "peak_bytes": peak, "final_loss": result.epoch_losses[-1]}
    return out


def runs_section(scale: Scale, model: str, device: torch.device) -> dict[str, Any]:
    from videodd.evaluate import get_protocol
    from videodd.models import create_model
    from videodd.seeding import make_generator, seeded
    from videodd.train import fit, fit_runs

    train_cfg = get_protocol("default").train
    cfg = type(train_cfg)(**{**train_cfg.__dict__, "epochs": scale.eval_epochs})
    data = _eval_data(scale, 1, device)

    def models() -> list[torch.nn.Module]:
        nets = []
        for r in range(scale.runs):
            with seeded(make_generator(r)):
                nets.append(create_model(model, scale.classes, tuple(data.videos.shape[1:])))
        return nets

    gens = lambda: [make_generator(100 + r) for r in range(scale.runs)]  # noqa: E731
    fit_runs(models(), data, type(cfg)(**{**cfg.__dict__, "epochs": 1}), generators=gens(), device=device)  # warm-up
    _, parallel, peak_p = measure(device, lambda: fit_runs(models(), data, cfg, generators=gens(), device=device))
    _, sequential, peak_s = measure(device, lambda: [fit(m, data, cfg, generator=g, device=device)
                                                     for m, g in zip(models(), gens(), strict=True)])
    one = sequential / scale.runs
    return {"runs": scale.runs, "epochs": scale.eval_epochs, "parallel_s": parallel, "sequential_s": sequential,
            "speedup": sequential / parallel, "parallel_over_one_run": parallel / one,
            "parallel_peak_bytes": peak_p, "sequential_peak_bytes": peak_s}


# -- MTT --------------------------------------------------------------------------------------------
def mtt_section(scale: Scale, model: str, device: torch.device, steps: int = 10, ipc: int = 5) -> dict[str, Any]:
    from videodd.models import create_model
    from videodd.objectives.mtt import UNROLLS, Student, StudentStep
    from videodd.seeding import make_generator, seeded
    from videodd.teachers.experts import flatten_params

    shape = (3, scale.frames, scale.size, scale.size)
    with seeded(make_generator(0)):
        net = create_model(model, scale.classes, shape).to(device)
    student = Student(net, device)
    theta0 = flatten_params(net).detach()
    g = torch.Generator().manual_seed(0)
    videos = torch.randn(scale.classes * ipc, *shape, generator=g).to(device).requires_grad_(True)
    labels = torch.arange(scale.classes).repeat_interleave(ipc).to(device)
    lr = torch.tensor(0.01, device=device, requires_grad=True)
    plan = [StudentStep(indices=torch.arange(len(videos), device=device), seed=i, augment=None) for i in range(steps)]
    out: dict[str, Any] = {"ipc": ipc, "syn_steps": steps}
    for name, unroll in UNROLLS.items():
        def iteration(unroll=unroll) -> float:
            videos.grad = None
            theta = unroll(student, theta0, videos, labels, lr, plan)
            loss = (theta - theta0).pow(2).sum()
            loss.backward()
            return float(videos.grad.norm())

        iteration()  # warm-up
        grad_norm, seconds, peak = measure(device, iteration)
        out[name] = {"seconds": seconds, "peak_bytes": peak, "grad_norm": grad_norm}
    out["checkpoint_time_ratio"] = out["checkpoint"]["seconds"] / out["plain"]["seconds"]
    if device.type == "cuda":
        out["checkpoint_memory_ratio"] = out["checkpoint"]["peak_bytes"] / out["plain"]["peak_bytes"]
    return out


# -- the run ----------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", choices=sorted(SCALES), default="cpu")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--sections", default="dm,eval,runs,mtt")
    parser.add_argument("--out", default=None, help="JSON path (default: benchmarks/results/12-gpu-scale/...)")
    args = parser.parse_args(argv)
    from videodd.evaluate import get_protocol

    scale, device = SCALES[args.scale], torch.device(args.device)
    model = get_protocol("default").model_for((3, scale.frames, scale.size, scale.size))
    out_path = Path(args.out or BENCHMARKS / "results" / "12-gpu-scale" / f"{args.scale}-{device.type}.json")
    results: dict[str, Any] = {"scale": args.scale, **scale.__dict__, "model": model, "device": str(device),
                               **machine_info()}
    if device.type == "cuda":
        results["gpu"] = torch.cuda.get_device_name(device)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        store = make_store(work, scale) if "dm" in args.sections else None
        sections = {"dm": lambda: dm_section(store, scale, model, device, work),
                    "eval": lambda: eval_section(scale, model, device),
                    "runs": lambda: runs_section(scale, model, device),
                    "mtt": lambda: mtt_section(scale, model, device)}
        for name in args.sections.split(","):
            start = time.perf_counter()
            results[name] = sections[name]()
            print(f"{name} ({time.perf_counter() - start:.0f} s): {json.dumps(results[name], indent=1)}", flush=True)
            out_path.parent.mkdir(parents=True, exist_ok=True)
            out_path.write_text(json.dumps(results, indent=1) + "\n")  # after every section: a timeout keeps the rest
    print(f"wrote {out_path}")


if __name__ == "__main__":
    main()
