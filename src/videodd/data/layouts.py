"""What the dataset layouts share: the index types, the path resolver and list-file helpers (no decoding here).

Each dataset's ``index_*`` function (one module per dataset in :mod:`videodd.data.datasets`) returns a
:class:`SplitIndex` (classes, train and test :class:`VideoItem` lists, listed-but-absent files in ``missing``)
and raises :class:`LayoutError` naming the file and the problem. The underscore helpers below are for
those modules (internal to the data layer), not for users.

Shared behaviour:

- Paths from list files are resolved exactly first, then case-insensitively (the real UCF101 lists
  say ``HandstandPushups/`` where some copies on disk say ``HandStandPushups/``), then as a frame
  folder (mmaction2 ``rawframes``: the list names ``v_x.avi``, the disk holds a folder ``v_x/``), then
  as the same name with another video extension (a ``.webm`` re-encoded to ``.mp4``).
- Listed files that are absent go to ``SplitIndex.missing`` (``{"path", "source_id", "reason", "split"}``);
  that is not fatal, but a split where every listed file is absent (or that lists nothing) is.
- Order is deterministic: the order of the official list file, and sorted names for folder layouts.
- ``source_id`` is the path of the found file or frame folder relative to the dataset root (posix).
- ``frame_template`` (e.g. ``"img_{:05d}.jpg"``) is only carried into ``SplitIndex.frame_template``
  for the decoder.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from videodd.errors import VideoddError

__all__ = [
    "VIDEO_EXTENSIONS",
    "LayoutError",
    "SplitIndex",
    "VideoItem",
]

VIDEO_EXTENSIONS: tuple[str, ...] = (".mp4", ".avi", ".mkv", ".webm", ".mov", ".m4v")


class LayoutError(VideoddError, ValueError):
    """A dataset layout cannot be indexed; ``str()`` names the file (and line) and the problem."""

    def __init__(self, message: str, path: str | Path | None = None, line: int | None = None) -> None:
        self.path = None if path is None else str(path)
        self.line = line
        self.reason = message
        where = "" if path is None else f"{path}, line {line}: " if line is not None else f"{path}: "
        super().__init__(where + message)


@dataclass(frozen=True)
class VideoItem:
    """One video: a file or a frame folder, its label and a stable id."""

    path: Path  # absolute path to a video file or a frame folder
    label: int  # index into SplitIndex.classes
    source_id: str  # stable id, the path relative to the dataset root (posix)


@dataclass
class SplitIndex:
    """A dataset's classes, train and test videos, and the listed files that are absent."""

    dataset: str  # e.g. "ucf101-split1", "miniucf", "hmdb51-split1", "kinetics400", ...
    classes: list[str]
    train: list[VideoItem]
    test: list[VideoItem]
    missing: list[dict[str, str]] = field(default_factory=list)  # {"path", "source_id", "reason", "split"}
    frame_template: str | None = None
    dropped: list[dict[str, Any]] = field(default_factory=list)  # classes left out: {"class", "reason", ...}

    def counts(self) -> dict[str, tuple[int, int]]:
        """Each class's (train, test) video counts."""
        out = {c: [0, 0] for c in self.classes}
        for side, items in ((0, self.train), (1, self.test)):
            for item in items:
                out[self.classes[item.label]][side] += 1
        return {c: (n[0], n[1]) for c, n in out.items()}

    def drop_classes(self, names: dict[str, str]) -> SplitIndex:
        """A copy without the classes ``names`` (class -> reason, recorded in ``dropped``), labels renumbered."""
        unknown = sorted(set(names) - set(self.classes))
        if unknown:
            raise LayoutError(f"--drop-class {_few(unknown)}: no such class; classes: {_few(self.classes)}")
        keep = [c for c in self.classes if c not in names]
        if not keep:
            raise LayoutError("every class would be dropped")
        new = {self.classes.index(c): i for i, c in enumerate(keep)}
        counts = self.counts()

        def items(old: list[VideoItem]) -> list[VideoItem]:
            return [VideoItem(it.path, new[it.label], it.source_id) for it in old if it.label in new]

        dropped = [*self.dropped, *({"class": c, "reason": r, "train_videos": counts[c][0],
                                     "test_videos": counts[c][1]} for c, r in names.items())]
        return SplitIndex(self.dataset, keep, items(self.train), items(self.test), list(self.missing),
                          self.frame_template, dropped)

    def summary(self) -> str:
        """One line: dataset, class count, train/test counts, missing count."""
        return (f"{self.dataset}: {len(self.classes)} classes, {len(self.train)} train, {len(self.test)} test, "
                f"{len(self.missing)} missing")


# ----------------------------------------------------------------------------------------------- helpers


def _abs(path: str | Path) -> Path:
    return Path(path).expanduser().absolute()


def _check_root(root: str | Path, what: str = "dataset root") -> Path:
    path = _abs(root)
    if not path.is_dir():
        raise LayoutError(f"{what} does not exist or is not a folder", path)
    return path


def _few(names: Iterable[str], n: int = 8) -> str:
    names = list(names)
    shown = ", ".join(names[:n])
    return shown + (f", ... ({len(names)} in all)" if len(names) > n else "")


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise LayoutError(f"cannot read: {exc}", path) from None


def _lines(path: Path) -> list[tuple[int, str]]:
    """(1-based line number, stripped text) of the non-blank lines; CRLF and BOM tolerated."""
    return [(i, s.strip()) for i, s in enumerate(_read_text(path).splitlines(), 1) if s.strip()]


def _source_id(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.as_posix()


def _parse_int(text: str) -> int | None:
    try:
        return int(text)
    except ValueError:
        return None


class _Listing:
    """One directory's entries: exact names, lower-case names and stems, for cached lookups."""

    def __init__(self, entries: dict[str, bool]) -> None:
        self.entries = entries  # name -> is_dir
        self.lower: dict[str, list[str]] = {}
        self.stems: dict[str, list[str]] = {}
        for name in sorted(entries):
            self.lower.setdefault(name.lower(), []).append(name)
            stem, ext = os.path.splitext(name)
            if ext.lower() in VIDEO_EXTENSIONS:
                self.stems.setdefault(stem.lower(), []).append(name)

    def match(self, name: str, want_dir: bool) -> str | None:
        """The entry called ``name`` (exact, else case-insensitive) of the wanted kind."""
        if self.entries.get(name) is want_dir:
            return name
        for cand in self.lower.get(name.lower(), ()):
            if self.entries[cand] is want_dir:
                return cand
        return None


class _Resolver:
    """Find listed files under a folder with cached directory listings (one scandir per folder)."""

    def __init__(self) -> None:
        self._cache: dict[Path, _Listing | None] = {}

    def listing(self, folder: Path) -> _Listing | None:
        if folder not in self._cache:
            try:
                with os.scandir(folder) as it:
                    entries = {e.name: e.is_dir() for e in it}
            except OSError:
                self._cache[folder] = None
            else:
                self._cache[folder] = _Listing(entries)
        return self._cache[folder]

    def subdir(self, folder: Path, name: str) -> Path | None:
        """``folder/name`` when it is a folder (name matched case-insensitively)."""
        listing = self.listing(folder)
        found = listing.match(name, want_dir=True) if listing else None
        return None if found is None else folder / found

    def resolve(self, base: Path, rel: str) -> Path | None:
        """The file or frame folder that ``rel`` (relative to ``base``, or absolute) names, or None."""
        rel = rel.replace("\\", "/")
        parts = list(PurePosixPath(rel).parts)
        folder = base
        if parts and PurePosixPath(rel).is_absolute():
            folder, parts = Path(parts[0]), parts[1:]
        if not parts:
            return None
        for part in parts[:-1]:
            if part == ".":
                continue
            if part == "..":
                folder = folder.parent
                continue
            sub = self.subdir(folder, part)
            if sub is None:
                return None
            folder = sub
        listing = self.listing(folder)
        if listing is None:
            return None
        name = parts[-1]
        stem, ext = os.path.splitext(name)
        found = listing.match(name, want_dir=False)
        if found is None:  # a frame folder named like the video, without or with the extension
            found = listing.match(stem, want_dir=True) if ext else None
            found = found or listing.match(name, want_dir=True)
        if found is None and ext.lower() in VIDEO_EXTENSIONS:  # same video with another container
            others = sorted(listing.stems.get(stem.lower(), ()),
                            key=lambda n: VIDEO_EXTENSIONS.index(os.path.splitext(n)[1].lower()))
            found = others[0] if others else None
        return None if found is None else folder / found


@dataclass
class _Entry:
    """A listed video: candidate paths relative to the root (first = canonical), label, where it was listed."""

    candidates: tuple[str, ...]
    label: int
    split: str  # "train" or "test"
    listed_in: str


def _collect(entries: list[_Entry], root: Path, resolver: _Resolver,
             sources: dict[str, str]) -> tuple[list[VideoItem], list[VideoItem], list[dict[str, str]]]:
    """Resolve entries into train/test items and missing records; raise when a split is empty.

    ``sources`` maps "train"/"test" to the list file(s) that define the split (for messages).
    """
    items: dict[str, list[VideoItem]] = {"train": [], "test": []}
    missing: list[dict[str, str]] = []
    listed = {"train": 0, "test": 0}
    first_missing: dict[str, str] = {}
    for entry in entries:
        listed[entry.split] += 1
        path = None
        for cand in entry.candidates:
            path = resolver.resolve(root, cand)
            if path is not None:
                break
        if path is None:
            expected = root / entry.candidates[0]
            missing.append({"path": str(expected), "source_id": _source_id(expected, root),
                            "reason": f"listed in {entry.listed_in} but not found under {root}", "split": entry.split})
            first_missing.setdefault(entry.split, entry.candidates[0])
            continue
        items[entry.split].append(VideoItem(path=path, label=entry.label, source_id=_source_id(path, root)))
    for split in ("train", "test"):
        if listed[split] == 0:
            raise LayoutError(f"the {split} split lists no videos", sources[split])
        if not items[split]:
            raise LayoutError(
                f"none of the {listed[split]} {split} videos listed there was found under {root} "
                f"(first: {first_missing[split]!r}); is the dataset root right?", sources[split])
    return items["train"], items["test"], missing


def _class_lookup(classes: Sequence[str]) -> dict[str, int]:
    """Exact and lower-case name -> index (exact names win)."""
    lookup: dict[str, int] = {}
    for i, name in enumerate(classes):
        lookup.setdefault(name.lower(), i)
    for i, name in enumerate(classes):
        lookup[name] = i
    return lookup


def _find_class(lookup: dict[str, int], name: str) -> int | None:
    found = lookup.get(name)
    return lookup.get(name.lower()) if found is None else found


def _unknown_class(name: str, classes: Sequence[str], path: Path | str | None, line: int | None = None) -> LayoutError:
    return LayoutError(f"unknown class {name!r}; valid classes include: {_few(classes)}", path, line)


def _find_annotation_file(filename: str, candidates: Sequence[Path], resolver: _Resolver, what: str,
                          hint: str = "the folder that holds it") -> Path:
    """The first candidate folder that holds ``filename`` (case-insensitive); a LayoutError lists where we looked."""
    seen: list[Path] = []
    for folder in candidates:
        if folder in seen:
            continue
        seen.append(folder)
        listing = resolver.listing(folder)
        found = listing.match(filename, want_dir=False) if listing else None
        if found is not None:
            return folder / found
    looked = "; ".join(str(f) for f in seen)
    raise LayoutError(f"{what} not found; looked in: {looked}. Pass annotations= {hint}",
                      seen[0] / filename if seen else filename)


def _annotation_dirs(annotations: str | Path | None, defaults: Sequence[Path]) -> list[Path]:
    if annotations is None:
        return list(defaults)
    path = _abs(annotations)
    return [path.parent] if path.is_file() else [path]


def _read_class_names(source: str | Path) -> list[str]:
    """Class names from a text file: one name per line, or classInd style ``"<index> <name>"``."""
    path = _abs(source)
    names = []
    for num, text in _lines(path):
        parts = text.split(None, 1)
        if len(parts) == 2 and _parse_int(parts[0]) is not None:
            names.append(parts[1].strip())
        else:
            names.append(text)
        if not names[-1]:
            raise LayoutError("empty class name", path, num)
    if not names:
        raise LayoutError("no class names in file", path)
    return names
