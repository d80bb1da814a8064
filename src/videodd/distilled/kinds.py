"""Kinds of DistilledSet: how stored tensors become videos.

A kind is one :class:`Kind` record registered in :data:`KINDS` next to the code that writes that
kind of set (the ``pixels`` parametrization registers ``pixels``, the selectors ``real-clips``, the
latent builder ``latent``, ...). The format (this package) never imports its writers.

Every hook receives the stored tensors (by name, ``labels`` excluded) and the
:class:`~videodd.distilled.manifest.DistilledManifest`, reads the kind's settings from
``manifest.layout``, and raises ``ValueError`` (or :class:`DistilledSetError`) with a message
naming the problem; the container adds the file name.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from videodd.distilled.manifest import DistilledManifest
from videodd.registry import Registry

Tensors = dict[str, torch.Tensor]


@dataclass(frozen=True)
class KindStorage:
    """Storage figures of a set by the kind's own parts.

    Attributes:
        parts: bytes by named part (e.g. ``{"latents": ..., "decoder": ...}``).
        equivalent_ipc: for kinds whose IPC is not an IPC of pixels (latent sets), the pixel IPC
            that the stored content buys at float32; tables print it next to the IPC.
        external_bytes: bytes needed to use the set that are not in the file (a referenced decoder).
        notes: lines for reports and ``videodd distill`` (what is counted where).
    """

    parts: dict[str, int] = field(default_factory=dict)
    equivalent_ipc: float | None = None
    external_bytes: int = 0
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Kind:
    """One kind of DistilledSet.

    Attributes:
        name: as written in ``manifest.kind``.
        materialize: ``(tensors, manifest) -> videos``: normalized float32 ``(N, C, T, H, W)`` on
            the tensors' device.
        check: optional cheap validation ``(tensors, manifest, num_videos) -> None`` of the stored
            tensors (no materialization); runs when a set is saved or loaded.
        storage: optional ``(tensors, manifest) -> KindStorage`` (reports, ``videodd info``).
        describe: optional ``(tensors, manifest) -> [(key, value), ...]`` rows that ``videodd info``
            prints after the storage table.
    """

    name: str
    materialize: Callable[[Tensors, DistilledManifest], torch.Tensor]
    check: Callable[[Tensors, DistilledManifest, int], None] | None = None
    storage: Callable[[Tensors, DistilledManifest], KindStorage] | None = None
    describe: Callable[[Tensors, DistilledManifest], list[tuple[str, str]]] | None = None


KINDS: Registry[Kind] = Registry("distilled-set kind")


def register_kind(kind: Kind) -> Kind:
    """Add ``kind`` to :data:`KINDS` (a name registered twice is an error)."""
    KINDS.register(kind.name, kind.materialize.__doc__ or kind.name)(kind)
    return kind


def require(tensors: Tensors, name: str, manifest: DistilledManifest) -> torch.Tensor:
    """``tensors[name]``, or an error naming what the set holds."""
    if name not in tensors:
        raise ValueError(f"a {manifest.kind!r} distilled set needs a tensor {name!r}; it has {sorted(tensors)}")
    return tensors[name]


def check_shape(tensors: Tensors, name: str, manifest: DistilledManifest, shape: tuple[int, ...],
                dtype: torch.dtype | None = None, layout: str = "") -> torch.Tensor:
    """``tensors[name]`` if it has ``shape`` (and ``dtype``, or any float when None), else a ValueError."""
    t = require(tensors, name, manifest)
    ok = (t.dtype == dtype) if dtype is not None else t.is_floating_point()
    if not ok or tuple(t.shape) != tuple(shape):
        want = str(dtype).removeprefix("torch.") if dtype is not None else "float"
        raise ValueError(f"tensor {name!r} must be {want} {layout}{' = ' if layout else ''}{tuple(shape)}, "
                         f"got {t.dtype} {tuple(t.shape)}")
    return t


def human_bytes(n: int) -> str:
    """``1536 -> '1.50 KiB'``; bytes below 1 KiB are printed exactly (``'80 B'``)."""
    n = int(n)
    if abs(n) < 1024:
        return f"{n} B"
    value = float(n)
    for unit in ("KiB", "MiB", "GiB", "TiB"):
        value /= 1024.0
        if abs(value) < 1024.0 or unit == "TiB":
            return f"{value:.2f} {unit}"
    raise AssertionError("unreachable")


def tensor_bytes(t: torch.Tensor) -> int:
    """Bytes of ``t`` as stored: ``numel * element_size``."""
    return int(t.numel() * t.element_size())


def layout_entry(manifest: DistilledManifest, key: str) -> Any:
    """``manifest.layout[key]``, or a ValueError naming what is there."""
    if key not in manifest.layout:
        raise ValueError(f"a {manifest.kind!r} distilled set needs manifest layout {key!r}; it has "
                         f"{sorted(manifest.layout)}")
    return manifest.layout[key]
