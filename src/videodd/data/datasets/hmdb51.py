"""HMDB51 (official testTrainMulti_7030_splits) and its hmdb51-vdsd variant; their prepare sources."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from videodd.data.datasets.base import _decode_fields, _need, _run, register_dataset
from videodd.data.layouts import (
    LayoutError,
    SplitIndex,
    _annotation_dirs,
    _check_root,
    _collect,
    _Entry,
    _lines,
    _parse_int,
    _Resolver,
)
from videodd.data.store import ClipStore

__all__ = [
    "hmdb51_source",
    "hmdb51_vdsd_source",
    "index_hmdb51",
]

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


# -- sources: each takes the layout options it needs plus the decoding options (base.DECODE_OPTIONS)
@register_dataset("hmdb51", "HMDB51, official testTrainMulti_7030_splits split 1-3 (--root, --split)",
                  default_spec="ucf-16x112-published")
def hmdb51_source(out_dir: str | Path, *, root: str | None = None, annotations: str | None = None,
                  split: int | None = None, **decode: Any) -> tuple[ClipStore, ClipStore]:
    index = index_hmdb51(_need(root, "--root", "hmdb51"), split=split or 1, annotations=annotations)
    return _run("hmdb51", index, out_dir, **_decode_fields(decode))


@register_dataset("hmdb51-vdsd", "HMDB51, 2024 static-dynamic paper variant: train = every non-test video of the split",
                  default_spec="ucf-16x112-published")
def hmdb51_vdsd_source(out_dir: str | Path, *, root: str | None = None, annotations: str | None = None,
                       split: int | None = None, **decode: Any) -> tuple[ClipStore, ClipStore]:
    index = index_hmdb51(_need(root, "--root", "hmdb51-vdsd"), split=split or 1, annotations=annotations,
                         variant="vdsd")
    return _run("hmdb51-vdsd", index, out_dir, **_decode_fields(decode))
