"""Dataset sources that ``videodd prepare NAME`` knows; each writes ``OUT/train`` and ``OUT/test``.

A source is a function ``prepare(out_dir, **options) -> (train_store, test_store)``. Each dataset lives
in its own module of :mod:`videodd.data.datasets` (index function, registration, default clip spec);
importing this module imports them all, so ``SOURCES`` is full. Real datasets parse their official
layout (no decoding there) and decode with ``videodd.data.prepare.prepare_dataset``; each has a default
clip spec (``default_spec(name)``). Use ``call_source`` to run one with user options: it rejects
options the source does not use.
"""

from __future__ import annotations

import os
import shutil
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
from videodd.data.prepare import PrepareError
from videodd.data.store import ClipStore, StoreError
from videodd.io import exclusive

__all__ = ["SOURCES", "call_source", "dataset_help", "default_spec", "resolve_spec"]


def describe_prepared(out: Path) -> str | None:
    """What ``out`` holds already ("train: 1,000 clips of synth-actions; test: ..."), or None."""
    found = []
    for split in ("train", "test"):
        if (out / split).exists():
            try:
                store = ClipStore(out / split)
                found.append(f"{split}: {len(store):,} clips of {store.meta.dataset}")
            except StoreError:
                found.append(f"{split}: an incomplete store")
    return "; ".join(found) or None


def call_source(name: str, out_dir: str | Path, *, force: bool = False, **options: Any) -> tuple[ClipStore, ClipStore]:
    """Run source ``name`` into ``out_dir``; options that are None are dropped, options it does not use are
    an error.

    Stores already in ``out_dir`` are refused unless ``resume`` (continue) or ``force`` (replace them: the
    new stores are written beside them and swapped in once both are complete). One process at a time
    prepares a folder.
    """
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise PrepareError(f"{out}: --out is a file, not a folder")
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
    existing = describe_prepared(out)
    if existing and not (force or given.get("resume")):
        raise PrepareError(f"{out} already holds prepared stores ({existing}); --force replaces them (they are kept "
                           "until the new ones are complete), --resume continues an interrupted prepare, or choose "
                           "another --out")
    kwargs = {k: v for k, v in given.items() if k in accepted}
    with exclusive(out, "dataset folder"):
        if not (force and existing):
            return source(out, **kwargs)
        fresh = out / ".replacing"
        source(fresh, **kwargs)
        for split in ("train", "test"):  # swap each split in; the old one goes only when the new is complete
            old = out / f".{split}.old"
            shutil.rmtree(old, ignore_errors=True)
            if (out / split).exists():
                os.replace(out / split, old)
            os.replace(fresh / split, out / split)
            shutil.rmtree(old, ignore_errors=True)
        shutil.rmtree(fresh, ignore_errors=True)
        return ClipStore(out / "train"), ClipStore(out / "test")


def dataset_help(header: bool = False) -> str:
    """One line per dataset: name, default clip spec, description (for `videodd datasets` and --help);
    ``header``: a first line naming the columns."""
    specs = {name: default_spec(name) or "" for name in SOURCES}
    width = max(len("spec"), *(len(s) for s in specs.values()))
    lines = [f"  {'dataset':14s} {'spec':{width}s} description"] if header else []
    lines += [f"  {name:14s} {spec:{width}s} {SOURCES.doc(name)}" for name, spec in specs.items()]
    return "\n".join(lines)
