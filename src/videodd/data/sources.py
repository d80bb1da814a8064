"""Dataset sources that ``videodd prepare NAME`` knows; each writes ``OUT/train`` and ``OUT/test``.

A source is a function ``prepare(out_dir, **options) -> (train_store, test_store)``. Each dataset lives
in its own module of :mod:`videodd.data.datasets` (index function, registration, default clip spec);
importing this module imports them all, so ``SOURCES`` is full. Real datasets parse their official
layout (no decoding there) and decode with ``videodd.data.prepare.prepare_dataset``; each has a default
clip spec (``default_spec(name)``). Use ``call_source`` to run one with user options: it rejects
options the source does not use.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import videodd.data.datasets  # noqa: F401  (registers every dataset in SOURCES)
from videodd.data.datasets.base import (
    AMBIENT_OPTIONS,
    SOURCES,
    accepted_options,
    default_spec,
    resolve_spec,
)
from videodd.data.store import ClipStore

__all__ = ["SOURCES", "call_source", "dataset_help", "default_spec", "resolve_spec"]


def call_source(name: str, out_dir: str | Path, **options: Any) -> tuple[ClipStore, ClipStore]:
    """Run source ``name``; options that are None are dropped, options it does not use are an error."""
    from videodd.data.prepare import PrepareError

    source = SOURCES.get(name)
    accepted = accepted_options(name)
    given = {k: v for k, v in options.items() if v is not None}
    unused = sorted(k for k in given if k not in accepted and k not in AMBIENT_OPTIONS)
    if unused:
        flags = ", ".join("--" + k.replace("_", "-") for k in unused)
        raise PrepareError(f"dataset {name!r} does not use {flags}; it takes "
                           + ", ".join("--" + k.replace("_", "-") for k in sorted(accepted - AMBIENT_OPTIONS)))
    if "spec" in accepted:  # a bad spec fails now, not after indexing a large dataset
        resolve_spec(name, given.get("spec"), given.get("frames"), given.get("size"))
    return source(out_dir, **{k: v for k, v in given.items() if k in accepted})


def dataset_help() -> str:
    """One line per dataset: name, default clip spec, description (for `videodd datasets` and --help)."""
    lines = []
    for name in SOURCES:
        spec = default_spec(name) or ""
        lines.append(f"  {name:14s} {spec:11s} {SOURCES.doc(name)}")
    return "\n".join(lines)
