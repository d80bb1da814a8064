"""The Parametrization contract: learnable tensors -> a synthetic set of videos ``(N, C, T, H, W)``.

A parametrization is an ``nn.Module`` built as ``cls(store, ipc, generator, init=, options=)``:

- ``forward()`` returns a :class:`Synthetic` (videos and labels, differentiable w.r.t. its
  parameters), grouped by class in class order;
- ``stored_tensors()`` are what the DistilledSet keeps, ``kind`` names the DistilledSet kind
  that turns them back into videos, and ``layout()`` the kind's settings (``manifest.layout``);
- ``Options``: a dataclass of its settings (``options`` is then an instance, validated from
  ``DistillConfig.parametrization``); ``inits``: the ``DistillConfig.init`` values it accepts;
- ``param_groups()``: optimizer groups with their own lr (learned labels, a hallucinator);
  parameters in no group train with the run's lr;
- ``penalty()``: a term the distillation loop adds to the objective's loss (a regulariser of
  the parametrization itself, e.g. a diversity loss); ``None`` by default;
- ``clamp_(low, high)``: keep stored pixels in the data range (``--clamp-pixels``); no-op by default.

Everything but ``forward`` and ``stored_tensors`` has a default. See docs/ARCHITECTURE.md.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from videodd.registry import Registry


@dataclass
class Synthetic:
    """A differentiable view of the synthetic set: videos grouped by class, in class order."""

    videos: torch.Tensor  # (N, C, T, H, W)
    labels: torch.Tensor  # (N,) int64 or (N, K) float


class Parametrization(nn.Module):
    """Base class of every parametrization (see the module docstring for the contract)."""

    kind: ClassVar[str] = ""
    Options: ClassVar[type | None] = None
    inits: ClassVar[tuple[str, ...]] = ("real",)

    def forward(self) -> Synthetic:  # pragma: no cover - interface
        raise NotImplementedError

    def stored_tensors(self) -> dict[str, torch.Tensor]:  # pragma: no cover - interface
        raise NotImplementedError

    def labels(self) -> torch.Tensor:
        """Hard ``(N,)`` int64 or learned ``(N, K)`` float labels, as stored in the set."""
        return self().labels

    def layout(self) -> dict[str, Any]:
        """The DistilledSet kind's settings (``manifest.layout``); none by default."""
        return {}

    def param_groups(self) -> list[dict[str, Any]]:
        """Optimizer groups of tensors with their own lr/momentum; none by default.

        A group may name the option that sets its step, ``"option": "parametrization.h_lr"``: the loop takes
        the key out before building the optimizer and names the option when those tensors turn NaN.
        """
        return []

    def penalty(self) -> torch.Tensor | None:
        """A scalar the loop adds to the objective's loss (logged as ``penalty``); none by default."""
        return None

    def clamp_(self, low: torch.Tensor, high: torch.Tensor) -> None:
        """Keep stored pixels within ``[low, high]`` per channel ``(C,)`` (``DistillConfig.clamp_pixels``,
        after every step); parametrizations whose tensors are not pixels leave them as they are."""

    def nonfinite(self) -> list[str]:
        """Names of parameters holding NaN or Inf."""
        return [name for name, p in self.named_parameters() if not torch.isfinite(p).all()]


PARAMETRIZATIONS: Registry[type[Parametrization]] = Registry("parametrization")


def register_parametrization(name: str) -> Callable[[type[Parametrization]], type[Parametrization]]:
    """Class decorator: register a :class:`Parametrization` subclass under ``name``."""
    return PARAMETRIZATIONS.register(name)
