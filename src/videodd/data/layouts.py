"""Parse official dataset layouts into lists of videos (no decoding here).

Every ``index_*`` function returns a :class:`SplitIndex` (classes, train and test :class:`VideoItem` lists,
listed-but-absent files in ``missing``) and raises :class:`LayoutError` naming the file and the problem.

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

import csv
import hashlib
import io
import json
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

__all__ = [
    "IMAGE_EXTENSIONS",
    "MINIUCF_CLASSES",
    "VIDEO_EXTENSIONS",
    "LayoutError",
    "SplitIndex",
    "VideoItem",
    "index_folder",
    "index_hmdb51",
    "index_kinetics400",
    "index_list",
    "index_miniucf",
    "index_ssv2",
    "index_ucf101",
]

VIDEO_EXTENSIONS: tuple[str, ...] = (".mp4", ".avi", ".mkv", ".webm", ".mov", ".m4v")
IMAGE_EXTENSIONS: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".bmp")

# DESIGN §8: UCF101 split 1 restricted to these 50 classes (4,662 train / 1,861 test videos); label order.
MINIUCF_CLASSES: tuple[str, ...] = (
    "ApplyEyeMakeup", "BalanceBeam", "BandMarching", "BaseballPitch", "Basketball", "BasketballDunk", "Biking",
    "Billiards", "BlowingCandles", "Bowling", "BreastStroke", "CleanAndJerk", "CliffDiving", "CricketShot",
    "Diving", "FloorGymnastics", "FrisbeeCatch", "GolfSwing", "HammerThrow", "HighJump", "HorseRace",
    "HorseRiding", "HulaHoop", "IceDancing", "JumpingJack", "Knitting", "MilitaryParade", "Mixing",
    "ParallelBars", "PlayingPiano", "PlayingViolin", "PoleVault", "PommelHorse", "Punch", "Rafting", "Rowing",
    "SkateBoarding", "Skiing", "Skijet", "SkyDiving", "SoccerPenalty", "StillRings", "SumoWrestling", "Surfing",
    "Swing", "TennisSwing", "TrampolineJumping", "UnevenBars", "VolleyballSpiking", "WritingOnBoard",
)  # fmt: skip
assert len(MINIUCF_CLASSES) == 50


class LayoutError(ValueError):
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


# ----------------------------------------------------------------------------------------------- UCF101


def _ucf_class_ind(path: Path) -> list[str]:
    ids: dict[int, str] = {}
    for num, text in _lines(path):
        parts = text.split()
        idx = _parse_int(parts[0]) if len(parts) == 2 else None
        if idx is None:
            raise LayoutError(f"malformed line {text!r}; expected '<index> <ClassName>', e.g. '1 ApplyEyeMakeup'",
                              path, num)
        if idx in ids:
            raise LayoutError(f"class index {idx} appears twice", path, num)
        ids[idx] = parts[1]
    if not ids:
        raise LayoutError("no classes listed", path)
    if sorted(ids) != list(range(1, len(ids) + 1)):
        raise LayoutError(f"class indices must be 1..{len(ids)} without gaps", path)
    classes = [ids[i] for i in range(1, len(ids) + 1)]
    if len({c.lower() for c in classes}) != len(classes):
        raise LayoutError("a class name appears twice", path)
    return classes


_UCF_NAME = re.compile(r"^v_(.+)_g\d+_c\d+$", re.IGNORECASE)


def _ucf_entries(path: Path, classes: list[str], lookup: dict[str, int], split: str,
                 keep: dict[int, int] | None) -> list[_Entry]:
    """Entries of trainlist0N.txt ("Class/v_..avi 1") or testlist0N.txt ("Class/v_..avi")."""
    entries = []
    expected = "'<Class>/v_<Class>_gXX_cYY.avi" + (" <label>'" if split == "train" else "'")
    for num, text in _lines(path):
        parts = text.split()
        if len(parts) not in (1, 2):
            raise LayoutError(f"malformed line {text!r}; expected {expected}", path, num)
        rel = parts[0].replace("\\", "/")
        folder, _, name = rel.rpartition("/")
        label: int | None = None
        if len(parts) == 2:
            number = _parse_int(parts[1])
            if number is None or not 1 <= number <= len(classes):
                raise LayoutError(f"malformed line {text!r}; the label must be a class index 1..{len(classes)} "
                                  "of classInd.txt", path, num)
            label = number - 1
        class_name = folder.split("/")[-1] if folder else None
        if class_name is None and label is None:
            m = _UCF_NAME.match(os.path.splitext(name)[0])
            if m is None:
                raise LayoutError(f"malformed line {text!r}; expected {expected}", path, num)
            class_name = m.group(1)
        if class_name is not None:
            by_name = _find_class(lookup, class_name)
            if by_name is None:
                raise _unknown_class(class_name, classes, path, num)
            if label is not None and label != by_name:
                raise LayoutError(f"label {label + 1} ({classes[label]}) disagrees with the folder "
                                  f"{class_name!r} in {text!r}", path, num)
            label = by_name
        assert label is not None
        if keep is not None:
            if label not in keep:
                continue
            label = keep[label]
        candidates = (rel, name) if folder else (rel,)
        entries.append(_Entry(candidates, label, split, path.name))
    return entries


def _ucf_index(root: str | Path, split: int, annotations: str | Path | None, subset: Sequence[str] | None,
               dataset: str, frame_template: str | None) -> SplitIndex:
    if split not in (1, 2, 3):
        raise LayoutError(f"UCF101 split must be 1, 2 or 3, got {split!r}")
    root_path = _check_root(root)
    resolver = _Resolver()
    dirs = _annotation_dirs(annotations, [root_path / "ucfTrainTestlist", root_path.parent / "ucfTrainTestlist",
                                          root_path])
    class_ind = _find_annotation_file("classInd.txt", dirs, resolver, "UCF101 classInd.txt",
                                      "the ucfTrainTestlist folder")
    ann = class_ind.parent
    all_classes = _ucf_class_ind(class_ind)
    lookup = _class_lookup(all_classes)
    keep: dict[int, int] | None = None
    classes = all_classes
    if subset is not None:
        absent = [c for c in subset if _find_class(lookup, c) is None]
        if absent:
            raise LayoutError(f"classes {_few(absent)} are not in classInd.txt", class_ind)
        keep = {_find_class(lookup, c): i for i, c in enumerate(subset)}  # type: ignore[misc]
        classes = list(subset)
    train_list = _find_annotation_file(f"trainlist0{split}.txt", [ann], resolver, f"UCF101 split {split} train list")
    test_list = _find_annotation_file(f"testlist0{split}.txt", [ann], resolver, f"UCF101 split {split} test list")
    entries = (_ucf_entries(train_list, all_classes, lookup, "train", keep)
               + _ucf_entries(test_list, all_classes, lookup, "test", keep))
    train, test, missing = _collect(entries, root_path, resolver, {"train": str(train_list), "test": str(test_list)})
    return SplitIndex(dataset, classes, train, test, missing, frame_template)


def index_ucf101(root: str | Path, split: int = 1, annotations: str | Path | None = None, *,
                 frame_template: str | None = None) -> SplitIndex:
    """UCF101 with the official train/test lists (splits 1-3); 101 classes in classInd.txt order.

    Expected tree (``root`` = the ``UCF-101`` folder; flat ``root/v_*.avi`` and mmaction2
    ``rawframes/<Class>/v_<Class>_gXX_cYY/img_00001.jpg`` work too)::

        UCF-101/
          ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi
          ...
        ucfTrainTestlist/          # default: root/ucfTrainTestlist, root/../ucfTrainTestlist, or root
          classInd.txt             # "1 ApplyEyeMakeup"
          trainlist01.txt          # "ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 1"
          testlist01.txt           # "ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi"

    Class names in the lists match classInd case-insensitively; label = classInd index - 1.
    """
    return _ucf_index(root, split, annotations, None, f"ucf101-split{split}", frame_template)


def index_miniucf(root: str | Path, annotations: str | Path | None = None, *,
                  frame_template: str | None = None) -> SplitIndex:
    """MiniUCF: UCF101 split 1 restricted to the 50 :data:`MINIUCF_CLASSES`, labels in that order.

    Same tree as :func:`index_ucf101` (only split 1's lists are read); other classes' videos are left out.
    """
    return _ucf_index(root, 1, annotations, MINIUCF_CLASSES, "miniucf", frame_template)


# ----------------------------------------------------------------------------------------------- HMDB51

_HMDB_SPLIT_FILE = re.compile(r"^(.+)_test_split(\d+)\.txt$", re.IGNORECASE)


def index_hmdb51(root: str | Path, split: int = 1, annotations: str | Path | None = None,
                 variant: str = "official", *, frame_template: str | None = None) -> SplitIndex:
    """HMDB51 with the official 70/30 splits (1-3); 51 classes sorted alphabetically.

    Expected tree (``root`` holds one folder per class; frame folders ``<class>/<video>/`` work too)::

        hmdb51/
          brush_hair/April_09_brush_hair_u_nm_np1_ba_goo_0.avi
          ...
        testTrainMulti_7030_splits/     # default: root/testTrainMulti_7030_splits or root/../ (same name)
          brush_hair_test_split1.txt    # "April_09_brush_hair_u_nm_np1_ba_goo_0.avi 1 "

    Split ids: 1 train, 2 test, 0 unused. ``variant="official"``: train = id 1, test = id 2.
    ``variant="vdsd"`` (static-dynamic 2024 protocol): train = ids 0 and 1, test = id 2.
    Classes = the sorted class names of the ``*_test_split<N>.txt`` files; order within a class = file order.
    """
    if split not in (1, 2, 3):
        raise LayoutError(f"HMDB51 split must be 1, 2 or 3, got {split!r}")
    if variant not in ("official", "vdsd"):
        raise LayoutError(f"unknown HMDB51 variant {variant!r}; valid: official, vdsd")
    root_path = _check_root(root)
    resolver = _Resolver()
    name = "testTrainMulti_7030_splits"
    dirs = _annotation_dirs(annotations, [root_path / name, root_path.parent / name])
    split_files: dict[str, Path] = {}
    for folder in dirs:
        listing = resolver.listing(folder)
        for fname in sorted(listing.entries) if listing else ():
            m = _HMDB_SPLIT_FILE.match(fname)
            if m and int(m.group(2)) == split and not listing.entries[fname]:  # type: ignore[union-attr]
                split_files.setdefault(m.group(1), folder / fname)
        if split_files:
            break
    if not split_files:
        looked = "; ".join(str(d) for d in dirs)
        raise LayoutError(f"no HMDB51 split files '<class>_test_split{split}.txt' found; looked in: {looked}. "
                          f"Pass annotations= the {name} folder", dirs[0])
    classes = sorted(split_files)
    train_ids = {1} if variant == "official" else {0, 1}
    entries: list[_Entry] = []
    for label, cls in enumerate(classes):
        path = split_files[cls]
        for num, text in _lines(path):
            parts = text.split()
            sid = _parse_int(parts[1]) if len(parts) == 2 else None
            if sid not in (0, 1, 2):
                raise LayoutError(f"malformed line {text!r}; expected '<video>.avi <0|1|2>'", path, num)
            which = "test" if sid == 2 else "train" if sid in train_ids else None
            if which is not None:
                entries.append(_Entry((f"{cls}/{parts[0]}", parts[0]), label, which, path.name))
    folder = split_files[classes[0]].parent
    where = str(folder / f"*_test_split{split}.txt")
    train, test, missing = _collect(entries, root_path, resolver, {"train": where, "test": where})
    dataset = f"hmdb51-split{split}" if variant == "official" else f"hmdb51-vdsd-split{split}"
    return SplitIndex(dataset, classes, train, test, missing, frame_template)


# ----------------------------------------------------------------------------------------------- Kinetics-400

_K400_SPLIT_DIRS = {
    "train": ("train", "videos_train", "train_256"),
    "val": ("val", "validate", "validation", "videos_val", "val_256"),
    "test": ("test", "videos_test", "test_256"),
}
_K400_SPLIT_NAMES = {"train": "train", "val": "val", "validate": "val", "validation": "val", "test": "test"}
_K400_COLUMNS = ("label", "youtube_id", "time_start", "time_end")


def _k400_csv_files(annotations: str | Path | Sequence[str | Path] | None, root: Path, test_split: str,
                    resolver: _Resolver) -> list[Path]:
    if annotations is not None and not isinstance(annotations, (str, Path)):
        files = [_abs(a) for a in annotations]
        for f in files:
            if not f.is_file():
                raise LayoutError("Kinetics annotation file not found", f)
        return files
    if annotations is not None and _abs(annotations).is_file():
        return [_abs(annotations)]
    dirs = _annotation_dirs(annotations, [root / "annotations", root, root.parent / "annotations", root.parent])
    if annotations is not None and not dirs[0].is_dir():
        raise LayoutError("Kinetics annotations folder not found", dirs[0])
    train = _find_annotation_file("train.csv", dirs, resolver, "Kinetics-400 train.csv")
    folder = train.parent
    files = [train]
    names = ("validate.csv", "val.csv") if test_split == "val" else ("test.csv",)
    for fname in names:
        listing = resolver.listing(folder)
        found = listing.match(fname, want_dir=False) if listing else None
        if found:
            files.append(folder / found)
            break
    else:
        raise LayoutError(f"Kinetics-400 {' or '.join(names)} not found next to train.csv", folder / names[0])
    return files


def _k400_rows(path: Path) -> list[tuple[int, str, str, str]]:
    """(line, split, label, file stem) of each row of a Kinetics csv."""
    reader = csv.reader(io.StringIO(_read_text(path)))
    header = [h.strip().lower() for h in next(reader, [])]
    if not all(c in header for c in _K400_COLUMNS):
        raise LayoutError(f"expected the header 'label,youtube_id,time_start,time_end,split', got {','.join(header)!r}",
                          path, 1)
    col = {c: header.index(c) for c in (*_K400_COLUMNS, "split") if c in header}
    default_split = next((s for key, s in (("train", "train"), ("val", "val"), ("test", "test"))
                          if key in path.stem.lower()), None)
    rows = []
    for row in reader:
        num = reader.line_num
        if not any(cell.strip() for cell in row):
            continue
        if len(row) < len(header):
            raise LayoutError(f"malformed row {','.join(row)!r}; expected {len(header)} columns", path, num)
        split_name = row[col["split"]].strip().lower() if "split" in col else default_split
        split = _K400_SPLIT_NAMES.get(split_name or "")
        if split is None:
            raise LayoutError(f"unknown split {split_name!r}; expected train, val/validate or test", path, num)
        try:
            start, end = int(float(row[col["time_start"]])), int(float(row[col["time_end"]]))
        except ValueError:
            raise LayoutError(f"malformed row {','.join(row)!r}; time_start/time_end must be numbers",
                              path, num) from None
        label, youtube_id = row[col["label"]].strip(), row[col["youtube_id"]].strip()
        if not label or not youtube_id:
            raise LayoutError(f"malformed row {','.join(row)!r}; empty label or youtube_id", path, num)
        rows.append((num, split, label, f"{youtube_id}_{start:06d}_{end:06d}"))
    return rows


def _norm_k400(name: str) -> str:
    return name.strip().strip('"').lower().replace("_", " ")


def index_kinetics400(root: str | Path, annotations: str | Path | Sequence[str | Path] | None = None,
                      classes: Sequence[str] | str | Path | None = None, max_per_class: int | None = None, *,
                      test_split: str = "val", frame_template: str | None = None) -> SplitIndex:
    """Kinetics-400 from the official csv files; train -> train, val (validate) -> test.

    Expected tree (videos under ``root/<split>/``, ``root/<split>/<label>/`` or ``root/`` directly; split
    folder aliases: train|videos_train, val|validate|validation|videos_val, test|videos_test)::

        kinetics400/
          train/abseiling/0347ZoDXyP0_000095_000105.mp4    # {youtube_id}_{start:06d}_{end:06d}.mp4
          val/zumba/...mp4
        annotations/             # default: root/annotations, root, root/../annotations, root/..
          train.csv              # label,youtube_id,time_start,time_end,split
          validate.csv           # (or val.csv)

    ``annotations``: that folder, one csv, or a list of csv files (rows go to the split in their ``split``
    column). ``classes``: optional subset (names, or a txt file with one name per line or classInd style),
    labels in the given order; default: all labels in the csvs, sorted. ``max_per_class``: keep at most
    this many found videos per class in each split (first in csv order). ``test_split="test"`` uses the
    csv's test rows instead of val. Missing videos go to ``missing`` (YouTube takedowns are common).
    """
    if test_split not in ("val", "test"):
        raise LayoutError(f"test_split must be 'val' or 'test', got {test_split!r}")
    if max_per_class is not None and max_per_class < 1:
        raise LayoutError(f"max_per_class must be >= 1, got {max_per_class}")
    root_path = _check_root(root)
    resolver = _Resolver()
    files = _k400_csv_files(annotations, root_path, test_split, resolver)
    rows = [(path, *row) for path in files for row in _k400_rows(path)]
    all_labels = sorted({label for _, _, _, label, _ in rows})
    if classes is None:
        names = all_labels
    else:
        names = _read_class_names(classes) if isinstance(classes, (str, Path)) else list(classes)
        exact = set(all_labels)
        norm = {}
        for label in all_labels:
            norm.setdefault(_norm_k400(label), label)
        unknown = [n for n in names if n not in exact and _norm_k400(n) not in norm]
        if unknown:
            src = classes if isinstance(classes, (str, Path)) else files[0]
            raise _unknown_class(unknown[0], all_labels, src)
        names = [n if n in exact else norm[_norm_k400(n)] for n in names]
    lookup = {n: i for i, n in enumerate(names)}
    split_dirs: dict[str, list[str]] = {}
    for split, aliases in _K400_SPLIT_DIRS.items():
        split_dirs[split] = [d.name for a in aliases if (d := resolver.subdir(root_path, a)) is not None]
    entries: list[_Entry] = []
    for path, _num, split, label, stem in rows:
        if split == "train":
            which = "train"
        elif split == test_split:
            which = "test"
        else:
            continue
        if label not in lookup:
            continue
        name = f"{stem}.mp4"
        folder_label = label.replace(" ", "_")
        cands = [f"{d}/{sub}" for d in split_dirs[split] for sub in (name, f"{label}/{name}", f"{folder_label}/{name}")]
        cands += [name, f"{label}/{name}", f"{folder_label}/{name}"]
        if not split_dirs[split]:
            cands.insert(0, f"{_K400_SPLIT_DIRS[split][0]}/{name}")  # canonical path for the missing report
        entries.append(_Entry(tuple(dict.fromkeys(cands)), lookup[label], which, path.name))
    if max_per_class is not None:
        entries = _cap_per_class(entries, root_path, resolver, max_per_class)
    sources = {"train": ", ".join(str(f) for f in files), "test": ", ".join(str(f) for f in files)}
    train, test, missing = _collect(entries, root_path, resolver, sources)
    return SplitIndex("kinetics400", names, train, test, missing, frame_template)


def _cap_per_class(entries: list[_Entry], root: Path, resolver: _Resolver, cap: int) -> list[_Entry]:
    """Keep, per (split, class), entries in order until ``cap`` of them exist on disk (absent ones are kept too,
    so they are reported as missing)."""
    found: dict[tuple[str, int], int] = {}
    kept = []
    for entry in entries:
        key = (entry.split, entry.label)
        if found.get(key, 0) >= cap:
            continue
        kept.append(entry)
        if any(resolver.resolve(root, c) is not None for c in entry.candidates):
            found[key] = found.get(key, 0) + 1
    return kept


# ----------------------------------------------------------------------------------------------- SSv2

_SSV2_FILES = {
    "labels": ("something-something-v2-labels.json", "labels.json"),
    "train": ("something-something-v2-train.json", "train.json"),
    "validation": ("something-something-v2-validation.json", "validation.json"),
}


def _load_json(path: Path) -> object:
    try:
        return json.loads(_read_text(path))
    except json.JSONDecodeError as exc:
        raise LayoutError(f"invalid JSON: {exc.msg}", path, exc.lineno) from None


def _ssv2_file(kind: str, dirs: Sequence[Path], resolver: _Resolver) -> Path:
    for fname in _SSV2_FILES[kind]:
        for folder in dirs:
            listing = resolver.listing(folder)
            found = listing.match(fname, want_dir=False) if listing else None
            if found:
                return folder / found
    looked = "; ".join(dict.fromkeys(str(d) for d in dirs))
    raise LayoutError(f"SSv2 {kind} file not found (also tried {_SSV2_FILES[kind][1]}); looked in: {looked}. "
                      "Pass annotations= the folder that holds it", dirs[0] / _SSV2_FILES[kind][0])


def index_ssv2(root: str | Path, annotations: str | Path | None = None, *,
               frame_template: str | None = None) -> SplitIndex:
    """Something-Something v2: train json -> train, validation json -> test; 174 classes in labels.json id order.

    Expected tree (``root`` holds the videos; frame folders ``root/<id>/`` work too)::

        20bn-something-something-v2/
          1.webm
          ...
        labels/                                   # default: root/labels, root, root/../labels, root/..
          something-something-v2-labels.json      # {"Approaching something with your camera": "0", ...}
          something-something-v2-train.json       # [{"id": "78687", "template": "Holding [something] ...", ...}]
          something-something-v2-validation.json  # (labels.json / train.json / validation.json also accepted)

    The class of an entry is its ``template`` with ``[`` and ``]`` removed (how labels.json keys are written).
    """
    root_path = _check_root(root)
    resolver = _Resolver()
    dirs = _annotation_dirs(annotations, [root_path / "labels", root_path, root_path.parent / "labels",
                                          root_path.parent])
    labels_path = _ssv2_file("labels", dirs, resolver)
    dirs = [labels_path.parent]
    raw = _load_json(labels_path)
    if not isinstance(raw, dict) or not raw:
        raise LayoutError('expected a JSON object {"class name": "id", ...}', labels_path)
    ids: dict[int, str] = {}
    for name, value in raw.items():
        idx = _parse_int(str(value))
        if idx is None or idx in ids:
            raise LayoutError(f"class {name!r} has a bad or repeated id {value!r}", labels_path)
        ids[idx] = name
    if sorted(ids) != list(range(len(ids))):
        raise LayoutError(f"class ids must be 0..{len(ids) - 1} without gaps", labels_path)
    classes = [ids[i] for i in range(len(ids))]
    lookup = _class_lookup(classes)
    entries: list[_Entry] = []
    sub = "20bn-something-something-v2"
    for kind, split in (("train", "train"), ("validation", "test")):
        path = _ssv2_file(kind, dirs, resolver)
        data = _load_json(path)
        if not isinstance(data, list):
            raise LayoutError("expected a JSON list of {id, template, ...} entries", path)
        for i, item in enumerate(data):
            if not isinstance(item, dict) or "id" not in item or "template" not in item:
                raise LayoutError(f"entry {i} is malformed; expected an object with 'id' and 'template'", path)
            name = str(item["template"]).replace("[", "").replace("]", "")
            label = _find_class(lookup, name)
            if label is None:
                raise LayoutError(f"entry {i} (id {item['id']}): unknown class {name!r}; valid classes include: "
                                  f"{_few(classes)}", path)
            vid = str(item["id"]).strip()
            entries.append(_Entry((f"{vid}.webm", f"{sub}/{vid}.webm"), label, split, path.name))
    train_json = _ssv2_file("train", dirs, resolver)
    val_json = _ssv2_file("validation", dirs, resolver)
    train, test, missing = _collect(entries, root_path, resolver, {"train": str(train_json), "test": str(val_json)})
    return SplitIndex("ssv2", classes, train, test, missing, frame_template)


# ----------------------------------------------------------------------------------------------- folder


def _is_frame_folder(path: Path) -> bool:
    try:
        with os.scandir(path) as it:
            return any(e.is_file() and os.path.splitext(e.name)[1].lower() in IMAGE_EXTENSIONS for e in it)
    except OSError:
        return False


def _class_folders(base: Path) -> dict[str, list[Path]]:
    """Non-hidden sub-folders of ``base`` holding videos (or frame folders) -> sorted video paths."""
    out: dict[str, list[Path]] = {}
    with os.scandir(base) as it:
        class_dirs = sorted(e.name for e in it if e.is_dir() and not e.name.startswith("."))
    for name in class_dirs:
        videos = []
        with os.scandir(base / name) as it:
            for e in it:
                if e.name.startswith("."):
                    continue
                is_video = e.is_file() and os.path.splitext(e.name)[1].lower() in VIDEO_EXTENSIONS
                if is_video or (e.is_dir() and _is_frame_folder(base / name / e.name)):
                    videos.append(base / name / e.name)
        if videos:
            out[name] = sorted(videos)
    return out


def _hash_unit(seed: int, key: str) -> int:
    return int.from_bytes(hashlib.sha256(f"{seed}\0{key}".encode()).digest()[:8], "big")


def index_folder(root: str | Path, test_fraction: float = 0.2, seed: int = 0, *, frame_template: str | None = None,
                 name: str = "folder") -> SplitIndex:
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
    """
    root_path = _check_root(root)
    resolver = _Resolver()
    train_dir = resolver.subdir(root_path, "train")
    test_dir = resolver.subdir(root_path, "test") or resolver.subdir(root_path, "val") \
        or resolver.subdir(root_path, "validation")
    if train_dir is not None and test_dir is not None:
        train_classes = _class_folders(train_dir)
        test_classes = _class_folders(test_dir)
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

        return SplitIndex(name, classes, items(train_classes), items(test_classes), [], frame_template)
    if not 0.0 < test_fraction < 1.0:
        raise LayoutError(f"test_fraction must be between 0 and 1 (exclusive), got {test_fraction}")
    found = _class_folders(root_path)
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
    return SplitIndex(name, classes, train, test, [], frame_template)


# ----------------------------------------------------------------------------------------------- list

_PATH_HEADERS = {"path", "video", "file", "filename", "file_name", "video_path", "filepath", "file_path", "video_name"}
_LABEL_HEADERS = {"label", "class", "class_name", "label_name", "category", "target", "class_id", "label_id",
                  "class_index", "label_index"}


def _list_rows(path: Path) -> list[tuple[int, str, str]]:
    """(line, path, label) rows of a csv (``path,label``, optional header) or txt (``path label``) list."""
    text = _read_text(path)
    rows: list[tuple[int, list[str]]] = []
    first = next((line for line in text.splitlines() if line.strip()), "")
    if path.suffix.lower() == ".csv" or ("," in first and path.suffix.lower() != ".txt"):
        reader = csv.reader(io.StringIO(text))
        for row in reader:
            if any(cell.strip() for cell in row):
                rows.append((reader.line_num, [cell.strip() for cell in row]))
        kind = "csv"
    else:
        rows = [(num, line.split()) for num, line in _lines(path)]
        kind = "txt"
    if not rows:
        return []
    pcol, lcol = 0, -1
    head = [c.lower() for c in rows[0][1]]
    is_header = any(h in _PATH_HEADERS for h in head) and any(h in _LABEL_HEADERS for h in head)
    if not is_header and len(rows) > 1 and len(head) >= 2 and _parse_int(head[-1]) is None:
        is_header = all(_parse_int(r[-1]) is not None for _, r in rows[1:] if r)  # "name,idx" header over int labels
    if is_header:
        if any(h in _PATH_HEADERS for h in head) and any(h in _LABEL_HEADERS for h in head):
            pcol = next(i for i, h in enumerate(head) if h in _PATH_HEADERS)
            lcol = next(i for i, h in enumerate(head) if h in _LABEL_HEADERS)
        rows = rows[1:]
    out = []
    for num, row in rows:
        if kind == "csv":
            ok = len(row) >= max(2, pcol + 1, lcol + 1)
        else:
            ok = len(row) == 2 or (len(row) == 3 and _parse_int(row[1]) is not None)
        if not ok or not row[pcol] or not row[lcol]:
            expected = "'path,label'" if kind == "csv" else "'path label' (or mmaction2 'path num_frames label')"
            shown = ",".join(row) if kind == "csv" else " ".join(row)
            raise LayoutError(f"malformed line {shown!r}; expected {expected}", path, num)
        out.append((num, row[pcol], row[lcol]))
    return out


def index_list(train_list: str | Path, test_list: str | Path, root: str | Path | None = None, *,
               classes: Sequence[str] | str | Path | None = None, label_base: int = 0,
               frame_template: str | None = None, name: str = "list") -> SplitIndex:
    """Videos listed in a train and a test list file, each line a path and a label.

    Formats: csv ``path,label`` (optional header such as ``path,label``; extra columns allowed when the header
    names the path and label columns) or txt ``path label`` (whitespace; mmaction2 ``path num_frames label``
    also accepted). Paths are relative to ``root`` (default: each list file's folder) or absolute::

        root/
          train.csv      # path,label  /  walk/a.mp4,walk  /  run/b.mp4,run
          test.csv
          walk/a.mp4

    Labels are class names or integers (not mixed). Classes: ``classes`` if given (names, or a txt file with
    one name per line or classInd style; integer labels index it, minus ``label_base``); else the sorted
    names found in both lists; else for integer labels the distinct integers in numeric order, named
    ``"0"``, ``"1"``, ... (so a 1-based list maps 1 -> label 0, named "1").
    """
    train_path, test_path = _abs(train_list), _abs(test_list)
    for p in (train_path, test_path):
        if not p.is_file():
            raise LayoutError("list file not found", p)
    root_path = _check_root(root) if root is not None else None
    rows = {"train": _list_rows(train_path), "test": _list_rows(test_path)}
    src = {"train": train_path, "test": test_path}
    for split in ("train", "test"):
        if not rows[split]:
            raise LayoutError(f"the {split} list has no entries", src[split])
    all_labels = [(split, num, label) for split in rows for num, _, label in rows[split]]
    ints = {label: _parse_int(label) for _, _, label in all_labels}
    all_int = all(v is not None for v in ints.values())
    class_names: list[str]
    labels: dict[str, int] = {}
    if classes is not None:
        class_names = _read_class_names(classes) if isinstance(classes, (str, Path)) else list(classes)
        lookup = _class_lookup(class_names)
        for split, num, label in all_labels:
            idx = _find_class(lookup, label)
            if idx is None and ints[label] is not None and 0 <= ints[label] - label_base < len(class_names):  # type: ignore[operator]
                idx = ints[label] - label_base  # type: ignore[operator]
            if idx is None:
                raise _unknown_class(label, class_names, src[split], num)
            labels[label] = idx
    elif all_int:
        values = sorted({v for v in ints.values() if v is not None})
        class_names = [str(v) for v in values]
        labels = {label: values.index(v) for label, v in ints.items() if v is not None}
    else:
        mixed = next(((s, n, lab) for s, n, lab in all_labels if ints[lab] is not None), None)
        if mixed is not None and any(ints[lab] is None for _, _, lab in all_labels):
            s, n, lab = mixed
            raise LayoutError(f"label {lab!r} is an integer but other labels are class names; use one kind "
                              "(or pass classes=)", src[s], n)
        class_names = sorted({label for _, _, label in all_labels})
        labels = {c: i for i, c in enumerate(class_names)}
    resolver = _Resolver()
    items: dict[str, list[VideoItem]] = {"train": [], "test": []}
    missing: list[dict[str, str]] = []
    for split in ("train", "test"):
        base = root_path or src[split].parent
        sid_root = root_path or src[split].parent
        for _num, rel, label in rows[split]:
            found = resolver.resolve(base, rel)
            if found is None:
                expected = base / rel.replace("\\", "/")
                missing.append({"path": str(expected), "source_id": _source_id(expected, sid_root),
                                "reason": f"listed in {src[split].name} but not found", "split": split})
                continue
            items[split].append(VideoItem(found, labels[label], _source_id(found, sid_root)))
        if not items[split]:
            raise LayoutError(f"none of the {len(rows[split])} videos listed there was found "
                              f"(first: {rows[split][0][1]!r} relative to {base})", src[split])
    return SplitIndex(name, class_names, items["train"], items["test"], missing, frame_template)
