"""The built-in class-conditional video generator: training (DDPM), saving, loading and sampling.

Network (:mod:`videodd.generate.unet`), algorithm (this module: the noising, the loss, guidance and
sampling, with diffusers' schedulers) and the loop (:func:`videodd.train.fit`, the one training loop)
are separate. ``diffusers`` is the ``diffusion`` extra: ``pip install 'videodd[diffusion]'``.

Training target: epsilon prediction, ``|| eps - unet(sqrt(a_t) x0 + sqrt(1 - a_t) eps, t, y) ||^2`` with
``t`` uniform over the scheduler's training steps (DDPM, cosine ``squaredcos_cap_v2`` betas) and ``x0``
the clip in the store's normalized space scaled by ``1 / DATA_SCALE``. The label is replaced by
"no class" with probability ``p_uncond`` so that one network gives both branches of classifier-free
guidance: ``eps = eps_uncond + g * (eps_cond - eps_uncond)``.

A generator folder holds::

    generator.safetensors  the U-Net weights (float32)
    generator.json         architecture, scheduler config, the training store's fingerprint, classes,
                           clip spec and normalization, sha256 of the weights, training settings and losses
    checkpoint.safetensors while training (a killed training resumes from its last epoch)

Loading checks the sha256; :meth:`VideoGenerator.check_store` refuses a store with another fingerprint,
classes or clip shape, naming both.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from videodd._version import __version__
from videodd.codecs.base import file_sha256
from videodd.data.store import ClipStore, denormalize_to_uint8
from videodd.errors import VideoddError
from videodd.generate.unet import UNetConfig, VideoUNet
from videodd.io import atomic_path, write_json
from videodd.seeding import make_generator, seeded
from videodd.train import StoreData, TrainConfig, fit

GENERATOR_FORMAT_VERSION = 1
WEIGHTS_FILE = "generator.safetensors"
CONFIG_FILE = "generator.json"
CHECKPOINT_FILE = "checkpoint.safetensors"
#: normalized clips have unit std per channel; diffusion expects data of about unit scale, and a
#: little less keeps the saturated backgrounds of synthetic clips within the noise's range
DATA_SCALE = 2.0
SAMPLERS = ("ddim", "dpm", "ddpm")


class GeneratorError(VideoddError, ValueError):
    """A generator file is missing, tampered with, or was trained for another store."""


def _diffusers():
    try:
        import diffusers
    except ImportError:  # pragma: no cover - the extra is installed in development
        raise GeneratorError("the video generator needs diffusers: pip install 'videodd[diffusion]'") from None
    return diffusers


def scheduler_config(num_train_timesteps: int = 1000) -> dict[str, Any]:
    """The DDPM training scheduler's settings (every sampler is built from the same config)."""
    return {"num_train_timesteps": int(num_train_timesteps), "beta_schedule": "squaredcos_cap_v2",
            "prediction_type": "epsilon", "clip_sample": False}


def make_scheduler(sampler: str, config: dict[str, Any]) -> Any:
    """A diffusers scheduler: ``ddpm`` (training, ancestral sampling), ``ddim`` (eta 0) or ``dpm`` (DPM-Solver++)."""
    d = _diffusers()
    classes = {"ddpm": d.DDPMScheduler, "ddim": d.DDIMScheduler, "dpm": d.DPMSolverMultistepScheduler}
    if sampler not in classes:
        raise GeneratorError(f"unknown sampler {sampler!r}; choose from {list(classes)}")
    base = d.DDPMScheduler(**config)
    return base if sampler == "ddpm" else classes[sampler].from_config(base.config)


@dataclass(frozen=True)
class GeneratorTrainConfig:
    """Settings of ``videodd train-generator`` / :func:`train_generator`.

    Attributes:
        width, mults, blocks, embed_dim: the U-Net (:class:`~videodd.generate.unet.UNetConfig`).
        epochs, batch_size, lr: Adam training on the whole training split (lr decays x0.1 at 80 %).
        p_uncond: probability that a label is dropped ("no class") during training.
        timesteps: training diffusion steps of the DDPM scheduler.
        seed: weights, noise, timesteps and label dropout all come from it.
        checkpoint_every: epochs between training checkpoints.
    """

    width: int = 16
    mults: tuple[int, ...] = (1, 2, 2)
    blocks: int = 1
    embed_dim: int = 128
    epochs: int = 40
    batch_size: int = 32
    lr: float = 2e-3
    p_uncond: float = 0.1
    timesteps: int = 1000
    seed: int = 0
    checkpoint_every: int = 1

    def __post_init__(self) -> None:
        if not 0 <= self.p_uncond < 1:
            raise ValueError(f"p_uncond must be in [0, 1), got {self.p_uncond}")
        if self.epochs < 1 or self.batch_size < 1 or self.lr <= 0 or self.timesteps < 2:
            raise ValueError("epochs, batch_size >= 1, lr > 0 and timesteps >= 2 are required")


def diffusion_loss(scheduler: Any, num_classes: int, p_uncond: float, generator: torch.Generator):
    """``loss(unet, x0, y)`` for :func:`~videodd.train.fit`: the epsilon-prediction MSE at a random timestep,
    with labels dropped to "no class" (index ``num_classes``) with probability ``p_uncond``. Every draw
    comes from ``generator`` (the training run's)."""
    alphas = scheduler.alphas_cumprod  # (timesteps,) float

    def loss(unet: nn.Module, videos: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        n, dev = len(videos), videos.device
        x0 = videos / DATA_SCALE  # (N, C, T, H, W)
        t = torch.randint(0, len(alphas), (n,), generator=generator)
        noise = torch.randn(x0.shape, generator=generator).to(dev)
        drop = torch.rand(n, generator=generator) < p_uncond
        y = torch.where(drop.to(dev), torch.full_like(labels, num_classes), labels)
        a = alphas[t].to(dev, torch.float32)[:, None, None, None, None]  # (N,) -> (N, 1, 1, 1, 1)
        noisy = a.sqrt() * x0 + (1 - a).sqrt() * noise
        return F.mse_loss(unet(noisy, t.to(dev), y), noise)

    return loss


class VideoGenerator:
    """A trained class-conditional video generator (a :class:`VideoUNet` + its scheduler config + its store)."""

    def __init__(self, unet: VideoUNet, info: dict[str, Any], *, path: Path | None = None) -> None:
        self.unet = unet.eval()
        self.info = info
        self.path = path

    # -- identity -------------------------------------------------------------------------------
    @property
    def classes(self) -> list[str]:
        return list(self.info["classes"])

    @property
    def video_shape(self) -> tuple[int, int, int, int]:
        return tuple(int(s) for s in self.info["video_shape"])  # type: ignore[return-value]

    @property
    def weight_bytes(self) -> int:
        return int(sum(t.numel() * t.element_size() for t in self.unet.state_dict().values()))

    def describe(self) -> dict[str, Any]:
        """Reference written into candidate stores and sets: path, sha256, bytes, training store."""
        return {"kind": "builtin", "path": str(self.path) if self.path else None, "sha256": self.info.get("sha256"),
                "weight_bytes": self.weight_bytes, "fingerprint": self.info.get("fingerprint"),
                "dataset": self.info.get("dataset")}

    def check_store(self, store: Any) -> None:
        """Refuse a store this generator was not trained for (another fingerprint, classes or clip shape)."""
        where = self.path or "generator"
        if list(store.classes) != self.classes:
            raise GeneratorError(f"{where}: trained on classes {self.classes[:5]}..., the store {store.root} has "
                                 f"{list(store.classes)[:5]}...; train a generator on this store")
        if tuple(store.video_shape) != self.video_shape:
            raise GeneratorError(f"{where}: trained on clips {self.video_shape} (C, T, H, W), the store {store.root} "
                                 f"has {tuple(store.video_shape)}; train a generator on this store")
        if getattr(store, "fingerprint", None) != self.info.get("fingerprint"):
            raise GeneratorError(f"{where}: trained on store {self.info.get('store')} (fingerprint "
                                 f"{self.info.get('fingerprint')}), not on {store.root} (fingerprint "
                                 f"{getattr(store, 'fingerprint', None)}); train a generator on this store")

    # -- sampling -------------------------------------------------------------------------------
    @torch.no_grad()
    def sample(self, labels: torch.Tensor, generator: torch.Generator, *, steps: int = 50, guidance: float = 2.0,
               sampler: str = "ddim", device: str | torch.device = "cpu") -> torch.Tensor:
        """Videos of the classes ``labels (N,)``: uint8 ``(N, T, H, W, C)``.

        The initial noise (and DDPM's per-step noise) comes from ``generator``: the same generator state
        gives the same videos. ``guidance`` 1 is the conditional model alone; 0 the unconditional one.
        """
        if steps < 1:
            raise ValueError(f"steps must be >= 1, got {steps}")
        device = torch.device(device)
        self.unet.to(device).eval()
        scheduler = make_scheduler(sampler, self.info["scheduler"])
        scheduler.set_timesteps(steps)
        n, k = len(labels), len(self.classes)
        x = torch.randn((n, *self.video_shape), generator=generator).to(device)  # (N, C, T, H, W)
        x = x * float(scheduler.init_noise_sigma)
        y = labels.to(device)
        null = torch.full_like(y, k)
        for t in scheduler.timesteps:
            inp = scheduler.scale_model_input(x, t)
            tt = torch.full((n,), int(t), device=device)
            if guidance == 1.0:
                eps = self.unet(inp, tt, y)
            else:  # both branches in one batch: (2N, ...)
                both = self.unet(torch.cat([inp, inp]), torch.cat([tt, tt]), torch.cat([y, null]))
                cond, uncond = both[:n], both[n:]
                eps = uncond + guidance * (cond - uncond)
            extra = {"generator": generator} if sampler == "ddpm" else {}
            x = scheduler.step(eps, t, x, **extra).prev_sample  # on the device: no host round trip a step
        videos = (x * DATA_SCALE).cpu()  # back to the store's normalized space
        return denormalize_to_uint8(videos, self.info["mean"], self.info["std"])  # (N, T, H, W, C)

    # -- files ----------------------------------------------------------------------------------
    def save(self, folder: str | os.PathLike[str]) -> Path:
        """Write the weights and ``generator.json`` (with the weights' sha256) into ``folder``."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        weights = folder / WEIGHTS_FILE
        with atomic_path(weights) as tmp:
            save_file({k: v.detach().cpu().contiguous() for k, v in self.unet.state_dict().items()}, str(tmp))
        self.info = {**self.info, "sha256": file_sha256(weights), "format_version": GENERATOR_FORMAT_VERSION,
                     "videodd_version": __version__, "unet": self.unet.config.to_dict()}
        write_json(folder / CONFIG_FILE, self.info)
        self.path = folder
        return folder

    @classmethod
    def load(cls, path: str | os.PathLike[str], device: str | torch.device = "cpu") -> VideoGenerator:
        """A generator folder written by :meth:`save`; the weights must match the recorded sha256."""
        folder = Path(path)
        config, weights = folder / CONFIG_FILE, folder / WEIGHTS_FILE
        if not config.is_file() or not weights.is_file():
            raise GeneratorError(f"{folder}: not a generator folder (needs {CONFIG_FILE} and {WEIGHTS_FILE}; "
                                 "train one with videodd train-generator)")
        try:
            info = json.loads(config.read_text(encoding="utf-8"))
            unet_cfg = UNetConfig.from_dict(info["unet"])
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as err:
            raise GeneratorError(f"{config}: unreadable generator config ({err})") from None
        if file_sha256(weights) != info.get("sha256"):
            raise GeneratorError(f"{weights}: sha256 differs from {config}: the weights were changed or truncated")
        try:
            state = load_file(str(weights))
        except (SafetensorError, OSError) as err:
            raise GeneratorError(f"{weights}: unreadable weights ({err})") from None
        unet = VideoUNet(unet_cfg)
        unet.load_state_dict(state)
        return cls(unet.to(device), info, path=folder)


@dataclass
class GeneratorTrainResult:
    """What :func:`train_generator` returns."""

    generator: VideoGenerator
    path: Path
    epoch_losses: list[float]
    seconds: float


def train_generator(store: ClipStore, out_dir: str | os.PathLike[str], cfg: GeneratorTrainConfig | None = None, *,
                    device: str | torch.device = "cpu", progress: bool = False) -> GeneratorTrainResult:
    """Train the built-in generator on ``store`` (the training split) with the one training loop; resumable.

    A killed training continues from ``OUT/checkpoint.safetensors`` (same weights as an uninterrupted run);
    the checkpoint is removed once the generator is saved.
    """
    cfg = cfg or GeneratorTrainConfig()
    if len(store) == 0:
        raise GeneratorError(f"{store.root}: no clips to train a generator on")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    gen = make_generator(cfg.seed)
    unet_cfg = UNetConfig(channels=store.channels, num_classes=store.num_classes, width=cfg.width,
                          mults=tuple(cfg.mults), blocks=cfg.blocks, embed_dim=cfg.embed_dim)
    h, w = store.video_shape[2:]
    if h % 2 ** (len(unet_cfg.mults) - 1) or w % 2 ** (len(unet_cfg.mults) - 1):
        raise GeneratorError(f"{store.root}: clips of {h}x{w} cannot be halved {len(unet_cfg.mults) - 1} times; "
                             "use fewer levels (mults)")
    with seeded(gen):
        unet = VideoUNet(unet_cfg)
    # a checkpoint continues only the training it was written by: the same store and settings
    plan = {"fingerprint": store.fingerprint, "config": {**dataclasses.asdict(cfg), "mults": list(cfg.mults)}}
    plan_file = out / "training.json"
    if (out / CHECKPOINT_FILE).exists() and (
            not plan_file.exists() or json.loads(plan_file.read_text(encoding="utf-8")) != plan):
        (out / CHECKPOINT_FILE).unlink()
    write_json(plan_file, plan)
    sched_cfg = scheduler_config(cfg.timesteps)
    scheduler = make_scheduler("ddpm", sched_cfg)
    train_cfg = TrainConfig(epochs=cfg.epochs, batch_size=cfg.batch_size, lr=cfg.lr, weight_decay=0.0,
                            lr_milestones=(0.8,), lr_gamma=0.1, optimizer="adam")
    start = time.perf_counter()
    fitted = fit(unet, StoreData(store), train_cfg, generator=gen, device=device, progress=progress,
                 desc="train-generator", loss=diffusion_loss(scheduler, store.num_classes, cfg.p_uncond, gen),
                 checkpoint=out / CHECKPOINT_FILE, checkpoint_every=cfg.checkpoint_every)
    if fitted.diverged_at_epoch is not None:
        raise GeneratorError(f"generator training diverged at epoch {fitted.diverged_at_epoch}; lower lr")
    info = {
        "store": str(store.root.resolve()),
        "dataset": store.meta.dataset,
        "fingerprint": store.fingerprint,
        "classes": list(store.classes),
        "video_shape": list(store.video_shape),
        "spec": store.meta.spec.to_dict(),
        "mean": list(store.meta.mean),
        "std": list(store.meta.std),
        "scheduler": sched_cfg,
        "train": {**dataclasses.asdict(cfg), "mults": list(cfg.mults)},
        "epoch_losses": fitted.epoch_losses,
        "steps": fitted.steps,
        "seconds": time.perf_counter() - start,  # of this process (a resumed training counts its part)
    }
    generator = VideoGenerator(unet.cpu(), info)
    generator.save(out)
    (out / CHECKPOINT_FILE).unlink(missing_ok=True)
    plan_file.unlink(missing_ok=True)
    return GeneratorTrainResult(generator=generator, path=out, epoch_losses=fitted.epoch_losses,
                                seconds=info["seconds"])


AUTO = "auto"


def resolve_generator(store: ClipStore, spec: str, *, device: str | torch.device = "cpu",
                      progress: bool = False) -> VideoGenerator:
    """The generator ``spec`` names for ``store`` (its training split), checked against the store.

    ``auto``: ``DATA/generator`` next to the store, trained there with the default settings when it is
    missing or was trained on another store (a killed training resumes). Otherwise a generator folder.
    """
    if spec != AUTO:
        generator = VideoGenerator.load(spec, device=device)
        generator.check_store(store)
        return generator
    folder = store.root.parent / "generator"
    if (folder / CONFIG_FILE).is_file():
        try:
            generator = VideoGenerator.load(folder, device=device)
            generator.check_store(store)
            return generator
        except GeneratorError:
            pass  # tampered, or trained on a store prepared earlier in this place: train again below
    return train_generator(store, folder, device=device, progress=progress).generator
