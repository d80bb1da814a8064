"""Parity component ``frames``: which frames the official loader reads, and the official resize-and-crop.

Sampling: the official ``distill_utils.dataset.miniUCF101.__getitem__`` (dataset.py:421-453; HMDB51 and
UCF101 are the same lines) runs on temporary folders of tiny JPEG frames ``frame000001.jpg`` ... of
several lengths, each frame a flat grey level = its 1-based number, so the pixels it returns say which
files it read. ``np.random.randint`` is replaced by a recorder that returns the lowest, then the highest
value of the range it is asked for, so the fixture holds, per length, the official skip, the randint range
(``start_low``, exclusive ``start_high``: 1-based frame numbers) and the 16 frame numbers of the first and
of the last start, read back from the returned pixels. It also records how often a start is drawn over two
reads of a training and of a test item (the training start is cached, dataset.py:432), and, for videos
too short, the error the official code raises.

Resize: ``distill_utils/resize_mydata.py`` is a script that calls cv2 (not a videodd dependency). It runs
here on one 240x320 frame with a stand-in ``cv2`` module whose ``resize`` returns a fixed seeded
160x120 image and records its arguments: the fixture holds the size the script asks for and the crop it
writes (``resize_output``), so the geometry (width/height order, crop offsets) is the official one; only
cv2's INTER_LINEAR pixels themselves are not compared.
"""

from __future__ import annotations

import os
import random
import runpy
import sys
import tempfile
import types
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from benchmarks.parity.common import OfficialCode, save_fixture

NAME = "frames"
LENGTHS = (17, 31, 32, 40, 48, 63, 64, 65, 100, 164)
TOO_SHORT = (15, 16)
FRAME_SIZE = (8, 8)  # (H, W) of the tiny test frames
RESIZE_SEED = 5
SOURCES = {
    "skip,start_low,start_high,frames_min,frames_max": "distill_utils/dataset.py:421-438 (miniUCF101.__getitem__)",
    "levels_min,levels_max": "distill_utils/dataset.py:398-419 (read_images), 451-453",
    "draws_train,draws_test": "distill_utils/dataset.py:389-390, 432-435 (self.start cache; a new start in test)",
    "resize_target,resize_output": "distill_utils/resize_mydata.py:5-6, 24-30",
}


class _Recorder:
    """Stand-in for ``np.random.randint(low, high)``: records the range, returns ``low`` or ``high - 1``."""

    def __init__(self) -> None:
        self.calls: list[tuple[int, int]] = []
        self.pick_high = False

    def __call__(self, low: int, high: int | None = None, *args: Any, **kwargs: Any) -> int:
        assert high is not None and not args and not kwargs, "the loader calls randint(low, high)"
        self.calls.append((int(low), int(high)))
        if low >= high:
            raise ValueError("low >= high")  # what numpy raises for an empty range
        return int(high) - 1 if self.pick_high else int(low)


@contextmanager
def _patched_randint(recorder: _Recorder):
    saved = np.random.randint
    np.random.randint = recorder
    try:
        yield
    finally:
        np.random.randint = saved


def _write_dataset(root: Path, lengths: tuple[int, ...]) -> None:
    """``root/jpegs_112/vL/frame%06d.jpg`` (flat grey = frame number) and ``root/ucf50_splits1.csv``."""
    rows = ["folder_name,label,split"]
    for n in lengths:
        folder = root / "jpegs_112" / f"v{n}"
        folder.mkdir(parents=True)
        for f in range(1, n + 1):
            Image.fromarray(np.full((*FRAME_SIZE, 3), f, dtype=np.uint8)).save(folder / f"frame{f:06d}.jpg",
                                                                              quality=100)
        rows += [f"v{n},c0,train", f"v{n},c0,test"]
    (root / "ucf50_splits1.csv").write_text("\n".join(rows) + "\n")


def _levels(x: torch.Tensor) -> list[int]:
    """Frame numbers of a (16, C, H, W) clip in [0, 1] (ToTensor stand-in): the flat grey of each frame."""
    return [int(round(float(f.mean()) * 255)) for f in x]


def _sampling(dataset: types.ModuleType, transform: Any) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    out: dict[str, list] = {k: [] for k in ("skip", "start_low", "start_high", "frames_min", "frames_max",
                                            "levels_min", "levels_max", "draws_train", "draws_test")}
    errors = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        _write_dataset(root, LENGTHS + TOO_SHORT)
        sets = {s: dataset.miniUCF101(str(root), split=s, transform=transform) for s in ("train", "test")}
        index = {n: i for i, n in enumerate(LENGTHS + TOO_SHORT)}  # the csv order
        random.seed(0)
        saved_random = random.random
        random.random = lambda: 0.0  # never flip (flip when > 0.5, dataset.py:400): frames stay in place
        try:
            for n in LENGTHS:
                rec = _Recorder()
                with _patched_randint(rec):
                    x_min, _ = sets["test"][index[n]]
                    frames_min = list(sets["test"].frames)
                    rec.pick_high = True
                    x_max, _ = sets["test"][index[n]]
                    frames_max = list(sets["test"].frames)
                    draws_test = len(rec.calls)
                    rec.calls.clear()
                    sets["train"][index[n]]
                    sets["train"][index[n]]
                    draws_train = len(rec.calls)
                (low, high), skip = rec.calls[0], frames_min[1] - frames_min[0]
                for key, value in (("skip", skip), ("start_low", low), ("start_high", high),
                                   ("frames_min", frames_min), ("frames_max", frames_max),
                                   ("levels_min", _levels(x_min)), ("levels_max", _levels(x_max)),
                                   ("draws_train", draws_train), ("draws_test", draws_test)):
                    out[key].append(value)
            for n in TOO_SHORT:
                try:  # numpy's own randint here: its error is part of the record
                    sets["test"][index[n]]
                    errors[str(n)] = "none"
                except Exception as err:  # noqa: BLE001 - what the official code raises is the record
                    errors[str(n)] = f"{type(err).__name__}: {err}"
        finally:
            random.random = saved_random
    tensors = {k: torch.tensor(v, dtype=torch.int64) for k, v in out.items()}
    tensors["lengths"] = torch.tensor(LENGTHS, dtype=torch.int64)
    return tensors, errors


def _resize(official: OfficialCode) -> dict[str, torch.Tensor]:
    """Run resize_mydata.py with a recording cv2 stand-in (see the module docstring)."""
    resized = np.random.default_rng(RESIZE_SEED).integers(0, 256, size=(120, 160, 3), dtype=np.uint8)
    calls: dict[str, Any] = {}

    def resize(img: np.ndarray, size: tuple[int, int], *args: Any, **kwargs: Any) -> np.ndarray:
        calls["resize"] = (tuple(size), args, kwargs, img.shape)
        assert tuple(size)[::-1] == resized.shape[:2], "cv2.resize takes (width, height)"
        return resized.copy()

    def imwrite(path: str, img: np.ndarray) -> bool:
        calls["written"] = np.array(img)
        return True

    cv2 = types.SimpleNamespace(imread=lambda p: np.zeros((240, 320, 3), np.uint8), resize=resize, imwrite=imwrite)
    cwd = os.getcwd()
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "path_to_mydata_images" / "v").mkdir(parents=True)
        (Path(tmp) / "path_to_mydata_images" / "v" / "frame000001.jpg").write_bytes(b"")  # imread is the stand-in
        saved = sys.modules.get("cv2")
        sys.modules["cv2"] = cv2  # type: ignore[assignment]
        try:
            os.chdir(tmp)
            runpy.run_path(str(official.root / "distill_utils" / "resize_mydata.py"), run_name="__main__")
        finally:
            os.chdir(cwd)
            if saved is None:
                sys.modules.pop("cv2", None)
            else:
                sys.modules["cv2"] = saved
    size, args, kwargs, _ = calls["resize"]
    assert not args and not kwargs, "resize_mydata uses cv2.resize's default interpolation (INTER_LINEAR)"
    return {"resize_input": torch.from_numpy(resized), "resize_target": torch.tensor(size, dtype=torch.int64),
            "resize_output": torch.from_numpy(calls["written"])}


def make(official: OfficialCode, out_dir: Path) -> Path:
    dataset = official.module("distill_utils.dataset")
    transform = dataset.transforms.Compose([dataset.transforms.ToTensor()])
    tensors, errors = _sampling(dataset, transform)
    tensors.update(_resize(official))
    for n, skip, low, high in zip(LENGTHS, tensors["skip"].tolist(), tensors["start_low"].tolist(),
                                  tensors["start_high"].tolist(), strict=True):
        print(f"  length {n:3d}: skip {skip}, randint({low}, {high}) -> starts {low}..{high - 1}")
    print(f"  too short: {errors}; resize target {tensors['resize_target'].tolist()}")
    return save_fixture(NAME, tensors, official, sources=SOURCES, out_dir=out_dir, lengths=list(LENGTHS),
                        frames=16, frame_gap=4, too_short=errors, frame_files="frame%06d.jpg, 1-based",
                        resize_seed=RESIZE_SEED, resize_interpolation="cv2 default (INTER_LINEAR), not compared",
                        flip="random.random() stubbed to 0.0: no flip (dataset.py:400-403)")
