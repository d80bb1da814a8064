"""Selectors: pick ``ipc`` real (or generated) clips per class.

A selector is ``f(store, ipc, generator, *, options, device) -> indices`` returning int64 indices
into the store, grouped by class in class order. A selector with settings declares them as a
dataclass in its ``Options`` attribute (``options`` is then an instance, validated from
``DistillConfig.selector``; otherwise ``None``).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from videodd.data.store import ClipStore, StoreError
from videodd.registry import Registry

Selector = Callable[..., np.ndarray]
SELECTORS: Registry[Selector] = Registry("selector")


def register_selector(name: str) -> Callable[[Selector], Selector]:
    return SELECTORS.register(name)


def check_ipc(store: ClipStore, ipc: int) -> None:
    """Every class must have at least ``ipc`` clips (a StoreError, so the CLI prints it plainly)."""
    if ipc < 1:
        raise ValueError(f"ipc must be >= 1, got {ipc}")
    counts = store.class_counts()
    short = [f"{store.classes[c]} ({n})" for c, n in enumerate(counts) if n < ipc]
    if short:
        raise StoreError(f"{store.root}: classes with fewer than ipc={ipc} clips: {', '.join(short[:10])}")


@register_selector("random")
def select_random(store: ClipStore, ipc: int, generator: torch.Generator, **_: object) -> np.ndarray:
    """``ipc`` clips per class drawn uniformly without replacement."""
    check_ipc(store, ipc)
    picks = []
    for c in range(store.num_classes):
        members = store.class_indices(c)
        order = torch.randperm(len(members), generator=generator)[:ipc].numpy()
        picks.append(np.sort(members[order]))
    return np.concatenate(picks).astype(np.int64)


# Importing the modules registers their selectors.
from videodd.selection import dpp, herding, kcenter, kmeans  # noqa: E402,F401
