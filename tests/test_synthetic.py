"""The embedded synth-actions benchmark: determinism, shapes, class structure, motion/appearance
statistics and the stores it writes."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from videodd.config import ConfigError
from videodd.data.sources import SOURCES
from videodd.data.store import ClipStore
from videodd.data.synthetic import (
    MOTIONS,
    SynthActionsConfig,
    class_table,
    generate_synth_actions,
    max_classes,
    prepare_synth_actions,
)

SMALL = SynthActionsConfig(num_classes=4, frames=4, size=16, train_per_class=3, test_per_class=2, seed=5)


def _by_name(cfg: SynthActionsConfig, split: str = "train") -> tuple[dict[str, np.ndarray], list[str]]:
    """Clips of each class as float [0, 1] arrays ``(n, T, H, W, 3)``, keyed by class name."""
    data = generate_synth_actions(cfg, split)  # type: ignore[arg-type]
    clips = data.clips.astype(np.float64) / 255
    return {name: clips[data.labels == c] for c, name in enumerate(data.classes)}, data.classes


def _colour_weight(clips: np.ndarray, colour: str) -> np.ndarray:
    """How strongly each pixel shows the colour family (0 elsewhere), ``(n, T, H, W)``."""
    r, g, b = clips[..., 0], clips[..., 1], clips[..., 2]
    excess = {"red": r - np.maximum(g, b), "green": g - np.maximum(r, b),
              "blue": b - np.maximum(r, g)}[colour]
    return np.clip(excess - 0.25, 0, None)


def _com_y(weight: np.ndarray) -> np.ndarray:
    """Per-frame vertical centre of mass (fraction of the frame), ``(n, T)``."""
    h = weight.shape[2]
    ys = (np.arange(h) + 0.5) / h
    mass = weight.sum(axis=(2, 3)) + 1e-9
    return (weight.sum(axis=3) * ys).sum(axis=2) / mass


def _slope(series: np.ndarray) -> np.ndarray:
    """Least-squares slope over time of each row of ``(n, T)`` (units per clip)."""
    t = np.linspace(-0.5, 0.5, series.shape[1])
    return (series - series.mean(1, keepdims=True)) @ t / (t @ t)


# -- determinism -----------------------------------------------------------------------------------
def test_same_seed_gives_identical_bytes():
    a = generate_synth_actions(SMALL, "train")
    b = generate_synth_actions(dataclasses.replace(SMALL), "train")
    assert a.clips.tobytes() == b.clips.tobytes()
    assert np.array_equal(a.labels, b.labels) and a.classes == b.classes and a.source_ids == b.source_ids


def test_different_seed_and_split_differ():
    a = generate_synth_actions(SMALL, "train").clips
    other_seed = generate_synth_actions(dataclasses.replace(SMALL, seed=6), "train").clips
    test = generate_synth_actions(SMALL, "test").clips
    assert a.shape == other_seed.shape and not np.array_equal(a, other_seed)
    assert not np.array_equal(a[: len(test)], test)
    # no test clip is a copy of a training clip
    flat_a = {c.tobytes() for c in a}
    assert not any(c.tobytes() in flat_a for c in test)


def test_clip_depends_only_on_config_split_and_index():
    """More clips per class only appends clips; the leading clips are byte-identical."""
    few = generate_synth_actions(SMALL, "train")
    more = generate_synth_actions(dataclasses.replace(SMALL, train_per_class=5), "train")
    n = len(few.labels)
    assert np.array_equal(more.clips[:n], few.clips) and np.array_equal(more.labels[:n], few.labels)
    assert more.source_ids[:n] == few.source_ids


# -- shapes and classes ----------------------------------------------------------------------------
def test_shapes_dtypes_and_balanced_labels():
    for split, per in (("train", 3), ("test", 2)):
        d = generate_synth_actions(SMALL, split)
        assert d.clips.dtype == np.uint8 and d.clips.shape == (4 * per, 4, 16, 16, 3)
        assert d.labels.dtype == np.int64 and np.array_equal(np.bincount(d.labels), [per] * 4)
        assert d.source_ids[0] == f"{split}/000000" and len(set(d.source_ids)) == len(d.labels)
        assert d.classes == SMALL.classes
        assert d.clips.std() > 10  # not blank


def test_default_class_list_and_pairs():
    classes = class_table(10)
    names = [c.name for c in classes]
    assert names[:4] == ["red-disk-up", "red-disk-down", "blue-disk-up", "blue-disk-down"]
    assert SynthActionsConfig().classes == names
    motion_only = [(a, b) for i, a in enumerate(classes) for b in classes[i + 1 :]
                   if (a.colour, a.shape) == (b.colour, b.shape)]
    appearance_only = [(a, b) for i, a in enumerate(classes) for b in classes[i + 1 :]
                       if a.motion == b.motion]
    assert len(motion_only) >= 4 and len(appearance_only) >= 4
    assert any(a.colour != b.colour for a, b in appearance_only)  # colour-only pairs
    assert any(a.shape != b.shape for a, b in appearance_only)  # shape-only pairs
    # motions are invariant to a horizontal flip: nothing left/right or (anti)clockwise
    assert not any(w in m for m in MOTIONS for w in ("left", "right", "clockwise", "cw"))


def test_fifty_classes_extend_the_list():
    big = class_table(50)
    names = [c.name for c in big]
    assert len(set(names)) == 50 and names[:10] == SynthActionsConfig().classes
    assert len({c.name for c in class_table(max_classes())}) == max_classes()
    cfg = SynthActionsConfig(num_classes=50, frames=4, size=16, train_per_class=1, test_per_class=1)
    d = generate_synth_actions(cfg, "train")
    assert d.clips.shape == (50, 4, 16, 16, 3) and d.classes == names
    assert np.array_equal(d.labels, np.arange(50))


# -- motion-only and appearance-only pairs ---------------------------------------------------------
def test_up_down_differ_only_in_motion():
    """``red-disk-up`` reversed in time looks like ``red-disk-down``; single frames look alike."""
    cfg = SynthActionsConfig(num_classes=2, train_per_class=60)
    clips, _ = _by_name(cfg)
    up, down = clips["red-disk-up"], clips["red-disk-down"]
    y_up, y_down = _com_y(_colour_weight(up, "red")), _com_y(_colour_weight(down, "red"))
    s_up, s_down = _slope(y_up), _slope(y_down)
    s_rev = _slope(y_up[:, ::-1])
    assert s_up.mean() < -0.1 and s_down.mean() > 0.1  # opposite vertical motion (y points down)
    assert (s_up < 0).mean() > 0.85 and (s_down > 0).mean() > 0.85
    assert abs(s_rev.mean() - s_down.mean()) < 0.05  # reversed "up" moves like "down"
    # appearance of single frames: the red area and colour of the middle frames are alike,
    # and the middle frame's vertical position has the same distribution
    mid = cfg.frames // 2
    red_area = [(_colour_weight(c[:, mid], "red") > 0).mean() for c in (up, down)]
    assert abs(red_area[0] - red_area[1]) < 0.25 * max(red_area)
    assert abs(up[:, mid].mean(axis=(0, 1, 2)) - down[:, mid].mean(axis=(0, 1, 2))).max() < 0.05
    assert abs(np.median(y_up[:, mid]) - np.median(y_down[:, mid])) < 0.08
    # ... while the first frames are clearly apart
    assert np.median(y_up[:, 0]) - np.median(y_down[:, 0]) > 0.15


def test_red_blue_differ_only_in_appearance():
    """``red-disk-up`` and ``blue-disk-up``: the same motion, different colour."""
    cfg = SynthActionsConfig(num_classes=4, train_per_class=60)
    clips, _ = _by_name(cfg)
    red, blue = clips["red-disk-up"], clips["blue-disk-up"]
    s_red = _slope(_com_y(_colour_weight(red, "red")))
    s_blue = _slope(_com_y(_colour_weight(blue, "blue")))
    assert s_red.mean() < -0.1 and s_blue.mean() < -0.1 and abs(s_red.mean() - s_blue.mean()) < 0.05
    red_area = {name: (_colour_weight(c, "red") > 0).mean() for name, c in (("red", red), ("blue", blue))}
    blue_area = {name: (_colour_weight(c, "blue") > 0).mean() for name, c in (("red", red), ("blue", blue))}
    assert red_area["red"] > 3 * red_area["blue"] and blue_area["blue"] > 3 * blue_area["red"]


def test_grow_shrink_are_time_reverses_and_shapes_differ():
    """Without nuisances: ``grow`` reversed matches ``shrink``; square and triangle differ in fill."""
    clean = dict(noise_std=0.0, background_strength=0.0, distractors_min=0, distractors_max=0,
                 occlusion_prob=0.0, brightness_jitter=0.0, position_jitter=0.0)
    cfg = SynthActionsConfig(num_classes=8, train_per_class=30, **clean)
    clips, _ = _by_name(cfg)
    names = ("green-square-grow", "green-square-shrink", "green-triangle-grow")
    area = {k: (_colour_weight(clips[k], "green") > 0).sum(axis=(2, 3)).astype(float) for k in names}
    log_slope = {k: _slope(np.log(v + 1)) for k, v in area.items()}
    assert log_slope["green-square-grow"].mean() > 0.5 and log_slope["green-square-shrink"].mean() < -0.5
    rev = _slope(np.log(area["green-square-grow"][:, ::-1] + 1))
    assert abs(rev.mean() - log_slope["green-square-shrink"].mean()) < 0.2
    assert abs(log_slope["green-square-grow"].mean() - log_slope["green-triangle-grow"].mean()) < 0.2

    def fill(c: np.ndarray) -> float:
        """Mean share of the object's bounding box that it covers (square ~1, triangle ~0.5)."""
        out = []
        for mask in (_colour_weight(c, "green") > 0.2).reshape(-1, c.shape[2], c.shape[3]):
            ys, xs = np.nonzero(mask)
            if len(ys) >= 16:
                out.append(len(ys) / ((np.ptp(ys) + 1) * (np.ptp(xs) + 1)))
        return float(np.mean(out))

    assert fill(clips["green-square-grow"]) > fill(clips["green-triangle-grow"]) + 0.2


# -- stores and config -----------------------------------------------------------------------------
def test_prepare_writes_two_stores(tmp_path):
    train, test = prepare_synth_actions(tmp_path / "synth", SMALL)
    train2, test2 = ClipStore(tmp_path / "synth" / "train"), ClipStore(tmp_path / "synth" / "test")
    assert len(train2) == 12 and len(test2) == 8 and train2.classes == test2.classes == SMALL.classes
    assert train2.meta.dataset == test2.meta.dataset == "synth-actions"
    assert (train2.meta.split, test2.meta.split) == ("train", "test")
    assert test2.meta.mean == train2.meta.mean and test2.meta.std == train2.meta.std
    assert train2.spec.shape == (4, 16, 16) and train2.spec.stride == 1
    assert train2.spec.train_sampling == "center"
    assert train2.meta.extra["generator"] == dataclasses.asdict(SMALL)
    assert json.loads(json.dumps(train2.meta.extra["generator"])) == dataclasses.asdict(SMALL)
    assert np.array_equal(np.asarray(train2.clips), generate_synth_actions(SMALL, "train").clips)
    train2.verify()
    test2.verify()
    assert train2.batch([0, 1]).shape == (2, 3, 4, 16, 16)
    # the registered source goes through the same path, with CLI-style None options ignored
    tr, _ = SOURCES.get("synth-actions")(tmp_path / "src", num_classes=4, frames=4, size=16, seed=5,
                                         train_per_class=3, test_per_class=None)
    assert tr.fingerprint == train.fingerprint


@pytest.mark.parametrize(
    "changes",
    [
        {"num_classes": 1},
        {"num_classes": max_classes() + 1},
        {"frames": 2},
        {"size": 8},
        {"train_per_class": 0},
        {"test_per_class": 0},
        {"seed": -1},
        {"noise_std": -0.1},
        {"distractors_min": 3, "distractors_max": 1},
        {"distractors_max": 9},
        {"speed_min": 0.0},
        {"speed_min": 1.0, "speed_max": 0.5},
        {"object_size_min": 0.2, "object_size_max": 0.1},
        {"occlusion_prob": 1.5},
        {"noise_std": float("nan")},
        {"frames": 8.0},
        {"seed": np.int64(3)},
    ],
)
def test_invalid_config_raises(changes):
    with pytest.raises(ValueError, match="SynthActionsConfig"):
        SynthActionsConfig(**changes)


def test_unknown_field_and_split_raise(tmp_path):
    with pytest.raises(ConfigError, match="unknown field"):
        SOURCES.get("synth-actions")(tmp_path / "x", colours=3)
    with pytest.raises(ValueError, match="split"):
        generate_synth_actions(SMALL, "val")  # type: ignore[arg-type]
