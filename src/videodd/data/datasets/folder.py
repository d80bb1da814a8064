"""A folder per class of videos or frame folders (``folder`` dataset), split here or under train/ and test/."""

from __future__ import annotations

import hashlib
import os
import warnings
from pathlib import Path
from typing import Any

from videodd.data.datasets.base import _decode_fields, _need, _run, register_dataset
from videodd.data.layouts import (
    VIDEO_EXTENSIONS,
    LayoutError,
    SplitIndex,
    VideoItem,
    _check_root,
    _few,
    _Resolver,
    _source_id,
)
from videodd.data.store import ClipStore
from videodd.errors import VideoddWarning

__all__ = [
    "IMAGE_EXTENSIONS",
    "folder_source",
    "index_folder",
]

IMAGE_EXTENSIONS: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".bmp")  # what makes a folder a frame folder


def _is_frame_folder(path: Path) -> bool:
    try:
        with os.scandir(path) as it:
            return any(e.is_file() and os.path.splitext(e.name)[1].lower() in IMAGE_EXTENSIONS for e in it)
    except OSError:
        return False


def _class_folders(base: Path, skipped: list[dict[str, str]] | None = None) -> dict[str, list[Path]]:
    """Non-hidden sub-folders of ``base`` holding videos (or frame folders) -> sorted video paths.

    Video-named entries that cannot be videos are appended to ``skipped`` with the reason (a broken
    symbolic link, a macOS ``._*`` resource fork) instead of vanishing; other hidden entries are ignored.
    """
    out: dict[str, list[Path]] = {}
    with os.scandir(base) as it:
        class_dirs = sorted(e.name for e in it if e.is_dir() and not e.name.startswith("."))
    for name in class_dirs:
        videos = []
        with os.scandir(base / name) as it:
            entries = sorted(it, key=lambda e: e.name)
        for e in entries:
            path = base / name / e.name
            video_name = os.path.splitext(e.name)[1].lower() in VIDEO_EXTENSIONS
            if video_name and e.name.startswith("._"):
                reason = "macOS resource fork (._*), not a video"
            elif video_name and e.is_symlink() and not e.is_file():
                reason = f"broken symbolic link (to {os.readlink(path)})"
            else:
                reason = ""
            if reason:
                if skipped is not None:
                    skipped.append({"path": str(path), "source_id": f"{name}/{e.name}", "reason": reason})
                continue
            if e.name.startswith("."):
                continue
            if (e.is_file() and video_name) or (e.is_dir() and _is_frame_folder(path)):
                videos.append(path)
        if videos:
            out[name] = videos
    return out


def _hash_unit(seed: int, key: str) -> int:
    return int.from_bytes(hashlib.sha256(f"{seed}\0{key}".encode()).digest()[:8], "big")


def index_folder(root: str | Path, test_fraction: float = 0.2, seed: int = 0, *, frame_template: str | None = None,
                 name: str = "folder", test_split: str | None = None) -> SplitIndex:
    """A folder per class of videos (.mp4 .avi .mkv .webm .mov .m4v) or frame folders; classes sorted by name.

    Expected tree, either with explicit splits (``test/`` or ``val/``)::

        root/train/<class>/<video>.mp4
        root/test/<class>/<video>.mp4

    or one tree that is split here::

        root/<class>/<video>.mp4          # or root/<class>/<video>/img_00001.jpg

    The automatic split is stratified and deterministic: in each class, videos are ordered by a
    ``seed``-ed hash of their relative path and the first ``round(n * test_fraction)`` (at least one when
    a class has two or more videos, never all) go to test. Adding files keeps every other file's hash, so
    at most about one video per class changes side. Folders without videos (and hidden ones) are ignored.
    ``test_split`` names the test folder (``test``, ``val`` or ``validation``); by default the first of them
    that exists, and a ``val/`` left out next to ``test/`` is reported (a VideoddWarning), not ignored
    silently. Video files that cannot be videos are listed in ``missing`` with the reason.
    """
    root_path = _check_root(root)
    resolver = _Resolver()
    skipped: list[dict[str, str]] = []
    train_dir = resolver.subdir(root_path, "train")
    candidates = [n for n in ("test", "val", "validation") if resolver.subdir(root_path, n) is not None]
    if test_split is not None and test_split not in candidates:
        raise LayoutError(f"--test-split {test_split}: no such folder here (found: {', '.join(candidates) or 'none'})",
                          root_path)
    chosen = test_split or (candidates[0] if candidates else None)
    test_dir = resolver.subdir(root_path, chosen) if chosen else None
    if train_dir is not None and test_dir is not None:
        unused = [n for n in candidates if n != chosen]
        if unused:
            warnings.warn(f"{root_path}: {', '.join(f'{n}/' for n in unused)} not used: the test split is {chosen}/ "
                          f"(--test-split {unused[0]} uses {unused[0]}/ instead)", VideoddWarning, stacklevel=2)
        train_classes = _class_folders(train_dir, skipped)
        test_classes = _class_folders(test_dir, skipped)
        if not train_classes:
            raise LayoutError("no class folders with videos", train_dir)
        if not test_classes:
            raise LayoutError("no class folders with videos", test_dir)
        classes = sorted(train_classes)
        extra = sorted(set(test_classes) - set(train_classes))
        if extra:
            raise LayoutError(f"classes {_few(extra)} have videos here but none in {train_dir}", test_dir)

        def items(found: dict[str, list[Path]]) -> list[VideoItem]:
            return [VideoItem(p, classes.index(c), _source_id(p, root_path)) for c in classes for p in found.get(c, ())]

        return SplitIndex(name, classes, items(train_classes), items(test_classes),
                          [*({**f, "split": "train"} for f in skipped)], frame_template)
    if not 0.0 < test_fraction < 1.0:
        raise LayoutError(f"test_fraction must be between 0 and 1 (exclusive), got {test_fraction}")
    found = _class_folders(root_path, skipped)
    if not found:
        raise LayoutError("no class folders with videos (expected root/<class>/<video>.mp4, or root/train/ and "
                          "root/test/)", root_path)
    classes = sorted(found)
    train, test = [], []
    for label, cls in enumerate(classes):
        vids = [VideoItem(p, label, _source_id(p, root_path)) for p in found[cls]]
        n = len(vids)
        k = int(n * test_fraction + 0.5)
        k = min(max(k, 1), n - 1) if n >= 2 else 0
        order = sorted(vids, key=lambda v: (_hash_unit(seed, v.source_id), v.source_id))
        chosen = {v.source_id for v in order[:k]}
        train += [v for v in vids if v.source_id not in chosen]
        test += [v for v in vids if v.source_id in chosen]
    if not test:
        raise LayoutError("the automatic split left the test split empty (every class has a single video)",
                          root_path)
    return SplitIndex(name, classes, train, test, [{**f, "split": "train"} for f in skipped], frame_template)


# -- source: the layout options it needs plus the decoding options (base.DECODE_OPTIONS)
@register_dataset("folder", "one sub-folder per class (optionally under train/ and test/) (--root, --test-fraction)",
                  default_spec="8x64")
def folder_source(out_dir: str | Path, *, root: str | None = None, test_fraction: float | None = None,
                  test_split: str | None = None, **decode: Any) -> tuple[ClipStore, ClipStore]:
    fraction = 0.2 if test_fraction is None else test_fraction
    index = index_folder(_need(root, "--root", "folder"), test_fraction=fraction, seed=decode.get("seed") or 0,
                         test_split=test_split)
    return _run("folder", index, out_dir, **_decode_fields(decode))
