"""UCF101 and MiniUCF (UCF101 split 1, 50 classes): official ucfTrainTestlist splits; their prepare sources."""

from __future__ import annotations

import os
import re
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
    _find_annotation_file,
    _find_class,
    _lines,
    _parse_int,
    _Resolver,
    _unknown_class,
)
from videodd.data.store import ClipStore

__all__ = [
    "MINIUCF_CLASSES",
    "index_miniucf",
    "index_ucf101",
    "miniucf_source",
    "ucf101_source",
]

# docs/ARCHITECTURE.md section 9: UCF101 split 1 restricted to these 50 classes (4,662 train / 1,861 test
# videos); label order.
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


# -- sources: each takes the layout options it needs plus the decoding options (base.DECODE_OPTIONS)
@register_dataset("ucf101", "UCF101, official ucfTrainTestlist splits 1-3 (--root, --split)",
                  default_spec="ucf-16x112-published")
def ucf101_source(out_dir: str | Path, *, root: str | None = None, annotations: str | None = None,
                  split: int | None = None, **decode: Any) -> tuple[ClipStore, ClipStore]:
    index = index_ucf101(_need(root, "--root", "ucf101"), split=split or 1, annotations=annotations)
    return _run("ucf101", index, out_dir, **_decode_fields(decode))


@register_dataset("miniucf", "MiniUCF: UCF101 split 1 restricted to its 50 classes (--root)",
                  default_spec="ucf-16x112-published")
def miniucf_source(out_dir: str | Path, *, root: str | None = None, annotations: str | None = None,
                   **decode: Any) -> tuple[ClipStore, ClipStore]:
    index = index_miniucf(_need(root, "--root", "miniucf"), annotations=annotations)
    return _run("miniucf", index, out_dir, **_decode_fields(decode))
