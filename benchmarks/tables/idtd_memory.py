"""Peak memory and time of one IDTD iteration against its base objective on pixels, at the 16-frame
datasets' recipes (``configs/miniucf/{dm,idtd-dm,mtt,idtd-mtt}-ipcK.yaml``).

    OMP_NUM_THREADS=1 python -m benchmarks.tables.idtd_memory --classes 10 --frames 16 --size 112 --batch-real 8
    python -m benchmarks.tables.idtd_memory --classes 50 --frames 16 --size 112 --batch-real 64 --device cuda \
        --out benchmarks/results/14-idtd/idtd_memory_miniucf_cuda.json   # MiniUCF scale, on a GPU

Each configuration runs in a fresh subprocess (so one's peak cannot hide another's): the child builds the
recipe's parametrization and objective as ``videodd.distill`` does, runs ``--warmup`` iterations, then
measures ONE (the objective's loss plus the parametrization's penalty, and the backward pass: what the
distill loop does). The recipes are used as shipped except for ``--model`` (the published ``convnet3d`` by
default), ``--batch-real`` (DM's real clips per class; the store has that many, at least 10, per class) and MTT's
expert (one, trained for 2 epochs by ``benchmarks.tables.mtt_memory``'s setup: memory does not depend on
what it learnt). Memory is measured as in ``mtt_memory``: on a CPU the peak resident set size during the
iteration (sampled every 0.2 ms) minus the resident size just before it; on CUDA ``max_memory_allocated``
during it minus what was allocated before.

The pairs share everything but the set's structure, so ``idtd / pixels`` is what IDTD adds. On a CPU the
absolute bytes are not a GPU's (another allocator, no cuDNN workspaces); the ratio is the evidence, and the
CUDA command above gives the absolute figures against the GPU bounds (RESULTS section 12).
Writes ``benchmarks/results/14-idtd/idtd_memory.json`` and prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import torch

from benchmarks.common import BENCHMARKS
from benchmarks.tables.mtt_memory import (
    add_memory_args,
    measure_iteration,
    parse_or_run_child,
    run_child,
    setup,
    write_memory_result,
)

MODULE = "benchmarks.tables.idtd_memory"  # run as python -m MODULE (the children too)
RECIPES = BENCHMARKS.parent / "configs" / "miniucf"
PAIRS = (("dm", "idtd-dm"), ("mtt", "idtd-mtt"))  # (the base objective on pixels, IDTD with it)


def overrides(method: str, args: argparse.Namespace) -> dict[str, Any]:
    """The shipped MiniUCF recipe of ``method`` at ``--ipc``, with this benchmark's model, real batch and
    expert; IDTD's segments are set to the clip's frames (2 selectors of ``frames / 2``), as the recipe does
    for 16 frames."""
    from videodd.config import load_yaml

    cfg: dict[str, Any] = load_yaml(str(RECIPES / f"{method}-ipc{args.ipc}.yaml"))
    cfg.pop("method", None)
    cfg.update(model=args.model, batch_real=args.batch_real)
    if method.endswith("mtt"):
        cfg["objective"] = {**cfg.get("objective", {}), "experts": args.experts, "max_start_epoch": 1,
                            "syn_steps": args.syn_steps}
    if method.startswith("idtd"):
        cfg["parametrization"] = {**cfg.get("parametrization", {}), "segment_frames": args.frames // 2}
    return cfg


def child(args: argparse.Namespace) -> None:
    """One configuration: print a JSON line with the memory and time of one iteration."""
    from videodd.config import component_options
    from videodd.data.store import ClipStore
    from videodd.distill import make_objective, resolve_config
    from videodd.methods import get_method
    from videodd.objectives import OBJECTIVES
    from videodd.seeding import make_generator
    from videodd.synthesis import PARAMETRIZATIONS

    device = torch.device(args.device)
    train = ClipStore(Path(args.data) / "train")
    cfg = resolve_config(args.child_method, overrides(args.child_method, args))
    spec = get_method(args.child_method)
    generator = make_generator(0)
    param_cls = PARAMETRIZATIONS.get(spec.parametrization)
    options = component_options(param_cls, cfg.parametrization, f"parametrization {spec.parametrization}")
    param = param_cls(train, cfg.ipc, generator, init=cfg.init, options=options).to(device)
    objective = make_objective(OBJECTIVES.get(spec.objective), train, cfg, device)

    def iteration() -> torch.Tensor:
        param.zero_grad(set_to_none=True)
        loss = objective.loss(param, generator).loss
        penalty = param.penalty()  # IDTD's diversity term, as the distill loop adds it
        loss = loss if penalty is None else loss + penalty
        loss.backward()
        return loss.detach()

    for _ in range(args.warmup):  # one-off allocations (thread pools, kernel caches) out of the measured one
        iteration()
    loss, memory = measure_iteration(device, iteration)
    stored = sum(t.numel() * t.element_size() for t in param.stored_tensors().values())
    print(json.dumps({**memory, "loss": float(loss), "stored_bytes": stored,
                      "parametrization": spec.parametrization, "objective": spec.objective}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ipc", type=int, default=1)
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--size", type=int, default=112)
    parser.add_argument("--model", default="convnet3d")
    parser.add_argument("--batch-real", type=int, default=8, help="DM's real clips per class")
    parser.add_argument("--syn-steps", type=int, default=10, help="MTT's student steps (the recipe's 10)")
    parser.add_argument("--warmup", type=int, default=1, help="unmeasured iterations before the measured one")
    parser.add_argument("--methods", default=",".join(m for pair in PAIRS for m in pair))
    add_memory_args(parser, BENCHMARKS / "results" / "14-idtd" / "idtd_memory.json")
    parser.add_argument("--child-method", help=argparse.SUPPRESS)
    args = parse_or_run_child(parser, child)
    if args is None:
        return

    methods = args.methods.split(",")
    # the store (every class holds batch_real clips, at least 10), and the expert the MTT rows read
    data, experts = setup(Path(args.work), args, train_per_class=max(10, args.batch_real))
    rows: dict[str, dict[str, Any]] = {}
    for method in methods:
        cmd = [sys.executable, "-m", MODULE, "--child", "--child-method", method, "--data", str(data),
               "--experts", str(experts), "--ipc", str(args.ipc), "--frames", str(args.frames),
               "--model", args.model, "--batch-real", str(args.batch_real), "--syn-steps", str(args.syn_steps),
               "--warmup", str(args.warmup), "--device", args.device]
        if args.threads:
            cmd += ["--threads", str(args.threads)]
        rows[method] = run_child(cmd)
        print(method, json.dumps(rows[method]), file=sys.stderr)

    mib = 2**20
    lines = ["| pair | pixels: peak increase (MiB) | IDTD (MiB) | IDTD / pixels | pixels s/it | IDTD s/it |",
             "|---|---|---|---|---|---|"]
    for base, idtd in PAIRS:
        if base in rows and idtd in rows:
            p, q = rows[base], rows[idtd]
            ratio = q["increase_bytes"] / p["increase_bytes"] if p["increase_bytes"] > 0 else float("nan")
            lines.append(f"| {base} / {idtd} | {p['increase_bytes'] / mib:,.0f} | {q['increase_bytes'] / mib:,.0f} | "
                         f"{ratio:.2f} | {p['seconds']:.1f} | {q['seconds']:.1f} |")
    table = "\n".join(lines)
    print(table)
    write_memory_result(args, "idtd_memory", MODULE, ("ipc", "classes", "frames", "size", "model", "batch_real",
                                                      "syn_steps", "warmup", "device", "threads"), rows, table)


if __name__ == "__main__":
    main()
