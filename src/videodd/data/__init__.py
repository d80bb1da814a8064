"""Data layer: ClipSpec, ClipStore, sources and the embedded synth-actions benchmark."""

from videodd.data.spec import CLIP_SPECS, ClipSpec, get_clip_spec
from videodd.data.store import ClipStore, StoreError, compute_mean_std, write_store

__all__ = [
    "CLIP_SPECS",
    "ClipSpec",
    "ClipStore",
    "StoreError",
    "compute_mean_std",
    "get_clip_spec",
    "write_store",
]
