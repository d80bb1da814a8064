"""Pixels: every synthetic video is a free tensor ``(C, T, H, W)`` in normalized space."""

from __future__ import annotations

import torch
from torch import nn

from videodd.data.store import ClipStore
from videodd.selection import select_random
from videodd.synthesis import PARAMETRIZATIONS, Parametrization, Synthetic


@PARAMETRIZATIONS.register("pixels")
class Pixels(Parametrization):
    """``ipc`` learnable videos per class, initialised from random real clips or Gaussian noise.

    Args:
        store: the training ClipStore (shape, classes, real clips for initialisation).
        ipc: videos per class.
        generator: draws the initial clips / noise.
        init: ``real`` (random real clips of the class) or ``noise`` (standard normal).
    """

    kind = "pixels"

    def __init__(self, store: ClipStore, ipc: int, generator: torch.Generator, init: str = "real",
                 options: None = None) -> None:
        super().__init__()
        k = store.num_classes
        shape = (k * ipc, *store.video_shape)  # (K*ipc, C, T, H, W)
        if init == "real":
            videos = store.batch(select_random(store, ipc, generator))
        elif init == "noise":
            videos = torch.randn(shape, generator=generator)
        else:
            raise ValueError(f"unknown init {init!r}; valid: real, noise")
        self.videos = nn.Parameter(videos.contiguous())
        self.register_buffer("_labels", torch.arange(k).repeat_interleave(ipc))
        self.ipc = ipc

    def forward(self) -> Synthetic:
        return Synthetic(self.videos, self._labels)

    def labels(self) -> torch.Tensor:
        return self._labels

    def stored_tensors(self) -> dict[str, torch.Tensor]:
        return {"videos": self.videos.detach().cpu().contiguous()}
