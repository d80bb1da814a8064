"""ConvNet3D: the 3-layer 3D ConvNet of every published video distillation table, and variants.

Reference architecture (``convnet3d``), input ``(N, 3, T, H, W)``::

    Conv3d(3->64, k=(3,7,7), s=(1,2,2), p=(1,3,3)) ReLU MaxPool(1,2,2)
    Conv3d(64->128, same)                          ReLU MaxPool(2,2,2)
    Conv3d(128->128, same)                         ReLU MaxPool(2,2,2)
    head: AvgPool (2,2,2) if H > 64 else (2,1,1), stride 1; Dropout(p=0.5); Conv3d(128->K, 1); max

At 16x112x112 the feature map before the head is (128, 4, 2, 2) and the head's stride-1 average
pool leaves (K, 3, 1, 1); at 8x64x64 it is (128, 2, 1, 1) and the head leaves (K, 1, 1, 1). The
logits are the max over the remaining positions (official ``networks.py`` ConvNet3D, line 733:
``nn.AvgPool3d(kernel_size=(2, 2, 2), stride=(1, 1, 1))``; forward, lines 738-745).

``embed`` is what the official DM matches: ``ConvNet3D.embed`` there (networks.py:747-751, called by
the DM step of distill_baseline.py:339-349) flattens the trunk's output, the map after the last
max-pool (2048 values at 16x112x112, 256 at 8x64x64), not the head's pooled map. The CPU-scale
``convnet3d-s*`` embed the same way (128 values at 8x32x32). ``embed_from="head"`` (the head's pooled
map) and ``"last-conv"`` (the last conv block before its pool; ``convnet3d-s-fm``) are named
alternatives, never a published method's default.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from videodd.models.base import register_model

# the published layout's stride-2 7x7 convs and pools need frames of 64 px
PUBLISHED_MIN = (3, 8, 64, 64)
EMBEDDINGS = ("features", "head", "last-conv")


def _norm(kind: str, channels: int) -> nn.Module:
    if kind == "none":
        return nn.Identity()
    if kind == "instance":
        return nn.InstanceNorm3d(channels, affine=True)
    if kind == "batch":
        return nn.BatchNorm3d(channels)
    raise ValueError(f"unknown norm {kind!r}; valid: none, instance, batch")


class ConvNet3D(nn.Module):
    """Configurable 3D ConvNet; the registered names fix its hyper-parameters.

    Args:
        num_classes: K.
        input_shape: (C, T, H, W).
        widths: output channels of each conv block.
        kernel, stride, padding: of every conv.
        pools: max-pool window (= stride) after each block.
        norm: ``none`` | ``instance`` | ``batch`` after each conv.
        head_pool: average-pool window before the classifier; ``None`` picks (2,2,2) for
            H > 64 and (2,1,1) otherwise, as published.
        dropout: drop probability before the classifier.
        embed_from: what ``embed`` returns: ``features`` (the trunk's output flattened, as published),
            ``head`` (the head's average-pooled map) or ``last-conv`` (the last block before its pool).
    """

    def __init__(
        self,
        num_classes: int,
        input_shape: Sequence[int],
        widths: Sequence[int] = (64, 128, 128),
        kernel: Sequence[int] = (3, 7, 7),
        stride: Sequence[int] = (1, 2, 2),
        padding: Sequence[int] = (1, 3, 3),
        pools: Sequence[Sequence[int]] = ((1, 2, 2), (2, 2, 2), (2, 2, 2)),
        norm: str = "none",
        head_pool: Sequence[int] | None = None,
        dropout: float = 0.5,
        embed_from: str = "features",
    ) -> None:
        super().__init__()
        if embed_from not in EMBEDDINGS:
            raise ValueError(f"embed_from must be one of {', '.join(EMBEDDINGS)}, got {embed_from!r}")
        self.embed_from = embed_from
        channels, frames, height, width = input_shape
        if len(pools) != len(widths):
            raise ValueError("pools and widths must have the same length")
        layers: list[nn.Module] = []
        in_ch = channels
        for w, pool in zip(widths, pools, strict=True):
            layers += [
                nn.Conv3d(in_ch, w, tuple(kernel), tuple(stride), tuple(padding)),
                _norm(norm, w),
                nn.ReLU(inplace=True),
                # a (1, 1, 1) pool is the identity; skip it (max_pool3d is slow on CPU)
                nn.MaxPool3d(tuple(pool)) if tuple(pool) != (1, 1, 1) else nn.Identity(),
            ]
            in_ch = w
        self.features = nn.Sequential(*layers)
        if head_pool is None:
            head_pool = (2, 2, 2) if height > 64 else (2, 1, 1)
        # Clip the head window to what the feature map has, so small inputs still work.
        with torch.no_grad():
            fshape = self.features(torch.zeros(1, channels, frames, height, width)).shape[2:]
        if min(fshape) < 1:
            raise ValueError(f"input {tuple(input_shape)} is too small for this network")
        window = tuple(min(p, s) for p, s in zip(head_pool, fshape, strict=True))
        # stride 1, as published: at 16x112x112 the (128, 4, 2, 2) map keeps 3 time steps, not 2
        self.pool = nn.AvgPool3d(window, stride=(1, 1, 1))
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Conv3d(in_ch, num_classes, kernel_size=1)
        self.num_classes = num_classes
        self.input_shape = tuple(input_shape)

    def _pooled(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.features(x))  # (N, F, T', H', W')

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Features ``(N, C, T, H, W) -> (N, F)``: the trunk's output flattened (``features``, the
        official embedding that DM matches), the head's pooled map (``head``), or the last conv block's
        map before its pooling (``last-conv``)."""
        if self.embed_from == "last-conv":
            return self.features[:-1](x).flatten(1)  # (N, C_last * T'' * H'' * W'')
        if self.embed_from == "head":
            return self._pooled(x).flatten(1)  # (N, C_last * T' * H' * W') after the head's pool
        return self.features(x).flatten(1)  # (N, C_last * T'' * H'' * W''), 2048 at 16x112x112

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(N, K)``: 1x1x1 conv to classes, then max over remaining positions."""
        logits = self.classifier(self.dropout(self._pooled(x)))  # (N, K, T', H', W')
        return logits.flatten(2).amax(dim=2)  # (N, K)


@register_model("convnet3d", min_input=PUBLISHED_MIN)
def convnet3d(num_classes: int, input_shape: tuple[int, ...], **kw) -> ConvNet3D:
    """The published ConvNet3D (3.65 M parameters at 50 classes), for 8x64x64 and 16x112x112."""
    return ConvNet3D(num_classes, input_shape, **kw)


@register_model("convnet3d-in", min_input=PUBLISHED_MIN)
def convnet3d_in(num_classes: int, input_shape: tuple[int, ...], **kw) -> ConvNet3D:
    """ConvNet3D with instance norm after each conv."""
    return ConvNet3D(num_classes, input_shape, norm="instance", **kw)


@register_model("convnet3d-bn", min_input=PUBLISHED_MIN)
def convnet3d_bn(num_classes: int, input_shape: tuple[int, ...], **kw) -> ConvNet3D:
    """ConvNet3D with batch norm after each conv ("MiniC3D" of the large-scale study)."""
    return ConvNet3D(num_classes, input_shape, norm="batch", **kw)


# CPU-scale variant: the published layout's 3x7x7/stride-2 convs would shrink 32x32 to nothing,
# so kernels are 3x5x5 and the first block has no pooling; widths are cut for 2-core speed.
_SMALL = dict(
    widths=(16, 32, 64),
    kernel=(3, 5, 5),
    stride=(1, 2, 2),
    padding=(1, 2, 2),
    pools=((1, 1, 1), (2, 2, 2), (2, 2, 2)),
    head_pool=(2, 2, 2),
)


@register_model("convnet3d-s")
def convnet3d_s(num_classes: int, input_shape: tuple[int, ...], **kw) -> ConvNet3D:
    """Small ConvNet3D for CPU runs at 8x32x32: widths 16/32/64, 3x5x5 kernels, stride (1,2,2)."""
    return ConvNet3D(num_classes, input_shape, **{**_SMALL, **kw})


@register_model("convnet3d-s-bn")
def convnet3d_s_bn(num_classes: int, input_shape: tuple[int, ...], **kw) -> ConvNet3D:
    """Small ConvNet3D with batch norm, for CPU runs at 8x32x32."""
    return ConvNet3D(num_classes, input_shape, **{**_SMALL, "norm": "batch", **kw})


@register_model("convnet3d-s-in")
def convnet3d_s_in(num_classes: int, input_shape: tuple[int, ...], **kw) -> ConvNet3D:
    """Small ConvNet3D with instance norm (per-clip statistics: the DM embedding network at CPU scale)."""
    return ConvNet3D(num_classes, input_shape, **{**_SMALL, "norm": "instance", **kw})


@register_model("convnet3d-s-fm")
def convnet3d_s_fm(num_classes: int, input_shape: tuple[int, ...], **kw) -> ConvNet3D:
    """convnet3d-s whose ``embed`` is the last conv feature map before pooling (1024-d at 8x32x32)."""
    return ConvNet3D(num_classes, input_shape, **{**_SMALL, "embed_from": "last-conv", **kw})
