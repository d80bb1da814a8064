"""Features of every clip of a store from a model trained on the real data (herding, k-center).

``store_features(store, options, generator, device)`` trains ``options.feature_model`` on the
whole training store with the one training loop (``train.fit``), or loads its weights from a
safetensors ``state_dict`` (``options.checkpoint``), and returns ``model.embed(x)`` of every clip,
in store order, with the model in eval mode. The same seed gives the same features.

To train the feature model once and reuse it across selectors::

    model = train_feature_model(store, FeatureOptions(), make_generator(0))
    save_feature_model(model, "feature-model.safetensors")
    # then: videodd distill --method kcenter --set selector.checkpoint=feature-model.safetensors
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from videodd.checkpoint import CheckpointError
from videodd.data.store import ClipStore
from videodd.io import atomic_path
from videodd.models import create_model
from videodd.seeding import seeded
from videodd.train import StoreData, TrainConfig, fit


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
        checkpoint: a safetensors file holding the feature model's ``state_dict`` (for example
            written by ``save_feature_model``); when set, nothing is trained and the weights are
            loaded instead. Never unpickled.
    """

    feature_model: str = "auto"
    feature_epochs: int = 10
    feature_lr: float = 0.01
    feature_batch: int = 64
    checkpoint: str | None = None

    def __post_init__(self) -> None:
        if self.feature_epochs < 1 or self.feature_batch < 1 or self.feature_lr <= 0:
            raise ValueError("feature_epochs >= 1, feature_batch >= 1 and feature_lr > 0 are required")


def feature_model_name(store: ClipStore, options: FeatureOptions) -> str:
    """The registry name of the feature network for ``store`` (resolves ``auto``)."""
    if options.feature_model != "auto":
        return options.feature_model
    from videodd.evaluate import get_protocol  # lazy: evaluate is a heavier module

    return get_protocol("default").model_for(store.video_shape)


def load_feature_model(model: nn.Module, path: str | Path) -> nn.Module:
    """Load a safetensors ``state_dict`` into ``model``; a clear CheckpointError when it does not fit."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such feature-model checkpoint (selector.checkpoint)")
    try:
        state = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as err:
        raise CheckpointError(f"{path}: not a readable safetensors state_dict ({err})") from None
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    shapes = [f"{k} {tuple(state[k].shape)} vs {tuple(v.shape)}" for k, v in expected.items()
              if k in state and state[k].shape != v.shape]
    if missing or unexpected or shapes:
        problems = []
        if missing:
            problems.append(f"missing keys {missing[:5]}{' ...' if len(missing) > 5 else ''}")
        if unexpected:
            problems.append(f"unexpected keys {unexpected[:5]}{' ...' if len(unexpected) > 5 else ''}")
        if shapes:
            problems.append(f"shape mismatches (file vs model) {shapes[:5]}")
        raise CheckpointError(
            f"{path}: does not fit the feature model {type(model).__name__} for this store: "
            + "; ".join(problems) + " (set selector.feature_model to the network the weights belong to)"
        )
    model.load_state_dict(state)
    return model


def save_feature_model(model: nn.Module, path: str | Path) -> None:
    """Write ``model.state_dict()`` as safetensors (atomically), for ``FeatureOptions.checkpoint``."""
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp))


def train_feature_model(
    store: ClipStore,
    options: FeatureOptions,
    generator: torch.Generator,
    *,
    device: str | torch.device = "cpu",
    progress: bool = False,
) -> nn.Module:
    """The feature network: loaded from ``options.checkpoint``, or trained on all of ``store``.

    Initialisation and shuffling draw from ``generator`` only, so the same seed gives the same model.
    """
    name = feature_model_name(store, options)
    with seeded(generator):
        model = create_model(name, store.num_classes, store.video_shape)
    if options.checkpoint is not None:
        return load_feature_model(model, options.checkpoint).to(device).eval()
    cfg = TrainConfig(epochs=options.feature_epochs, batch_size=options.feature_batch, lr=options.feature_lr,
                      momentum=0.9, weight_decay=5e-4, lr_milestones=(0.5,))
    result = fit(model, StoreData(store), cfg, generator=generator, device=device, progress=progress,
                 desc=f"feature model {name}")
    if result.diverged_at_epoch is not None:
        from videodd.distill import NonFiniteError  # lazy: distill imports the selectors

        raise NonFiniteError(
            f"the feature model {name} diverged (NaN loss) at epoch {result.diverged_at_epoch}; "
            "lower selector.feature_lr"
        )
    return result.model.eval()


@torch.no_grad()
def embed_store(
    model: nn.Module, store: ClipStore, *, batch_size: int = 64, device: str | torch.device = "cpu"
) -> torch.Tensor:
    """``model.embed`` of every clip of ``store`` in store order, eval mode -> float32 ``(N, F)`` on CPU."""
    device = torch.device(device)
    model.to(device).eval()
    out = []
    for s in range(0, len(store), batch_size):
        x = store.batch(np.arange(s, min(s + batch_size, len(store))), device)  # (n, C, T, H, W)
        out.append(model.embed(x).float().cpu())
    return torch.cat(out)


def store_features(
    store: ClipStore,
    options: FeatureOptions,
    generator: torch.Generator,
    *,
    device: str | torch.device = "cpu",
    progress: bool = False,
) -> torch.Tensor:
    """Features ``(N, F)`` of every clip of ``store`` from a model trained on it (or loaded)."""
    model = train_feature_model(store, options, generator, device=device, progress=progress)
    return embed_store(model, store, batch_size=options.feature_batch, device=device)


def select_in_feature_space(
    store: ClipStore,
    ipc: int,
    generator: torch.Generator,
    order: Callable[[torch.Tensor, int], torch.Tensor],
    options: FeatureOptions | None,
    device: str | torch.device,
) -> np.ndarray:
    """Per class, ``order(class_features (n, F), ipc)`` -> the first ``ipc`` picks (positions in the
    class); returned as store indices grouped by class, in pick order. Shared by herding and k-center."""
    from videodd.selection import check_ipc

    check_ipc(store, ipc)
    feats = store_features(store, options or FeatureOptions(), generator, device=device)  # (N, F)
    picks = []
    for c in range(store.num_classes):
        members = store.class_indices(c)
        picks.append(members[order(feats[members], ipc).numpy()])
    return np.concatenate(picks).astype(np.int64)
