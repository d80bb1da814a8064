"""Peak memory of one MTT iteration against ``syn_steps``: the plain unroll vs the checkpointed one.

    python -m benchmarks.tables.mtt_memory --steps 5,10,20,40

Both unrolls are measured in the same run, each configuration in a fresh subprocess (so one
configuration's peak cannot hide another's): the child builds the objective and the synthetic
set, then runs ONE iteration (loss + backward, what the distill loop does). Memory:

- CPU: the peak resident set size during the iteration (``/proc/self/statm`` sampled every
  0.2 ms by a thread; torch ops release the GIL) minus the resident size just before it. Not
  ``ru_maxrss``: importing torch peaks higher than a small iteration, which would hide it. One-off
  allocations (thread pools, kernel caches) are in both unrolls' numbers alike;
- CUDA (``--device cuda``): ``torch.cuda.max_memory_allocated`` during the iteration minus the
  memory allocated before it.

Setup (once, in ``--work``): a synth-actions store (``--classes``, ``--frames``, ``--size``, 10
training clips per class) and one expert trained for 2 epochs: memory does not depend on what
the expert learnt. Writes ``benchmarks/results/6-mtt-memory/mtt_memory.json`` and prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from benchmarks.common import BENCHMARKS, PeakRSS, rss

MODULE = "benchmarks.tables.mtt_memory"  # run as python -m MODULE (the children too)


def setup(work: Path, args: argparse.Namespace, train_per_class: int = 10) -> tuple[Path, Path]:
    """The store (``train_per_class`` clips per class) and the expert, made once in ``work``."""
    from videodd.data.store import ClipStore
    from videodd.data.synthetic import SynthActionsConfig, prepare_synth_actions
    from videodd.teachers.experts import ExpertConfig, train_experts

    per_class = "" if train_per_class == 10 else f"-{train_per_class}pc"  # the folders made before the option
    data = work / f"data-{args.classes}c-{args.frames}x{args.size}{per_class}"
    if not (data / "train" / "meta.json").exists():
        prepare_synth_actions(data, SynthActionsConfig(num_classes=args.classes, frames=args.frames, size=args.size,
                                                       train_per_class=train_per_class, test_per_class=2))
    experts = work / f"experts-{args.model}-{args.classes}c-{args.frames}x{args.size}{per_class}"
    train_experts(ClipStore(data / "train"), experts,
                  ExpertConfig(model=args.model, epochs=2, batch_size=64, num_experts=1), device=args.device)
    return data, experts


def measure_iteration(device: torch.device, block: Callable[[], Any]) -> tuple[Any, dict[str, float]]:
    """``block()``'s result, and its memory and time: on CUDA ``max_memory_allocated`` during it minus the memory
    allocated before; on a CPU the peak resident set size during it (``PeakRSS``) minus the resident size before."""
    sampler = None
    if device.type == "cuda":
        torch.cuda.synchronize()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
    else:
        base = rss()
        sampler = PeakRSS()
    start = time.perf_counter()
    out = block()
    if device.type == "cuda":
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated()
    else:
        peak = sampler.stop()
    seconds = time.perf_counter() - start
    return out, {"increase_bytes": peak - base, "baseline_bytes": base, "peak_bytes": peak, "seconds": seconds}


def add_memory_args(parser: argparse.ArgumentParser, out: Path) -> None:
    """``--device``, ``--threads``, ``--work``, ``--out`` (default ``out``), and the child mode's hidden options."""
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads in the children")
    parser.add_argument("--work", default=str(BENCHMARKS / "work" / "mtt_memory"))
    parser.add_argument("--out", default=str(out))
    # child mode (internal)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    parser.add_argument("--experts", help=argparse.SUPPRESS)


def parse_or_run_child(parser: argparse.ArgumentParser,
                       child: Callable[[argparse.Namespace], None]) -> argparse.Namespace | None:
    """The parsed arguments with torch's CPU threads set; None when this process was a child and ran ``child``."""
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.child:
        child(args)
        return None
    return args


def run_child(cmd: list[str]) -> dict[str, Any]:
    """The JSON line a child printed last; its stderr's tail when it failed."""
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[2:])}: the child failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def write_memory_result(args: argparse.Namespace, benchmark: str, module: str, settings: tuple[str, ...],
                        rows: Any, table: str) -> None:
    """``args.out``: the command, the ``settings`` (names of ``args``), how memory was measured, the machine,
    the rows and the table."""
    result = {
        "benchmark": benchmark,
        "command": " ".join([Path(sys.executable).name, "-m", module, *sys.argv[1:]]),
        "settings": {k: getattr(args, k) for k in settings},
        "measure": "CUDA max_memory_allocated increase" if args.device.startswith("cuda")
        else "peak RSS during the iteration (sampled every 0.2 ms) minus RSS before it; fresh subprocess each",
        "machine": {"platform": platform.platform(), "torch": torch.__version__,
                    "cpu_threads": args.threads or torch.get_num_threads()},
        "rows": rows,
        "table": table,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.out}", file=sys.stderr)


def child(args: argparse.Namespace) -> None:
    """One configuration: print a JSON line with the memory and time of one iteration."""
    from videodd.data.store import ClipStore
    from videodd.distill import make_objective, resolve_config
    from videodd.objectives.mtt import TrajectoryMatching
    from videodd.seeding import make_generator
    from videodd.synthesis.pixels import Pixels

    device = torch.device(args.device)
    train = ClipStore(Path(args.data) / "train")
    cfg = resolve_config("mtt", {"ipc": args.ipc, "model": args.model, "objective": {
        "experts": args.experts, "syn_steps": args.child_steps, "unroll": args.child_unroll,
        "max_start_epoch": 1, "batch_syn": args.batch_syn}})
    objective = make_objective(TrajectoryMatching, train, cfg, device)
    param = Pixels(train, args.ipc, make_generator(0)).to(device)
    gen = make_generator(1)
    out, memory = measure_iteration(device, lambda: _loss_backward(objective, param, gen))
    print(json.dumps({**memory, "loss": out.metrics["loss"], "num_params": objective.buffer.num_params,
                      "grad_norm": float(param.videos.grad.norm())}))


def _loss_backward(objective: Any, param: Any, gen: torch.Generator) -> Any:
    out = objective.loss(param, gen)
    out.loss.backward()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", default="5,10,20,40", help="syn_steps values, comma-separated")
    parser.add_argument("--ipc", type=int, default=5)
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--model", default="convnet3d-s")
    parser.add_argument("--batch-syn", type=int, default=None, help="synthetic clips per student step (default all)")
    add_memory_args(parser, BENCHMARKS / "results" / "6-mtt-memory" / "mtt_memory.json")
    parser.add_argument("--child-steps", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--child-unroll", help=argparse.SUPPRESS)
    args = parse_or_run_child(parser, child)
    if args is None:
        return

    data, experts = setup(Path(args.work), args)
    rows = []
    for steps in [int(s) for s in args.steps.split(",")]:
        for unroll in ("plain", "checkpoint"):
            cmd = [sys.executable, "-m", MODULE, "--child", "--data", str(data), "--experts", str(experts),
                   "--child-steps", str(steps), "--child-unroll", unroll, "--ipc", str(args.ipc), "--model", args.model,
                   "--device", args.device]
            if args.batch_syn:
                cmd += ["--batch-syn", str(args.batch_syn)]
            if args.threads:
                cmd += ["--threads", str(args.threads)]
            row = {"syn_steps": steps, "unroll": unroll, **run_child(cmd)}
            print(json.dumps(row), file=sys.stderr)
            rows.append(row)
    by = {(r["syn_steps"], r["unroll"]): r for r in rows}
    mib = 2**20
    lines = ["| syn_steps | plain: peak increase (MiB) | checkpoint (MiB) | checkpoint / plain | plain s/it | "
             "checkpoint s/it | same loss |", "|---|---|---|---|---|---|---|"]
    for steps in sorted({r["syn_steps"] for r in rows}):
        p, c = by[(steps, "plain")], by[(steps, "checkpoint")]
        ratio = c["increase_bytes"] / p["increase_bytes"] if p["increase_bytes"] > 0 else float("nan")
        lines.append(f"| {steps} | {p['increase_bytes'] / mib:.1f} | {c['increase_bytes'] / mib:.1f} | {ratio:.2f} | "
                     f"{p['seconds']:.2f} | {c['seconds']:.2f} | {p['loss'] == c['loss']} |")
    table = "\n".join(lines)
    print(table)
    write_memory_result(args, "mtt_memory", MODULE, ("ipc", "classes", "frames", "size", "model", "batch_syn",
                                                     "device", "threads"), rows, table)


if __name__ == "__main__":
    main()
