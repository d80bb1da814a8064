"""Random real clips: the selection baseline every method is compared with."""

from __future__ import annotations

import numpy as np
import torch

from videodd.data.clips import ClipSource
from videodd.methods import MethodSpec, register_method
from videodd.selection.base import Selector, per_class, register_selector


def select_random(source: ClipSource, ipc: int, generator: torch.Generator) -> np.ndarray:
    """``ipc`` clips per class drawn uniformly without replacement (sorted within a class)."""

    def pick(members: np.ndarray) -> np.ndarray:
        order = torch.randperm(len(members), generator=generator)[:ipc].numpy()
        return np.sort(members[order])

    return per_class(source, ipc, pick)


@register_selector("random")
class RandomSelector(Selector):
    """``ipc`` clips per class drawn uniformly without replacement."""

    def select(self, source: ClipSource, ipc: int, generator: torch.Generator, *,
               device: str | torch.device = "cpu") -> np.ndarray:
        return select_random(source, ipc, generator)


register_method(MethodSpec("random", "random real clips per class (selection baseline)", selector="random"))
