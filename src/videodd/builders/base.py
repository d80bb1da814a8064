"""The Builder contract: training-free methods that write a DistilledSet of their own kind directly.

A selector returns indices of real clips (stored as ``real-clips``) and a parametrization is
optimised by the loop; a *builder* is the third shape of method: it produces the stored tensors
itself, without an optimisation loop (``latent``: encode, select, recompress). A recipe names it
with ``MethodSpec(builder=NAME)``; its settings are its ``Options`` dataclass, validated from
``DistillConfig.builder`` (``--set builder.KEY=VALUE``)::

    built = BUILDERS.get("latent")(options).build(store, ipc, generator, device="cpu", progress=False)

``distill`` wraps the :class:`BuiltSet` in a DistilledSet with the usual manifest (method, config,
dataset, classes, normalization, seed) and saves it. See docs/ARCHITECTURE.md.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch

from videodd.data.store import ClipStore
from videodd.registry import Registry


@dataclass
class BuiltSet:
    """What a builder returns.

    Attributes:
        kind: the DistilledSet kind (registered in ``videodd.distilled.KINDS``).
        tensors: the stored tensors (never named ``labels``).
        labels: int64 ``(N,)`` (or float ``(N, K)``), grouped by class.
        ipc: videos per class in the set (may differ from the asked IPC, e.g. chosen by a byte budget).
        layout: the kind's settings (``manifest.layout``).
        info: informative manifest entries (``manifest.info``).
        equal_storage_ipc: the pixel IPC whose bytes the set was built to fit, if any.
    """

    kind: str
    tensors: dict[str, torch.Tensor]
    labels: torch.Tensor
    ipc: int
    layout: dict[str, Any] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)
    equal_storage_ipc: int | None = None


class Builder:
    """Base class of every set builder."""

    Options: ClassVar[type | None] = None

    def __init__(self, options: Any = None) -> None:
        self.options = options if options is not None else (self.Options() if self.Options is not None else None)

    def build(self, store: ClipStore, ipc: int, generator: torch.Generator, *, device: str | torch.device = "cpu",
              progress: bool = False) -> BuiltSet:  # pragma: no cover - interface
        """The set for ``store`` at ``ipc`` videos per class (or what the options choose)."""
        raise NotImplementedError


BUILDERS: Registry[type[Builder]] = Registry("set builder")


def register_builder(name: str) -> Callable[[type[Builder]], type[Builder]]:
    """Class decorator: register a :class:`Builder` subclass under ``name``."""
    return BUILDERS.register(name)
