"""What every teacher shares: errors, the store identity it is fingerprinted with, and one-file
network weights (a safetensors ``state_dict`` with a JSON manifest in its metadata, never pickle)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file
from torch import nn

from videodd.checkpoint import CheckpointError
from videodd.data.store import ClipStore
from videodd.errors import VideoddError
from videodd.io import atomic_path

META_KEY = "videodd_teacher"
"""The safetensors metadata key of a teacher's manifest."""


class TeacherError(VideoddError, ValueError):
    """A teacher (expert trajectories, a feature or classifier network) is missing, incompatible with
    the run, or cannot be trained."""


def store_identity(store: ClipStore) -> dict[str, Any]:
    """What a teacher records about the store it was trained on, to refuse another one later."""
    return {
        "dataset": store.meta.dataset,
        "store_fingerprint": store.fingerprint,
        "classes": list(store.classes),
        "spec": store.spec.to_dict(),
        "input_shape": list(store.video_shape),
    }


def save_network(model: nn.Module, path: str | Path, manifest: dict[str, Any] | None = None) -> Path:
    """Write ``model.state_dict()`` as safetensors (atomically), with ``manifest`` as JSON metadata."""
    path = Path(path)
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    metadata = {META_KEY: json.dumps(manifest)} if manifest is not None else None
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)
    return path


def read_manifest(path: str | Path) -> dict[str, Any] | None:
    """The teacher manifest of a weights file, or None for a plain ``state_dict`` file."""
    if not Path(path).is_file():
        raise CheckpointError(f"{path}: no such weights file")
    try:
        with safe_open(str(path), framework="pt") as fh:
            meta = fh.metadata() or {}
    except (SafetensorError, OSError, ValueError) as err:
        raise CheckpointError(f"{path}: not a readable safetensors file ({err})") from None
    return json.loads(meta[META_KEY]) if META_KEY in meta else None


def load_network(model: nn.Module, path: str | Path, what: str = "network") -> nn.Module:
    """Load a safetensors ``state_dict`` into ``model``; a clear CheckpointError when it does not fit."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such {what} file")
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
            f"{path}: does not fit the {what} {type(model).__name__} for this store: " + "; ".join(problems)
            + " (name the model the weights belong to)"
        )
    model.load_state_dict(state)
    return model


def check_same_store(manifest: dict[str, Any], store: ClipStore, where: str, *, fingerprint: bool = True) -> None:
    """Refuse a store with other classes or clip shape than the teacher's (and, by default, other clips)."""
    if list(manifest.get("classes", [])) != list(store.classes) or \
            list(manifest.get("input_shape", [])) != list(store.video_shape):
        raise TeacherError(f"{where} was trained on {manifest.get('dataset')} with classes "
                           f"{manifest.get('classes', [])[:5]} and clips {manifest.get('input_shape')}, not on "
                           f"{store.root} ({store.classes[:5]}, {list(store.video_shape)})")
    if fingerprint and manifest.get("store_fingerprint") != store.fingerprint:
        raise TeacherError(f"{where} was trained on a store with fingerprint {manifest.get('store_fingerprint')}, "
                           f"not {store.root} ({store.fingerprint}); train it on this store")


@torch.no_grad()
def embed_all(model: nn.Module, source: Any, *, batch_size: int = 64, device: str | torch.device = "cpu"
              ) -> torch.Tensor:
    """``model.embed`` of every clip of ``source`` (a ClipStore or any clip source with ``batch``), in
    order, eval mode -> float32 ``(N, F)`` on CPU."""
    device = torch.device(device)
    model.to(device).eval()
    out = []
    for s in range(0, len(source), batch_size):
        x = source.batch(np.arange(s, min(s + batch_size, len(source))), device)  # (n, C, T, H, W)
        out.append(model.embed(x).float().cpu())
    return torch.cat(out)
