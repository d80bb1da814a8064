"""synth-motion, the second embedded benchmark: deterministic, motion-only classes with time-reversed twins."""

from __future__ import annotations

import numpy as np
import pytest

from videodd.cli import main
from videodd.data.store import ClipStore
from videodd.data.synth_motion import CLASSES, SynthMotionConfig, generate_synth_motion, render_clip

SMALL = SynthMotionConfig(train_per_class=2, test_per_class=1)
STILL = dict(noise_std=0.0, background_drift=0.0, camera_shake=0.0, idle_drift=0.0)  # only the class moves


def test_clips_are_deterministic_interleaved_and_splits_differ():
    clips, labels, ids = generate_synth_motion(SMALL, "train")
    assert clips.shape == (16, 8, 32, 32, 3) and clips.dtype == np.uint8
    assert labels.tolist() == list(range(8)) * 2 and ids[3] == "train/000003"
    again, _, _ = generate_synth_motion(SMALL, "train")
    assert np.array_equal(clips, again)
    test, _, _ = generate_synth_motion(SMALL, "test")
    assert not np.array_equal(clips[:8], test)


@pytest.mark.parametrize("pair", [("spin-cw", "spin-ccw"), ("zoom-in", "zoom-out")])
def test_twins_are_each_others_time_reversal(pair):
    """With the nuisances that move still, a class's clip played backwards is its twin's clip from the
    same draws: nothing but the order of the frames tells them apart."""
    cfg = SynthMotionConfig(**STILL)
    a, b = (render_clip(cfg, CLASSES.index(name), np.random.default_rng(5)) for name in pair)
    assert np.array_equal(a[::-1], b) and not np.array_equal(a, b)


def test_motion_moves_the_acting_element():
    cfg = SynthMotionConfig(**STILL)
    clip = render_clip(cfg, CLASSES.index("speed-up"), np.random.default_rng(1)).astype(np.int16)
    steps = np.abs(np.diff(clip, axis=0)).mean(axis=(1, 2, 3))  # (T-1,) mean change per frame step
    assert steps[-1] > 2 * steps[0] > 0  # accelerating: the last step changes more pixels than the first


def test_config_is_validated():
    with pytest.raises(ValueError, match="num_classes"):
        SynthMotionConfig(num_classes=9)


def test_prepare_writes_the_stores(tmp_path, capsys):
    assert main(["prepare", "synth-motion", "--out", str(tmp_path), "--train-per-class", "2",
                 "--test-per-class", "1"]) == 0
    train, test = ClipStore(tmp_path / "train"), ClipStore(tmp_path / "test")
    assert train.meta.dataset == "synth-motion" and train.classes == list(CLASSES) and len(test) == 8
    assert test.meta.mean == train.meta.mean
    assert main(["prepare", "synth-motion", "--out", str(tmp_path / "x"), "--root", "nowhere"]) == 2
    assert "does not use --root" in capsys.readouterr().err
