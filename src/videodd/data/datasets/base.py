"""What every dataset module uses: the ``SOURCES`` registry, ``register_dataset`` and the decode plumbing.

A dataset registers ``prepare(out_dir, **options) -> (train_store, test_store)`` with
:func:`register_dataset`, which records its one-line description and its default clip spec.
Real datasets index their layout, then hand the :class:`SplitIndex` to :func:`_run`, which
resolves the clip spec and decodes with ``videodd.data.prepare.prepare_dataset``.
This module imports no dataset module (``videodd.data.datasets`` imports them all).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from videodd.data.spec import ClipSpec, get_clip_spec
from videodd.data.store import ClipStore
from videodd.registry import Registry

if TYPE_CHECKING:
    from videodd.data.layouts import SplitIndex
    from videodd.data.prepare import PrepareSummary

__all__ = [
    "AMBIENT_OPTIONS",
    "DECODE_OPTIONS",
    "SOURCES",
    "Source",
    "default_spec",
    "register_dataset",
    "resolve_spec",
]

Source = Callable[..., tuple[ClipStore, ClipStore]]
SOURCES: Registry[Source] = Registry("dataset")

# The published clip setting of each dataset, declared at registration; generic layouts get a CPU-sized
# 8x64 (Kinetics/SSv2 frame size).
_DEFAULT_SPECS: dict[str, str] = {}
_OPTIONS: dict[str, frozenset[str]] = {}

# Options about running (not about the data); a source that does not take them (synth-actions) ignores them.
AMBIENT_OPTIONS = frozenset({"workers", "resume", "progress", "chunk_size", "on_summary"})
# Options every real source takes (``**decode``): the clip spec and how to decode, besides the layout's own.
DECODE_OPTIONS = ("spec", "frames", "size", "seed", "frame_template", "min_videos_per_class", "drop_class",
                  *sorted(AMBIENT_OPTIONS))


def register_dataset(name: str, description: str | None = None, *, default_spec: str | None = None,
                     options: Iterable[str] | None = None) -> Callable[[Source], Source]:
    """Register a prepare function as dataset ``name`` in :data:`SOURCES`.

    ``description``: one line for ``videodd datasets`` (default: the first line of the docstring).
    ``default_spec``: the name of the dataset's clip spec preset (``CLIP_SPECS``), used when the user
    passes no ``--spec``; None for a source that picks its own clip shape (synth-actions).
    ``options``: the options the source takes, when its signature does not say (a ``**options``
    source such as synth-actions); by default its keyword-only parameters, plus the decoding options
    when it takes ``**decode``.
    """
    if default_spec is not None:
        get_clip_spec(default_spec)  # a misspelt preset fails on import, not on a user's prepare run

    def decorator(prepare: Source) -> Source:
        SOURCES.register(name, description)(prepare)
        if default_spec is not None:
            _DEFAULT_SPECS[name] = default_spec
        if options is not None:
            _OPTIONS[name] = frozenset(options)
        return prepare

    return decorator


def accepted_options(dataset: str) -> set[str]:
    """The options dataset ``dataset`` takes: those it registered, or its keyword-only parameters plus
    the decoding options when it takes ``**decode``."""
    source = SOURCES.get(dataset)
    if dataset in _OPTIONS:
        return set(_OPTIONS[dataset])
    params = inspect.signature(source).parameters.values()
    named = {p.name for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY}
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        named |= set(DECODE_OPTIONS)
    return named


def default_spec(dataset: str) -> str | None:
    """The default clip spec name ``dataset`` registered, or None (synth-actions, or an unknown name)."""
    return _DEFAULT_SPECS.get(dataset)


def resolve_spec(dataset: str, spec: str | ClipSpec | None = None, frames: int | None = None,
                 size: int | None = None) -> ClipSpec:
    """The dataset's default preset (or ``spec``) with ``frames``/``size`` overrides.

    A new ``size`` scales ``resize_short`` or ``resize`` with it (ucf-16x112 resizes to 128 then crops 112; at
    ``size=56`` it resizes to 64; ucf-16x112-published squashes to 160x120, at ``size=56`` to 80x60), so the
    crop keeps covering the same part of the frame.
    """
    from videodd.data.prepare import PrepareError

    base = get_clip_spec(spec if spec is not None else default_spec(dataset) or "8x64")
    changes: dict[str, Any] = {}
    if frames is not None:
        changes["frames"] = frames
    if size is not None and size != base.size:
        changes["size"] = size
        if base.resize_short is not None:
            changes["resize_short"] = max(size, round(size * base.resize_short / base.size))
        if base.resize is not None:
            changes["resize"] = tuple(max(size, round(size * side / base.size)) for side in base.resize)
    try:
        return base.replace(**changes) if changes else base
    except ValueError as err:  # e.g. --frames 0
        raise PrepareError(str(err)) from None


def _run(name: str, index: SplitIndex, out_dir: str | Path, *, spec: str | None = None, frames: int | None = None,
         size: int | None = None, seed: int | None = None, frame_template: str | None = None,
         min_videos_per_class: int | None = None, drop_class: Iterable[str] | None = None,
         workers: int | None = None, resume: bool = False, progress: bool = True, chunk_size: int | None = None,
         on_summary: Callable[[PrepareSummary], None] | None = None) -> tuple[ClipStore, ClipStore]:
    from videodd.data.prepare import default_workers, prepare_dataset

    clip_spec = resolve_spec(name, spec, frames, size)
    if frame_template is not None:
        index.frame_template = frame_template
    index = drop_classes(index, min_videos_per_class, drop_class)
    return prepare_dataset(index, out_dir, clip_spec, workers=workers or default_workers(), resume=resume,
                           seed=seed or 0, progress=progress, chunk_size=chunk_size, on_summary=on_summary)


def drop_classes(index: SplitIndex, min_videos: int | None, names: Iterable[str] | None) -> SplitIndex:
    """``index`` without the classes named, and those with fewer than ``min_videos`` videos listed in a split
    (``--drop-class``, ``--min-videos-per-class``); the drops and why are recorded in the manifests."""
    reasons = {name: "--drop-class" for name in (names or ())}
    if min_videos is not None:
        for cls, (train, test) in index.counts().items():
            if min(train, test) < min_videos and cls not in reasons:
                reasons[cls] = f"fewer than {min_videos} video(s) in a split (--min-videos-per-class {min_videos})"
    return index.drop_classes(reasons) if reasons else index


def _need(value: Any, flag: str, dataset: str) -> Any:
    from videodd.data.prepare import PrepareError

    if value is None:
        raise PrepareError(f"dataset {dataset!r} needs {flag} (see README, 'Bring your data')")
    return value


def _decode_fields(decode: dict[str, Any]) -> dict[str, Any]:
    """The decoding options for ``_run`` (call_source has already rejected anything else)."""
    return {k: v for k, v in decode.items() if k in DECODE_OPTIONS}
