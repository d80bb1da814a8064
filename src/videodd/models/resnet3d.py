"""3D ResNet-18 (Hara et al. 2018; torchvision's ``r3d_18`` layout), the stronger cross-architecture model.

Input ``(N, 3, T, H, W)``::

    stem:   Conv3d(3 -> w0, k=(3,7,7), s=(1,2,2), p=(1,3,3)) BN ReLU
    layer1: 2 BasicBlocks, w0, stride 1
    layer2-4: 2 BasicBlocks each, w1..w3, stride 2 in time and space (1x1x1 conv + BN shortcut)
    head:   global average pool -> (N, w3) -> Linear(w3, K)

BasicBlock = Conv3d 3x3x3, BN, ReLU, Conv3d 3x3x3, BN, + shortcut, ReLU. The last map is
(512, 1, 2, 2) at 8x32x32, (512, 1, 4, 4) at 8x64x64 and (512, 2, 7, 7) at 16x112x112; a stride-2
conv with padding 1 never shrinks a size-1 axis to 0, so short clips work too.

One layout for every input size: the global average pool takes whatever map is left (2x2 at
32 px). A stride-1 stem (``stem_stride=1``, as CIFAR ResNets do at 32 px) keeps 4x4 maps but
costs 4x the compute, which 3D convolutions on CPU cannot afford at CPU scale.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from videodd.models.base import register_model


class BasicBlock3D(nn.Module):
    def __init__(self, in_ch: int, out_ch: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv3d(in_ch, out_ch, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm3d(out_ch)
        self.conv2 = nn.Conv3d(out_ch, out_ch, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm3d(out_ch)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_ch != out_ch:
            self.shortcut = nn.Sequential(nn.Conv3d(in_ch, out_ch, 1, stride, bias=False), nn.BatchNorm3d(out_ch))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class ResNet3D(nn.Module):
    """3D ResNet with BasicBlocks and batch norm.

    Args:
        num_classes: K.
        input_shape: (C, T, H, W).
        widths: channels of the four stages.
        blocks: BasicBlocks per stage ((2, 2, 2, 2) is ResNet-18).
        stem_stride: spatial stride of the stem conv.
    """

    def __init__(self, num_classes: int, input_shape: Sequence[int], widths: Sequence[int] = (64, 128, 256, 512),
                 blocks: Sequence[int] = (2, 2, 2, 2), stem_stride: int = 2) -> None:
        super().__init__()
        self.input_shape, self.num_classes = tuple(input_shape), num_classes
        stem_conv = nn.Conv3d(input_shape[0], widths[0], (3, 7, 7), (1, stem_stride, stem_stride), (1, 3, 3),
                              bias=False)
        self.stem = nn.Sequential(stem_conv, nn.BatchNorm3d(widths[0]), nn.ReLU(inplace=True))
        stages: list[nn.Module] = []
        in_ch = widths[0]
        for i, (w, n) in enumerate(zip(widths, blocks, strict=True)):
            stage = [BasicBlock3D(in_ch, w, stride=1 if i == 0 else 2)]
            stage += [BasicBlock3D(w, w) for _ in range(n - 1)]
            stages.append(nn.Sequential(*stage))
            in_ch = w
        self.stages = nn.Sequential(*stages)
        self.pool = nn.AdaptiveAvgPool3d(1)
        self.classifier = nn.Linear(in_ch, num_classes)
        for m in self.modules():  # the standard ResNet init (He et al.; torchvision)
            if isinstance(m, nn.Conv3d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Globally pooled features ``(N, widths[-1])``."""
        return self.pool(self.stages(self.stem(x))).flatten(1)  # (N, C', 1, 1, 1) -> (N, C')

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.embed(x))


@register_model("resnet3d-18")
def resnet3d_18(num_classes: int, input_shape: tuple[int, ...], **kw) -> ResNet3D:
    """3D ResNet-18 (r3d_18 layout, widths 64-512, batch norm; ~33 M parameters), any size from 8x32x32."""
    return ResNet3D(num_classes, input_shape, **kw)


@register_model("resnet3d-18-s")
def resnet3d_18_s(num_classes: int, input_shape: tuple[int, ...], **kw) -> ResNet3D:
    """Narrow 3D ResNet-18 (widths 16-32-64-128, batch norm; ~2 M parameters) for CPU-scale runs."""
    return ResNet3D(num_classes, input_shape, **{"widths": (16, 32, 64, 128), **kw})
