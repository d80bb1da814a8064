"""A single-frame view of a ClipStore: the stills of static-memory distillation (docs/ARCHITECTURE.md section 10).

``FrameStore(store, generator)`` exposes the part of the ClipStore interface that objectives,
selectors and parametrizations use (``num_classes``, ``classes``, ``video_shape``, ``class_indices``,
``class_counts``, ``batch``, ``labels_tensor``, ``spec``, ``meta``, ...), but every ``batch(idx)``
returns ONE frame per clip, ``(N, C, 1, H, W)``, drawn afresh from ``generator`` on each call: over
the iterations of a run every frame of every clip is seen, as in the published static stage
("one frame sampled per video per draw").
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import torch

from videodd.data.spec import ClipSpec
from videodd.data.store import ClipStore, normalize_uint8


class FrameStore:
    """Still frames of ``store``'s clips; the frame index is drawn from ``generator`` per clip and per call.

    Args:
        store: the training ClipStore.
        generator: draws the frame of each clip in ``batch``; share the run's generator so that a
            resumed run draws the same frames as an uninterrupted one.
    """

    def __init__(self, store: ClipStore, generator: torch.Generator) -> None:
        self.store = store
        self.generator = generator
        self.meta = store.meta
        self.labels = store.labels
        self.root: Path = store.root

    @property
    def classes(self) -> list[str]:
        return self.store.classes

    @property
    def num_classes(self) -> int:
        return self.store.num_classes

    @property
    def spec(self) -> ClipSpec:
        """The store's spec with ``frames=1``: a DistilledSet of stills has clip shape (1, H, W)."""
        return dataclasses.replace(self.store.spec, frames=1)

    @property
    def channels(self) -> int:
        return self.store.channels

    @property
    def video_shape(self) -> tuple[int, int, int, int]:
        """``(C, 1, H, W)``: one still frame as a single-frame video."""
        c, _, h, w = self.store.video_shape
        return (c, 1, h, w)

    @property
    def fingerprint(self) -> str:
        return self.store.fingerprint

    @property
    def nbytes(self) -> int:
        """Bytes of the full training clips (the compression ratio compares with the real data)."""
        return self.store.nbytes

    def __len__(self) -> int:
        return len(self.store)

    def __repr__(self) -> str:
        return f"FrameStore({self.store!r})"

    def class_indices(self, c: int) -> np.ndarray:
        return self.store.class_indices(c)

    def class_counts(self) -> np.ndarray:
        return self.store.class_counts()

    def labels_tensor(self, indices: Any = None) -> torch.Tensor:
        return self.store.labels_tensor(indices)

    def normalization(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.store.normalization()

    def batch(self, indices: Any, device: str | torch.device = "cpu") -> torch.Tensor:
        """Normalized float32 stills ``(n, C, 1, H, W)``: one random frame of each indexed clip."""
        idx = np.asarray(indices, dtype=np.int64)
        frames = self.store.spec.frames
        which = torch.randint(frames, (len(idx),), generator=self.generator)  # (n,) frame per clip
        order = np.argsort(idx, kind="stable")  # sorted reads are faster on a memmap
        raw = np.empty((len(idx), 1, *self.store.clips.shape[2:]), dtype=np.uint8)  # (n, 1, H, W, C)
        raw[order, 0] = self.store.clips[idx[order], which.numpy()[order]]
        return normalize_uint8(torch.from_numpy(raw).to(device), self.meta.mean, self.meta.std)
