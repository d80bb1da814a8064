"""See what was distilled: ``videodd export SET --format mp4|gif|png|npz|hf --out DIR``.

Any kind of set is materialized first (a latent set is decoded, a factorized one composed), then its
videos are denormalized with the set's own mean/std into uint8 ``(N, T, H, W, 3)`` clips and written:

- ``mp4`` / ``gif`` / ``png``: one file per video in ``DIR/CLASS/`` (``png``: the frames left to right),
  a contact sheet per class (``DIR/CLASS/sheet.png``: a row per video, its frames left to right) and an
  overview (``DIR/sheet.png``: each class's first video);
- ``npz``: ``videos`` uint8 ``(N, T, H, W, 3)``, ``labels`` int64 ``(N,)``, ``classes`` and, for soft
  labels, ``soft_labels`` float32 ``(N, K)``; plain arrays, loadable with ``allow_pickle=False``;
- ``hf``: a Hugging Face ``datasets`` folder (``data/train-00000-of-00001.parquet`` with the video as an
  ``Array4D`` and the label as a ``ClassLabel``, and a dataset card): ``datasets.load_dataset(DIR)``.
  Needs the ``hf`` extra (``pip install videodd[hf]``).

Small frames are upscaled (nearest neighbour) for the media formats, so that a 32x32 clip is visible.
Every file is written atomically; ``DIR/export.json`` lists what was written.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from videodd.data.media import encode_video, frame_strip, grid, to_uint8, upscale, write_gif, write_png
from videodd.distilled import DistilledSet
from videodd.errors import ConfigError
from videodd.io import atomic_path, write_json

FORMATS = ("mp4", "gif", "png", "npz", "hf")


@dataclass
class ExportResult:
    """What an export wrote."""

    out_dir: Path
    format: str
    videos: int
    files: list[Path] = field(default_factory=list)


@dataclass(frozen=True)
class Clips:
    """The exported videos: uint8 ``(N, T, H, W, 3)``, hard labels ``(N,)``, soft labels ``(N, K)`` or None."""

    frames: np.ndarray
    labels: np.ndarray
    soft: np.ndarray | None
    classes: list[str]


def safe_name(name: str) -> str:
    """A class name as a file name: anything but letters, digits, ``-``, ``_`` and ``.`` becomes ``_``."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "class"


def select(distilled: DistilledSet, classes: Sequence[str] | None = None, max_per_class: int | None = None
           ) -> Clips:
    """The set's videos as uint8 clips, restricted to ``classes`` (names) and ``max_per_class`` per class."""
    names = list(distilled.manifest.classes)
    unknown = sorted(set(classes or ()) - set(names))
    if unknown:
        raise ConfigError(f"{distilled.path or 'the set'}: unknown class(es) {unknown}; it has {names}")
    if max_per_class is not None and max_per_class < 1:
        raise ConfigError(f"--max-per-class must be >= 1, got {max_per_class}")
    videos, labels = distilled.materialize()
    soft = labels.float().numpy() if labels.ndim == 2 else None
    hard = (labels.argmax(1) if labels.ndim == 2 else labels).long().numpy()
    wanted = {names.index(c) for c in classes} if classes else set(range(len(names)))
    keep, seen = [], dict.fromkeys(wanted, 0)
    for i, c in enumerate(hard.tolist()):
        if c in wanted and (max_per_class is None or seen[c] < max_per_class):
            keep.append(i)
            seen[c] += 1
    frames = to_uint8(videos[keep], distilled.manifest.mean, distilled.manifest.std)  # (n, T, H, W, 3)
    return Clips(frames, hard[keep], None if soft is None else soft[keep], names)


def _auto_scale(frames: np.ndarray, short_side: int = 128) -> int:
    return max(1, -(-short_side // min(frames.shape[2], frames.shape[3])))


def _media(suffix: str, write: Callable[[np.ndarray, Path, int], None]) -> Callable[..., list[Path]]:
    """An exporter writing one media file per video, plus the contact sheets."""

    def export(clips: Clips, out: Path, *, fps: int, scale: int | None, **_: Any) -> list[Path]:
        factor = scale or _auto_scale(clips.frames)
        files: list[Path] = []
        counters: dict[int, int] = {}
        overview = []
        for c in sorted(set(clips.labels.tolist())):
            members = np.flatnonzero(clips.labels == c)
            folder = out / safe_name(clips.classes[c])
            strips = []
            for i in members:
                k = counters.setdefault(c, 0)
                counters[c] += 1
                frames = upscale(clips.frames[i], factor)  # (T, H*f, W*f, 3)
                path = folder / f"{safe_name(clips.classes[c])}_{k:03d}.{suffix}"
                write(frames, path, fps)
                files.append(path)
                strips.append(frame_strip(frames))
            files.append(write_png(grid(strips), folder / "sheet.png"))
            overview.append(strips[0])
        files.append(write_png(grid(overview), out / "sheet.png"))
        return files

    return export


def _write_mp4(frames: np.ndarray, path: Path, fps: int) -> None:
    encode_video(frames, path, fps=fps, crf=12)  # high quality: a preview, not a size baseline


def _write_png(frames: np.ndarray, path: Path, fps: int) -> None:
    write_png(frame_strip(frames), path)


def _export_npz(clips: Clips, out: Path, **_: Any) -> list[Path]:
    arrays: dict[str, np.ndarray] = {"videos": clips.frames, "labels": clips.labels.astype(np.int64),
                                     "classes": np.array(clips.classes, dtype=str)}
    if clips.soft is not None:
        arrays["soft_labels"] = clips.soft.astype(np.float32)
    path = out / "distilled.npz"
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez_compressed(fh, **arrays)
    return [path]


HF_CARD = """---
configs:
- config_name: default
  data_files:
  - split: train
    path: data/train-*.parquet
---

# {title}

Exported by videodd {version} from `{source}`: {n} videos of {t} frames at {h}x{w} (uint8 RGB, ``video``
as ``(T, H, W, 3)``), labels over {k} classes (``label``){soft}.

```python
from datasets import load_dataset
ds = load_dataset("{out}", split="train").with_format("numpy")
```
"""


def _export_hf(clips: Clips, out: Path, *, source: str = "", title: str = "", **_: Any) -> list[Path]:
    try:
        from datasets import Array4D, ClassLabel, Dataset, Features, Sequence, Value
    except ImportError:
        raise ConfigError("--format hf needs the Hugging Face datasets library: pip install 'videodd[hf]'") from None
    from videodd._version import __version__

    n, t, h, w, _ = clips.frames.shape
    features = {"video": Array4D(shape=(t, h, w, 3), dtype="uint8"), "label": ClassLabel(names=clips.classes)}
    columns: dict[str, Any] = {"video": list(clips.frames), "label": clips.labels.tolist()}
    if clips.soft is not None:
        features["soft_label"] = Sequence(Value("float32"))
        columns["soft_label"] = clips.soft.tolist()
    dataset = Dataset.from_dict(columns, features=Features(features))
    path = out / "data" / "train-00000-of-00001.parquet"
    with atomic_path(path) as tmp:
        dataset.to_parquet(str(tmp))
    card = out / "README.md"
    with atomic_path(card) as tmp:
        tmp.write_text(HF_CARD.format(title=title, version=__version__, source=source, n=n, t=t, h=h, w=w,
                                      k=len(clips.classes), out=out,
                                      soft=", soft labels (``soft_label``)" if clips.soft is not None else ""),
                       encoding="utf-8")
    return [path, card]


EXPORTERS: dict[str, Callable[..., list[Path]]] = {
    "mp4": _media("mp4", _write_mp4),
    "gif": _media("gif", lambda frames, path, fps: write_gif(frames, path, fps=fps)),
    "png": _media("png", _write_png),
    "npz": _export_npz,
    "hf": _export_hf,
}


def export_set(distilled: DistilledSet, out: str | Path, fmt: str, *, classes: Sequence[str] | None = None,
               max_per_class: int | None = None, fps: int = 8, scale: int | None = None) -> ExportResult:
    """Write ``distilled``'s videos to ``out`` in ``fmt`` (see the module docstring).

    Args:
        classes: class names to export (default: all).
        max_per_class: at most this many videos of each class (the first ones).
        fps: frame rate of mp4 and gif files.
        scale: integer upscaling of the media formats; None: enough for a 128-pixel short side.
    """
    if fmt not in EXPORTERS:
        raise ConfigError(f"unknown export format {fmt!r}; valid: {', '.join(FORMATS)}")
    if fps < 1 or (scale is not None and scale < 1):
        raise ConfigError("--fps and --scale must be >= 1")
    out = Path(out)
    clips = select(distilled, classes, max_per_class)
    m = distilled.manifest
    files = EXPORTERS[fmt](clips, out, fps=fps, scale=scale, source=str(distilled.path or ""),
                           title=f"{m.method} IPC {distilled.ipc} on {m.dataset}")
    write_json(out / "export.json", {"format": fmt, "source": str(distilled.path or ""), "method": m.method,
                                     "dataset": m.dataset, "kind": m.kind, "videos": len(clips.frames),
                                     "classes": sorted({clips.classes[c] for c in clips.labels.tolist()}),
                                     "files": [str(f.relative_to(out)) for f in files]})
    return ExportResult(out_dir=out, format=fmt, videos=len(clips.frames), files=files)


def describe(result: ExportResult) -> str:
    """One line for the command line."""
    return f"wrote {result.videos} videos as {result.format} ({len(result.files)} files) to {result.out_dir}"


__all__ = ["EXPORTERS", "FORMATS", "ExportResult", "describe", "export_set", "select"]
