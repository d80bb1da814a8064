"""ClipSpec: how a clip is cut from a video (frames, stride, size, sampling)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

from videodd.config import from_dict, to_dict
from videodd.registry import Registry


@dataclass(frozen=True)
class ClipSpec:
    """How clips are sampled from a video and what shape they have.

    Attributes:
        frames: frames per clip (T).
        size: output height and width in pixels (square clips).
        stride: temporal stride between sampled frames of the source video.
        resize_short: the short side is resized to this before the centre crop to ``size``
            (``None``: resize the short side straight to ``size``).
        train_sampling: start of the training clip: ``random`` per read, ``cached_random``
            (drawn once at prepare time, with the store's seed) or ``center``.
        test_sampling: ``center`` (deterministic centre clip) or ``uniform`` (``test_clips``
            evenly spaced clips).
        test_clips: clips per test video for ``uniform`` sampling.
        short_policy: videos shorter than ``frames * stride``: ``loop`` them, ``pad`` with the
            last frame, or ``reduce_stride`` until they fit.
    """

    frames: int = 8
    size: int = 32
    stride: int = 1
    resize_short: int | None = None
    train_sampling: Literal["random", "cached_random", "center"] = "cached_random"
    test_sampling: Literal["center", "uniform"] = "center"
    test_clips: int = 1
    short_policy: Literal["loop", "pad", "reduce_stride"] = "loop"

    def __post_init__(self) -> None:
        for name in ("frames", "size", "stride", "test_clips"):
            if getattr(self, name) < 1:
                raise ValueError(f"ClipSpec.{name} must be >= 1, got {getattr(self, name)}")
        if self.resize_short is not None and self.resize_short < self.size:
            raise ValueError(f"ClipSpec.resize_short ({self.resize_short}) is smaller than size ({self.size})")

    @property
    def shape(self) -> tuple[int, int, int]:
        """(T, H, W) of one clip."""
        return (self.frames, self.size, self.size)

    def to_dict(self) -> dict[str, Any]:
        return to_dict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ClipSpec:
        return from_dict(cls, data)

    def replace(self, **changes: Any) -> ClipSpec:
        return dataclasses.replace(self, **changes)

    def differences(self, other: ClipSpec) -> list[str]:
        """Human-readable list of fields that differ (for mismatch errors)."""
        a, b = self.to_dict(), other.to_dict()
        return [f"{k}: {a[k]!r} != {b[k]!r}" for k in a if a[k] != b[k]]


CLIP_SPECS: Registry[ClipSpec] = Registry("clip spec")
CLIP_SPECS.register("ucf-16x112", "UCF101/HMDB51 published setting: 16 frames, stride 4, 112x112")(
    ClipSpec(frames=16, size=112, stride=4, resize_short=128)
)
CLIP_SPECS.register("k400-8x64", "Kinetics-400 published setting: 8 frames, 64x64")(
    ClipSpec(frames=8, size=64, stride=8, resize_short=72)
)
CLIP_SPECS.register("ssv2-8x64", "Something-Something v2 published setting: 8 frames, 64x64")(
    ClipSpec(frames=8, size=64, stride=4, resize_short=72)
)
CLIP_SPECS.register("8x32", "CPU default: 8 frames at 32x32")(ClipSpec(frames=8, size=32, stride=2))
CLIP_SPECS.register("8x64", "CPU, larger: 8 frames at 64x64")(ClipSpec(frames=8, size=64, stride=2))


def get_clip_spec(name_or_spec: str | ClipSpec) -> ClipSpec:
    """A preset by name (error lists the presets), or the spec itself."""
    if isinstance(name_or_spec, ClipSpec):
        return name_or_spec
    return CLIP_SPECS.get(name_or_spec)
