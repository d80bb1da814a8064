"""Objectives score a parametrization: ``objective.loss(param, generator) -> ObjectiveOutput``.

An objective is built once per run as ``Objective(store, cfg, device)`` (``cfg`` is the
DistillConfig). Optional parts of the contract:

- ``Options``: a dataclass of the objective's own settings; build it with
  ``videodd.distill.component_options(type(self), cfg.objective, "objective NAME")``.
- ``state_dict()`` / ``load_state_dict()``: state carried across iterations (model pools, ...),
  saved in every checkpoint so a resumed run matches an uninterrupted one.
- ``param_groups()``: extra learnable tensors as optimizer groups with their own lr/momentum
  (MTT's student lr); they are optimised with the synthetic set.
- ``export()``: a dict stored in the DistilledSet manifest; the key ``learned_lr`` becomes the
  manifest's learned lr, which the evaluation protocol uses.
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

from videodd.objectives import dm, gradient, krr, mtt  # noqa: E402,F401
