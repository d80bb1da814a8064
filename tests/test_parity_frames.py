"""The published frame preparation (issue 27, point 5) against the official loader's fixture.

``tests/fixtures/parity/frames.safetensors`` is made by ``benchmarks/parity/components/frames.py`` from the
official ``distill_utils.dataset.miniUCF101.__getitem__`` and ``distill_utils/resize_mydata.py``; this test
needs neither. Official frame numbers are 1-based files (``frame000001.jpg``), videodd's indices 0-based.
The specs tested are the datasets' defaults, so a dataset that goes back to another framing fails here.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from parity import load_fixture
from videodd.data.datasets.base import resolve_spec
from videodd.data.decode import DecodeError, ShortVideoError, read_clip, sample_indices
from videofixtures import frame_level, pattern_frames, write_frames, write_video

DATASETS = ("miniucf", "hmdb51", "hmdb51-vdsd")


class Bounds:
    """An rng whose ``integers(low, high)`` records the range and returns ``low`` or ``high - 1``."""

    def __init__(self, high: bool) -> None:
        self.high, self.range = high, None

    def integers(self, low: int, high: int) -> int:
        self.range = (int(low), int(high))
        return int(high) - 1 if self.high else int(low)


@pytest.fixture(scope="module")
def official():
    tensors, meta = load_fixture("frames")
    return {k: v.tolist() for k, v in tensors.items()}, meta


def test_the_fixture_read_the_frames_it_says(official) -> None:
    t, _ = official
    assert t["levels_min"] == t["frames_min"] and t["levels_max"] == t["frames_max"]  # flat grey = frame number
    assert set(t["draws_train"]) == {1} and set(t["draws_test"]) == {2}  # train start cached, test drawn per read


@pytest.mark.parametrize("dataset", DATASETS)
def test_stride_and_start_range_match_the_official_loader(official, dataset: str) -> None:
    t, meta = official
    spec = resolve_spec(dataset)
    assert (spec.frames, spec.stride) == (meta["meta"]["frames"], meta["meta"]["frame_gap"])
    for i, n in enumerate(t["lengths"]):
        for high, key in ((False, "frames_min"), (True, "frames_max")):
            rng = Bounds(high)
            idx, start, stride, _ = sample_indices(n, spec, "random", rng)
            # official randint(low, high) over 1-based files = 0-based integers(low - 1, high - 1)
            assert rng.range == (t["start_low"][i] - 1, t["start_high"][i] - 1), n
            assert stride == t["skip"][i], n
            assert (idx + 1).tolist() == t[key][i], (n, key)
        centre = sample_indices(n, spec, "center", None)[1]
        assert centre == (t["start_high"][i] - 1 - 1) // 2  # the middle of the official start range


def test_published_sampling_policies(official) -> None:
    """Train start drawn once (cached at prepare), test views at random starts, 3 of them (the official
    protocol passes the test set 3 times)."""
    for dataset in DATASETS:
        spec = resolve_spec(dataset)
        assert (spec.train_sampling, spec.test_sampling, spec.test_views) == ("cached_random", "random", 3)


@pytest.mark.parametrize("dataset", DATASETS)
def test_too_short_videos_fail_as_the_official_loader_does(official, tmp_path: Path, dataset: str) -> None:
    _, meta = official
    spec = resolve_spec(dataset)
    for n, error in meta["meta"]["too_short"].items():
        assert error != "none"  # the official loader cannot read it either
        with pytest.raises(ShortVideoError):
            sample_indices(int(n), spec, "center", None)
        folder = write_frames(tmp_path / f"v{n}", pattern_frames(int(n), 16, 16), template="frame{:06d}.jpg")
        with pytest.raises(DecodeError, match="too short"):
            read_clip(folder, spec)


def test_resize_and_crop_geometry_match_resize_mydata(official, tmp_path: Path) -> None:
    """A 160x120 frame is what cv2.resize returned in the official script; its crop must be the one it wrote."""
    t, _ = official
    spec = resolve_spec("miniucf")
    assert spec.resize == tuple(t["resize_target"]) and spec.resize_short is None
    resized = np.asarray(t["resize_input"], dtype=np.uint8)  # (120, 160, 3)
    for f in range(1, 18):
        Image.fromarray(resized).save(tmp_path / f"frame{f:06d}.png")  # lossless
    clip, info = read_clip(tmp_path, spec)
    assert info.source_size == (160, 120)
    assert np.array_equal(clip[0], np.asarray(t["resize_output"], dtype=np.uint8))


def test_frame_folders_yield_the_official_frames(official, tmp_path: Path) -> None:
    t, _ = official
    spec = resolve_spec("miniucf")
    for i, n in enumerate(t["lengths"]):
        folder = write_frames(tmp_path / f"v{n}", pattern_frames(n, 24, 32), template="frame{:06d}.jpg")
        for high, key in ((False, "frames_min"), (True, "frames_max")):
            clip, info = read_clip(folder, spec, sampling="random", rng=Bounds(high))
            assert [frame_level(f) for f in clip] == [(f - 1) % 30 for f in t[key][i]], (n, key)
            assert clip.shape == (16, 112, 112, 3) and info.stride == t["skip"][i]


@pytest.mark.parametrize("n", [40, 64, 100])
def test_encoded_videos_yield_the_official_frames(official, tmp_path: Path, n: int) -> None:
    t, _ = official
    i = t["lengths"].index(n)
    spec = resolve_spec("hmdb51")
    path = write_video(tmp_path / f"v{n}.mp4", pattern_frames(n), options={"crf": "12"})
    for high, key in ((False, "frames_min"), (True, "frames_max")):
        clip, info = read_clip(path, spec, sampling="random", rng=Bounds(high))
        assert info.num_frames == n and info.stride == t["skip"][i]
        assert [frame_level(f) for f in clip] == [(f - 1) % 30 for f in t[key][i]], (n, key)
