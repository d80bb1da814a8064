"""Checkpoints without pickle: tensors in safetensors, everything else as JSON in its metadata.

``save_state(path, state)`` takes any nesting of dicts / lists / tuples / tensors / JSON scalars
(an optimizer ``state_dict`` with integer keys included) and ``load_state`` gives it back.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from videodd.errors import VideoddError
from videodd.io import atomic_path


class CheckpointError(VideoddError, ValueError):
    """A checkpoint file is missing, truncated or not one of ours."""


def _encode(obj: Any, tensors: dict[str, torch.Tensor], prefix: str) -> Any:
    if isinstance(obj, torch.Tensor):
        key = f"t{len(tensors)}"
        tensors[key] = obj.detach().cpu().contiguous()
        return {"__tensor__": key}
    if isinstance(obj, dict):
        return {"__dict__": [[_encode(k, tensors, prefix), _encode(v, tensors, prefix)] for k, v in obj.items()]}
    if isinstance(obj, tuple):
        return {"__tuple__": [_encode(v, tensors, prefix) for v in obj]}
    if isinstance(obj, list):
        return [_encode(v, tensors, prefix) for v in obj]
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise TypeError(f"cannot checkpoint a {type(obj).__name__} at {prefix}")


def _decode(obj: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(obj, dict):
        if "__tensor__" in obj:
            return tensors[obj["__tensor__"]]
        if "__tuple__" in obj:
            return tuple(_decode(v, tensors) for v in obj["__tuple__"])
        if "__dict__" in obj:
            return {_decode(k, tensors): _decode(v, tensors) for k, v in obj["__dict__"]}
    if isinstance(obj, list):
        return [_decode(v, tensors) for v in obj]
    return obj


def save_state(path: str | Path, state: dict[str, Any]) -> None:
    """Write ``state`` atomically as one safetensors file."""
    tensors: dict[str, torch.Tensor] = {}
    structure = _encode(state, tensors, "state")
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata={"videodd_checkpoint": json.dumps(structure)})


def load_state(path: str | Path) -> dict[str, Any]:
    """Read a file written by ``save_state``."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint")
    try:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as fh:
            meta = fh.metadata() or {}
        tensors = load_file(str(path))
        structure = json.loads(meta["videodd_checkpoint"])
    except (SafetensorError, OSError, KeyError, json.JSONDecodeError, ValueError) as err:
        raise CheckpointError(f"{path}: unreadable checkpoint ({err})") from None
    return _decode(structure, tensors)
