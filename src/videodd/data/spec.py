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
        resize: ``(width, height)``: every frame is squashed to exactly this size (aspect not kept)
            before the centre crop to ``size``, as the published frames are
            (``distill_utils/resize_mydata.py:5-6,24-30``: ``cv2.resize`` to 160x120, then the centre
            112x112). Exclusive with ``resize_short``.
        train_sampling: start of the training clip: ``random`` per read, ``cached_random``
            (drawn once at prepare time, with the store's seed) or ``center``.
        test_sampling: the clip ``clips.npy`` holds is always the deterministic centre clip; with
            ``uniform`` (``test_clips`` evenly spaced clips) or ``random`` (``test_clips`` clips at
            random starts, seeded at prepare: the published test reads a new random start at every
            read, ``distill_utils/dataset.py:432-433``) and ``test_clips > 1`` (``random``: >= 1), a
            test store also holds ``test_clips`` views per video (``ClipStore.view_batch``).
        test_clips: clips per test video for ``uniform`` and ``random`` sampling.
        short_policy: videos shorter than the clip: ``loop`` them, ``pad`` with the last frame, or
            ``reduce_stride`` until they fit; ``stride_fit`` is the published sampler for every
            video (``distill_utils/dataset.py:427-438``): stride ``len // frames`` for a video of
            fewer than ``frames * stride`` frames, starts from the first frame up to the
            second-to-last one that fits (the official ``np.random.randint(1, len - (frames-1)*stride)``
            has an exclusive upper end over 1-based frame files, so the last frame is never a clip's
            end), and a video of ``frames`` frames or fewer cannot be read (a recorded failure).
    """

    frames: int = 8
    size: int = 32
    stride: int = 1
    resize_short: int | None = None
    resize: tuple[int, int] | None = None
    train_sampling: Literal["random", "cached_random", "center"] = "cached_random"
    test_sampling: Literal["center", "uniform", "random"] = "center"
    test_clips: int = 1
    short_policy: Literal["loop", "pad", "reduce_stride", "stride_fit"] = "loop"

    def __post_init__(self) -> None:
        for name in ("frames", "size", "stride", "test_clips"):
            if getattr(self, name) < 1:
                raise ValueError(f"ClipSpec.{name} must be >= 1, got {getattr(self, name)}")
        if self.resize_short is not None and self.resize_short < self.size:
            raise ValueError(f"ClipSpec.resize_short ({self.resize_short}) is smaller than size ({self.size})")
        if self.resize is not None:
            if self.resize_short is not None:
                raise ValueError("ClipSpec.resize and resize_short are exclusive: squash to (width, height), or "
                                 "resize the short side keeping the aspect")
            if len(self.resize) != 2 or min(self.resize) < self.size:
                raise ValueError(f"ClipSpec.resize must be (width, height), each >= size ({self.size}), "
                                 f"got {self.resize!r}")
            object.__setattr__(self, "resize", (int(self.resize[0]), int(self.resize[1])))

    @property
    def test_views(self) -> int:
        """Views per test video a prepared test store holds besides its centre clip (0: none)."""
        if self.test_sampling == "random" or (self.test_sampling == "uniform" and self.test_clips > 1):
            return self.test_clips
        return 0

    @property
    def shape(self) -> tuple[int, int, int]:
        """(T, H, W) of one clip."""
        return (self.frames, self.size, self.size)

    def to_dict(self) -> dict[str, Any]:
        """The fields as a JSON-able dict; ``resize`` only when set, so the dict, and the fingerprint of
        every store prepared before the field existed, stay as they were."""
        d = to_dict(self)
        if d["resize"] is None:
            del d["resize"]
        return d

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
# distill_utils/dataset.py:15-16 (NUM_FRAMES 16, FRAME_GAP 4), 426-438 (stride and start), 390/432-433 (the
# training start cached, a new test start at every read; the protocol passes the test set 3 times);
# distill_utils/resize_mydata.py:5-6,24-30 (160x120 squash, centre 112x112).
CLIP_SPECS.register("ucf-16x112-published", "MiniUCF/HMDB51 as the published code: squash to 160x120, centre "
                    "112x112, 16 frames at stride 4 (len // 16 for short videos), 3 random test views")(
    ClipSpec(frames=16, size=112, stride=4, resize=(160, 120), short_policy="stride_fit",
             train_sampling="cached_random", test_sampling="random", test_clips=3)
)
CLIP_SPECS.register("ucf-16x112", "16 frames, stride 4, short side 128 then centre 112x112, short videos "
                    "looped (videodd's own framing)")(
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
