"""Clips out to files people can open, and real clips through a standard codec.

Frames here are uint8 ``(T, H, W, 3)`` RGB (a clip) and images uint8 ``(H, W, 3)``:

- :func:`to_uint8` turns normalized float videos ``(N, C, T, H, W)`` back into such clips;
- :func:`encode_video` / :func:`decode_video` write an H.264 (or other PyAV codec) stream to a file or to
  bytes and read it back: the codec baseline encodes real clips this way at a byte budget;
- :func:`write_gif`, :func:`frame_strip`, :func:`write_png` make previews (Pillow).
"""

from __future__ import annotations

import io
import os
import re
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import torch
from PIL import Image

from videodd.io import atomic_path


def to_uint8(videos: torch.Tensor, mean: list[float], std: list[float]) -> np.ndarray:
    """Normalized float ``(N, C, T, H, W)`` -> uint8 ``(N, T, H, W, C)``: ``x * std + mean`` in [0, 1],
    clipped (a synthetic pixel may lie outside the data range) and rounded to 0..255."""
    if videos.ndim != 5 or videos.shape[1] != len(mean):
        raise ValueError(f"videos must be (N, C, T, H, W) with C = {len(mean)}, got {tuple(videos.shape)}")
    m = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1, 1)
    s = torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1, 1)
    pixels = (videos.detach().float().cpu() * s + m).clamp(0, 1)  # (N, C, T, H, W) in [0, 1]
    return (pixels * 255).round().to(torch.uint8).permute(0, 2, 3, 4, 1).contiguous().numpy()  # (N, T, H, W, C)


def upscale(frames: np.ndarray, factor: int) -> np.ndarray:
    """Nearest-neighbour upscaling of the last-but-one two axes (H, W) by an integer ``factor``."""
    if factor == 1:
        return frames
    return frames.repeat(factor, axis=-3).repeat(factor, axis=-2)


def encode_video(frames: np.ndarray, target: str | os.PathLike[str] | None = None, *, fps: int = 8,
                 codec: str = "libx264", crf: int | None = None, container: str = "mp4") -> bytes:
    """Encode uint8 ``(T, H, W, 3)`` frames; returns the file's bytes (also written to ``target``, atomically,
    when given). ``crf``: H.264's constant rate factor (0 near lossless .. 51 smallest); None for the
    encoder's default. ``container``: ``mp4``, or ``h264`` for the bare stream (no container: what a byte
    budget should count). Frame sizes must be even (yuv420p)."""
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"frames must be uint8 (T, H, W, 3), got {frames.dtype} {frames.shape}")
    t, h, w, _ = frames.shape
    if h % 2 or w % 2:
        raise ValueError(f"H.264 in yuv420p needs even frame sizes, got {h}x{w}")
    buffer = io.BytesIO()
    # bitexact: no encoder version strings in the file; one encoder thread: the same frames give the same
    # bytes on every run
    with av.open(buffer, mode="w", format=container, options={"fflags": "+bitexact"}) as out:
        stream = out.add_stream(codec, rate=Fraction(fps))
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        options = {"crf": str(crf)} if crf is not None and codec == "libx264" else {}
        stream.codec_context.options = {**options, "threads": "1"}
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    data = buffer.getvalue()
    if container == "h264":
        data = strip_sei(data)
    if target is not None:
        with atomic_path(target) as tmp:
            tmp.write_bytes(data)
    return data


def strip_sei(stream: bytes) -> bytes:
    """A bare H.264 stream (Annex B) without its SEI units (NAL type 6): x264 writes its version and every
    option there (about 600 bytes per stream), which a decoder does not need and a byte budget should not
    pay for."""
    starts = [m.start() for m in re.finditer(b"\x00\x00\x01", stream)]
    units = [stream[a : b] for a, b in zip(starts, [*starts[1:], len(stream)], strict=True)]
    # a 4-byte start code leaves its leading zero at the end of the previous unit: harmless
    return stream[: starts[0] if starts else len(stream)] + b"".join(u for u in units if (u[3] & 0x1F) != 6)


def decode_video(data: bytes, container: str | None = None) -> np.ndarray:
    """Every frame of an encoded video held in memory, uint8 ``(T, H, W, 3)`` (``container="h264"`` for a
    bare H.264 stream)."""
    with av.open(io.BytesIO(data), format=container) as container:
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])


def write_gif(frames: np.ndarray, target: str | os.PathLike[str], *, fps: int = 8) -> None:
    """An animated GIF of uint8 ``(T, H, W, 3)`` frames, looping."""
    images = [Image.fromarray(f) for f in frames]
    with atomic_path(target) as tmp:
        images[0].save(tmp, format="GIF", save_all=True, append_images=images[1:], duration=round(1000 / fps),
                       loop=0)


def frame_strip(frames: np.ndarray, gap: int = 1) -> np.ndarray:
    """uint8 ``(T, H, W, 3)`` -> one image ``(H, T*W + (T-1)*gap, 3)``: the frames left to right, white gaps."""
    t, h, w, c = frames.shape
    out = np.full((h, t * w + (t - 1) * gap, c), 255, dtype=np.uint8)
    for i, frame in enumerate(frames):
        out[:, i * (w + gap) : i * (w + gap) + w] = frame
    return out


def grid(rows: list[np.ndarray], gap: int = 2) -> np.ndarray:
    """Images ``(H_i, W_i, 3)`` stacked top to bottom on white, left-aligned, ``gap`` pixels apart."""
    width = max(r.shape[1] for r in rows)
    height = sum(r.shape[0] for r in rows) + gap * (len(rows) - 1)
    out = np.full((height, width, 3), 255, dtype=np.uint8)
    y = 0
    for r in rows:
        out[y : y + r.shape[0], : r.shape[1]] = r
        y += r.shape[0] + gap
    return out


def write_png(image: np.ndarray, target: str | os.PathLike[str]) -> Path:
    """A uint8 ``(H, W, 3)`` image as PNG, written atomically."""
    with atomic_path(target) as tmp:
        Image.fromarray(image).save(tmp, format="PNG")
    return Path(target)
