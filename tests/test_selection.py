"""Feature-based selectors (herding, k-center): hand-checked picks, determinism, CLI, checkpoints."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import make_tiny_stores
from videodd.cli import main
from videodd.data.store import StoreError
from videodd.distilled import DistilledSet
from videodd.models import create_model, resolve_model
from videodd.seeding import make_generator
from videodd.selection import SELECTORS
from videodd.selection.herding import herding_order
from videodd.selection.kcenter import kcenter_order
from videodd.teachers import FeatureOptions, embed_all, feature_network, save_network, store_features

FAST = FeatureOptions(feature_epochs=1)


def _col(values: list[float]) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float32)[:, None]  # (n, 1): 1-D features


# -- the pure per-class functions ------------------------------------------------------------


def test_herding_order_by_hand():
    # mean 3.2; targets j*mu - sum(picked): 3.2 -> 3, 3.4 -> 2, 4.6 -> 1 (3.6 < 4.6 for 0), 6.8 -> 10, 0 -> 0
    assert herding_order(_col([0, 1, 2, 3, 10]), 5).tolist() == [3, 2, 1, 4, 0]
    assert herding_order(_col([0, 1, 2, 3, 10]), 2).tolist() == [3, 2]  # a prefix of the longer order
    # square corners + centre: the centre first, then opposite corners in pairs (ties -> lowest index)
    square = torch.tensor([[0.0, 0.0], [2.0, 0.0], [0.0, 2.0], [2.0, 2.0], [1.0, 1.0]])
    assert herding_order(square, 5).tolist() == [4, 0, 3, 1, 2]


def test_kcenter_order_by_hand():
    # mean 13/6 -> first centre 2 (index 5); then the farthest from the nearest centre each time:
    # 9 (7 away), -4 (6 from 2), 5 (3 from 2), 0 (2 from 2; 1 is only 1 from 2)
    assert kcenter_order(_col([5, -4, 0, 9, 1, 2]), 5).tolist() == [5, 3, 1, 0, 2]
    assert kcenter_order(_col([0, 1, 2, 3, 10]), 5).tolist() == [3, 4, 0, 1, 2]  # 1 and 2 tie: lowest index
    square = torch.tensor([[0.0, 0.0], [2.0, 0.0], [0.0, 2.0], [2.0, 2.0], [1.0, 1.0]])
    # the centre, then all corners are sqrt(2) from it (ties -> corner 0); the other corners stay sqrt(2) from the
    # centre, nearer than from corner 0, so they tie again -> corner 1
    assert kcenter_order(square, 3).tolist() == [4, 0, 1]


@pytest.mark.parametrize("order", [herding_order, kcenter_order])
def test_picks_are_distinct_even_for_duplicate_features(order):
    assert sorted(order(torch.ones(4, 3), 4).tolist()) == [0, 1, 2, 3]
    feats = torch.randn(30, 8, generator=make_generator(0))
    picks = order(feats, 30)
    assert picks.dtype == torch.int64 and sorted(picks.tolist()) == list(range(30))
    with pytest.raises(ValueError, match="cannot pick 31 of 30"):
        order(feats, 31)


def test_herding_keeps_the_selected_mean_closer_than_random():
    feats = torch.randn(200, 16, generator=make_generator(1))
    mu = feats.mean(0)
    herd = (feats[herding_order(feats, 10)].mean(0) - mu).norm()
    gen = make_generator(2)
    rand = [(feats[torch.randperm(200, generator=gen)[:10]].mean(0) - mu).norm() for _ in range(20)]
    assert herd < min(rand)


def test_kcenter_covers_better_than_random():
    feats = torch.randn(200, 4, generator=make_generator(1))

    def radius(idx: torch.Tensor) -> float:
        return float(torch.cdist(feats, feats[idx]).min(1).values.max())  # farthest point from its centre

    gen = make_generator(2)
    assert radius(kcenter_order(feats, 10)) < min(radius(torch.randperm(200, generator=gen)[:10]) for _ in range(20))


# -- the selectors on a store ----------------------------------------------------------------


@pytest.mark.parametrize("name", ["herding", "kcenter"])
def test_ipc_larger_than_a_class_is_refused(tiny_stores, name):
    train, _ = tiny_stores
    with pytest.raises(StoreError, match="fewer than ipc=7"):
        SELECTORS.get(name)(FAST).select(train, 7, make_generator(0), device="cpu")


def test_feature_model_auto_follows_the_evaluation_protocol(tiny_stores):
    train, _ = tiny_stores
    assert resolve_model(FeatureOptions().feature_model, train.video_shape) == "convnet3d-s-bn"  # 32 px
    assert resolve_model(FeatureOptions(feature_model="convnet3d-s").feature_model, train.video_shape) == "convnet3d-s"
    with pytest.raises(ValueError):
        FeatureOptions(feature_epochs=0)


def test_selectors_are_deterministic_grouped_and_match_the_pure_functions(tiny_stores):
    train, _ = tiny_stores
    feats = store_features(train, FAST, make_generator(3))
    assert feats.shape[0] == len(train) and feats.ndim == 2 and torch.isfinite(feats).all()
    assert torch.equal(feats, store_features(train, FAST, make_generator(3)))  # same seed, same features
    for name, order in (("herding", herding_order), ("kcenter", kcenter_order)):
        select = SELECTORS.get(name)(FAST).select
        idx = select(train, 3, make_generator(3), device="cpu")
        assert idx.dtype == np.int64 and train.labels[idx].tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]
        assert np.array_equal(idx, select(train, 3, make_generator(3), device="cpu"))
        expected = np.concatenate([train.class_indices(c)[order(feats[train.class_indices(c)], 3).numpy()]
                                   for c in range(train.num_classes)])
        assert np.array_equal(idx, expected)


# -- end to end through the CLI ----------------------------------------------------------------


@pytest.fixture()
def data_dir(tmp_path):
    make_tiny_stores(tmp_path / "data")
    return tmp_path / "data"


@pytest.mark.parametrize("method", ["herding", "kcenter"])
def test_cli_distill_selects_real_clips(data_dir, tmp_path, capsys, method):
    run = tmp_path / method
    assert main(["distill", "--method", method, "--ipc", "2", "--data", str(data_dir), "--out", str(run),
                 "--set", "selector.feature_epochs=1", "--quiet", "--device", "cpu"]) == 0
    d = DistilledSet.load(run / "distilled.safetensors")
    assert d.manifest.kind == "real-clips" and d.manifest.method == method
    assert d.labels.tolist() == [0, 0, 1, 1, 2, 2]
    assert d.manifest.config["selector"] == {"feature_epochs": 1}
    ids = d.manifest.info["source_ids"]
    assert len(set(ids)) == 6
    from videodd.data.store import ClipStore

    train = ClipStore(data_dir / "train")
    idx = [int(s.split("/")[1]) for s in ids]
    assert torch.equal(d.tensors["clips"], torch.from_numpy(train.clips[idx].copy()))
    assert main(["distill", "--method", method, "--ipc", "7", "--data", str(data_dir), "--out",
                 str(tmp_path / "big"), "--quiet"]) == 2
    assert "fewer than ipc=7" in capsys.readouterr().err
    assert main(["distill", "--method", method, "--data", str(data_dir), "--out", str(tmp_path / "x"),
                 "--set", "selector.feature_epoch=1", "--quiet"]) == 2
    assert "valid fields" in capsys.readouterr().err


def test_cli_checkpoint_loads_a_saved_feature_model(data_dir, tmp_path, capsys):
    from videodd.data.store import ClipStore

    train = ClipStore(data_dir / "train")
    model = feature_network(train, FAST, make_generator(5))
    path = tmp_path / "feature-model.safetensors"
    save_network(model, path)
    feats = embed_all(model, train)
    expected = np.concatenate([train.class_indices(c)[kcenter_order(feats[train.class_indices(c)], 2).numpy()]
                               for c in range(train.num_classes)])
    for seed in ("0", "9"):  # loaded weights: nothing random is left, the seed does not matter
        run = tmp_path / f"run{seed}"
        assert main(["distill", "--method", "kcenter", "--ipc", "2", "--seed", seed, "--data", str(data_dir),
                     "--out", str(run), "--set", f"selector.checkpoint={path}", "--quiet"]) == 0
        ids = DistilledSet.load(run / "distilled.safetensors").manifest.info["source_ids"]
        assert [int(s.split("/")[1]) for s in ids] == expected.tolist()

    # weights of another network (no batch-norm keys) and of another class count: clear errors
    wrong = tmp_path / "wrong.safetensors"
    save_network(create_model("convnet3d-s", 3, train.video_shape), wrong)
    other = tmp_path / "other-classes.safetensors"
    save_network(create_model("convnet3d-s-bn", 5, train.video_shape), other)
    cases = [(wrong, "missing keys"), (other, "shape mismatches"), (tmp_path / "nope.safetensors", "no such")]
    for bad, message in cases:
        assert main(["distill", "--method", "herding", "--data", str(data_dir), "--out", str(tmp_path / "bad"),
                     "--set", f"selector.checkpoint={bad}", "--quiet"]) == 2
        err = capsys.readouterr().err
        assert bad.name in err and message in err and "Traceback" not in err
    assert main(["distill", "--method", "herding", "--data", str(data_dir), "--out", str(tmp_path / "ok"), "--quiet",
                 "--set", f"selector.checkpoint={wrong}", "--set", "selector.feature_model=convnet3d-s"]) == 0


def test_a_file_that_is_not_safetensors_is_refused(tiny_stores, tmp_path):
    from videodd.checkpoint import CheckpointError
    from videodd.teachers import load_network

    train, _ = tiny_stores
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"\x00" * 7)
    with pytest.raises(CheckpointError, match="garbage.safetensors: not a readable safetensors"):
        load_network(create_model("convnet3d-s-bn", 3, train.video_shape), garbage)


@pytest.mark.parametrize("name", ["random", "kmeans", "dpp", "herding", "kcenter"])
def test_every_selector_picks_among_clips_held_in_memory(tiny_stores, name):
    """Generated candidates are not a ClipStore: selectors take any labelled clip source, and pick the
    same clips from an in-memory copy of a store as from the store itself."""
    from videodd.data.clips import InMemoryClips

    train, _ = tiny_stores
    memory = InMemoryClips(train.raw(np.arange(len(train))), train.labels_tensor(), train.classes, train.meta.mean,
                           train.meta.std, train.spec, name="candidates")
    selector = SELECTORS.get(name)(FAST if name in ("herding", "kcenter") else None)
    picked = selector.select(memory, 2, make_generator(4))
    assert picked.dtype == np.int64 and memory.labels[picked].tolist() == [0, 0, 1, 1, 2, 2]
    assert np.array_equal(picked, selector.select(train, 2, make_generator(4)))
    with pytest.raises(StoreError, match="<candidates>: classes with fewer than ipc=9"):
        selector.select(memory, 9, make_generator(4))
    with pytest.raises(StoreError, match="uint8"):
        InMemoryClips(memory.clips.float(), train.labels_tensor(), train.classes, train.meta.mean, train.meta.std,
                      train.spec)
