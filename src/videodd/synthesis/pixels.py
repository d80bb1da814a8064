"""Pixels: every synthetic video is a free tensor ``(C, T, H, W)`` in normalized space.

Optionally the labels are learnt too (FRePo's label learning): a float ``(N, K)`` parameter,
returned as ``Synthetic.labels`` and stored as the DistilledSet's soft labels, optimised in its
own optimizer group (``param_groups()``) with ``label_lr``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from videodd.data.store import ClipStore
from videodd.selection import SELECTORS, select_random
from videodd.synthesis import PARAMETRIZATIONS, Parametrization, Synthetic

LABEL_INITS = ("onehot", "centered", "scaled")
INIT_SELECTORS = ("herding", "kcenter")
PIXEL_INITS = ("real", "noise", *INIT_SELECTORS)


@dataclass(frozen=True)
class PixelsOptions:
    """Settings of the ``pixels`` parametrization (``--set parametrization.KEY=VALUE``).

    Attributes:
        learn_labels: learn a float ``(N, K)`` label per video (FRePo) instead of fixed hard labels.
        label_lr: SGD learning rate of the learned labels (their own optimizer group).
        label_momentum: SGD momentum of the labels; ``None``: the run's ``momentum``.
        label_init: ``onehot``; ``centered`` (one-hot - 1/K, the KRR regression target of FRePo);
            ``scaled`` (centered / sqrt(K / 10), FRePo's initialisation of learned labels).
    """

    learn_labels: bool = False
    label_lr: float = 1.0
    label_momentum: float | None = None
    label_init: str = "onehot"

    def __post_init__(self) -> None:
        if self.label_init not in LABEL_INITS:
            raise ValueError(f"label_init {self.label_init!r} is not one of {list(LABEL_INITS)}")
        if not self.label_lr > 0:
            raise ValueError(f"label_lr must be > 0, got {self.label_lr}")
        if self.label_momentum is not None and not 0 <= self.label_momentum < 1:
            raise ValueError(f"label_momentum must be in [0, 1), got {self.label_momentum}")


def initial_labels(labels: torch.Tensor, num_classes: int, init: str) -> torch.Tensor:
    """Float ``(N, K)`` labels from hard ``(N,)`` ones: ``onehot``, ``centered`` or ``scaled``."""
    onehot = F.one_hot(labels, num_classes).float()  # (N, K)
    if init == "onehot":
        return onehot
    centered = onehot - 1.0 / num_classes
    if init == "centered":
        return centered
    if init == "scaled":
        return centered / math.sqrt(num_classes / 10)
    raise ValueError(f"unknown label_init {init!r}; valid: {', '.join(LABEL_INITS)}")


@PARAMETRIZATIONS.register("pixels")
class Pixels(Parametrization):
    """``ipc`` learnable videos per class, initialised from random real clips or Gaussian noise.

    Args:
        store: the training ClipStore (shape, classes, real clips for initialisation).
        ipc: videos per class.
        generator: draws the initial clips / noise.
        init: ``real`` (random real clips of the class), ``noise`` (standard normal), or
            ``herding`` / ``kcenter`` (the clips those selectors pick, default feature options).
        options: :class:`PixelsOptions` (``None``: defaults, fixed hard labels).
    """

    kind = "pixels"
    Options = PixelsOptions

    def __init__(self, store: ClipStore, ipc: int, generator: torch.Generator, init: str = "real",
                 options: PixelsOptions | None = None) -> None:
        super().__init__()
        self.options = options if options is not None else PixelsOptions()
        k = store.num_classes
        shape = (k * ipc, *store.video_shape)  # (K*ipc, C, T, H, W)
        if init == "real":
            videos = store.batch(select_random(store, ipc, generator))
        elif init == "noise":
            videos = torch.randn(shape, generator=generator)
        elif init in INIT_SELECTORS:
            # start from a selection baseline's clips (herding / k-center with default options)
            selector = SELECTORS.get(init)
            videos = store.batch(selector(store, ipc, generator, options=selector.Options(), device="cpu"))
        else:
            raise ValueError(f"unknown init {init!r}; valid: {', '.join(PIXEL_INITS)}")
        self.videos = nn.Parameter(videos.contiguous())
        self.register_buffer("_labels", torch.arange(k).repeat_interleave(ipc))
        self.ipc = ipc
        # learned labels: (K*ipc, K) float, in the class order of the videos
        self.soft_labels: nn.Parameter | None = None
        if self.options.learn_labels:
            self.soft_labels = nn.Parameter(initial_labels(self._labels, k, self.options.label_init))

    def forward(self) -> Synthetic:
        return Synthetic(self.videos, self.labels())

    def labels(self) -> torch.Tensor:
        """Hard ``(N,)`` int64 labels, or the learned ``(N, K)`` float labels."""
        return self.soft_labels if self.soft_labels is not None else self._labels

    def param_groups(self) -> list[dict]:
        """The learned labels as their own optimizer group (lr ``label_lr``); none otherwise."""
        if self.soft_labels is None:
            return []
        group: dict = {"params": [self.soft_labels], "lr": self.options.label_lr}
        if self.options.label_momentum is not None:
            group["momentum"] = self.options.label_momentum
        return [group]

    def stored_tensors(self) -> dict[str, torch.Tensor]:
        return {"videos": self.videos.detach().cpu().contiguous()}
