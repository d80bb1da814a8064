"""Classifier teachers: a network trained on the real training split with the one training loop,
saved with a manifest that fingerprints the store, and reused across runs.

Herding and k-center pick clips in the feature space of such a network (:mod:`.features`); TSGF
matches a frozen teacher's batch-norm statistics, so batch norm is allowed here (unlike the
expert networks of MTT). ``videodd teacher --data DATA --out FILE`` trains one.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from videodd._version import __version__
from videodd.config import to_dict
from videodd.data.store import ClipStore
from videodd.errors import NonFiniteError
from videodd.models import MODELS, create_model, resolve_model
from videodd.seeding import make_generator, seeded
from videodd.teachers.base import (
    TeacherError,
    check_same_store,
    load_network,
    read_manifest,
    save_network,
    store_identity,
)
from videodd.train import StoreData, TrainConfig, fit

KIND = "classifier"


@dataclass(frozen=True)
class ClassifierConfig:
    """How a classifier teacher is trained (SGD with a step schedule, as the evaluation protocol).

    Attributes:
        model: registry name, or ``auto`` (:func:`videodd.models.auto_model` of the clip size).
        epochs: passes over the training store.
        lr: SGD learning rate (x0.1 at half the epochs).
        momentum: SGD momentum.
        weight_decay: L2 weight decay.
        batch_size: mini-batch size.
    """

    model: str = "auto"
    epochs: int = 10
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 5e-4
    batch_size: int = 64

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1 or not self.lr > 0:
            raise ValueError("epochs >= 1, batch_size >= 1 and lr > 0 are required")
        if self.model != "auto":
            MODELS.get(self.model)

    def train_config(self) -> TrainConfig:
        return TrainConfig(epochs=self.epochs, batch_size=self.batch_size, lr=self.lr, momentum=self.momentum,
                           weight_decay=self.weight_decay, lr_milestones=(0.5,))


def train_classifier(store: ClipStore, cfg: ClassifierConfig, generator: torch.Generator, *,
                     device: str | torch.device = "cpu", progress: bool = False,
                     what: str = "classifier teacher") -> nn.Module:
    """A ``cfg.model`` trained on all of ``store``; in eval mode.

    Initialisation and shuffling draw from ``generator`` only (the same seed gives the same network).
    Raises NonFiniteError when the training loss becomes NaN.
    """
    name = resolve_model(cfg.model, store.video_shape)
    with seeded(generator):
        model = create_model(name, store.num_classes, store.video_shape)
    result = fit(model, StoreData(store), cfg.train_config(), generator=generator, device=device, progress=progress,
                 desc=f"{what} {name}")
    if result.diverged_at_epoch is not None:
        raise NonFiniteError(f"the {what} {name} diverged (NaN loss) at epoch {result.diverged_at_epoch}; "
                             "lower its lr")
    return result.model.eval()


def save_classifier(model: nn.Module, path: str | Path, store: ClipStore, cfg: ClassifierConfig, *, seed: int,
                    seconds: float = 0.0) -> Path:
    """Write a trained classifier with its manifest (model, store identity, training config, seed)."""
    manifest = {"kind": KIND, "model": resolve_model(cfg.model, store.video_shape), **store_identity(store),
                "config": to_dict(cfg), "seed": seed, "seconds": seconds, "library_version": __version__}
    return save_network(model, path, manifest)


def load_classifier(path: str | Path, store: ClipStore, *, check_store: bool = True
                    ) -> tuple[nn.Module, dict[str, Any]]:
    """A classifier written by :func:`save_classifier`, checked against ``store``; with its manifest."""
    manifest = read_manifest(path)
    if manifest is None or manifest.get("kind") != KIND:
        raise TeacherError(f"{path}: not a videodd classifier teacher (train one with `videodd teacher`)")
    check_same_store(manifest, store, f"teacher {path}", fingerprint=check_store)
    with seeded(make_generator(0)):  # the weights are all overwritten
        model = create_model(manifest["model"], store.num_classes, store.video_shape)
    return load_network(model, path, "classifier teacher").eval(), manifest


def train_and_save(store: ClipStore, path: str | Path, cfg: ClassifierConfig, *, seed: int = 0,
                   device: str | torch.device = "cpu", progress: bool = False) -> tuple[nn.Module, Path]:
    """``videodd teacher``: train a classifier on ``store`` from ``seed`` and write it to ``path``."""
    start = time.perf_counter()
    model = train_classifier(store, cfg, make_generator(seed), device=device, progress=progress)
    return model, save_classifier(model, path, store, cfg, seed=seed, seconds=time.perf_counter() - start)
