"""DistilledSet: save/load round trips, materialize, storage accounting and refusal of bad files."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from videodd import __version__
from videodd.data.spec import ClipSpec
from videodd.data.store import StoreError, normalize_uint8, write_store
from videodd.distilled import (
    FORMAT_VERSION,
    KINDS,
    METADATA_KEY,
    DistilledManifest,
    DistilledSet,
    DistilledSetError,
    IncompatibleStoreError,
    Kind,
    human_bytes,
    register_kind,
)

CLASSES = ["walk", "run", "jump"]
SPEC = ClipSpec(frames=4, size=8, stride=1)
MEAN = [0.4, 0.5, 0.6]
STD = [0.2, 0.25, 0.3]
IPC = 2
N = IPC * len(CLASSES)


def make_manifest(kind: str = "pixels", **changes) -> DistilledManifest:
    fields = dict(
        kind=kind,
        method="dm" if kind == "pixels" else "random",
        config={"iterations": 10, "lr": 1.0, "augment": ["flip", "crop"]},
        dataset="synth-actions",
        dataset_fingerprint="0123456789abcdef",
        classes=list(CLASSES),
        spec=SPEC,
        mean=list(MEAN),
        std=list(STD),
        seed=7,
        ipc=IPC,
    )
    fields.update(changes)
    return DistilledManifest(**fields)


def hard_labels() -> torch.Tensor:
    return torch.arange(len(CLASSES)).repeat_interleave(IPC)


def pixel_set(**changes) -> DistilledSet:
    g = torch.Generator().manual_seed(0)
    videos = torch.randn(N, 3, *SPEC.shape, generator=g)  # (N, C, T, H, W)
    return DistilledSet(tensors={"videos": videos}, labels=hard_labels(), manifest=make_manifest(**changes))


def clip_set() -> DistilledSet:
    g = torch.Generator().manual_seed(1)
    clips = torch.randint(0, 256, (N, *SPEC.shape, 3), generator=g, dtype=torch.uint8)  # (N, T, H, W, C)
    return DistilledSet(tensors={"clips": clips}, labels=hard_labels(), manifest=make_manifest("real-clips"))


def write_raw(path: Path, tensors: dict[str, torch.Tensor], manifest_json: dict | str | None) -> None:
    """Write a safetensors file directly, bypassing DistilledSet.save's checks."""
    metadata = None
    if manifest_json is not None:
        text = manifest_json if isinstance(manifest_json, str) else json.dumps(manifest_json)
        metadata = {METADATA_KEY: text}
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(path), metadata=metadata)


def raw_parts(dset: DistilledSet) -> tuple[dict[str, torch.Tensor], dict]:
    """Tensors (labels included) and a manifest dict with correct storage bytes."""
    dset.manifest.storage_bytes = dset.storage_bytes()
    return {**dset.tensors, "labels": dset.labels}, dset.manifest.to_json()


# -- round trips ---------------------------------------------------------------------------------
@pytest.mark.parametrize("factory", [pixel_set, clip_set], ids=["pixels", "real-clips"])
def test_save_load_round_trip(tmp_path: Path, factory) -> None:
    dset = factory()
    path = dset.save(tmp_path / "set.safetensors")
    assert path.is_file()
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]  # atomic: no leftovers
    loaded = DistilledSet.load(path)
    assert loaded.manifest == dset.manifest
    assert loaded.manifest.storage_bytes == dset.storage_bytes()
    assert loaded.manifest.library_version == __version__
    assert loaded.manifest.format_version == FORMAT_VERSION
    assert set(loaded.tensors) == set(dset.tensors)
    for name, t in dset.tensors.items():
        assert loaded.tensors[name].dtype == t.dtype
        assert torch.equal(loaded.tensors[name], t)
    assert torch.equal(loaded.labels, dset.labels)
    assert loaded.path == path
    assert (loaded.num_videos, loaded.ipc, loaded.num_classes) == (N, IPC, len(CLASSES))
    assert torch.equal(loaded.materialize().videos, dset.materialize().videos)


def test_round_trip_soft_labels_learned_lr_and_noncontiguous(tmp_path: Path) -> None:
    videos = torch.randn(N, 4, 3, 8, 8).transpose(1, 2)  # non-contiguous (N, C, T, H, W)
    assert not videos.is_contiguous()
    soft = torch.softmax(torch.randn(N, len(CLASSES)), dim=1)
    manifest = make_manifest(learned_lr=0.02, info={"a": 1})
    dset = DistilledSet(tensors={"videos": videos}, labels=soft, manifest=manifest)
    loaded = DistilledSet.load(dset.save(tmp_path / "soft.safetensors"))
    assert torch.equal(loaded.tensors["videos"], videos)
    assert torch.equal(loaded.labels, soft)
    assert loaded.manifest.learned_lr == 0.02
    assert loaded.manifest.info == {"a": 1}
    out = loaded.materialize()
    assert out.labels.shape == (N, len(CLASSES)) and out.labels.is_floating_point()


def test_manifest_json_round_trip() -> None:
    m = make_manifest(learned_lr=0.5, label_loss="mse", equal_storage_ipc=3, layout={"x": [1, 2]})
    assert DistilledManifest.from_json(json.loads(json.dumps(m.to_json()))) == m


def test_version_1_manifest_is_upgraded() -> None:
    """Format 1 kept what evaluation reads back in ``extra``; it comes back in the typed fields, the
    informative entries in ``info`` and the kind's settings in ``layout``."""
    data = make_manifest().to_json()
    for key in ("label_loss", "equal_storage_ipc", "full_train_bytes", "layout", "info"):
        data.pop(key)
    data["format_version"] = 1
    data["extra"] = {"label_loss": "mse", "match_ipc": 2, "full_train_bytes": 1234, "source_ids": ["a"],
                     "temporal": {"frames": 2, "interp": "linear"}}
    m = DistilledManifest.from_json(data)
    assert (m.label_loss, m.equal_storage_ipc, m.full_train_bytes) == ("mse", 2, 1234)
    assert m.info == {"source_ids": ["a"]} and m.layout == {"temporal": {"frames": 2, "interp": "linear"}}
    assert m.format_version == FORMAT_VERSION


def test_unknown_label_loss_is_refused() -> None:
    data = make_manifest().to_json()
    data["label_loss"] = "hinge"
    with pytest.raises(DistilledSetError, match="label_loss"):
        DistilledManifest.from_json(data)


# -- materialize ---------------------------------------------------------------------------------
def test_materialize_real_clips_equals_normalize_uint8() -> None:
    dset = clip_set()
    out = dset.materialize()
    expected = normalize_uint8(dset.tensors["clips"], MEAN, STD)
    assert out.videos.shape == (N, 3, *SPEC.shape)  # (N, C, T, H, W)
    assert out.videos.dtype == torch.float32
    assert torch.equal(out.videos, expected)
    assert out.labels.dtype == torch.int64 and torch.equal(out.labels, hard_labels())


def test_materialize_pixels_returns_float32() -> None:
    dset = pixel_set()
    dset.tensors["videos"] = dset.tensors["videos"].half()
    out = dset.materialize()
    assert out.videos.dtype == torch.float32
    assert out.videos.shape == (N, 3, *SPEC.shape)


def test_materialize_checks_shape_against_spec() -> None:
    dset = pixel_set()
    dset.manifest.spec = ClipSpec(frames=8, size=8)  # the tensors are T=4
    with pytest.raises(DistilledSetError, match=r"\(N, C, T, H, W\)"):
        dset.materialize()
    with pytest.raises(DistilledSetError, match="videos"):
        dset.validate()


def test_materialize_checks_custom_kind_output() -> None:
    name = "test-bad-shape-kind"
    if name not in KINDS:
        register_kind(Kind(name, materialize=lambda tensors, manifest: torch.zeros(N, 3, 2, 8, 8)))
    dset = DistilledSet(tensors={"w": torch.zeros(1)}, labels=hard_labels(), manifest=make_manifest(name))
    dset.validate()  # no kind check registered: fine
    with pytest.raises(DistilledSetError, match="materialized videos of shape"):
        dset.materialize()


# -- storage -------------------------------------------------------------------------------------
def test_storage_bytes_by_hand() -> None:
    pixels = pixel_set().storage_bytes()
    videos_bytes = N * 3 * 4 * 8 * 8 * 4  # float32
    labels_bytes = N * 8  # int64
    assert pixels == {"videos": videos_bytes, "labels": labels_bytes, "total": videos_bytes + labels_bytes}
    clips = clip_set().storage_bytes()
    clips_bytes = N * 4 * 8 * 8 * 3  # uint8
    assert clips == {"clips": clips_bytes, "labels": labels_bytes, "total": clips_bytes + labels_bytes}
    half = DistilledSet(
        tensors={"videos": torch.zeros(N, 3, *SPEC.shape, dtype=torch.float16)},
        labels=torch.full((N, 3), 1 / 3),
        manifest=make_manifest(),
    ).storage_bytes()
    assert half["videos"] == videos_bytes // 2 and half["labels"] == N * 3 * 4
    assert half["total"] == videos_bytes // 2 + N * 3 * 4


def test_human_bytes() -> None:
    assert human_bytes(0) == "0 B"
    assert human_bytes(80) == "80 B"
    assert human_bytes(1536) == "1.50 KiB"
    assert human_bytes(3 * 1024**2) == "3.00 MiB"
    assert human_bytes(5 * 1024**3) == "5.00 GiB"


# -- NaN / Inf -----------------------------------------------------------------------------------
def test_nan_refused_at_save(tmp_path: Path) -> None:
    dset = pixel_set()
    dset.tensors["videos"][0, 0, 0, 0, :3] = float("nan")
    dset.tensors["videos"][1, 0, 0, 0, 0] = float("inf")
    target = tmp_path / "nan.safetensors"
    with pytest.raises(DistilledSetError, match="'videos'") as info:
        dset.save(target)
    assert "4 non-finite" in str(info.value) and "3 NaN" in str(info.value) and "1 Inf" in str(info.value)
    assert str(target) in str(info.value)
    assert not target.exists()


def test_nan_refused_at_load(tmp_path: Path) -> None:
    dset = pixel_set()
    dset.tensors["videos"][2, 1, 0, 0, 0] = float("nan")
    tensors, manifest = raw_parts(dset)
    path = tmp_path / "nan.safetensors"
    write_raw(path, tensors, manifest)
    with pytest.raises(DistilledSetError, match="'videos'") as info:
        DistilledSet.load(path)
    assert str(path) in str(info.value) and "1 non-finite" in str(info.value)


def test_nan_in_soft_labels_refused(tmp_path: Path) -> None:
    dset = pixel_set()
    dset.labels = torch.full((N, 3), 1 / 3)
    dset.labels[0, 0] = float("nan")
    with pytest.raises(DistilledSetError, match="'labels'"):
        dset.save(tmp_path / "x.safetensors")


# -- broken files --------------------------------------------------------------------------------
def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.safetensors"
    with pytest.raises(DistilledSetError, match="no such file") as info:
        DistilledSet.load(path)
    assert str(path) in str(info.value)


def test_truncated_file(tmp_path: Path) -> None:
    path = pixel_set().save(tmp_path / "set.safetensors")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DistilledSetError, match="truncated or not a safetensors file") as info:
        DistilledSet.load(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("content", [os.urandom(4096), b"", b"\x10\x00", b"hello world, not safetensors"])
def test_random_bytes(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "junk.safetensors"
    path.write_bytes(content)
    with pytest.raises(DistilledSetError, match="not a safetensors file") as info:
        DistilledSet.load(path)
    assert str(path) in str(info.value)


def test_directory_refused(tmp_path: Path) -> None:
    with pytest.raises(DistilledSetError, match="not a file"):
        DistilledSet.load(tmp_path)


def test_not_a_videodd_file(tmp_path: Path) -> None:
    path = tmp_path / "plain.safetensors"
    write_raw(path, {"weight": torch.zeros(3)}, None)
    with pytest.raises(DistilledSetError, match="not a videodd distilled set"):
        DistilledSet.load(path)


def test_wrong_storage_bytes_refused(tmp_path: Path) -> None:
    tensors, manifest = raw_parts(pixel_set())
    manifest["storage_bytes"]["videos"] = 12
    path = tmp_path / "edited.safetensors"
    write_raw(path, tensors, manifest)
    with pytest.raises(DistilledSetError, match="storage_bytes") as info:
        DistilledSet.load(path)
    assert "videos: manifest 12" in str(info.value) and str(path) in str(info.value)


@pytest.mark.parametrize("field", ["classes", "spec", "kind", "mean"])
def test_missing_manifest_field(tmp_path: Path, field: str) -> None:
    tensors, manifest = raw_parts(pixel_set())
    del manifest[field]
    path = tmp_path / "edited.safetensors"
    write_raw(path, tensors, manifest)
    with pytest.raises(DistilledSetError, match=f"missing field.*'{field}'") as info:
        DistilledSet.load(path)
    assert str(path) in str(info.value)


def test_bad_manifest_values(tmp_path: Path) -> None:
    tensors, manifest = raw_parts(pixel_set())
    path = tmp_path / "edited.safetensors"
    write_raw(path, tensors, "{not json")
    with pytest.raises(DistilledSetError, match="not valid JSON"):
        DistilledSet.load(path)
    bad = dict(manifest, ipc="two")
    write_raw(path, tensors, bad)
    with pytest.raises(DistilledSetError, match="ipc"):
        DistilledSet.load(path)
    bad = dict(manifest, spec={"frames": 4, "size": 8, "colour": "yes"})
    write_raw(path, tensors, bad)
    with pytest.raises(DistilledSetError, match="spec"):
        DistilledSet.load(path)


def test_newer_format_refused(tmp_path: Path) -> None:
    tensors, manifest = raw_parts(pixel_set())
    manifest["format_version"] = FORMAT_VERSION + 1
    path = tmp_path / "future.safetensors"
    write_raw(path, tensors, manifest)
    with pytest.raises(DistilledSetError, match="upgrade videodd"):
        DistilledSet.load(path)


def test_unknown_manifest_keys_ignored(tmp_path: Path) -> None:
    tensors, manifest = raw_parts(pixel_set())
    manifest["added_in_a_later_version"] = 3
    path = tmp_path / "later.safetensors"
    write_raw(path, tensors, manifest)
    assert DistilledSet.load(path).manifest.method == "dm"


def test_missing_labels_tensor(tmp_path: Path) -> None:
    tensors, manifest = raw_parts(pixel_set())
    del tensors["labels"]
    path = tmp_path / "nolabels.safetensors"
    write_raw(path, tensors, manifest)
    with pytest.raises(DistilledSetError, match="no 'labels' tensor"):
        DistilledSet.load(path)


# -- validation ----------------------------------------------------------------------------------
def test_unknown_kind_lists_valid_kinds(tmp_path: Path) -> None:
    dset = pixel_set(kind="holograms")
    with pytest.raises(DistilledSetError, match="holograms") as info:
        dset.save(tmp_path / "x.safetensors")
    assert "pixels" in str(info.value) and "real-clips" in str(info.value)
    with pytest.raises(DistilledSetError, match="real-clips"):
        dset.materialize()
    tensors, manifest = raw_parts(pixel_set())
    manifest["kind"] = "holograms"
    path = tmp_path / "y.safetensors"
    write_raw(path, tensors, manifest)
    with pytest.raises(DistilledSetError, match="valid distilled-set kinds: .*pixels"):
        DistilledSet.load(path)


def test_labels_checked() -> None:
    dset = pixel_set()
    dset.labels = torch.full((N, 5), 0.2)  # 5 != 3 classes
    with pytest.raises(DistilledSetError, match="K = 3"):
        dset.validate()
    dset.labels = torch.tensor([0, 1, 2, 3, 0, 1])
    with pytest.raises(DistilledSetError, match=r"\[0, 3\)"):
        dset.validate()
    dset.labels = hard_labels()[:4]  # 4 labels for 6 videos
    with pytest.raises(DistilledSetError, match="videos"):
        dset.validate()


def test_labels_name_reserved(tmp_path: Path) -> None:
    dset = pixel_set()
    dset.tensors["labels"] = torch.zeros(N)
    with pytest.raises(DistilledSetError, match="reserved"):
        dset.save(tmp_path / "x.safetensors")


def test_real_clips_must_be_uint8() -> None:
    dset = clip_set()
    dset.tensors["clips"] = dset.tensors["clips"].float()
    with pytest.raises(DistilledSetError, match="uint8"):
        dset.validate()


def test_unserializable_config(tmp_path: Path) -> None:
    dset = pixel_set(config={"fn": object()})
    with pytest.raises(DistilledSetError, match="JSON"):
        dset.save(tmp_path / "x.safetensors")


# -- store compatibility -------------------------------------------------------------------------
def tiny_store(root: Path, classes: list[str], spec: ClipSpec, mean=MEAN, std=STD):
    rng = np.random.default_rng(0)
    clips = rng.integers(0, 256, size=(len(classes), *spec.shape, 3), dtype=np.uint8)
    labels = np.arange(len(classes))
    return write_store(
        root,
        clips,
        labels,
        dataset="synth-actions",
        split="test",
        classes=classes,
        spec=spec,
        mean=mean,
        std=std,
    )


def test_compatible_store_accepted(tmp_path: Path) -> None:
    store = tiny_store(tmp_path / "ok", CLASSES, SPEC)
    pixel_set().check_compatible(store)


def test_store_with_other_classes_refused(tmp_path: Path) -> None:
    store = tiny_store(tmp_path / "other", ["walk", "run", "swim"], SPEC)
    with pytest.raises(IncompatibleStoreError, match="classes differ") as info:
        pixel_set().check_compatible(store)
    assert "swim" in str(info.value) and "jump" in str(info.value)
    assert isinstance(info.value, StoreError) and isinstance(info.value, DistilledSetError)
    reordered = tiny_store(tmp_path / "order", ["run", "walk", "jump"], SPEC)
    with pytest.raises(DistilledSetError, match="different order"):
        pixel_set().check_compatible(reordered)


def test_store_with_other_spec_refused(tmp_path: Path) -> None:
    store = tiny_store(tmp_path / "spec", CLASSES, ClipSpec(frames=8, size=8))
    with pytest.raises(DistilledSetError, match=r"clip shape \(T, H, W\) \(4, 8, 8\).*\(8, 8, 8\)"):
        pixel_set().check_compatible(store)


def test_store_with_other_normalization_refused(tmp_path: Path) -> None:
    store = tiny_store(tmp_path / "norm", CLASSES, SPEC, mean=[0.1, 0.1, 0.1])
    with pytest.raises(DistilledSetError, match="was not prepared with the set's training data") as info:
        pixel_set().check_compatible(store)
    assert "fingerprint 0123456789abcdef" in str(info.value) and "mean [0.1, 0.1, 0.1]" in str(info.value)
    pixel_set().check_compatible(store, check_normalization=False)


def test_store_of_another_dataset_is_named(tmp_path: Path) -> None:
    """Issue 15, item 8: the message names both datasets, not a normalization mismatch."""
    store = tiny_store(tmp_path / "other", CLASSES, SPEC)
    other = DistilledSet(tensors=pixel_set().tensors, labels=hard_labels(), manifest=make_manifest(dataset="ucf101"))
    with pytest.raises(IncompatibleStoreError, match="distilled from dataset 'ucf101' .*fingerprint 0123456789abcdef"
                       r".* is dataset 'synth-actions'"):
        other.check_compatible(store)


def test_a_manifest_that_disagrees_with_the_tensors_is_refused(tmp_path: Path) -> None:
    """Issue 15, item 4: a hand-edited ipc (or labels) no longer matching the tensors is refused on load."""
    dset = pixel_set()
    path = dset.save(tmp_path / "set.safetensors")
    tensors, manifest = raw_parts(DistilledSet.load(path))
    manifest["ipc"] = 5
    write_raw(tmp_path / "edited.safetensors", tensors, manifest)
    with pytest.raises(DistilledSetError, match=r"edited.safetensors: the manifest says ipc 5 for 3 classes \(15 "
                       r"videos\) but the set holds 6"):
        DistilledSet.load(tmp_path / "edited.safetensors")
    tensors["labels"] = torch.tensor([0, 0, 0, 1, 1, 2])
    manifest["ipc"] = 2
    write_raw(tmp_path / "labels.safetensors", tensors, manifest)
    with pytest.raises(DistilledSetError, match=r"classes hold other counts: walk \(3\), jump \(1\)"):
        DistilledSet.load(tmp_path / "labels.safetensors")


# -- describe ------------------------------------------------------------------------------------
def test_describe(tmp_path: Path) -> None:
    dset = pixel_set(learned_lr=0.01, full_train_bytes=10 * 1024**2)
    path = dset.save(tmp_path / "d.safetensors")
    text = DistilledSet.load(path).describe()
    total = dset.storage_bytes()["total"]
    assert "dm" in text and "pixels" in text
    assert "IPC" in text and f"{IPC}  ({N} videos)" in text
    assert str(total) in text and human_bytes(total) in text
    assert "walk, run, jump" in text and "0123456789abcdef" in text
    assert "hard" in text and "learned lr" in text and "0.01" in text
    assert "compression" in text and f"{10 * 1024**2 / total:,.1f}x" in text
    assert str(path) in text and __version__ in text
    plain = pixel_set().describe()
    assert "compression" not in plain and "learned lr" not in plain
