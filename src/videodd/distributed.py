"""Several processes, one job: ``torchrun --nproc_per_node=N -m videodd distill|evaluate|experts ...``.

``torchrun`` starts N processes with ``RANK``/``WORLD_SIZE`` in their environment; :func:`init_from_env`
joins them into a process group (``nccl`` on GPUs, ``gloo`` on CPUs, each rank on its own GPU). Without
torchrun everything here is a no-op and a single process is rank 0 of 1, so library code calls these
helpers unconditionally:

- distillation shards the *classes* of DM, DC and FRePo over the ranks (their classes are independent given
  the shared network and draws), or gives MTT's ranks different expert/start pairs, and all-reduces the
  set's gradient, so every rank holds the same set;
- evaluation runs and expert trajectories are spread over the ranks and gathered;
- only rank 0 writes files and prints.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from typing import Any, TypeVar

import torch
import torch.distributed as dist

from videodd.errors import ConfigError

T = TypeVar("T")


def active() -> bool:
    """A process group of more than one rank is running."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    """This process's rank (0 when alone)."""
    return dist.get_rank() if active() else 0


def world_size() -> int:
    """How many processes share the job (1 when alone)."""
    return dist.get_world_size() if active() else 1


def is_main() -> bool:
    """Rank 0: the one process that writes and prints."""
    return rank() == 0


def init_from_env(device: str | None = None) -> str | None:
    """Join the process group torchrun describes in the environment (``WORLD_SIZE`` > 1); returns the device
    this rank uses (``cuda:LOCAL_RANK`` when ``device`` asks for CUDA), or ``device`` unchanged."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or (dist.is_available() and dist.is_initialized()):
        return device
    cuda = device is not None and device.startswith("cuda") or (device in (None, "auto") and torch.cuda.is_available())
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if cuda:
        torch.cuda.set_device(local)
    dist.init_process_group(backend="nccl" if cuda else "gloo")
    return f"cuda:{local}" if cuda else (device or "cpu")


def check_ranks(num_classes: int) -> None:
    """A class-sharded method needs at least one class per rank."""
    if world_size() > num_classes:
        raise ConfigError(f"torchrun started {world_size()} processes for {num_classes} classes: class-sharded "
                          f"distillation needs at most one process per class (--nproc_per_node <= {num_classes})")


def all_reduce_(tensor: torch.Tensor, mean: bool = False) -> torch.Tensor:
    """Sum (or average) ``tensor`` over the ranks, in place; itself when not distributed."""
    if active():
        dist.all_reduce(tensor)
        if mean:
            tensor /= world_size()
    return tensor


def gather_json(obj: Any) -> list[Any]:
    """Every rank's ``obj`` (anything JSON can hold), in rank order; ``[obj]`` when not distributed.

    Sent as UTF-8 JSON in a byte tensor, not pickled: what travels between ranks is data, never code.
    """
    if not active():
        return [obj]
    device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else None
    data = torch.frombuffer(bytearray(json.dumps(obj).encode()), dtype=torch.uint8).to(device)
    sizes = [torch.zeros(1, dtype=torch.int64, device=device) for _ in range(world_size())]
    dist.all_gather(sizes, torch.tensor([len(data)], dtype=torch.int64, device=device))
    longest = int(max(s.item() for s in sizes))
    padded = torch.zeros(longest, dtype=torch.uint8, device=device)
    padded[: len(data)] = data
    parts = [torch.empty(longest, dtype=torch.uint8, device=device) for _ in range(world_size())]
    dist.all_gather(parts, padded)
    texts = [bytes(part[: int(n.item())].cpu().tolist()).decode() for part, n in zip(parts, sizes, strict=True)]
    return [json.loads(text) for text in texts]


def mine(items: Sequence[T]) -> list[T]:
    """This rank's share of ``items``: every ``world_size()``-th from ``rank()`` on (all of them when alone)."""
    return list(items[rank() :: world_size()])


def barrier() -> None:
    """Wait until every rank gets here."""
    if active():
        dist.barrier()


def shutdown(finished: bool = True) -> None:
    """Leave the process group (at the end of a command).

    After a command that finished, the ranks first meet at a barrier: a rank that tears gloo down while
    another still talks to it can abort the process after the work is done (seen as "terminate called
    without an active exception" on the rank that left first). After an error there is no barrier: the
    other ranks may never arrive, and the launcher stops them.
    """
    if dist.is_available() and dist.is_initialized():
        if finished and active():
            dist.barrier()
        dist.destroy_process_group()
