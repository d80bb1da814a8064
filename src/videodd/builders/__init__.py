"""Set builders: training-free methods that write a DistilledSet of their own kind directly.

A selector returns indices of real clips (stored as ``real-clips``) and a parametrization is
optimised by the loop; a *builder* is the third shape of method: it produces the stored tensors
itself, without an optimisation loop (e.g. ``latent``: encode, select, recompress). A recipe names it
with ``MethodSpec(builder=NAME)``; its settings come from ``DistillConfig.selector``
(``--set selector.KEY=VALUE``), since builders are selection methods, validated against the
builder's ``Options`` dataclass.

A builder is ``f(store, cfg, generator, *, options, device, progress) -> BuiltSet``; ``distill``
wraps the result in a DistilledSet with the usual manifest (method, config, dataset, classes,
normalization, seed) plus the builder's ``extra``, and saves it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from videodd.registry import Registry


@dataclass
class BuiltSet:
    """What a builder returns.

    Attributes:
        kind: the DistilledSet kind (a registered materializer).
        tensors: the stored tensors (never named ``labels``).
        labels: int64 ``(N,)`` (or float ``(N, K)``), grouped by class.
        ipc: videos per class in the set (may differ from ``cfg.ipc``, e.g. chosen by a byte budget).
        extra: JSON-able manifest extras.
    """

    kind: str
    tensors: dict[str, torch.Tensor]
    labels: torch.Tensor
    ipc: int
    extra: dict[str, Any] = field(default_factory=dict)


Builder = Callable[..., BuiltSet]
BUILDERS: Registry[Builder] = Registry("set builder")


def register_builder(name: str) -> Callable[[Builder], Builder]:
    return BUILDERS.register(name)


# Importing the modules registers their builders.
from videodd.builders import latent  # noqa: E402,F401
