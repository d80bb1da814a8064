"""Videos listed in train and test csv/txt files (the ``list`` dataset); its prepare source."""

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
    VideoItem,
    _abs,
    _check_root,
    _class_lookup,
    _find_class,
    _lines,
    _parse_int,
    _read_class_names,
    _read_text,
    _Resolver,
    _source_id,
    _unknown_class,
)
from videodd.data.store import ClipStore

__all__ = [
    "index_list",
    "list_source",
]

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


# -- source: the layout options it needs plus the decoding options (base.DECODE_OPTIONS)
@register_dataset("list", "csv/txt lists of `path,label` for train and test (--train-list, --test-list, --root)",
                  default_spec="8x64")
def list_source(out_dir: str | Path, *, train_list: str | None = None, test_list: str | None = None,
                root: str | None = None, **decode: Any) -> tuple[ClipStore, ClipStore]:
    index = index_list(_need(train_list, "--train-list", "list"), _need(test_list, "--test-list", "list"), root=root)
    return _run("list", index, out_dir, **_decode_fields(decode))
