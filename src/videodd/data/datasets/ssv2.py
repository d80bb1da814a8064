"""Something-Something v2: json labels and ``<id>.webm`` videos; its prepare source."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from videodd.data.datasets.base import _decode_fields, _need, _run, register_dataset
from videodd.data.layouts import (
    LayoutError,
    SplitIndex,
    _annotation_dirs,
    _check_root,
    _class_lookup,
    _collect,
    _Entry,
    _few,
    _find_class,
    _parse_int,
    _read_text,
    _Resolver,
)
from videodd.data.store import ClipStore

__all__ = [
    "index_ssv2",
    "ssv2_source",
]

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


# -- source: the layout options it needs plus the decoding options (base.DECODE_OPTIONS)
@register_dataset("ssv2", "Something-Something v2: json labels, <id>.webm videos (--root, --annotations)",
                  default_spec="ssv2-8x64")
def ssv2_source(out_dir: str | Path, *, root: str | None = None, annotations: str | None = None,
                **decode: Any) -> tuple[ClipStore, ClipStore]:
    index = index_ssv2(_need(root, "--root", "ssv2"), _need(annotations, "--annotations", "ssv2"))
    return _run("ssv2", index, out_dir, **_decode_fields(decode))
