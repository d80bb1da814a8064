"""What several commands share: the data-folder layout, the device, the ``--device``/``--quiet``
flags, and flags generated from a config dataclass (its docstring's field texts are the help)."""

from __future__ import annotations

import argparse
import dataclasses
import typing
from collections.abc import Collection
from pathlib import Path

import torch
from torch import nn

import videodd.distributed as distributed
from videodd.config import ConfigError
from videodd.data.store import ClipStore


def data_stores(data: str) -> tuple[ClipStore, ClipStore]:
    """``DIR/train`` and ``DIR/test`` as written by ``videodd prepare``."""
    root = Path(data)
    return ClipStore(root / "train"), ClipStore(root / "test")


def train_store(data: str) -> ClipStore:
    """``DIR/train`` alone, for the commands that only train."""
    return ClipStore(Path(data) / "train")


def split_store(data: str, split: str = "train") -> ClipStore:
    """A ClipStore given as ``DATA/SPLIT`` of a ``videodd prepare`` folder, or as the store folder itself."""
    root = Path(data)
    return ClipStore(root if (root / "meta.json").is_file() else root / split)


def resolve_device(name: str) -> str:
    """``auto`` -> ``cuda`` when available, else ``cpu``; any other name checked (ConfigError when this
    PyTorch cannot use it). Under torchrun the process joins its group here and a CUDA rank gets its own
    GPU (``cuda:LOCAL_RANK``)."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return distributed.init_from_env(_checked(name))


def _checked(name: str) -> str:
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"--device {name!r}: not a device; use cpu, cuda, cuda:N or auto") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"--device {name}: this PyTorch sees no CUDA GPU (a CPU build, or no GPU visible); use "
                          "--device cpu or auto")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise ConfigError(f"--device {name}: there are {torch.cuda.device_count()} CUDA device(s)")
    return name


def add_common_flags(parser: argparse.ArgumentParser) -> None:
    """``--device`` and ``--quiet``, for every command that computes."""
    parser.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default: auto)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def positive_int(text: str) -> int:
    """An argparse ``type`` for integers >= 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text}")
    return value


def add_dataclass_flags(parser: argparse.ArgumentParser, cls: type, docs: dict[str, str],
                        skip: Collection[str] = ()) -> None:
    """One ``--field`` flag per dataclass field; default None means 'keep the recipe value'."""
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        flag = "--" + f.name.replace("_", "-")
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
        help_text = f"{docs.get(f.name, '')} (default: {default})"
        hint = hints[f.name]
        if hint is bool:
            parser.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction, default=None, help=help_text)
        elif typing.get_origin(hint) is tuple:
            parser.add_argument(flag, dest=f.name, type=lambda s: tuple(x for x in s.split(",") if x), default=None,
                                help=help_text + "; comma-separated, empty string for none", metavar="A,B")
        else:
            base = hint if hint in (int, float, str) else str
            parser.add_argument(flag, dest=f.name, type=base, default=None, help=help_text)


def dataclass_values(args: argparse.Namespace, cls: type) -> dict[str, typing.Any]:
    """The fields of ``cls`` given on the command line (flags left at None are left out)."""
    return {f.name: getattr(args, f.name) for f in dataclasses.fields(cls) if getattr(args, f.name, None) is not None}


def field_docs(cls: type) -> dict[str, str]:
    """Each field's text in ``cls``'s "Attributes:" docstring, continuation lines (indented deeper
    than the ``name:`` line) joined, so that ``--help`` shows the whole of it."""
    names = {f.name for f in dataclasses.fields(cls)}
    out: dict[str, str] = {}
    current, indent = None, 0
    for ln in (cls.__doc__ or "").splitlines():
        depth = len(ln) - len(ln.lstrip())
        name, sep, text = ln.strip().partition(":")
        if sep and name in names and (current is None or depth <= indent):
            current, indent = name, depth
            out[name] = text.strip()
        elif current is not None and ln.strip() and depth > indent:
            out[current] += " " + ln.strip()
        else:
            current = None
    return out


def count_parameters(model: nn.Module) -> int:
    """Trainable and frozen parameters of ``model`` (buffers such as batch-norm statistics not counted)."""
    return int(sum(p.numel() for p in model.parameters()))
