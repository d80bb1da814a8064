"""Read one clip (uint8 ``(T, size, size, 3)``) from a video file (PyAV) or a folder of frame images.

Video files are decoded in two cheap steps. A demux-only pass (no decoding) counts the frames and
records their timestamps and keyframes, because ``stream.frames`` is 0 for Matroska/WebM and only a
header claim elsewhere. Then the decoder runs from the start, or, when the clip starts far in and the
container has trustworthy presentation timestamps, from the keyframe just before the clip, and stops
at the last needed frame; only the sampled frames are converted to RGB and resized (swscale).
Frame ``i`` is always the ``i``-th frame in presentation order, so variable frame rate needs no care.
If the decoder yields fewer frames than the demuxer counted, the indices are re-sampled from the
real count instead of failing. Display rotation (phone video) is applied so the clip is upright.

Every failure (missing file, corrupt data, no video stream, no decodable frame, empty frame folder)
raises :class:`DecodeError`, which names the path; raw PyAV exceptions never escape.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
import numpy as np
from PIL import Image

from videodd.data.spec import ClipSpec
from videodd.errors import VideoddError

__all__ = ["DecodeError", "ClipInfo", "ShortVideoError", "sample_indices", "stride_fit", "read_clip",
           "list_frame_files", "IMAGE_SUFFIXES"]

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
# swscale's BILINEAR widens its filter when shrinking, so 1080p -> 112 does not alias (FAST_BILINEAR
# and POINT do); it matches Pillow's BILINEAR, which the frame-folder path uses.
_INTERPOLATION = "BILINEAR"
_PIL_RESAMPLE = Image.Resampling.BILINEAR
# Seeking costs a demuxer seek and a decoder flush: only worth it when it skips this many frames.
_SEEK_MIN_SKIP = 16
# Containers whose packet pts are real presentation times (AVI stores only decode order, so the pts
# of its B-frame streams are wrong and cannot place a frame after a seek).
_PTS_FORMATS = ("mov", "mp4", "matroska", "webm", "mpegts")
# Frame-folder name styles tried first when no template is given (mmaction2 img_, frame%06d, ...).
_KNOWN_PREFIXES = ("img_", "frame", "image_", "frame_", "img", "image", "")
_SAMPLINGS = ("center", "random", "cached_random", "uniform")
_Sampler = Callable[[int], "tuple[np.ndarray, int, int, str | None]"]  # num_frames -> sample_indices(...)


class DecodeError(VideoddError, ValueError):
    """A video or frame folder cannot be read; ``.path`` and ``.reason``; ``str()`` names both."""

    def __init__(self, path: str | Path, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = str(path)
        self.reason = reason

    def __reduce__(self) -> tuple[Any, ...]:  # picklable across worker processes
        return (type(self), (self.path, self.reason))


@dataclass(frozen=True)
class ClipInfo:
    """Where a clip came from.

    Attributes:
        num_frames: frames in the source (decoded count; the demuxed count when decoding stopped early).
        fps: average frame rate, ``None`` for frame folders or when unknown.
        source_size: (width, height) of the source after applying rotation.
        rotation: clockwise degrees applied to the coded frames (0, 90, 180, 270), the convention of
            the legacy ``rotate`` tag: a portrait phone video reports 90.
        start: first source frame index used.
        stride: stride actually used (may be reduced by ``short_policy``).
        short: ``None``, or the short-video policy applied ("loop", "pad", "reduce_stride", "stride_fit").
    """

    num_frames: int
    fps: float | None
    source_size: tuple[int, int]
    rotation: int
    start: int
    stride: int
    short: str | None

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["source_size"] = list(self.source_size)
        return d


class ShortVideoError(ValueError):
    """A video too short for the clip spec's sampler (``stride_fit``); read_clip turns it into a DecodeError."""


def stride_fit(num_frames: int, frames: int, stride: int) -> tuple[int, int]:
    """The published stride and last start: ``(skip, last)``, 0-based starts in ``[0, last]``.

    ``distill_utils/dataset.py:427-433``: ``skip = FRAME_GAP`` unless the video has fewer than
    ``NUM_FRAMES * FRAME_GAP`` frames, then ``len // NUM_FRAMES``; the start is
    ``np.random.randint(1, len - (NUM_FRAMES - 1) * skip)`` over the 1-based files ``frame000001.jpg``...,
    an exclusive upper end: 1-based starts ``1 .. len - (T-1)*skip - 1``, so 0-based
    ``0 .. len - (T-1)*skip - 2`` and the last frame is never used. Raises ShortVideoError for a video of
    ``frames`` frames or fewer (the official code fails there too: a zero step, or an empty randint range).
    """
    skip = stride if num_frames >= frames * stride else num_frames // frames
    last = num_frames - (frames - 1) * skip - 2
    if skip < 1 or last < 0:
        raise ShortVideoError(f"{num_frames} frames: the published sampler (short_policy 'stride_fit') needs more "
                              f"than {frames} frames for a {frames}-frame clip")
    return skip, last


def sample_indices(
    num_frames: int,
    spec: ClipSpec,
    sampling: str,
    rng: np.random.Generator | None,
    *,
    clip_index: int = 0,
    num_clips: int = 1,
) -> tuple[np.ndarray, int, int, str | None]:
    """Source frame indices (T,) for one clip; returns (indices, start, stride_used, short_policy_applied).

    sampling: ``random`` (uniform start, needs ``rng``; ``cached_random`` is the same here), ``center``
    (the centre clip), ``uniform`` (clip ``clip_index`` of ``num_clips`` evenly spaced clips, the first
    at the start and the last at the end of the video).
    A video is short when ``num_frames < (T-1)*stride + 1``; then ``spec.short_policy`` decides:
    ``loop`` takes indices modulo ``num_frames`` (start 0, or a random start for random sampling),
    ``pad`` starts at 0 and repeats the last frame, ``reduce_stride`` uses the largest stride that fits
    (placed by ``sampling`` as usual) and, if even stride 1 does not fit, stride 1 padded with the last frame.
    ``stride_fit`` (the published sampler, every video) is :func:`published_frames`; a video it cannot
    sample raises :class:`ShortVideoError`.
    """
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    if sampling not in _SAMPLINGS:
        raise ValueError(f"unknown sampling {sampling!r}; valid: {', '.join(_SAMPLINGS)}")
    random = sampling in ("random", "cached_random")
    if random and rng is None:
        raise ValueError(f"sampling {sampling!r} needs an rng")
    if not 0 <= clip_index < num_clips:
        raise ValueError(f"clip_index {clip_index} is not in [0, {num_clips})")
    t, stride = spec.frames, spec.stride
    steps = np.arange(t, dtype=np.int64)

    def place(stride: int) -> int:  # start of a clip of span (t-1)*stride+1 that fits
        room = num_frames - ((t - 1) * stride + 1)
        if random:
            return int(rng.integers(0, room + 1))
        if sampling == "uniform" and num_clips > 1:
            return int(round(clip_index * room / (num_clips - 1)))
        return room // 2

    if spec.short_policy == "stride_fit":
        stride, last = stride_fit(num_frames, t, stride)
        if random:
            start = int(rng.integers(0, last + 1))
        elif sampling == "uniform" and num_clips > 1:
            start = int(round(clip_index * last / (num_clips - 1)))
        else:
            start = last // 2
        short = "stride_fit" if stride != spec.stride else None
        return start + stride * steps, start, stride, short
    if (t - 1) * stride + 1 <= num_frames:
        start = place(stride)
        return start + stride * steps, start, stride, None
    policy = spec.short_policy
    if policy == "loop":
        start = int(rng.integers(0, num_frames)) if random else 0
        return (start + stride * steps) % num_frames, start, stride, policy
    if policy == "pad":
        return np.minimum(stride * steps, num_frames - 1), 0, stride, policy
    if policy == "reduce_stride":
        fit = (num_frames - 1) // (t - 1)  # t > 1 here: a 1-frame clip always fits
        if fit >= 1:
            start = place(fit)
            return start + fit * steps, start, fit, policy
        return np.minimum(steps, num_frames - 1), 0, 1, policy
    raise ValueError(f"unknown short_policy {policy!r}")


def read_clip(
    path: str | Path,
    spec: ClipSpec,
    *,
    sampling: str = "center",
    rng: np.random.Generator | None = None,
    frame_template: str | None = None,
    clip_index: int = 0,
    num_clips: int = 1,
    seek: bool = True,
    threads: int | None = None,
) -> tuple[np.ndarray, ClipInfo]:
    """One clip uint8 (T, size, size, 3) from a video file (PyAV) or a folder of frames.

    Resize: short side -> ``spec.resize_short`` (or ``spec.size`` when None), keeping aspect, or squashed to
    ``spec.resize`` (width, height) when set, then centre crop ``size x size``. Rotation metadata is applied
    (portrait phone video comes out upright). Variable frame rate: frames are indexed by decoded
    (presentation) order, not by timestamps * fps.
    Folder of frames: files matching ``frame_template`` (e.g. ``"img_{:05d}.jpg"``, ``"frame{:06d}.jpg"``,
    or printf style ``"img_%05d.jpg"``; None = auto-detect, see :func:`list_frame_files`), sorted
    numerically, read with Pillow, only the sampled ones.
    ``sampling``/``rng``/``clip_index``/``num_clips``: see :func:`sample_indices`. ``seek=False`` always
    decodes from the start. ``threads``: decoder threads (None: FFmpeg's default; 1 inside worker pools).
    Raises DecodeError naming the path for unreadable/corrupt/empty input.
    """
    path = Path(path)

    def sample(n: int) -> tuple[np.ndarray, int, int, str | None]:
        try:
            return sample_indices(n, spec, sampling, rng, clip_index=clip_index, num_clips=num_clips)
        except ShortVideoError as err:
            raise DecodeError(path, f"too short: {err}") from None

    if path.is_dir():
        return _read_folder(path, spec, sample, frame_template)
    if not path.is_file():
        raise DecodeError(path, "no such file or directory")
    if path.stat().st_size == 0:
        raise DecodeError(path, "empty file (0 bytes): an interrupted download or copy")
    try:
        return _read_video(path, spec, sample, seek, threads)
    except av.FFmpegError as e:
        raise DecodeError(path, f"{type(e).__name__}: {e.strerror or e}") from e
    except (OSError, UnicodeDecodeError) as e:
        raise DecodeError(path, f"cannot read: {e}") from e


# ----------------------------------------------------------------------------------------- geometry


def _target_size(width: int, height: int, spec: ClipSpec) -> tuple[int, int]:
    """(w, h) to resize a displayed ``width x height`` frame to before the centre crop."""
    if spec.resize is not None:
        return spec.resize
    return _resized_size(width, height, spec.resize_short or spec.size)


def _resized_size(width: int, height: int, short: int) -> tuple[int, int]:
    """(w, h) with the short side scaled to ``short``, aspect kept."""
    if width <= height:
        return short, max(short, round(height * short / width))
    return max(short, round(width * short / height)), short


def _center_crop(img: np.ndarray, size: int) -> np.ndarray:
    top, left = (img.shape[0] - size) // 2, (img.shape[1] - size) // 2
    return img[top : top + size, left : left + size]


def _rotation_cw(frame: av.VideoFrame, stream: av.VideoStream) -> int:
    """Clockwise display rotation in {0, 90, 180, 270}.

    ``frame.rotation`` is the counter-clockwise angle of the display matrix (FFmpeg attaches it to every
    frame of mp4/mov/mkv); old FFmpeg builds exported the clockwise ``rotate`` tag on the stream instead.
    """
    ccw = frame.rotation
    if not ccw:
        try:
            ccw = -int(float(stream.metadata.get("rotate", 0)))
        except ValueError:
            ccw = 0
    return (-round(ccw / 90) * 90) % 360


def _convert(frame: av.VideoFrame, stream: av.VideoStream, spec: ClipSpec) -> tuple[np.ndarray, int, tuple[int, int]]:
    """Decoded frame -> (cropped uint8 (size, size, 3), clockwise rotation, displayed (w, h))."""
    rot = _rotation_cw(frame, stream)
    w, h = (frame.height, frame.width) if rot in (90, 270) else (frame.width, frame.height)
    rw, rh = _target_size(w, h, spec)
    if rot in (90, 270):  # resize in coded orientation, then turn the small image
        rw, rh = rh, rw
    img = frame.reformat(width=rw, height=rh, format="rgb24", interpolation=_INTERPOLATION).to_ndarray()
    if rot:
        img = np.rot90(img, k=-rot // 90)  # np.rot90 turns counter-clockwise for positive k
    return np.ascontiguousarray(_center_crop(img, spec.size)), rot, (w, h)


# ------------------------------------------------------------------------------------------- videos


def _open_video(path: Path, threads: int | None) -> tuple[Any, Any]:
    container = av.open(str(path))
    if not container.streams.video:
        container.close()
        raise DecodeError(path, "no video stream")
    stream = container.streams.video[0]
    if threads is not None:
        stream.thread_type = "AUTO"
        stream.thread_count = threads
    return container, stream


def _scan(path: Path) -> tuple[list[int | None], list[int], bool, float | None]:
    """Demux without decoding: (pts in presentation order, keyframe positions in that order,
    whether pts can place frames after a seek, fps)."""
    container, stream = _open_video(path, None)
    with container:
        rate = stream.average_rate or stream.guessed_rate
        fps = float(rate) if rate else None
        packets = [
            (p.pts, p.is_keyframe)
            for p in container.demux(stream)
            if p.size and not p.is_discard  # empty packets are flushes or dropped-frame markers
        ]
        trusted = any(name in _PTS_FORMATS for name in container.format.name.split(","))
    pts = [p for p, _ in packets]
    if any(p is None for p in pts) or len(set(pts)) != len(pts):
        return pts, [], False, fps
    order = sorted(pts)
    position = {p: i for i, p in enumerate(order)}
    keys = sorted(position[p] for p, key in packets if key)
    return order, keys, trusted, fps


def _seek(container: Any, stream: Any, pts: int) -> None:
    """Seek to the keyframe at or before ``pts`` (a separate function so tests can observe it)."""
    container.seek(pts, stream=stream, backward=True, any_frame=False)


def _decode(
    path: Path, spec: ClipSpec, wanted: set[int], order: list[int | None], seek_to: int | None, threads: int | None
) -> tuple[dict[int, np.ndarray], int | None, tuple[int, tuple[int, int]] | None]:
    """Decode until every index in ``wanted`` is converted; ``seek_to`` is a keyframe position or None.

    Returns (frames by index, decoded frame count if decoding reached the end from frame 0 else None,
    (rotation, displayed size) of the first converted frame). After a seek, frames are placed by pts;
    an empty dict with count None means the seek could not be trusted and the caller decodes from 0.
    """
    out: dict[int, np.ndarray] = {}
    geometry = None
    last = max(wanted)
    container, stream = _open_video(path, threads)
    with container:
        if seek_to is not None:
            _seek(container, stream, order[seek_to])
            position = {p: i for i, p in enumerate(order)}
        index, previous = -1, None
        for frame in container.decode(stream):
            if seek_to is None:
                index += 1
            else:  # presentation order means strictly increasing pts; anything else is not trusted
                index = position.get(frame.pts, -1)
                if index < 0 or (previous is not None and frame.pts <= previous) or index > min(wanted - set(out)):
                    return {}, None, None
                previous = frame.pts
            if index in wanted:
                out[index], rot, size = _convert(frame, stream, spec)
                geometry = geometry or (rot, size)
            if index >= last:
                return out, None, geometry
    return out, (index + 1 if seek_to is None else None), geometry


def _read_video(
    path: Path, spec: ClipSpec, sample: _Sampler, seek: bool, threads: int | None
) -> tuple[np.ndarray, ClipInfo]:
    order, keys, trusted, fps = _scan(path)
    if not order:
        raise DecodeError(path, "the video stream has no frames")
    num_frames = len(order)
    indices, start, stride, short = sample(num_frames)
    wanted = set(indices.tolist())
    before = [k for k in keys if k <= min(wanted)]
    seek_to = before[-1] if seek and trusted and before and before[-1] >= _SEEK_MIN_SKIP else None
    frames, decoded, geometry = _decode(path, spec, wanted, order, seek_to, threads)
    if len(frames) < len(wanted) and seek_to is not None:  # the seek was not trustworthy
        frames, decoded, geometry = _decode(path, spec, wanted, order, None, threads)
    if len(frames) < len(wanted):
        # Decoding from frame 0 reached the end early: the demuxer over-counted (dropped or
        # undecodable frames). Sample again from the real count rather than fail.
        if not decoded:
            raise DecodeError(path, "no decodable video frames")
        num_frames = decoded
        indices, start, stride, short = sample(num_frames)
        wanted = set(indices.tolist())
        frames, _, geometry = _decode(path, spec, wanted, order, None, threads)
        if len(frames) < len(wanted):
            raise DecodeError(path, f"decoding is not repeatable (first pass decoded {num_frames} frames)")
    rot, size = geometry
    clip = np.stack([frames[i] for i in indices.tolist()])
    return clip, ClipInfo(num_frames, fps, size, rot, start, stride, short)


# ------------------------------------------------------------------------------------ frame folders


def _template_regex(template: str) -> re.Pattern[str]:
    """``"img_{:05d}.jpg"`` or ``"img_%05d.jpg"`` -> a regex whose group 1 is the frame number."""
    match = re.search(r"\{[^{}]*\}|%0?\d*d", template)
    if match is None:
        raise ValueError(f"frame template {template!r} has no number field like {{:05d}} or %05d")
    prefix, suffix = template[: match.start()], template[match.end() :]
    return re.compile(re.escape(prefix) + r"(\d+)" + re.escape(suffix) + "$")


def list_frame_files(folder: str | Path, template: str | None = None) -> list[Path]:
    """Frame images of ``folder`` in numeric order of the number in their names (``f2`` before ``f10``).

    With ``template``, only names matching it. Without, image files are grouped by the text around
    their last number; a group with a common style (``img_``, ``frame``, ``image_``) wins, else the
    largest group, so optical-flow files (``flow_x_00001.jpg``) next to ``img_00001.jpg`` are ignored.
    """
    names = [p.name for p in Path(folder).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()]
    if template is not None:
        regex = _template_regex(template)
        found = [(int(m.group(1)), name) for name in names if (m := regex.match(name))]
    else:
        groups: dict[tuple[str, str], list[tuple[int, str]]] = {}
        for name in names:
            m = re.match(r"(.*?)(\d+)(\.[A-Za-z]+)$", name)
            if m:
                groups.setdefault((m.group(1), m.group(3).lower()), []).append((int(m.group(2)), name))
        best = max(groups.items(), key=lambda kv: (kv[0][0].lower() in _KNOWN_PREFIXES, len(kv[1])), default=None)
        found = best[1] if best else []
    return [Path(folder) / name for _, name in sorted(found)]


def _load_image(path: Path, spec: ClipSpec) -> tuple[np.ndarray, tuple[int, int]]:
    with Image.open(path) as img:
        size = img.size
        rw, rh = _target_size(*size, spec)
        img.draft("RGB", (rw, rh))  # JPEG: decode at a reduced scale that is still >= the target
        rgb = img.convert("RGB").resize((rw, rh), _PIL_RESAMPLE)
    return np.ascontiguousarray(_center_crop(np.asarray(rgb), spec.size)), size


def _read_folder(folder: Path, spec: ClipSpec, sample: _Sampler, template: str | None) -> tuple[np.ndarray, ClipInfo]:
    try:
        files = list_frame_files(folder, template)
    except (OSError, ValueError) as e:
        raise DecodeError(folder, f"cannot list frames: {e}") from e
    if not files:
        what = f"matching {template!r}" if template else f"({', '.join(IMAGE_SUFFIXES)} with a frame number)"
        raise DecodeError(folder, f"no frame images {what}")
    indices, start, stride, short = sample(len(files))
    frames, size = {}, (0, 0)
    for i in sorted(set(indices.tolist())):
        try:
            frames[i], size = _load_image(files[i], spec)
        except (OSError, ValueError, Image.DecompressionBombError) as e:
            raise DecodeError(folder, f"cannot read frame image {files[i].name}: {e}") from e
    clip = np.stack([frames[i] for i in indices.tolist()])
    return clip, ClipInfo(len(files), None, size, 0, start, stride, short)
