"""The embedded synthetic action benchmark as a prepare source (the generator is ``videodd.data.synthetic``)."""

from __future__ import annotations

from pathlib import Path

from videodd.data.datasets.base import register_dataset
from videodd.data.store import ClipStore

__all__ = ["prepare_synth_actions_source"]


# No default clip spec: the generator config sets the clip shape (frames, size); the description is the docstring.
@register_dataset("synth-actions")
def prepare_synth_actions_source(out_dir: str | Path, **options: object) -> tuple[ClipStore, ClipStore]:
    """Embedded synthetic action benchmark, generated from a seed (no download)."""
    from videodd.config import from_dict
    from videodd.data.synthetic import SynthActionsConfig, prepare_synth_actions

    cfg = from_dict(SynthActionsConfig, {k: v for k, v in options.items() if v is not None})
    return prepare_synth_actions(out_dir, cfg)


def _synth_options() -> set[str]:
    import dataclasses

    from videodd.data.synthetic import SynthActionsConfig

    return {f.name for f in dataclasses.fields(SynthActionsConfig)}


prepare_synth_actions_source.accepted_options = _synth_options  # type: ignore[attr-defined]
