"""Objectives score a parametrization: ``objective.loss(param, generator) -> ObjectiveOutput``.

An objective is built once per run as ``Objective(store, cfg, device)``; objectives that carry
state across iterations (model pools, ...) expose it through ``state_dict``/``load_state_dict``
so checkpoints capture it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from videodd.registry import Registry


@dataclass
class ObjectiveOutput:
    """The loss to minimise and scalar metrics to log."""

    loss: torch.Tensor
    metrics: dict[str, float] = field(default_factory=dict)


OBJECTIVES: Registry[Callable[..., object]] = Registry("objective")

from videodd.objectives import dm  # noqa: E402,F401
