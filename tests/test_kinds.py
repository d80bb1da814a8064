"""Every registered DistilledSet kind: a set of that kind (made by a registered method's smoke run)
round-trips bit-exactly, describes itself, accounts for its parts, and refuses broken tensors."""

from __future__ import annotations

import pytest
import torch

from conftest import SmokeRuns
from videodd.distilled import KINDS, DistilledSet, DistilledSetError
from videodd.methods import METHODS


def set_of_kind(smoke_runs: SmokeRuns, kind: str) -> DistilledSet:
    """The first registered method's smoke set of ``kind`` (every kind must have a writer)."""
    for name in METHODS.names():
        dset = smoke_runs.run(name).distilled
        if dset.manifest.kind == kind:
            return dset
    raise AssertionError(f"no registered method writes a {kind!r} set: a kind without a writer")


@pytest.mark.parametrize("kind", KINDS.names())
def test_kind_round_trips_and_describes_itself(smoke_runs: SmokeRuns, kind: str, tmp_path):
    dset = set_of_kind(smoke_runs, kind)
    loaded = DistilledSet.load(dset.save(tmp_path / "set.safetensors"))
    assert torch.equal(loaded.materialize().videos, dset.materialize().videos)
    text = loaded.describe()
    assert f"(kind: {kind})" in text and "total" in text
    detail = loaded.storage_detail()
    assert all(v >= 0 for v in detail.parts.values())
    assert detail.equivalent_ipc is None or detail.equivalent_ipc > 0


@pytest.mark.parametrize("kind", KINDS.names())
def test_kind_refuses_a_missing_tensor_and_non_finite_values(smoke_runs: SmokeRuns, kind: str, tmp_path):
    dset = set_of_kind(smoke_runs, kind)
    for name in dset.tensors:
        broken = DistilledSet(tensors={n: t for n, t in dset.tensors.items() if n != name}, labels=dset.labels,
                              manifest=dset.manifest)
        with pytest.raises(DistilledSetError):  # the kind's check, or materialize, names the problem
            broken.validate()
            broken.materialize()
    floats = [n for n, t in dset.tensors.items() if t.is_floating_point()]
    for name in floats:
        bad = dset.tensors[name].clone()
        bad.view(-1)[0] = float("nan")
        broken = DistilledSet(tensors={**dset.tensors, name: bad}, labels=dset.labels, manifest=dset.manifest)
        with pytest.raises(DistilledSetError, match="non-finite"):
            broken.save(tmp_path / "nan.safetensors")


def test_an_unknown_kind_lists_the_registered_ones(smoke_runs: SmokeRuns):
    dset = smoke_runs.run("random").distilled
    dset.manifest.kind = "no-such-kind"
    try:
        with pytest.raises(DistilledSetError, match="valid distilled-set kinds: .*pixels"):
            dset.validate()
    finally:
        dset.manifest.kind = "real-clips"
