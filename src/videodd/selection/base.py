"""The Selector contract, and the ``real-clips`` DistilledSet kind that selections are stored as.

A selector picks ``ipc`` clips per class from any labelled clip source
(:class:`~videodd.data.clips.ClipSource`: a ClipStore, a frame view of one, or candidates held in
memory such as generated videos)::

    selector = SELECTORS.get("herding")(options)        # options: its Options dataclass, or None
    indices = selector.select(source, ipc, generator, device="cpu")

``select`` returns int64 indices into the source, grouped by class in class order. Settings are
an ``Options`` dataclass (validated from ``DistillConfig.selector``); a selector without settings
has ``Options = None``. See docs/ARCHITECTURE.md.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np
import torch

from videodd.data.clips import ClipSource
from videodd.data.store import StoreError, normalize_uint8
from videodd.distilled import DistilledManifest, Kind, check_shape, register_kind
from videodd.registry import Registry

REAL_CLIPS = "real-clips"


class Selector:
    """Base class of every selector (see the module docstring for the contract)."""

    Options: ClassVar[type | None] = None

    def __init__(self, options: Any = None) -> None:
        self.options = options if options is not None else (self.Options() if self.Options is not None else None)

    def select(self, source: ClipSource, ipc: int, generator: torch.Generator, *,
               device: str | torch.device = "cpu") -> np.ndarray:  # pragma: no cover - interface
        """``ipc`` indices per class into ``source``, grouped by class in class order (int64)."""
        raise NotImplementedError


SELECTORS: Registry[type[Selector]] = Registry("selector")


def register_selector(name: str) -> Callable[[type[Selector]], type[Selector]]:
    """Class decorator: register a :class:`Selector` subclass under ``name``."""
    return SELECTORS.register(name)


def check_ipc(source: ClipSource, ipc: int) -> None:
    """Every class must have at least ``ipc`` clips (a StoreError, so the CLI prints it plainly)."""
    if ipc < 1:
        raise ValueError(f"ipc must be >= 1, got {ipc}")
    counts = source.class_counts()
    short = [f"{source.classes[c]} ({n})" for c, n in enumerate(counts) if n < ipc]
    if short:
        raise StoreError(f"{source.root}: classes with fewer than ipc={ipc} clips: {', '.join(short[:10])}")


def per_class(source: ClipSource, ipc: int, pick: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """``pick(members)`` for every class (members: the class's indices into ``source``), concatenated
    in class order as int64; checks first that every class has ``ipc`` clips."""
    check_ipc(source, ipc)
    return np.concatenate([pick(source.class_indices(c)) for c in range(source.num_classes)]).astype(np.int64)


def class_pixels(source: ClipSource, members: np.ndarray, device: str | torch.device = "cpu") -> torch.Tensor:
    """Flattened normalized pixels ``(n, C*T*H*W)`` of the clips ``members`` (the pixel-space features)."""
    return source.batch(members, device).reshape(len(members), -1)  # (n, C, T, H, W) -> (n, C*T*H*W)


class PixelSelector(Selector):
    """Picks, per class, ``choose(pixels (n, D), ipc, generator)`` rows of the class's flattened
    normalized pixels (sorted int64 positions in the class). Subclasses implement :meth:`choose`."""

    def choose(self, features: torch.Tensor, k: int, generator: torch.Generator) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError

    def select(self, source: ClipSource, ipc: int, generator: torch.Generator, *,
               device: str | torch.device = "cpu") -> np.ndarray:
        return per_class(source, ipc, lambda members: members[
            self.choose(class_pixels(source, members, device), ipc, generator).numpy()])


# -- the DistilledSet kind of a selection ---------------------------------------------------------------
def check_clips(tensors: dict[str, torch.Tensor], manifest: DistilledManifest, num_videos: int) -> None:
    check_shape(tensors, "clips", manifest, (num_videos, *manifest.spec.shape, len(manifest.mean)), torch.uint8,
                "(N, T, H, W, C)")


def materialize_clips(tensors: dict[str, torch.Tensor], manifest: DistilledManifest) -> torch.Tensor:
    """Stored clips (selected real ones, or kept generated ones): ``clips`` uint8 (N, T, H, W, C),
    normalized with the manifest mean/std."""
    check_clips(tensors, manifest, len(tensors["clips"]) if "clips" in tensors else 0)
    return normalize_uint8(tensors["clips"], manifest.mean, manifest.std)


register_kind(Kind(REAL_CLIPS, materialize=materialize_clips, check=check_clips))
