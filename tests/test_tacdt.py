"""TAC-DT: appearance + frame-difference features, k-means per class, the member nearest each centre."""

from __future__ import annotations

import numpy as np
import torch

from conftest import TINY_SPEC
from videodd.data.store import write_store
from videodd.seeding import make_generator
from videodd.selection import SELECTORS
from videodd.selection.tacdt import TACDTOptions, frame_differences


def test_frame_differences_by_hand():
    x = torch.tensor([0.0, 1.0, 3.0, 6.0]).view(1, 1, 4, 1, 1)
    assert frame_differences(x).flatten().tolist() == [1.0, 1.0, 2.0, 3.0]
    assert torch.equal(frame_differences(torch.ones(2, 3, 1, 2, 2)), torch.zeros(2, 3, 1, 2, 2))


def test_dynamics_split_clips_by_motion(tmp_path):
    """One class: a red or green square, still (clips 0-3) or moving down (4-7), on a fixed background.
    Weighted in, the dynamics put one still and one moving clip among the two picks at IPC 2, for every
    seed; appearance alone (w = 0) does not (it splits by colour)."""
    t, s = TINY_SPEC.frames, TINY_SPEC.size
    rng = np.random.default_rng(0)
    clips = np.zeros((8, t, s, s, 3), dtype=np.uint8)
    for i in range(8):
        clips[i] = rng.integers(0, 20, size=(1, s, s, 3))  # one background for every frame
        for f in range(t):
            y = 10 if i < 4 else 4 + 4 * f
            clips[i, f, y : y + 8, 10:18, 0 if i % 2 else 1] = 220  # odd clips red, even green
    store = write_store(tmp_path / "s", clips, np.zeros(8, dtype=np.int64), dataset="t", split="train",
                        classes=["a"], spec=TINY_SPEC)

    def split_by_motion(w: float) -> list[bool]:
        picks = [SELECTORS.get("tacdt")(TACDTOptions(dynamics_weight=w)).select(store, 2, make_generator(g))
                 for g in range(8)]
        return [len({int(p) < 4 for p in pair}) == 2 for pair in picks]

    assert all(split_by_motion(20.0))
    assert not all(split_by_motion(0.0))
    a = SELECTORS.get("tacdt")().select(store, 2, make_generator(0))
    assert np.array_equal(a, SELECTORS.get("tacdt")().select(store, 2, make_generator(0)))  # seeded
