"""Kinetics-400 from the official csv annotations; its prepare source."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from videodd.data.datasets.base import _decode_fields, _need, _run, register_dataset
from videodd.data.layouts import (
    LayoutError,
    SplitIndex,
    _abs,
    _annotation_dirs,
    _check_root,
    _collect,
    _Entry,
    _find_annotation_file,
    _read_class_names,
    _read_text,
    _Resolver,
    _unknown_class,
)
from videodd.data.store import ClipStore

__all__ = [
    "index_kinetics400",
    "kinetics400_source",
]

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


# -- source: the layout options it needs plus the decoding options (base.DECODE_OPTIONS)
@register_dataset(
    "kinetics400", "Kinetics-400 from csv annotations (--root, --annotations, --classes, --max-per-class)",
    default_spec="k400-8x64",
)
def kinetics400_source(out_dir: str | Path, *, root: str | None = None, annotations: str | None = None,
                       classes: str | None = None, max_per_class: int | None = None,
                       **decode: Any) -> tuple[ClipStore, ClipStore]:
    index = index_kinetics400(_need(root, "--root", "kinetics400"), _need(annotations, "--annotations", "kinetics400"),
                              classes=_class_subset(classes), max_per_class=max_per_class)
    return _run("kinetics400", index, out_dir, **_decode_fields(decode))


def _class_subset(classes: str | None) -> list[str] | str | None:
    """``--classes``: a comma-separated list of names, or a path to a txt file (passed on as a path)."""
    from videodd.data.prepare import PrepareError

    if classes is None:
        return None
    if Path(classes).is_file():
        return classes
    if classes.endswith(".txt"):
        raise PrepareError(f"{classes}: class list file not found")
    return [c.strip() for c in classes.split(",") if c.strip()]
