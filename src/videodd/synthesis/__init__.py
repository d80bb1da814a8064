"""Parametrizations of a synthetic set: learnable tensors -> videos ``(N, C, T, H, W)``.

A parametrization is an ``nn.Module`` built as ``cls(store, ipc, generator, init=, options=)``
whose ``forward()`` returns a ``Synthetic`` (videos and labels, differentiable w.r.t. its
parameters), and whose ``stored_tensors()`` are what a DistilledSet keeps; ``kind`` names the
materializer that turns them back into videos. A class with options declares an ``Options``
dataclass (``options`` is then an instance of it, validated from ``DistillConfig.parametrization``);
``param_groups()``, when defined, returns optimizer groups with their own lr (e.g. learned labels).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from videodd.registry import Registry


@dataclass
class Synthetic:
    """A differentiable view of the synthetic set: videos grouped by class, in class order."""

    videos: torch.Tensor  # (N, C, T, H, W)
    labels: torch.Tensor  # (N,) int64 or (N, K) float


class Parametrization(nn.Module):
    """Base class. Subclasses set ``kind`` and implement ``forward`` and ``stored_tensors``."""

    kind: str = ""

    def forward(self) -> Synthetic:  # pragma: no cover - interface
        raise NotImplementedError

    def stored_tensors(self) -> dict[str, torch.Tensor]:  # pragma: no cover - interface
        raise NotImplementedError

    def labels(self) -> torch.Tensor:  # pragma: no cover - interface
        raise NotImplementedError

    def nonfinite(self) -> list[str]:
        """Names of parameters holding NaN or Inf."""
        return [name for name, p in self.named_parameters() if not torch.isfinite(p).all()]


PARAMETRIZATIONS: Registry[Callable[..., Parametrization]] = Registry("parametrization")

from videodd.synthesis import pixels, static_dynamic  # noqa: E402,F401
