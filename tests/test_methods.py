"""Every registered method (recipe), timm style: distil a tiny set with the recipe's ``smoke`` overrides,
save, load, materialize, account for its storage, and resume a killed run to the same set.

Adding a method needs no edit here: ``MethodSpec.smoke`` says how to run it small.
"""

from __future__ import annotations

import json
import math
import struct

import pytest
import torch

from conftest import SmokeRuns, killed_then_resumed
from videodd.distill import distill
from videodd.distilled import KINDS, DistilledSet
from videodd.methods import METHODS


@pytest.mark.parametrize("name", METHODS.names())
def test_method_distils_saves_loads_and_materializes(smoke_runs: SmokeRuns, name: str):
    result = smoke_runs.run(name)
    dset, store = result.distilled, smoke_runs.train
    k = store.num_classes
    assert dset.manifest.method == name and dset.manifest.kind in KINDS
    assert dset.num_videos == dset.ipc * k and dset.manifest.dataset_fingerprint == store.fingerprint
    # the file on disk is the set: same tensors, labels and manifest
    path = result.run_dir / "distilled.safetensors"
    loaded = DistilledSet.load(path)
    assert loaded.manifest.to_json() == dset.manifest.to_json()
    assert set(loaded.tensors) == set(dset.tensors)
    assert all(torch.equal(loaded.tensors[n], t) for n, t in dset.tensors.items())
    assert torch.equal(loaded.labels, dset.labels)
    # materialize: normalized float32 videos of the store's clip shape (one frame for an image method), one
    # label per video, grouped by class
    c, t, h, w = store.video_shape
    shape = (dset.num_videos, c, 1 if METHODS.get(name).frames else t, h, w)
    mat = loaded.materialize()
    assert mat.videos.dtype == torch.float32 and tuple(mat.videos.shape) == shape
    assert torch.isfinite(mat.videos).all()
    hard = mat.labels if mat.labels.ndim == 1 else mat.labels.argmax(1)
    assert hard.tolist() == sorted(hard.tolist()) and torch.bincount(hard, minlength=k).tolist() == [dset.ipc] * k
    assert torch.equal(mat.videos, dset.materialize().videos)


@pytest.mark.parametrize("name", METHODS.names())
def test_method_storage_is_what_the_file_holds(smoke_runs: SmokeRuns, name: str):
    dset = smoke_runs.run(name).distilled
    path = smoke_runs.run(name).run_dir / "distilled.safetensors"
    sizes = dset.storage_bytes()
    by_hand = {n: t.numel() * t.element_size() for n, t in dset.tensors.items()}
    assert sizes == {**by_hand, "labels": dset.labels.numel() * dset.labels.element_size(),
                     "total": sum(by_hand.values()) + dset.labels.numel() * dset.labels.element_size()}
    # safetensors: 8-byte header length, the JSON header, then exactly the tensor bytes
    raw = path.read_bytes()
    (header,) = struct.unpack("<Q", raw[:8])
    assert len(raw) == 8 + header + sizes["total"]
    detail = dset.storage_detail()
    assert detail.total_bytes == sizes["total"] and sum(detail.parts.values()) <= sizes["total"] + detail.external_bytes
    assert math.isclose(detail.pixel_equivalent_ipc * detail.pixel_bytes_per_ipc, sizes["total"] - sizes["labels"])


@pytest.mark.parametrize("name", METHODS.names())
def test_method_resumes_to_the_uninterrupted_set(smoke_runs: SmokeRuns, name: str, tmp_path):
    """Killed after iteration 3 (checkpoint at 2) and resumed = uninterrupted; a method that does not
    iterate (selector, builder) gives the same set again from the same seed."""
    spec, cfg = METHODS.get(name), smoke_runs.config(name)
    full = smoke_runs.run(name).distilled
    if spec.kind == "synthesis":
        assert cfg.iterations >= 4, "a smoke recipe of an iterative method runs at least 4 iterations"
        other = killed_then_resumed(smoke_runs.train, cfg, tmp_path / "resumed", kill_at=3)
        assert other.resumed_from == 2
        lines = [json.loads(x) for x in (tmp_path / "resumed" / "metrics.jsonl").read_text().splitlines()]
        assert [x["iteration"] for x in lines] == list(range(1, cfg.iterations + 1))
        assert all(math.isfinite(x["loss"]) for x in lines)
        other = other.distilled
    else:
        other = distill(smoke_runs.train, cfg, tmp_path / "again").distilled
    assert set(other.tensors) == set(full.tensors)
    for n, t in full.tensors.items():
        assert torch.equal(other.tensors[n], t), n
    assert torch.equal(other.labels, full.labels)
