"""The built-in codec: a small 3D conv video autoencoder trained on the training split.

``videodd train-codec --data DIR --out CODEC`` (or :func:`train_codec`) trains it with the one
training loop (:func:`videodd.train.fit`, Adam, MSE + optional L1 reconstruction loss) and writes

    CODEC/codec.safetensors   the weights (float32)
    CODEC/codec.json          config, sha256 of the weights, the training store's fingerprint, the
                              training settings and the reconstruction PSNR on a held-out part of train

Loading checks the sha256: a changed or truncated weights file is refused with an error naming it.

The network is deliberately small so it trains in minutes on a CPU at 8x32x32: each stage folds
2x2 (or 2x2x2) pixel blocks into channels (space-to-depth) and applies one 3x3x3 conv, so every
conv runs at the lower resolution with wider channels, which CPUs do well; inputs are centred to
[-1, 1] and the decoder starts from the training set's mean colour. With the defaults (``spatial_down=4``,
``temporal_down=2``, 8 latent channels) a 3x8x32x32 clip becomes an 8x4x8x8 latent: 2,048 values
instead of 24,576 (x12 fewer numbers; 4 KiB at float16 against 24 KiB of uint8 pixels and 96 KiB
of float32 pixels).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from videodd._version import __version__
from videodd.codecs.base import CODECS, Codec, CodecError, file_sha256, module_bytes, psnr, unit_videos
from videodd.data.store import ClipStore
from videodd.io import atomic_path, write_json
from videodd.seeding import make_generator, seeded
from videodd.train import TrainConfig, fit

CODEC_FORMAT_VERSION = 1
WEIGHTS_FILE = "codec.safetensors"
CONFIG_FILE = "codec.json"


def _power_of_two(value: int) -> bool:
    return value >= 1 and (value & (value - 1)) == 0


@dataclass(frozen=True)
class AutoencoderConfig:
    """Architecture of the built-in video autoencoder.

    Attributes:
        in_channels: video channels C.
        latent_channels: latent channels c.
        spatial_down: H and W are divided by this (a power of two, 2-16).
        temporal_down: T is divided by this (a power of two, at most ``spatial_down``).
        width: channels of the first stage; each further stage doubles it (capped at 4x).
        blocks: residual blocks at the latent resolution, in the encoder and in the decoder.
    """

    in_channels: int = 3
    latent_channels: int = 8
    spatial_down: int = 4
    temporal_down: int = 2
    width: int = 16
    blocks: int = 0

    def __post_init__(self) -> None:
        if not (_power_of_two(self.spatial_down) and 2 <= self.spatial_down <= 16):
            raise CodecError(f"spatial_down must be a power of two in [2, 16], got {self.spatial_down}")
        if not (_power_of_two(self.temporal_down) and self.temporal_down <= self.spatial_down):
            raise CodecError(f"temporal_down must be a power of two <= spatial_down, got {self.temporal_down}")
        if self.latent_channels < 1 or self.width < 4 or self.in_channels < 1 or self.blocks < 0:
            raise CodecError("latent_channels >= 1, width >= 4, in_channels >= 1 and blocks >= 0 are required")

    @property
    def stages(self) -> int:
        return int(math.log2(self.spatial_down))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AutoencoderConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - names
        if unknown:
            raise CodecError(f"unknown autoencoder config keys {sorted(unknown)}")
        return cls(**data)


# -- network -----------------------------------------------------------------------------------------
def space_to_depth(x: torch.Tensor, t: int, s: int) -> torch.Tensor:
    """``(N, C, T, H, W) -> (N, C*t*s*s, T/t, H/s, W/s)``: fold t x s x s blocks into channels."""
    n, c, tt, h, w = x.shape
    x = x.reshape(n, c, tt // t, t, h // s, s, w // s, s)  # (N, C, T/t, t, H/s, s, W/s, s)
    return x.permute(0, 1, 3, 5, 7, 2, 4, 6).reshape(n, c * t * s * s, tt // t, h // s, w // s)


def depth_to_space(x: torch.Tensor, t: int, s: int) -> torch.Tensor:
    """Inverse of :func:`space_to_depth`: ``(N, C*t*s*s, T, H, W) -> (N, C, T*t, H*s, W*s)``."""
    n, ct, tt, h, w = x.shape
    c = ct // (t * s * s)
    x = x.reshape(n, c, t, s, s, tt, h, w)  # (N, C, t, s, s, T, H, W)
    return x.permute(0, 1, 5, 2, 6, 3, 7, 4).reshape(n, c, tt * t, h * s, w * s)


class ResBlock(nn.Module):
    """x + conv(silu(conv(silu(x)))), 3x3x3, constant width."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv3d(width, width, 3, padding=1)
        self.conv2 = nn.Conv3d(width, width, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(F.silu(self.conv1(F.silu(x))))


class _Down(nn.Module):
    """Halve H, W (and T when ``temporal``): fold 2x2(x2) blocks into channels, then a 3x3x3 conv."""

    def __init__(self, cin: int, cout: int, temporal: bool) -> None:
        super().__init__()
        self.t = 2 if temporal else 1
        self.conv = nn.Conv3d(cin * self.t * 4, cout, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(space_to_depth(x, self.t, 2))


class _Up(nn.Module):
    """Double H, W (and T when ``temporal``): a 3x3x3 conv to t*4 x channels, unfolded into space."""

    def __init__(self, cin: int, cout: int, temporal: bool) -> None:
        super().__init__()
        self.t = 2 if temporal else 1
        self.conv = nn.Conv3d(cin, cout * self.t * 4, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return depth_to_space(self.conv(x), self.t, 2)


def _widths(cfg: AutoencoderConfig) -> list[int]:
    """Channels after each down stage (the first is ``width``, then doubling up to 4x)."""
    return [cfg.width * min(2**i, 4) for i in range(cfg.stages)]


def _temporal(cfg: AutoencoderConfig) -> list[bool]:
    """Which stages also halve time: the last log2(temporal_down) ones (time is short, keep it long early)."""
    k = int(math.log2(cfg.temporal_down))
    return [i >= cfg.stages - k for i in range(cfg.stages)]


class Encoder(nn.Module):
    def __init__(self, cfg: AutoencoderConfig) -> None:
        super().__init__()
        widths, temporal = _widths(cfg), _temporal(cfg)
        cins = [cfg.in_channels, *widths[:-1]]
        self.down = nn.ModuleList(_Down(i, o, t) for i, o, t in zip(cins, widths, temporal, strict=True))
        self.blocks = nn.Sequential(*[ResBlock(widths[-1]) for _ in range(cfg.blocks)])
        self.out = nn.Conv3d(widths[-1], cfg.latent_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x * 2 - 1  # unit pixels -> [-1, 1]: centred inputs train faster
        for i, down in enumerate(self.down):
            x = down(x if i == 0 else F.silu(x))
        return self.out(F.silu(self.blocks(x)))


class Decoder(nn.Module):
    def __init__(self, cfg: AutoencoderConfig) -> None:
        super().__init__()
        widths, temporal = _widths(cfg), _temporal(cfg)
        self.inp = nn.Conv3d(cfg.latent_channels, widths[-1], 3, padding=1)
        self.blocks = nn.Sequential(*[ResBlock(widths[-1]) for _ in range(cfg.blocks)])
        couts = [cfg.in_channels, *widths[:-1]]
        # stages run from the latent resolution back up: reversed order of the encoder's
        self.up = nn.ModuleList(
            _Up(i, o, t) for i, o, t in reversed(list(zip(widths, couts, temporal, strict=True)))
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = self.blocks(self.inp(z))
        for up in self.up:
            x = up(F.silu(x))
        return x * 0.5 + 0.5  # [-1, 1] -> unit pixels


# -- the codec -------------------------------------------------------------------------------------
@CODECS.register("builtin")
class VideoAutoencoder(Codec):
    """Built-in 3D conv video autoencoder (deterministic: the latent is the encoder's output)."""

    name = "builtin"

    def __init__(self, config: AutoencoderConfig | None = None, *, path: str | None = None,
                 sha256: str | None = None, info: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.config = config or AutoencoderConfig()
        self.encoder = Encoder(self.config)
        self.decoder = Decoder(self.config)
        self.path = path
        self.sha256 = sha256
        self.info: dict[str, Any] = dict(info or {})  # codec.json "train" section, when loaded

    @torch.no_grad()
    def init_output(self, mean: list[float], weight_scale: float = 0.1) -> None:
        """Start from predicting the per-channel ``mean`` (unit pixels) everywhere.

        The last conv's bias is set to the mean and its weights shrunk, so training begins at the
        trivial mean-predicting baseline instead of mid-grey noise and spends its first steps on
        structure rather than on the global offset.
        """
        last = self.decoder.up[-1]
        per = last.conv.out_channels // self.config.in_channels  # channels of a (C, t, 2, 2) block, C first
        bias = torch.tensor(mean, dtype=torch.float32).mul(2).sub(1).repeat_interleave(per)  # decoder is in [-1, 1]
        last.conv.bias.copy_(bias)
        last.conv.weight.mul_(weight_scale)

    def latent_shape(self, video_shape: tuple[int, int, int, int]) -> tuple[int, ...]:
        c, t, h, w = (int(v) for v in video_shape)
        cfg = self.config
        if c != cfg.in_channels:
            raise CodecError(f"builtin codec {self.path or ''}: videos have {c} channels, it was built for "
                             f"{cfg.in_channels}")
        if t % cfg.temporal_down or h % cfg.spatial_down or w % cfg.spatial_down:
            raise CodecError(f"builtin codec {self.path or ''}: video (T, H, W) = ({t}, {h}, {w}) must be divisible "
                             f"by ({cfg.temporal_down}, {cfg.spatial_down}, {cfg.spatial_down})")
        return (cfg.latent_channels, t // cfg.temporal_down, h // cfg.spatial_down, w // cfg.spatial_down)

    def forward(self, videos: torch.Tensor) -> torch.Tensor:
        """Unclamped reconstruction ``(N, C, T, H, W)`` (what training compares with the input)."""
        return self.decoder(self.encoder(videos))

    def _encode(self, videos: torch.Tensor, *, sample: bool, generator: torch.Generator | None) -> torch.Tensor:
        with torch.no_grad():
            return self.encoder(videos.to(self.device, torch.float32))

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        if latents.ndim != 5 or latents.shape[1] != self.config.latent_channels:
            raise CodecError(f"builtin codec: latents must be (N, {self.config.latent_channels}, t, h, w), "
                             f"got {tuple(latents.shape)}")
        return self.decoder(latents.to(self.device, torch.float32)).clamp(0, 1)

    def decoder_weight_bytes(self) -> int:
        return module_bytes(self.decoder)

    def describe(self) -> dict[str, Any]:
        return {
            "kind": self.name,
            "path": self.path,
            "sha256": self.sha256,
            "config": self.config.to_dict(),
            "weight_bytes": self.weight_bytes(),
            "decoder_weight_bytes": self.decoder_weight_bytes(),
        }

    # -- files -----------------------------------------------------------------------------------
    def save(self, folder: str | os.PathLike[str], *, train_info: dict[str, Any] | None = None) -> Path:
        """Write ``folder/codec.safetensors`` then ``folder/codec.json`` (each atomically).

        ``codec.json`` carries the weights' sha256, so a crash between the two writes leaves a
        folder that :meth:`load` refuses rather than one that silently mixes two codecs.
        """
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()}
        weights = folder / WEIGHTS_FILE
        with atomic_path(weights) as tmp:
            save_file(state, str(tmp), metadata={"videodd_codec": json.dumps(self.config.to_dict())})
        self.path = str(folder.resolve())
        self.sha256 = file_sha256(weights)
        if train_info is not None:
            self.info = dict(train_info)
        write_json(folder / CONFIG_FILE, {
            "format_version": CODEC_FORMAT_VERSION,
            "kind": self.name,
            "config": self.config.to_dict(),
            "weights": WEIGHTS_FILE,
            "sha256": self.sha256,
            "weight_bytes": self.weight_bytes(),
            "decoder_weight_bytes": self.decoder_weight_bytes(),
            "train": self.info,
            "library_version": __version__,
        })
        return folder

    @classmethod
    def load(cls, path: str | os.PathLike[str], device: str | torch.device = "cpu") -> VideoAutoencoder:
        """Load a folder written by :meth:`save`; refuses a weights file whose sha256 changed."""
        folder = Path(path).expanduser()
        meta_path = folder / CONFIG_FILE
        if not meta_path.is_file():
            raise CodecError(f"{meta_path}: missing; {folder} is not a codec folder written by `videodd train-codec`")
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
            config = AutoencoderConfig.from_dict(meta["config"])
            expected = str(meta["sha256"])
            weights = folder / str(meta.get("weights", WEIGHTS_FILE))
        except (OSError, json.JSONDecodeError, KeyError, TypeError, ValueError) as err:
            raise CodecError(f"{meta_path}: unreadable codec manifest ({err})") from None
        if int(meta.get("format_version", 1)) > CODEC_FORMAT_VERSION:
            raise CodecError(f"{meta_path}: codec format {meta['format_version']} is newer than this videodd "
                             f"reads ({CODEC_FORMAT_VERSION}); upgrade videodd")
        if not weights.is_file():
            raise CodecError(f"{weights}: missing codec weights")
        actual = file_sha256(weights)
        if actual != expected:
            raise CodecError(f"{weights}: sha256 {actual[:16]}... does not match {expected[:16]}... recorded in "
                             f"{meta_path}; the weights were changed or truncated after training")
        codec = cls(config, path=str(folder.resolve()), sha256=actual, info=meta.get("train") or {})
        try:
            codec.load_state_dict(load_file(str(weights)), strict=True)
        except (SafetensorError, OSError, RuntimeError) as err:
            raise CodecError(f"{weights}: cannot load the codec weights ({err})") from None
        return codec.to(device).eval()


# -- training --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CodecTrainConfig:
    """How ``videodd train-codec`` trains the built-in codec.

    Attributes:
        latent_channels: latent channels c.
        spatial_down: spatial downsampling factor (power of two).
        temporal_down: temporal downsampling factor (power of two, 1 keeps every frame).
        width: channels of the first stage.
        blocks: residual blocks at the latent resolution.
        epochs: passes over the training clips.
        batch_size: clips per step.
        lr: Adam learning rate (x0.1 for the last fifth of the epochs).
        l1_weight: weight of an added L1 term (0: MSE only).
        holdout: share of the training clips kept out of training to measure the reconstruction PSNR.
        seed: initialisation, shuffling and the held-out split.
        init_mean: start the decoder at the store's per-channel mean (see ``init_output``).
    """

    latent_channels: int = 8
    spatial_down: int = 4
    temporal_down: int = 2
    width: int = 16
    blocks: int = 0
    epochs: int = 10
    batch_size: int = 32
    lr: float = 2e-3
    l1_weight: float = 0.0
    holdout: float = 0.05
    seed: int = 0
    init_mean: bool = True

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1 or self.lr <= 0:
            raise CodecError("codec training needs epochs >= 1, batch_size >= 1 and lr > 0")
        if not 0 <= self.holdout < 1 or self.l1_weight < 0:
            raise CodecError("holdout must be in [0, 1) and l1_weight >= 0")

    def architecture(self, in_channels: int) -> AutoencoderConfig:
        return AutoencoderConfig(in_channels=in_channels, latent_channels=self.latent_channels,
                                 spatial_down=self.spatial_down, temporal_down=self.temporal_down,
                                 width=self.width, blocks=self.blocks)


@dataclass
class UnitStoreData:
    """Clips of a ClipStore as unit videos ``(n, C, T, H, W)`` in [0, 1] (a ``VideoData`` for ``fit``)."""

    store: ClipStore
    indices: np.ndarray

    def __len__(self) -> int:
        return len(self.indices)

    def get(self, indices: np.ndarray, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        idx = self.indices[np.asarray(indices)]
        order = np.argsort(idx, kind="stable")  # sorted reads are faster on a memmap
        raw = np.empty((len(idx), *self.store.clips.shape[1:]), dtype=np.uint8)
        raw[order] = self.store.clips[idx[order]]
        return unit_videos(torch.from_numpy(raw)).to(device), self.store.labels_tensor(idx).to(device)


def reconstruction_loss(l1_weight: float = 0.0):
    """``f(model, videos, labels) -> MSE (+ l1_weight * L1)`` between the reconstruction and the input."""

    def loss(model: nn.Module, videos: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        recon = model(videos)
        value = F.mse_loss(recon, videos)
        if l1_weight:
            value = value + l1_weight * F.l1_loss(recon, videos)
        return value

    return loss


@torch.no_grad()
def reconstruction_error(codec: Codec, store: ClipStore, indices: np.ndarray, *, batch_size: int = 64,
                         device: str | torch.device = "cpu") -> dict[str, float]:
    """MSE and PSNR (dB, [0, 1] pixels) of ``decode(encode(clips))`` over ``indices``, plus the
    PSNR of the trivial baseline that predicts every pixel as the per-channel mean of those clips."""
    data = UnitStoreData(store, np.asarray(indices, dtype=np.int64))
    sq, total, count = 0.0, None, 0
    for s in range(0, len(data), batch_size):
        x, _ = data.get(np.arange(s, min(s + batch_size, len(data))), torch.device(device))
        recon = codec.decode(codec.encode(x))
        sq += float(((recon - x).double() ** 2).sum())
        sums = torch.stack([x.double().sum(dim=(0, 2, 3, 4)), (x.double() ** 2).sum(dim=(0, 2, 3, 4))])
        total = sums if total is None else total + sums
        count += x[:, 0].numel()
    if total is None:
        nan = float("nan")
        return {"mse": nan, "psnr_db": nan, "mean_baseline_mse": nan, "mean_baseline_psnr_db": nan}
    channels = total.shape[1]
    mse = sq / (count * channels)
    var = float((total[1] / count - (total[0] / count) ** 2).mean())  # MSE of predicting the channel mean
    return {"mse": mse, "psnr_db": psnr(mse), "mean_baseline_mse": var, "mean_baseline_psnr_db": psnr(var)}


@dataclass
class CodecTrainResult:
    """What :func:`train_codec` returns."""

    codec: VideoAutoencoder
    path: Path
    epoch_losses: list[float] = field(default_factory=list)
    holdout: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0


def train_codec(
    store: ClipStore,
    out_dir: str | os.PathLike[str],
    cfg: CodecTrainConfig | None = None,
    *,
    device: str | torch.device = "cpu",
    progress: bool = False,
) -> CodecTrainResult:
    """Train the built-in autoencoder on ``store`` (a training split) and save it to ``out_dir``.

    A share ``cfg.holdout`` of the clips (chosen from ``cfg.seed``) is kept out of training and
    used to report the reconstruction PSNR in ``codec.json``. Same seed, same machine: same weights.
    """
    cfg = cfg or CodecTrainConfig()
    if len(store) == 0:
        raise CodecError(f"{store.root}: no clips to train a codec on")
    gen = make_generator(cfg.seed)
    arch = cfg.architecture(store.channels)
    with seeded(gen):
        codec = VideoAutoencoder(arch)
    if cfg.init_mean:
        codec.init_output(store.meta.mean)
    codec.latent_shape(store.video_shape)  # refuse an incompatible clip shape before training
    n = len(store)
    order = torch.randperm(n, generator=gen).numpy()
    n_hold = min(n - 1, int(round(cfg.holdout * n))) if cfg.holdout > 0 else 0
    held, train_idx = np.sort(order[:n_hold]), np.sort(order[n_hold:])
    train_cfg = TrainConfig(epochs=cfg.epochs, batch_size=cfg.batch_size, lr=cfg.lr, weight_decay=0.0,
                            lr_milestones=(0.8,), lr_gamma=0.1, optimizer="adam")
    start = time.perf_counter()
    fitted = fit(codec, UnitStoreData(store, train_idx), train_cfg, generator=gen, device=device,
                 loss=reconstruction_loss(cfg.l1_weight), progress=progress, desc="train-codec")
    if fitted.diverged_at_epoch is not None:
        raise CodecError(f"codec training diverged at epoch {fitted.diverged_at_epoch}; lower --lr")
    seconds = time.perf_counter() - start
    codec.eval()
    holdout = reconstruction_error(codec, store, held, device=device) if n_hold else {}
    info = {
        "store": str(store.root.resolve()),
        "dataset": store.meta.dataset,
        "split": store.meta.split,
        "fingerprint": store.fingerprint,
        "video_shape": list(store.video_shape),
        "latent_shape": list(codec.latent_shape(store.video_shape)),
        "train_clips": len(train_idx),
        "holdout_clips": int(n_hold),
        "config": dataclasses.asdict(cfg),
        "epoch_losses": fitted.epoch_losses,
        "holdout": holdout,
        "seconds": seconds,
    }
    path = codec.to("cpu").save(out_dir, train_info=info)
    return CodecTrainResult(codec=codec, path=path, epoch_losses=fitted.epoch_losses, holdout=holdout,
                            seconds=seconds)
