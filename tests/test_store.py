import json

import numpy as np
import pytest
import torch

from conftest import TINY_SPEC, tiny_clips
from videodd.data.spec import ClipSpec, get_clip_spec
from videodd.data.store import ClipStore, StoreError, compute_mean_std, normalize_uint8, write_store
from videodd.registry import UnknownNameError


def test_round_trip_and_normalization(tmp_path):
    clips, labels = tiny_clips(3, 4, seed=0)
    store = write_store(tmp_path / "s", clips, labels, dataset="tiny", split="train", classes=["a", "b", "c"],
                        spec=TINY_SPEC)
    again = ClipStore(tmp_path / "s")
    assert isinstance(again.clips, np.memmap)  # opened lazily, not loaded
    assert np.array_equal(np.asarray(again.clips), clips) and np.array_equal(again.labels, labels)
    assert again.video_shape == (3, 4, 32, 32) and again.num_classes == 3
    # mean/std in [0,1] units against a float64 reference
    ref = clips.reshape(-1, 3).astype(np.float64) / 255
    assert np.allclose(store.meta.mean, ref.mean(0)) and np.allclose(store.meta.std, ref.std(0))
    x = again.batch([5, 0])
    manual = (torch.from_numpy(clips[[5, 0]]).permute(0, 4, 1, 2, 3).double() / 255
              - torch.tensor(ref.mean(0)).view(1, 3, 1, 1, 1)) / torch.tensor(ref.std(0)).view(1, 3, 1, 1, 1)
    assert x.shape == (2, 3, 4, 32, 32) and x.dtype == torch.float32
    assert torch.allclose(x.double(), manual, atol=1e-5)
    again.verify()


def test_mean_std_chunked_equals_whole():
    clips, _ = tiny_clips(2, 5, seed=3)
    a = compute_mean_std(clips, chunk=3)
    b = compute_mean_std(clips, chunk=1000)
    assert np.allclose(a, b)


def test_fingerprint_detects_edits(tmp_path):
    clips, labels = tiny_clips(2, 3, seed=0)
    write_store(tmp_path / "s", clips, labels, dataset="t", split="train", classes=["a", "b"], spec=TINY_SPEC)
    arr = np.load(tmp_path / "s" / "clips.npy", mmap_mode="r+")
    arr[0, 0, 0, 0, 0] ^= 1
    arr.flush()
    with pytest.raises(StoreError, match="fingerprint"):
        ClipStore(tmp_path / "s").verify()


def test_missing_and_bad_files_name_the_file(tmp_path):
    with pytest.raises(StoreError, match="no such ClipStore"):
        ClipStore(tmp_path / "nope")
    clips, labels = tiny_clips(2, 3, seed=0)
    write_store(tmp_path / "s", clips, labels, dataset="t", split="train", classes=["a", "b"], spec=TINY_SPEC)
    (tmp_path / "s" / "labels.npy").unlink()
    with pytest.raises(StoreError, match="labels.npy: missing"):
        ClipStore(tmp_path / "s")
    write_store(tmp_path / "m", clips, labels, dataset="t", split="train", classes=["a", "b"], spec=TINY_SPEC)
    meta = json.loads((tmp_path / "m" / "meta.json").read_text())
    meta["spec"]["frames"] = 8
    (tmp_path / "m" / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(StoreError, match="does not match the manifest"):
        ClipStore(tmp_path / "m")
    (tmp_path / "m" / "meta.json").write_text("{not json")
    with pytest.raises(StoreError, match="meta.json: unreadable"):
        ClipStore(tmp_path / "m")


def test_write_validates_input(tmp_path):
    clips, labels = tiny_clips(2, 3, seed=0)
    with pytest.raises(StoreError, match="spec says"):
        write_store(tmp_path / "s", clips, labels, dataset="t", split="train", classes=["a", "b"],
                    spec=ClipSpec(frames=8, size=32))
    with pytest.raises(StoreError, match="labels must be in"):
        write_store(tmp_path / "s", clips, labels + 5, dataset="t", split="train", classes=["a", "b"], spec=TINY_SPEC)
    assert not (tmp_path / "s").exists()  # nothing half-written


def test_check_compatible_says_what_differs(tiny_stores):
    train, _ = tiny_stores
    with pytest.raises(StoreError, match="classes differ"):
        train.check_compatible(classes=["class0", "class1", "zebra"], spec=train.spec, what="set")
    with pytest.raises(StoreError, match="different order"):
        train.check_compatible(classes=list(reversed(train.classes)), spec=train.spec, what="set")
    with pytest.raises(StoreError, match="clip shape"):
        train.check_compatible(classes=train.classes, spec=ClipSpec(frames=8, size=32), what="set")


def test_clip_spec_presets_and_validation():
    ucf = get_clip_spec("ucf-16x112")
    assert ucf.shape == (16, 112, 112) and ucf.stride == 4
    assert get_clip_spec("k400-8x64").shape == (8, 64, 64)
    with pytest.raises(UnknownNameError, match="ucf-16x112"):
        get_clip_spec("ucf-1x1")
    with pytest.raises(ValueError):
        ClipSpec(frames=0)
    assert ClipSpec.from_dict(ucf.to_dict()) == ucf


def test_normalize_is_inverse_of_denormalize():
    from videodd.data.store import denormalize_to_uint8

    raw = torch.randint(0, 256, (2, 4, 8, 8, 3), dtype=torch.uint8)
    x = normalize_uint8(raw, [0.4, 0.5, 0.6], [0.2, 0.25, 0.3])
    assert torch.equal(denormalize_to_uint8(x, [0.4, 0.5, 0.6], [0.2, 0.25, 0.3]), raw)


def test_a_corrupt_array_file_is_named_and_pickles_are_never_suggested(tmp_path):
    """Issue 15, item 7: a truncated or garbage clips.npy names the file, says it is corrupt, and never
    suggests loading pickles."""
    import pickle

    clips = np.zeros((4, 2, 8, 8, 3), dtype=np.uint8)
    spec = ClipSpec(frames=2, size=8)
    for content, name in [(b"garbage" * 10, "garbage"), (None, "truncated"), (pickle.dumps([1, 2]), "pickle")]:
        store = write_store(tmp_path / name, clips, np.arange(4) % 2, dataset="d", split="train",
                            classes=["a", "b"], spec=spec)
        path = store.root / "clips.npy"
        if content is None:
            path.write_bytes(path.read_bytes()[:200])
        elif name == "pickle":
            np.save(path, np.array([{"a": 1}], dtype=object), allow_pickle=True)
        else:
            path.write_bytes(content)
        with pytest.raises(StoreError) as info:
            ClipStore(store.root)
        message = str(info.value)
        assert str(path) in message and "corrupt store file" in message and "allow_pickle" not in message


def test_views_round_trip_fingerprint_and_verify(tmp_path):
    clips, labels = tiny_clips(2, 3, seed=0)
    views = np.stack([tiny_clips(2, 3, seed=s)[0] for s in (1, 2)])  # (K=2, N=6, T, H, W, C)
    kw = dict(dataset="t", split="test", classes=["a", "b"], spec=TINY_SPEC)
    plain = write_store(tmp_path / "plain", clips, labels, **kw)
    store = write_store(tmp_path / "s", clips, labels, views=views, **kw)
    assert plain.test_views == 0 and plain.views is None and not (plain.root / "views.npy").exists()
    assert store.test_views == 2 and isinstance(store.views, np.memmap) and np.array_equal(store.views, views)
    assert json.loads((store.root / "meta.json").read_text())["views"] == 2
    assert store.fingerprint != plain.fingerprint  # the views are part of the digest
    assert store.meta.mean == plain.meta.mean  # normalization from clips.npy alone
    x = store.view_batch([4, 1], 1)
    assert x.shape == (2, 3, *TINY_SPEC.shape) and torch.equal(x, normalize_uint8(
        torch.from_numpy(views[1][[4, 1]]), store.meta.mean, store.meta.std))
    assert not torch.equal(x, store.batch([4, 1]))
    for bad in (2, -1):
        with pytest.raises(StoreError, match=f"no view {bad}"):
            store.view_batch([0], bad)
    with pytest.raises(StoreError, match="no view 0"):
        plain.view_batch([0], 0)
    store.verify()
    arr = np.load(store.root / "views.npy", mmap_mode="r+")
    arr[1, 5, 0, 0, 0, 0] ^= 1  # one byte of the last view
    arr.flush()
    with pytest.raises(StoreError, match="fingerprint"):
        ClipStore(store.root).verify()


def test_views_must_match_the_clips_and_the_manifest(tmp_path):
    clips, labels = tiny_clips(2, 3, seed=0)
    kw = dict(dataset="t", split="test", classes=["a", "b"], spec=TINY_SPEC)
    with pytest.raises(StoreError, match="views must be uint8"):
        write_store(tmp_path / "a", clips, labels, views=clips[None, :5], **kw)
    store = write_store(tmp_path / "s", clips, labels, views=clips[None], **kw)
    np.save(store.root / "views.npy", np.concatenate([clips[None]] * 2))
    with pytest.raises(StoreError, match="does not match the manifest"):
        ClipStore(store.root)
    (store.root / "views.npy").unlink()
    with pytest.raises(StoreError, match="views.npy: missing"):
        ClipStore(store.root)


def test_published_preset_and_resize_validation():
    pub = get_clip_spec("ucf-16x112-published")
    assert pub.shape == (16, 112, 112) and pub.resize == (160, 120) and pub.short_policy == "stride_fit"
    assert pub.test_views == 3 and ClipSpec.from_dict(pub.to_dict()) == pub
    assert "resize" not in get_clip_spec("ucf-16x112").to_dict()  # old fingerprints stay as they were
    assert ClipSpec(test_sampling="uniform", test_clips=1).test_views == 0
    with pytest.raises(ValueError, match="exclusive"):
        ClipSpec(size=32, resize=(40, 36), resize_short=36)
    with pytest.raises(ValueError, match="each >= size"):
        ClipSpec(size=32, resize=(40, 30))


def test_info_describes_the_published_framing_and_the_views(tmp_path):
    from videodd.cli.info import describe_spec, describe_store

    text = describe_spec(get_clip_spec("ucf-16x112-published"))
    assert "squashed to 160x120, centre crop 112x112" in text
    assert "centre clip + 3 random-start views" in text and "short videos: published" in text
    clips, labels = tiny_clips(2, 3, seed=1)
    views = np.stack([tiny_clips(2, 3, seed=s)[0] for s in (1, 2)])  # (K=2, N=6, T, H, W, C)
    store = write_store(tmp_path / "s", clips, labels, views=views, dataset="tiny", split="test",
                        classes=["a", "b"], spec=TINY_SPEC, mean=[0.5] * 3, std=[0.25] * 3)
    assert "views: 2 per video (views.npy)" in describe_store(store)
