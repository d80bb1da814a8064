"""The second embedded benchmark, ``synth-motion``, as a prepare source (the generator is
``videodd.data.synth_motion``): kept for checking methods on data they were not tuned on."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from videodd.config import from_dict
from videodd.data.datasets.base import register_dataset
from videodd.data.store import ClipStore
from videodd.data.synth_motion import SynthMotionConfig, prepare_synth_motion

__all__ = ["prepare_synth_motion_source"]


@register_dataset("synth-motion", options=[f.name for f in dataclasses.fields(SynthMotionConfig)])
def prepare_synth_motion_source(out_dir: str | Path, **options: object) -> tuple[ClipStore, ClipStore]:
    """Second embedded benchmark: classes are only motions, each with its time-reversed twin (checking only)."""
    cfg = from_dict(SynthMotionConfig, {k: v for k, v in options.items() if v is not None})
    return prepare_synth_motion(out_dir, cfg)
