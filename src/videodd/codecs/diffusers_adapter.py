"""A pretrained diffusers VAE from a local folder as a :class:`~videodd.codecs.Codec`.

``load_codec("diffusers:/models/sd-vae")`` reads ``config.json`` (or ``vae/config.json`` of a
whole pipeline folder) and loads the class it names with ``from_pretrained(folder,
local_files_only=True, use_safetensors=True)``: never a hub download, never a pickle.

- ``AutoencoderKL`` (image VAEs: Stable Diffusion, SDXL, FLUX ...) runs frame-wise:
  ``(N, C, T, H, W) -> (N*T, C, H, W)`` frames, latents ``(N, c, T, h, w)``.
- ``AutoencoderKLTemporalDecoder`` (Stable Video Diffusion) encodes frame-wise and decodes the
  ``T`` frames of a video together.
- 3D video VAEs (CogVideoX, LTX-Video, HunyuanVideo, Mochi, Wan, Allegro) take the whole
  ``(N, C, T, H, W)`` video; their temporal compression depends on the model, and some accept
  only certain frame counts (e.g. ``1 + 4k``).

Latents are scaled as the diffusion model expects them: ``(z - shift_factor) * scaling_factor``
(or ``(z - latents_mean) * scaling_factor / latents_std`` where the config gives per-channel
statistics), computed in float32. Requires the optional extra: ``pip install videodd[diffusion]``.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import torch

from videodd.codecs.base import CODECS, Codec, CodecError, file_sha256, module_bytes

FRAME_VAES = ("AutoencoderKL",)
TEMPORAL_DECODER_VAES = ("AutoencoderKLTemporalDecoder",)
VIDEO_VAES = (
    "AutoencoderKLCogVideoX",
    "AutoencoderKLLTXVideo",
    "AutoencoderKLHunyuanVideo",
    "AutoencoderKLMochi",
    "AutoencoderKLWan",
    "AutoencoderKLAllegro",
)
SUPPORTED = FRAME_VAES + TEMPORAL_DECODER_VAES + VIDEO_VAES


def _import_diffusers() -> Any:
    try:
        import diffusers
    except ImportError as err:
        raise CodecError(
            f"the diffusers codec needs the optional dependency diffusers ({err}); "
            "install it with: pip install videodd[diffusion]"
        ) from None
    return diffusers


def model_folder(path: str | os.PathLike[str]) -> Path:
    """The folder holding the VAE's ``config.json``: ``path`` itself or its ``vae/`` subfolder."""
    path = Path(path).expanduser()
    for folder in (path, path / "vae"):
        if (folder / "config.json").is_file():
            return folder
    raise CodecError(f"{path}: no diffusers config.json here or in {path / 'vae'} (expected a folder written by "
                     "save_pretrained, e.g. a downloaded 'vae' subfolder)")


def folder_sha256(folder: Path) -> str:
    """sha256 over ``config.json`` and the ``*.safetensors`` weights of a diffusers folder (names and digests)."""
    h = hashlib.sha256()
    for f in sorted([folder / "config.json", *folder.glob("*.safetensors")]):
        h.update(f.name.encode() + b"\0" + file_sha256(f).encode() + b"\n")
    return h.hexdigest()


@CODECS.register("diffusers")
class DiffusersCodec(Codec):
    """A diffusers VAE (AutoencoderKL frame-wise, temporal decoder or 3D video VAE) from a local folder."""

    name = "diffusers"

    def __init__(self, vae: torch.nn.Module, *, path: str | None = None, sha256: str | None = None,
                 frame_batch: int = 64) -> None:
        super().__init__()
        self.vae = vae
        self.path = path
        self.sha256 = sha256
        self.frame_batch = frame_batch  # frames per VAE call in frame-wise mode (bounds memory)
        config = dict(vae.config)
        self.class_name = type(vae).__name__
        if self.class_name not in SUPPORTED:
            raise CodecError(f"{path}: unsupported diffusers VAE class {self.class_name}; supported: "
                             f"{', '.join(SUPPORTED)}")
        self.video_vae = self.class_name in VIDEO_VAES
        self.in_channels = int(config.get("in_channels", 3))
        self.latent_channels = int(config["latent_channels"])
        self.scaling_factor = float(config.get("scaling_factor") or 1.0)
        self.shift_factor = float(config.get("shift_factor") or 0.0)
        mean, std = config.get("latents_mean"), config.get("latents_std")
        self.latents_mean = None if mean is None else torch.tensor(mean, dtype=torch.float32)
        self.latents_std = None if std is None else torch.tensor(std, dtype=torch.float32)
        blocks = config.get("block_out_channels") or [0]
        self.spatial_factor = 2 ** (len(blocks) - 1)  # each down block but the last halves H and W
        self._shape_cache: dict[tuple[int, ...], tuple[int, ...]] = {}

    # -- shapes ----------------------------------------------------------------------------------
    def latent_shape(self, video_shape: tuple[int, int, int, int]) -> tuple[int, ...]:
        c, t, h, w = (int(v) for v in video_shape)
        if c != self.in_channels:
            raise CodecError(f"diffusers codec {self.path}: videos have {c} channels, the VAE takes {self.in_channels}")
        if h % self.spatial_factor or w % self.spatial_factor:
            raise CodecError(f"diffusers codec {self.path}: frame size {h}x{w} is not a multiple of the VAE's "
                             f"spatial factor {self.spatial_factor}")
        if not self.video_vae:
            return (self.latent_channels, t, h // self.spatial_factor, w // self.spatial_factor)
        key = (c, t, h, w)
        if key not in self._shape_cache:  # 3D VAEs compress time in model-specific ways: ask the model
            with torch.no_grad():
                probe = self._raw_encode(torch.zeros(1, c, t, h, w, device=self.device), sample=False, generator=None)
            self._shape_cache[key] = tuple(probe.shape[1:])
        return self._shape_cache[key]

    # -- scaling ---------------------------------------------------------------------------------
    def _stats(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
        if self.latents_mean is None or self.latents_std is None:
            return None
        shape = (1, -1) + (1,) * (z.ndim - 2)  # per channel, broadcast over the rest
        return self.latents_mean.to(z.device).view(shape), self.latents_std.to(z.device).view(shape)

    def _scale(self, z: torch.Tensor) -> torch.Tensor:
        stats = self._stats(z)
        if stats is not None:
            return (z - stats[0]) * self.scaling_factor / stats[1]
        return (z - self.shift_factor) * self.scaling_factor

    def _unscale(self, z: torch.Tensor) -> torch.Tensor:
        stats = self._stats(z)
        if stats is not None:
            return z * stats[1] / self.scaling_factor + stats[0]
        return z / self.scaling_factor + self.shift_factor

    # -- encode / decode -------------------------------------------------------------------------
    def _posterior(self, x: torch.Tensor, *, sample: bool, generator: torch.Generator | None) -> torch.Tensor:
        dist = self.vae.encode(x).latent_dist
        if sample:
            return dist.sample(generator=generator)
        return dist.mode() if hasattr(dist, "mode") else dist.mean

    def _raw_encode(self, videos: torch.Tensor, *, sample: bool, generator: torch.Generator | None) -> torch.Tensor:
        x = videos.to(self.device, self._dtype) * 2 - 1  # diffusers VAEs take [-1, 1]
        n, c, t, h, w = x.shape
        if self.video_vae:
            step = max(1, self.frame_batch // t)  # whole videos per call, about frame_batch frames
            return torch.cat([self._scale(self._posterior(x[s : s + step], sample=sample, generator=generator).float())
                              for s in range(0, n, step)])
        frames = x.permute(0, 2, 1, 3, 4).reshape(n * t, c, h, w)  # (N*T, C, H, W)
        z = torch.cat([self._posterior(frames[s : s + self.frame_batch], sample=sample, generator=generator).float()
                       for s in range(0, n * t, self.frame_batch)])
        z = self._scale(z)
        return z.reshape(n, t, *z.shape[1:]).permute(0, 2, 1, 3, 4)  # (N, c, T, h, w)

    @torch.no_grad()
    def _encode(self, videos: torch.Tensor, *, sample: bool, generator: torch.Generator | None) -> torch.Tensor:
        return self._raw_encode(videos, sample=sample, generator=generator)

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        if latents.ndim != 5 or latents.shape[1] != self.latent_channels:
            raise CodecError(f"diffusers codec {self.path}: latents must be (N, {self.latent_channels}, t, h, w), "
                             f"got {tuple(latents.shape)}")
        z = self._unscale(latents.to(self.device, torch.float32)).to(self._dtype)
        n, c, t, h, w = z.shape
        if self.video_vae:
            step = max(1, self.frame_batch // t)
            x = torch.cat([self.vae.decode(z[s : s + step]).sample for s in range(0, n, step)])
        else:
            frames = z.permute(0, 2, 1, 3, 4).reshape(n * t, c, h, w)  # (N*T, c, h, w), video-major
            if self.class_name in TEMPORAL_DECODER_VAES:
                step = max(1, self.frame_batch // t) * t  # whole videos: their T frames decode together
                x = torch.cat([self.vae.decode(frames[s : s + step], num_frames=t).sample
                               for s in range(0, n * t, step)])
            else:
                x = torch.cat([self.vae.decode(frames[s : s + self.frame_batch]).sample
                               for s in range(0, n * t, self.frame_batch)])
            x = x.reshape(n, t, *x.shape[1:]).permute(0, 2, 1, 3, 4)  # (N, C, T, H, W)
        return ((x.float() + 1) / 2).clamp(0, 1)

    @property
    def _dtype(self) -> torch.dtype:
        for p in self.vae.parameters():
            return p.dtype
        return torch.float32

    # -- description and loading -----------------------------------------------------------------
    def decoder_weight_bytes(self) -> int:
        parts = [getattr(self.vae, name, None) for name in ("decoder", "post_quant_conv")]
        return sum(module_bytes(p) for p in parts if isinstance(p, torch.nn.Module)) or self.weight_bytes()

    def describe(self) -> dict[str, Any]:
        config = {k: v for k, v in dict(self.vae.config).items() if not k.startswith("_")}
        return {
            "kind": self.name,
            "path": self.path,
            "sha256": self.sha256,
            "config": json.loads(json.dumps({"class_name": self.class_name, **config}, default=str)),
            "weight_bytes": self.weight_bytes(),
            "decoder_weight_bytes": self.decoder_weight_bytes(),
        }

    @classmethod
    def load(cls, path: str | os.PathLike[str], device: str | torch.device = "cpu") -> DiffusersCodec:
        """Load from a local folder only; errors name the folder."""
        folder = model_folder(path)
        try:
            class_name = json.loads((folder / "config.json").read_text(encoding="utf-8"))["_class_name"]
        except (OSError, json.JSONDecodeError, KeyError, TypeError) as err:
            raise CodecError(f"{folder / 'config.json'}: not a diffusers model config ({err})") from None
        if class_name not in SUPPORTED:
            raise CodecError(f"{folder}: unsupported diffusers VAE class {class_name!r}; supported: "
                             f"{', '.join(SUPPORTED)}")
        if not list(folder.glob("*.safetensors")):
            raise CodecError(f"{folder}: no .safetensors weights (pickled .bin weights are refused: loading them "
                             "could run code; convert them with save_pretrained(safe_serialization=True))")
        diffusers = _import_diffusers()
        vae_cls = getattr(diffusers, class_name, None)
        if vae_cls is None:
            raise CodecError(f"{folder}: diffusers {diffusers.__version__} has no {class_name}; upgrade diffusers")
        try:
            # low_cpu_mem_usage=False: the plain path, without accelerate (and without its warning)
            vae = vae_cls.from_pretrained(str(folder), local_files_only=True, use_safetensors=True,
                                          low_cpu_mem_usage=False)
        except (OSError, ValueError, RuntimeError, KeyError, TypeError) as err:
            raise CodecError(f"{folder}: cannot load {class_name} ({err})") from None
        codec = cls(vae.eval(), path=str(folder.resolve()), sha256=folder_sha256(folder))
        return codec.to(device).eval()
