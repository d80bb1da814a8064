"""Pixels: every synthetic video is a free tensor ``(C, T, H, W)`` in normalized space.

Optionally the labels are learnt too (FRePo's label learning): a float ``(N, K)`` parameter,
returned as ``Synthetic.labels`` and stored as the DistilledSet's soft labels, optimised in its
own optimizer group (``param_groups()``) with ``label_lr``.

Optionally fewer frames are stored than the clip has (the temporal-compression study of
"Dancing with Still Images", :mod:`videodd.synthesis.temporal`): ``frames=t`` keeps a learnable
``(N, C, t, H, W)`` tensor that ``forward()`` expands to the store's ``T`` frames with a fixed
``nearest`` / ``linear`` ``(T, t)`` matrix, or a ``learned`` one (shared by all videos, its own
optimizer group with ``interp_lr``). The DistilledSet stores the compact tensor (and the learned
matrix), so its storage counts ``t`` frames.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from videodd.config import ConfigError
from videodd.data.clips import ClipSource
from videodd.distilled import (
    DistilledManifest,
    Kind,
    KindStorage,
    check_shape,
    human_bytes,
    register_kind,
    require,
    tensor_bytes,
)
from videodd.selection import SELECTORS, select_random
from videodd.synthesis.base import Parametrization, Synthetic, register_parametrization
from videodd.synthesis.temporal import (
    INTERPS,
    LAYOUT_KEY,
    MATRIX_KEY,
    anchor_frames,
    check_temporal,
    expand,
    interp_matrix,
    materialize_temporal,
    temporal_meta,
)

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
        frames: stored frames ``t`` per video, ``1 <= t <= T`` (temporal compression);
            ``None``: the store's ``T`` (plain pixels, nothing expanded).
        interp: how ``t`` frames become ``T``: ``nearest``, ``linear`` (fixed, ``align_corners``:
            the first and last frames coincide) or ``learned`` (a ``(T, t)`` matrix shared by all
            videos, initialised to ``linear``; with ``frames=None`` a learned ``(T, T)`` mixing).
        interp_lr: SGD learning rate of the learned matrix (its own optimizer group).
    """

    learn_labels: bool = False
    label_lr: float = 1.0
    label_momentum: float | None = None
    label_init: str = "onehot"
    frames: int | None = None
    interp: str = "linear"
    interp_lr: float = 0.01

    def __post_init__(self) -> None:
        if self.label_init not in LABEL_INITS:
            raise ValueError(f"label_init {self.label_init!r} is not one of {list(LABEL_INITS)}")
        if self.interp not in INTERPS:
            raise ValueError(f"interp {self.interp!r} is not one of {list(INTERPS)}")
        if self.frames is not None and self.frames < 1:
            raise ValueError(f"frames must be >= 1 (or null for all of the clip's), got {self.frames}")
        if not self.interp_lr > 0:
            raise ValueError(f"interp_lr must be > 0, got {self.interp_lr}")
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


@register_parametrization("pixels")
class Pixels(Parametrization):
    """``ipc`` learnable videos per class, initialised from random real clips or Gaussian noise.

    Args:
        store: the training ClipStore (shape, classes, real clips for initialisation).
        ipc: videos per class.
        generator: draws the initial clips / noise.
        init: ``real`` (random real clips of the class), ``noise`` (standard normal), or
            ``herding`` / ``kcenter`` (the clips those selectors pick, default feature options).
            With ``options.frames = t`` a real clip keeps the ``t`` frames at the interpolation's
            anchors (:func:`~videodd.synthesis.temporal.anchor_frames`); noise is drawn with ``t`` frames.
        options: :class:`PixelsOptions` (``None``: defaults, fixed hard labels, all ``T`` frames).
    """

    kind = "pixels"
    Options = PixelsOptions
    inits = PIXEL_INITS

    def __init__(self, store: ClipSource, ipc: int, generator: torch.Generator, init: str = "real",
                 options: PixelsOptions | None = None) -> None:
        super().__init__()
        self.options = options if options is not None else PixelsOptions()
        k = store.num_classes
        c, big, h, w = store.video_shape
        opts = self.options
        # temporal compression: on when frames are set or the (T, t) matrix is learnt
        self.temporal = opts.frames is not None or opts.interp == "learned"
        small = big if opts.frames is None else opts.frames
        if not 1 <= small <= big:
            raise ConfigError(f"parametrization.frames must be in [1, T] = [1, {big}] for this store's "
                              f"{big}-frame clips, got {small}")
        shape = (k * ipc, c, small, h, w)  # (K*ipc, C, t, H, W)
        if init == "real":
            videos = store.batch(select_random(store, ipc, generator))
        elif init == "noise":
            videos = torch.randn(shape, generator=generator)
        elif init in INIT_SELECTORS:
            # start from a selection baseline's clips (herding / k-center with default options)
            selector = SELECTORS.get(init)()
            videos = store.batch(selector.select(store, ipc, generator, device="cpu"))
        else:
            raise ValueError(f"unknown init {init!r}; valid: {', '.join(PIXEL_INITS)}")
        if videos.shape[2] != small:  # real clips: the frames the interpolation anchors
            videos = videos[:, :, anchor_frames(big, small)]
        self.videos = nn.Parameter(videos.contiguous())
        # the (T, t) expansion: a fixed buffer (derived, not checkpointed) or a learnable matrix
        self.interp: nn.Parameter | None = None
        if self.temporal:
            matrix = interp_matrix(big, small, "linear" if opts.interp == "learned" else opts.interp)
            if opts.interp == "learned":
                self.interp = nn.Parameter(matrix)
            else:
                self.register_buffer("_interp", matrix, persistent=False)
        self.register_buffer("_labels", torch.arange(k).repeat_interleave(ipc))
        self.ipc = ipc
        # learned labels: (K*ipc, K) float, in the class order of the videos
        self.soft_labels: nn.Parameter | None = None
        if self.options.learn_labels:
            self.soft_labels = nn.Parameter(initial_labels(self._labels, k, self.options.label_init))

    def matrix(self) -> torch.Tensor | None:
        """The ``(T, t)`` expansion matrix (learned or fixed), or None for plain pixels."""
        if not self.temporal:
            return None
        return self.interp if self.interp is not None else self._interp

    def forward(self) -> Synthetic:
        matrix = self.matrix()
        videos = self.videos if matrix is None else expand(self.videos, matrix)  # (N, C, T, H, W)
        return Synthetic(videos, self.labels())

    def labels(self) -> torch.Tensor:
        """Hard ``(N,)`` int64 labels, or the learned ``(N, K)`` float labels."""
        return self.soft_labels if self.soft_labels is not None else self._labels

    def param_groups(self) -> list[dict]:
        """Own optimizer groups: the learned labels (lr ``label_lr``) and the learned matrix (``interp_lr``)."""
        groups: list[dict] = []
        if self.soft_labels is not None:
            group: dict = {"params": [self.soft_labels], "lr": self.options.label_lr,
                           "option": "parametrization.label_lr"}
            if self.options.label_momentum is not None:
                group["momentum"] = self.options.label_momentum
            groups.append(group)
        if self.interp is not None:
            groups.append({"params": [self.interp], "lr": self.options.interp_lr,
                           "option": "parametrization.interp_lr"})
        return groups

    @torch.no_grad()
    def clamp_(self, low: torch.Tensor, high: torch.Tensor) -> None:
        """Clip every stored pixel to ``[low_c, high_c]`` of its channel."""
        shape = (1, -1, 1, 1, 1)
        self.videos.copy_(torch.maximum(torch.minimum(self.videos, high.to(self.videos).view(shape)),
                                        low.to(self.videos).view(shape)))

    def stored_tensors(self) -> dict[str, torch.Tensor]:
        """``videos`` ``(N, C, t, H, W)`` (``t = T`` for plain pixels) and a learned ``interp_matrix`` ``(T, t)``."""
        tensors = {"videos": self.videos.detach().cpu().contiguous()}
        if self.interp is not None:
            tensors[MATRIX_KEY] = self.interp.detach().cpu().contiguous()
        return tensors

    def layout(self) -> dict:
        """The stored frames and the interpolation (temporal compression only)."""
        if not self.temporal:
            return {}
        return {LAYOUT_KEY: {"frames": int(self.videos.shape[2]), "interp": self.options.interp}}


# -- the DistilledSet kind ------------------------------------------------------------------------------
def _check_pixels(tensors: dict[str, torch.Tensor], manifest: DistilledManifest, num_videos: int) -> None:
    meta = temporal_meta(manifest)
    if meta is not None:
        check_temporal(tensors, manifest, num_videos, meta)
        return
    check_shape(tensors, "videos", manifest, (num_videos, len(manifest.mean), *manifest.spec.shape),
                layout="(N, C, T, H, W)")


def _pixels_storage(tensors: dict[str, torch.Tensor], manifest: DistilledManifest) -> KindStorage:
    meta = temporal_meta(manifest)
    if meta is None:
        return KindStorage()
    matrix = tensors.get(MATRIX_KEY)
    big = manifest.spec.frames
    return KindStorage(
        parts={"videos": tensor_bytes(require(tensors, "videos", manifest)),
               "interp_matrix": 0 if matrix is None else tensor_bytes(matrix)},
        notes=(f"{meta['frames']} stored frames per video, expanded to T={big} by {meta['interp']} interpolation",))


def _describe_pixels(tensors: dict[str, torch.Tensor], manifest: DistilledManifest) -> list[tuple[str, str]]:
    meta = temporal_meta(manifest)
    if meta is None:
        return []
    big = manifest.spec.frames
    matrix = (f"; learned ({big}, {meta['frames']}) matrix "
              f"{human_bytes(_pixels_storage(tensors, manifest).parts['interp_matrix'])}"
              if meta["interp"] == "learned" else "")
    return [("temporal", f"{meta['frames']} stored frames per video, expanded to T={big} by {meta['interp']} "
                         f"interpolation ({meta['frames']}/{big} of the pixels{matrix})")]


def _materialize_pixels(tensors: dict[str, torch.Tensor], manifest: DistilledManifest) -> torch.Tensor:
    """Synthetic pixels: ``videos`` float (N, C, T, H, W), already in normalized space; with temporal
    compression ``(N, C, t, H, W)`` expanded to ``T`` frames (:mod:`videodd.synthesis.temporal`)."""
    meta = temporal_meta(manifest)
    if meta is not None:
        return materialize_temporal(tensors, manifest, meta)
    return require(tensors, "videos", manifest).float()


register_kind(Kind("pixels", materialize=_materialize_pixels, check=_check_pixels, storage=_pixels_storage,
                   describe=_describe_pixels))
