"""Labelled clip sources: what selectors, parametrizations and objectives read clips from.

:class:`ClipSource` is the part of the :class:`~videodd.data.store.ClipStore` interface they use;
a ClipStore is one, :class:`~videodd.data.frames.FrameStore` (one frame per clip) another, and
:class:`InMemoryClips` holds clips made in memory (generated candidate videos) so that the same
selectors pick among them.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch

from videodd.data.spec import ClipSpec
from videodd.data.store import StoreError, normalize_uint8
from videodd.errors import VideoddWarning


@runtime_checkable
class ClipSource(Protocol):
    """Labelled uint8 clips with a normalization: the interface components read clips through."""

    root: Path | str  # where the clips come from (for messages)

    @property
    def classes(self) -> list[str]: ...

    @property
    def num_classes(self) -> int: ...

    @property
    def video_shape(self) -> tuple[int, int, int, int]:
        """``(C, T, H, W)`` of one clip as a float video."""
        ...

    def __len__(self) -> int: ...

    def class_indices(self, c: int) -> np.ndarray: ...

    def class_counts(self) -> np.ndarray: ...

    def batch(self, indices: np.ndarray, device: str | torch.device = "cpu") -> torch.Tensor:
        """Normalized float32 videos ``(n, C, T, H, W)``."""
        ...

    def labels_tensor(self, indices: np.ndarray | None = None) -> torch.Tensor: ...

    def raw(self, indices: np.ndarray) -> torch.Tensor:
        """uint8 clips ``(n, T, H, W, C)`` as stored."""
        ...

    def source_id(self, i: int) -> str: ...


class InMemoryClips:
    """uint8 clips ``(N, T, H, W, C)`` held in memory with their labels and normalization.

    Args:
        clips: uint8 ``(N, T, H, W, C)``.
        labels: int ``(N,)`` in ``[0, len(classes))``.
        classes: class names.
        mean, std: per-channel normalization (of the training clips the candidates are compared with).
        spec: the clip spec (frames and size must match ``clips``).
        name: what the clips are, for messages (e.g. ``"generated candidates"``).
        source_ids: one id per clip (defaults to ``NAME:i``).
    """

    def __init__(self, clips: torch.Tensor, labels: torch.Tensor, classes: list[str], mean: list[float],
                 std: list[float], spec: ClipSpec, *, name: str = "in-memory clips",
                 source_ids: list[str] | None = None) -> None:
        if clips.dtype != torch.uint8 or clips.dim() != 5:
            raise StoreError(f"{name}: clips must be uint8 (N, T, H, W, C), got {clips.dtype} {tuple(clips.shape)}")
        if tuple(clips.shape[1:4]) != spec.shape or clips.shape[4] != len(mean):
            raise StoreError(f"{name}: clips {tuple(clips.shape)} do not match the spec (T, H, W) = {spec.shape} "
                             f"with {len(mean)} channels")
        labels = torch.as_tensor(labels, dtype=torch.int64)
        if labels.shape != (len(clips),) or (len(labels) and not 0 <= int(labels.min()) <= int(labels.max())
                                             < len(classes)):
            raise StoreError(f"{name}: labels must be (N,) = ({len(clips)},) in [0, {len(classes)})")
        self.clips, self.labels = clips, labels.numpy()
        self._classes, self.mean, self.std, self.spec = list(classes), list(mean), list(std), spec
        self.root = f"<{name}>"
        self.source_ids = source_ids if source_ids is not None else [f"{name}:{i}" for i in range(len(clips))]

    @property
    def classes(self) -> list[str]:
        return self._classes

    @property
    def num_classes(self) -> int:
        return len(self._classes)

    @property
    def video_shape(self) -> tuple[int, int, int, int]:
        return (len(self.mean), *self.spec.shape)

    def __len__(self) -> int:
        return len(self.clips)

    def class_indices(self, c: int) -> np.ndarray:
        return np.flatnonzero(self.labels == c)

    def class_counts(self) -> np.ndarray:
        return np.bincount(self.labels, minlength=self.num_classes)

    def batch(self, indices: np.ndarray, device: str | torch.device = "cpu") -> torch.Tensor:
        idx = torch.as_tensor(np.asarray(indices, dtype=np.int64))
        return normalize_uint8(self.clips[idx].to(device), self.mean, self.std)

    def labels_tensor(self, indices: np.ndarray | None = None) -> torch.Tensor:
        labels = self.labels if indices is None else self.labels[np.asarray(indices, dtype=np.int64)]
        return torch.from_numpy(np.ascontiguousarray(labels))

    def raw(self, indices: np.ndarray) -> torch.Tensor:
        return self.clips[torch.as_tensor(np.asarray(indices, dtype=np.int64))].clone()

    def source_id(self, i: int) -> str:
        return self.source_ids[i]


class ResidentClips:
    """A ClipStore whose uint8 clips are copied once to ``device`` (the whole store), so that batches are
    gathered there instead of read from the memmap and copied on every step.

    When the store would take more than ``budget`` of the device's free memory, the clips go to pinned host
    memory instead (copied with ``non_blocking``), and a VideoddWarning says so once. Everything but
    ``batch`` and ``raw`` is the wrapped store's (``meta``, ``fingerprint``, ``clips`` ...).
    """

    def __init__(self, store: Any, device: str | torch.device, budget: float = 0.5) -> None:
        self.store = store
        self.device = torch.device(device)
        host = torch.from_numpy(np.ascontiguousarray(store.clips))  # (N, T, H, W, C) uint8, read once
        self.on_device = True
        if self.device.type == "cuda":
            free, _ = torch.cuda.mem_get_info(self.device)
            if store.nbytes > budget * free:
                self.on_device = False
                warnings.warn(f"{store.root}: {store.nbytes / 2**30:.1f} GiB of clips do not fit in {budget:.0%} of "
                              f"the {free / 2**30:.1f} GiB free on {self.device}: batches come from pinned host memory",
                              VideoddWarning, stacklevel=2)
                host = host.pin_memory()
        self.resident = host.to(self.device) if self.on_device else host
        self._labels = torch.from_numpy(np.asarray(store.labels, dtype=np.int64)).to(self.resident.device)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)

    def __len__(self) -> int:
        return len(self.store)

    def batch(self, indices: np.ndarray, device: str | torch.device = "cpu") -> torch.Tensor:
        """Normalized float32 videos ``(n, C, T, H, W)`` gathered from the resident clips."""
        idx = torch.as_tensor(np.asarray(indices, dtype=np.int64), device=self.resident.device)
        raw = self.resident.index_select(0, idx)  # (n, T, H, W, C) uint8
        return normalize_uint8(raw.to(device, non_blocking=True), self.store.meta.mean, self.store.meta.std)

    def raw(self, indices: np.ndarray) -> torch.Tensor:
        return self.store.raw(indices)


def resident(store: Any, device: str | torch.device) -> Any:
    """``store`` with its clips on ``device`` when that is a GPU (:class:`ResidentClips`), else ``store``: on a
    CPU the memmap is read through the page cache and a copy would only double the memory."""
    return ResidentClips(store, device) if torch.device(device).type == "cuda" else store
