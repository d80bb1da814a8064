"""Write tiny real encoded videos and frame folders for data-layer tests (no downloads).

``pattern_frames`` makes frames whose content encodes the frame index, so a test can check which
source frames a decoder returned even after lossy compression.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image

# container suffix -> (codec, pixel format)
CODECS = {
    ".avi": ("mpeg4", "yuv420p"),
    ".mp4": ("libx264", "yuv420p"),
    ".mkv": ("libx264", "yuv420p"),
    ".webm": ("libvpx-vp9", "yuv420p"),
    ".mov": ("mjpeg", "yuvj420p"),
}


def pattern_frames(num_frames: int, height: int = 48, width: int = 64, seed: int = 0) -> np.ndarray:
    """uint8 (T, H, W, 3): frame ``t`` has a flat grey level ``8 + 8 * (t % 30)`` in its top half
    (readable after compression) and seeded colour noise at the bottom."""
    rng = np.random.default_rng(seed)
    frames = np.empty((num_frames, height, width, 3), dtype=np.uint8)
    for t in range(num_frames):
        frames[t, : height // 2] = 8 + 8 * (t % 30)
        frames[t, height // 2 :] = rng.integers(0, 255, size=(height - height // 2, width, 3), dtype=np.uint8)
    return frames


def frame_level(frame: np.ndarray) -> int:
    """Inverse of ``pattern_frames``' grey level for a decoded (H, W, 3) frame: the index t % 30.

    Reads the top third only, well inside the flat half, so resizing and chroma subsampling that
    blur the border with the noisy half do not shift the level."""
    top = frame[: max(1, frame.shape[0] // 3)].astype(np.float64).mean()
    return int(round((top - 8) / 8))


def write_video(
    path: str | Path,
    frames: np.ndarray,
    *,
    fps: int = 25,
    codec: str | None = None,
    rotation: int = 0,
    pts: list[int] | None = None,
    gop: int | None = None,
    crop_even: bool = True,
    options: dict[str, str] | None = None,
) -> Path:
    """Encode uint8 (T, H, W, 3) frames; the codec follows the suffix unless given.

    ``rotation``: display rotation, in clockwise degrees like the legacy ``rotate`` tag (a player turns
    the coded frames by it); written as a display matrix, which mp4/mov/mkv/webm keep and avi drops.
    ``pts`` (milliseconds, a 1/1000 time base) makes a variable-frame-rate stream. ``gop``: keyframe
    interval. ``crop_even=False`` keeps an odd width/height (mpeg4, mjpeg and vp9 allow it; libx264 not).
    ``options``: encoder options, e.g. ``{"crf": "10"}`` to keep tiny long x264 videos exact.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    codec_name, pix_fmt = CODECS[path.suffix] if codec is None else (codec, "yuv420p")
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream(codec_name, rate=fps)
        stream.width = frames.shape[2] - (frames.shape[2] % 2 if crop_even else 0)
        stream.height = frames.shape[1] - (frames.shape[1] % 2 if crop_even else 0)
        stream.pix_fmt = pix_fmt
        if options:
            stream.options = dict(options)
        if gop is not None:
            stream.codec_context.gop_size = gop
        if pts is not None:
            stream.codec_context.time_base = Fraction(1, 1000)
        if rotation:
            stream.set_display_rotation(-rotation)  # PyAV takes counter-clockwise degrees
        for i, img in enumerate(frames):
            img = np.ascontiguousarray(img[: stream.height, : stream.width])
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            if pts is not None:
                frame.pts = pts[i]
                frame.time_base = Fraction(1, 1000)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def write_frames(folder: str | Path, frames: np.ndarray, template: str = "img_{:05d}.jpg", start: int = 1) -> Path:
    """Write uint8 (T, H, W, 3) frames as images named by ``template.format(start + t)``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for t, img in enumerate(frames):
        Image.fromarray(img).save(folder / template.format(start + t), quality=95)
    return folder
