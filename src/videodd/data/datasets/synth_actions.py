"""The embedded synthetic action benchmark as a prepare source (the generator is ``videodd.data.synthetic``)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from videodd.config import from_dict
from videodd.data.datasets.base import register_dataset
from videodd.data.store import ClipStore
from videodd.data.synthetic import SynthActionsConfig, prepare_synth_actions

__all__ = ["prepare_synth_actions_source"]


# No default clip spec: the generator config sets the clip shape (frames, size); the description is the
# docstring, and the options are the generator config's fields.
@register_dataset("synth-actions", options=[f.name for f in dataclasses.fields(SynthActionsConfig)])
def prepare_synth_actions_source(out_dir: str | Path, **options: object) -> tuple[ClipStore, ClipStore]:
    """Embedded synthetic action benchmark, generated from a seed (no download)."""
    cfg = from_dict(SynthActionsConfig, {k: v for k, v in options.items() if v is not None})
    return prepare_synth_actions(out_dir, cfg)
