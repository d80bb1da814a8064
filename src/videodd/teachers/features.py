"""The feature network of herding and k-center: a classifier teacher trained on the real data.

``feature_network(store, options, generator)`` trains ``options.feature_model`` on the whole
training store with the one training loop (:func:`~videodd.teachers.classifier.train_classifier`),
or loads it from ``options.checkpoint`` (a file written by ``videodd teacher``, checked against the
store, or a plain safetensors ``state_dict``). ``store_features`` returns ``model.embed(x)`` of
every clip, in store order, with the model in eval mode. The same seed gives the same features.

To train the feature network once and reuse it across runs::

    videodd teacher --data DATA --out teachers/features.safetensors --epochs 10
    videodd distill --method kcenter --set selector.checkpoint=teachers/features.safetensors ...
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from videodd.data.store import ClipStore
from videodd.models import create_model, resolve_model
from videodd.seeding import seeded
from videodd.teachers.base import check_same_store, embed_all, load_network, read_manifest
from videodd.teachers.classifier import ClassifierConfig, train_classifier


@dataclass(frozen=True)
class FeatureOptions:
    """Where a feature-based selector gets its features (``--set selector.KEY=VALUE``).

    Attributes:
        feature_model: registry name of the feature network; ``auto`` is the evaluation
            protocol's model for the store's clip size (``convnet3d`` at 64 px and more,
            ``convnet3d-s-bn`` below), so clips are picked in the feature space of the kind of
            network that will be trained on them.
        feature_epochs: epochs of SGD on the full training store (lr x0.1 at half). On
            synth-actions (10 classes x 100 clips, 8x32x32, convnet3d-s-bn) 10 epochs give 78%
            train / 72% test accuracy (5: 69/66, 20: 88/81; 30 epochs is the 84% full-data
            reference); one epoch took 21-40 s on 2 CPU cores shared with other jobs.
        feature_lr: SGD learning rate (momentum 0.9, weight decay 5e-4, as the evaluation protocol).
        feature_batch: mini-batch size for training and for computing features.
        checkpoint: a teacher file (``videodd teacher``; refused if trained on another store) or a
            safetensors ``state_dict`` of ``feature_model``; when set, nothing is trained and the
            weights are loaded instead. Never unpickled.
    """

    feature_model: str = "auto"
    feature_epochs: int = 10
    feature_lr: float = 0.01
    feature_batch: int = 64
    checkpoint: str | None = None

    def __post_init__(self) -> None:
        if self.feature_epochs < 1 or self.feature_batch < 1 or self.feature_lr <= 0:
            raise ValueError("feature_epochs >= 1, feature_batch >= 1 and feature_lr > 0 are required")

    def classifier(self) -> ClassifierConfig:
        """The training schedule as a classifier-teacher config."""
        return ClassifierConfig(model=self.feature_model, epochs=self.feature_epochs, lr=self.feature_lr,
                                batch_size=self.feature_batch)


def feature_network(store: ClipStore, options: FeatureOptions, generator: torch.Generator, *,
                    device: str | torch.device = "cpu", progress: bool = False) -> nn.Module:
    """The feature network: loaded from ``options.checkpoint``, or trained on all of ``store``.

    Initialisation and shuffling draw from ``generator`` only, so the same seed gives the same model.
    """
    if options.checkpoint is None:
        return train_classifier(store, options.classifier(), generator, device=device, progress=progress,
                                what="feature model")
    manifest = read_manifest(options.checkpoint)
    name = manifest["model"] if manifest is not None else resolve_model(options.feature_model, store.video_shape)
    if manifest is not None:
        check_same_store(manifest, store, f"feature teacher {options.checkpoint}")
    with seeded(generator):  # the weights are overwritten; the draw keeps the generator where training leaves it
        model = create_model(name, store.num_classes, store.video_shape)
    return load_network(model, options.checkpoint, "feature model").to(device).eval()


def store_features(store: ClipStore, options: FeatureOptions, generator: torch.Generator, *,
                   device: str | torch.device = "cpu", progress: bool = False) -> torch.Tensor:
    """Features ``(N, F)`` of every clip of ``store`` from a network trained on it (or loaded)."""
    model = feature_network(store, options, generator, device=device, progress=progress)
    return embed_all(model, store, batch_size=options.feature_batch, device=device)
