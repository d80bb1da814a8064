"""A small class-conditional spatio-temporal U-Net: the denoiser of the built-in video generator.

Videos are ``(N, C, T, H, W)``. Every block is a factorised ("pseudo-3D") residual block: a
``1x3x3`` spatial conv then a ``3x1x1`` temporal conv, the cheap space-time factorisation of video
diffusion U-Nets. The timestep (sinusoidal features, then an MLP) and the class (an embedding with one
extra "no class" row, for classifier-free guidance) are added to every block as a per-channel shift.

Why not diffusers' ``UNet3DConditionModel``: at 8x32x32 its smallest configuration took 21 s per
training step at batch 16 on a 2-core CPU (76 s with cross-attention), against about a second for
this network, so a generator could not be trained where the embedded benchmarks run. diffusers
supplies the noise schedulers (``videodd.generate.diffusion``).

The resolution halves in space at each level (``H`` and ``W`` must be divisible by ``2**(levels-1)``);
time is never downsampled, so any clip length works.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class UNetConfig:
    """Architecture of :class:`VideoUNet`.

    Attributes:
        channels: video channels C.
        num_classes: classes K; the class embedding has ``K + 1`` rows (row ``K``: no class).
        width: channels at full resolution.
        mults: channel multiplier per level (one spatial halving between levels).
        blocks: residual blocks per level.
        embed_dim: width of the timestep / class embedding.
    """

    channels: int = 3
    num_classes: int = 10
    width: int = 32
    mults: tuple[int, ...] = (1, 2, 2)
    blocks: int = 1
    embed_dim: int = 128

    def __post_init__(self) -> None:
        if self.channels < 1 or self.num_classes < 1 or self.width < 1 or self.blocks < 1 or not self.mults:
            raise ValueError("UNetConfig needs channels, num_classes, width, blocks >= 1 and at least one level")

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "mults": list(self.mults)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> UNetConfig:
        return cls(**{**data, "mults": tuple(data["mults"])})


def timestep_features(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal features of integer timesteps ``t (N,)`` -> ``(N, dim)`` (the transformer positional code)."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    args = t.float()[:, None] * freqs[None]  # (N, half)
    return torch.cat([torch.sin(args), torch.cos(args)], dim=1)


def _groups(width: int) -> int:
    return math.gcd(width, 8)


class FactorisedBlock(nn.Module):
    """Residual block: norm, SiLU, 1x3x3 conv, + embedding shift, norm, SiLU, 3x1x1 conv (1x1x1 skip if
    the widths differ)."""

    def __init__(self, cin: int, cout: int, embed_dim: int) -> None:
        super().__init__()
        self.norm1 = nn.GroupNorm(_groups(cin), cin)
        self.spatial = nn.Conv3d(cin, cout, (1, 3, 3), padding=(0, 1, 1))
        self.shift = nn.Linear(embed_dim, cout)
        self.norm2 = nn.GroupNorm(_groups(cout), cout)
        self.temporal = nn.Conv3d(cout, cout, (3, 1, 1), padding=(1, 0, 0))
        nn.init.zeros_(self.temporal.weight)  # each block starts as the identity: stable early training
        nn.init.zeros_(self.temporal.bias)
        self.skip = nn.Conv3d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.spatial(F.silu(self.norm1(x)))
        h = h + self.shift(emb)[:, :, None, None, None]  # (N, cout) -> (N, cout, 1, 1, 1)
        h = self.temporal(F.silu(self.norm2(h)))
        return self.skip(x) + h


class VideoUNet(nn.Module):
    """``forward(x (N, C, T, H, W), t (N,), y (N,)) -> (N, C, T, H, W)``: the predicted noise.

    ``y`` holds class indices; ``y == num_classes`` means "no class" (the unconditional branch of
    classifier-free guidance). :meth:`features` returns the pooled bottleneck activations (the
    VST-UNet selector's features).
    """

    def __init__(self, config: UNetConfig) -> None:
        super().__init__()
        self.config = config
        c, d = config, config.embed_dim
        self.time_mlp = nn.Sequential(nn.Linear(d, d), nn.SiLU(), nn.Linear(d, d))
        self.class_embed = nn.Embedding(c.num_classes + 1, d)
        widths = [c.width * m for m in c.mults]
        self.stem = nn.Conv3d(c.channels, widths[0], (1, 3, 3), padding=(0, 1, 1))
        self.down = nn.ModuleList()
        self.downsample = nn.ModuleList()
        skips, cur = [], widths[0]
        for level, w in enumerate(widths):
            for _ in range(c.blocks):
                self.down.append(FactorisedBlock(cur, w, d))
                cur = w
                skips.append(cur)
            if level < len(widths) - 1:  # spatial halving; time is kept
                self.downsample.append(nn.Conv3d(cur, cur, (1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1)))
        self.mid = nn.ModuleList([FactorisedBlock(cur, cur, d), FactorisedBlock(cur, cur, d)])
        self.up = nn.ModuleList()
        for w in reversed(widths):
            for _ in range(c.blocks):
                self.up.append(FactorisedBlock(cur + skips.pop(), w, d))
                cur = w
        self.out_norm = nn.GroupNorm(_groups(cur), cur)
        self.out = nn.Conv3d(cur, c.channels, (1, 3, 3), padding=(0, 1, 1))
        nn.init.zeros_(self.out.weight)  # predicts zero noise at first
        nn.init.zeros_(self.out.bias)

    def _embed(self, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.time_mlp(timestep_features(t, self.config.embed_dim)) + self.class_embed(y)  # (N, D)

    def _encode(self, x: torch.Tensor, emb: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        h = self.stem(x)
        skips = []
        blocks = iter(self.down)
        for level in range(len(self.config.mults)):
            for _ in range(self.config.blocks):
                h = next(blocks)(h, emb)
                skips.append(h)
            if level < len(self.downsample):
                h = self.downsample[level](h)
        for block in self.mid:
            h = block(h, emb)
        return h, skips

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if x.ndim != 5:
            raise ValueError(f"x must be (N, C, T, H, W), got {tuple(x.shape)}")
        emb = self._embed(t, y)
        h, skips = self._encode(x, emb)
        blocks = iter(self.up)
        for _ in range(len(self.config.mults) * self.config.blocks):  # the levels in reverse, deepest first
            skip = skips.pop()
            if h.shape[-2:] != skip.shape[-2:]:  # back to the skip's resolution
                h = F.interpolate(h, size=skip.shape[-3:], mode="nearest")
            h = next(blocks)(torch.cat([h, skip], dim=1), emb)  # (N, w + w_skip, T, h, w)
        return self.out(F.silu(self.out_norm(h)))

    def features(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Bottleneck activations pooled over time and space: ``(N, C_mid)``."""
        h, _ = self._encode(x, self._embed(t, y))  # (N, C_mid, T, h, w)
        return h.mean(dim=(2, 3, 4))
