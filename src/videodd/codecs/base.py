"""Video codecs: encode videos into a latent space and decode them back.

A :class:`Codec` works in **[0, 1] pixel space**, independent of any store's normalization:
callers turn uint8 clips into unit videos with :func:`unit_videos` and, after ``decode``, move
them into a store's normalized space with :func:`normalize_unit`.

Built-in codecs (registry :data:`CODECS`):

- ``builtin``: a small 3D conv video autoencoder trained on the training split by
  ``videodd train-codec`` (:mod:`videodd.codecs.autoencoder`);
- ``diffusers``: a pretrained ``AutoencoderKL`` (frame-wise) or a temporal video VAE loaded from a
  local directory (:mod:`videodd.codecs.diffusers_adapter`, extra ``videodd[diffusion]``).

>>> codec = load_codec("builtin:runs/codec")        # or a bare path, or "diffusers:/models/sd-vae"
>>> latents = codec.encode(unit_videos(raw_uint8))  # (N, c, t, h, w) float32
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

from videodd.errors import VideoddError
from videodd.registry import Registry

__all__ = [
    "CODECS",
    "Codec",
    "CodecError",
    "file_sha256",
    "load_codec",
    "module_bytes",
    "normalize_unit",
    "psnr",
    "unit_videos",
    "unnormalize",
]


class CodecError(VideoddError, ValueError):
    """A codec is missing, corrupt, tampered with, or cannot handle the videos it is given."""


class Codec(nn.Module):
    """Base class: ``encode`` (N, C, T, H, W) unit videos to latents, ``decode`` them back.

    Subclasses set ``name`` (their registry name), implement ``latent_shape``, ``_encode``,
    ``decode``, ``describe`` and the classmethod ``load(path, device)``.
    """

    name: ClassVar[str] = ""

    def latent_shape(self, video_shape: tuple[int, int, int, int]) -> tuple[int, ...]:
        """Latent ``(c, t, h, w)`` of one video ``(C, T, H, W)``; CodecError if the codec cannot take it."""
        raise NotImplementedError

    def encode(self, videos: torch.Tensor, *, sample: bool = False,
               generator: torch.Generator | None = None) -> torch.Tensor:
        """Unit videos ``(N, C, T, H, W)`` in [0, 1] -> float32 latents ``(N, c, t, h, w)``.

        Deterministic (the posterior mean) unless ``sample=True``, which draws from the posterior
        with ``generator`` (codecs without a posterior variance return the mean either way).
        Encoding never records gradients.
        """
        self.check_videos(videos)
        with torch.no_grad():
            return self._encode(videos, sample=sample, generator=generator).float()

    def _encode(self, videos: torch.Tensor, *, sample: bool, generator: torch.Generator | None) -> torch.Tensor:
        raise NotImplementedError

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Latents ``(N, c, t, h, w)`` -> unit videos ``(N, C, T, H, W)`` clamped to [0, 1].

        Follows the caller's grad mode (latents can be optimised through the decoder); wrap it in
        ``torch.no_grad()`` when only the videos are needed.
        """
        raise NotImplementedError

    def weight_bytes(self) -> int:
        """Bytes of the codec's own weights as stored (parameters and buffers)."""
        return module_bytes(self)

    def decoder_weight_bytes(self) -> int:
        """Bytes of the weights needed to decode (what a latent set must keep to be materialized)."""
        return self.weight_bytes()

    def describe(self) -> dict[str, Any]:
        """JSON description: ``{"kind", "path", "sha256", "config", "weight_bytes", "decoder_weight_bytes"}``."""
        raise NotImplementedError

    @property
    def spec(self) -> str:
        """The ``KIND:PATH`` string that :func:`load_codec` takes to load this codec again."""
        info = self.describe()
        return f"{info['kind']}:{info['path']}"

    @property
    def device(self) -> torch.device:
        for p in self.parameters():
            return p.device
        return torch.device("cpu")

    def check_videos(self, videos: torch.Tensor) -> None:
        """Raise CodecError unless ``videos`` is a float ``(N, C, T, H, W)`` batch this codec takes."""
        if videos.ndim != 5 or not videos.is_floating_point():
            raise CodecError(f"{self.name} codec: videos must be float (N, C, T, H, W) in [0, 1], "
                             f"got {videos.dtype} {tuple(videos.shape)}")
        self.latent_shape(tuple(videos.shape[1:]))  # type: ignore[arg-type]

    @classmethod
    def load(cls, path: str | os.PathLike[str], device: str | torch.device = "cpu") -> Codec:
        raise NotImplementedError


CODECS: Registry[type[Codec]] = Registry("codec")


def load_codec(spec: str | os.PathLike[str], device: str | torch.device = "cpu") -> Codec:
    """Load a codec from ``KIND:PATH`` (``builtin:runs/codec``, ``diffusers:/models/vae``) or a bare path.

    A bare path is a built-in codec folder (``codec.json``) or, when it holds a diffusers
    ``config.json`` (or a ``vae/`` subfolder with one), a diffusers model. The codec is returned in
    eval mode on ``device``; every error names the path.
    """
    text = os.fspath(spec)
    kind, sep, rest = text.partition(":")
    # "C:\\models" is a Windows drive, not a kind; anything else before ':' must be a codec name.
    if sep and re.fullmatch(r"[A-Za-z][\w-]+", kind) and not Path(text).exists():
        codec_cls = CODECS.get(kind)
        path = Path(rest).expanduser()
    else:
        path = Path(text).expanduser()
        codec_cls = CODECS.get(_guess_kind(path))
    if not path.exists():
        raise CodecError(f"{path}: no such codec folder (train one with `videodd train-codec`)")
    codec = codec_cls.load(path, device=device)
    return codec.eval()


def _guess_kind(path: Path) -> str:
    if (path / "codec.json").is_file():
        return "builtin"
    if (path / "config.json").is_file() or (path / "vae" / "config.json").is_file():
        return "diffusers"
    return "builtin"


# -- helpers shared by codecs and their callers ---------------------------------------------------
def unit_videos(raw: torch.Tensor) -> torch.Tensor:
    """uint8 clips ``(N, T, H, W, C)`` -> float32 unit videos ``(N, C, T, H, W)`` in [0, 1]."""
    if raw.dtype != torch.uint8 or raw.ndim != 5:
        raise CodecError(f"expected uint8 clips (N, T, H, W, C), got {raw.dtype} {tuple(raw.shape)}")
    # (N, T, H, W, C) -> (N, C, T, H, W)
    return raw.permute(0, 4, 1, 2, 3).to(torch.float32, memory_format=torch.contiguous_format).div_(255.0)


def normalize_unit(videos: torch.Tensor, mean: list[float], std: list[float]) -> torch.Tensor:
    """Unit videos ``(N, C, T, H, W)`` -> a store's normalized space ``(x - mean) / std``."""
    m = torch.tensor(mean, dtype=videos.dtype, device=videos.device).view(1, -1, 1, 1, 1)
    s = torch.tensor(std, dtype=videos.dtype, device=videos.device).view(1, -1, 1, 1, 1)
    return (videos - m) / s


def unnormalize(videos: torch.Tensor, mean: list[float], std: list[float]) -> torch.Tensor:
    """Normalized videos ``(N, C, T, H, W)`` -> unit videos (clamped to [0, 1])."""
    m = torch.tensor(mean, dtype=videos.dtype, device=videos.device).view(1, -1, 1, 1, 1)
    s = torch.tensor(std, dtype=videos.dtype, device=videos.device).view(1, -1, 1, 1, 1)
    return (videos * s + m).clamp(0, 1)


def module_bytes(module: nn.Module) -> int:
    """Bytes of a module's parameters and buffers (each tensor counted once)."""
    tensors = {**dict(module.named_parameters()), **dict(module.named_buffers())}
    return int(sum(t.numel() * t.element_size() for t in tensors.values()))


def psnr(mse: float) -> float:
    """Peak signal-to-noise ratio in dB of a mean squared error on [0, 1] pixels."""
    return float("inf") if mse <= 0 else float(-10.0 * torch.log10(torch.tensor(mse, dtype=torch.float64)))


def file_sha256(path: str | os.PathLike[str], chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


# Importing the modules registers their codecs (the diffusers adapter imports diffusers lazily).
