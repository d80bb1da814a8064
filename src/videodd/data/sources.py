"""Dataset sources that ``videodd prepare NAME`` knows; each writes ``OUT/train`` and ``OUT/test``.

A source is a function ``prepare(out_dir, **options) -> (train_store, test_store)``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from videodd.data.store import ClipStore
from videodd.registry import Registry

Source = Callable[..., tuple[ClipStore, ClipStore]]
SOURCES: Registry[Source] = Registry("dataset")


@SOURCES.register("synth-actions")
def prepare_synth_actions_source(out_dir: str | Path, **options: object) -> tuple[ClipStore, ClipStore]:
    """Embedded synthetic action benchmark, generated from a seed (no download)."""
    from videodd.config import from_dict
    from videodd.data.synthetic import SynthActionsConfig, prepare_synth_actions

    cfg = from_dict(SynthActionsConfig, {k: v for k, v in options.items() if v is not None})
    return prepare_synth_actions(out_dir, cfg)
