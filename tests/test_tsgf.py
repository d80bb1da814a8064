"""TSGF: saliency, the batch-norm statistics term, TSGF-O's gradient, soft labels, TSGF-A, and refusals."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from conftest import make_tiny_stores
from videodd.distill import distill, make_objective, resolve_config
from videodd.evaluate import evaluate, get_protocol
from videodd.objectives.tsgf import (
    BNStatistics,
    TemporalSaliencyGuided,
    TSGFOptions,
    saliency_guided,
    temporal_saliency,
    window_weights,
)
from videodd.seeding import make_generator
from videodd.synthesis.pixels import Pixels
from videodd.teachers.base import TeacherError
from videodd.teachers.classifier import ClassifierConfig, train_and_save


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    root = tmp_path_factory.mktemp("tsgf")
    train, test = make_tiny_stores(root / "data")
    path = train_and_save(train, root / "teacher.safetensors", ClassifierConfig(model="convnet3d-s-bn", epochs=2,
                                                                                 batch_size=6))[1]
    return train, test, path, root


def test_saliency_by_hand():
    x = torch.zeros(1, 1, 4, 1, 2)  # one video, 4 frames, 2 pixels; pixel 0 jumps at frame 2
    x[0, 0, 2:, 0, 0] = 1.0
    s = temporal_saliency(x, window=1, eps=0.0)
    # |x_t - x_{t-1}|: frames 1..3 -> pixel 0: 0, 1, 0 ; frame 0 takes frame 1's; normalised to [0, 1]
    assert s[0, 0, :, 0, 0].tolist() == [0.0, 0.0, 1.0, 0.0] and s[0, 0, :, 0, 1].tolist() == [0.0] * 4
    assert window_weights(3, "triangular").tolist() == [0.25, 0.5, 0.25]
    smooth = temporal_saliency(x, window=3, eps=0.0)  # [0, 0, 1, 0] (replicate pad) -> [0, .25, .5, .25]
    assert smooth[0, 0, :, 0, 0].tolist() == pytest.approx([0.0, 0.5, 1.0, 0.5])  # after /max
    assert temporal_saliency(x, window=1, eps=0.2).min().item() == pytest.approx(0.2)


def test_bn_statistics_term_by_hand():
    bn = nn.BatchNorm3d(2).eval()
    bn.running_mean.copy_(torch.tensor([1.0, 0.0]))
    bn.running_var.copy_(torch.tensor([1.0, 4.0]))
    stats = BNStatistics(bn)
    x = torch.zeros(2, 2, 1, 1, 2)
    x[:, 0] = torch.tensor([1.0, 3.0]).view(1, 1, 1, 2)  # channel 0: mean 2, var 1
    bn(x)  # channel 1: zeros, mean 0, var 0
    # ||(2, 0) - (1, 0)|| + ||(1, 0) - (1, 4)|| = 1 + 4
    assert stats.loss().item() == pytest.approx(5.0)


def test_saliency_reweights_the_gradient(teacher):
    train, _, path, _ = teacher
    grads = {}
    for on in (False, True):
        cfg = resolve_config("tsgf", {"ipc": 1, "objective": {"teacher": str(path), "saliency_grad": on}})
        objective = make_objective(TemporalSaliencyGuided, train, cfg, torch.device("cpu"))
        param = Pixels(train, 1, make_generator(0))
        objective.loss(param, make_generator(1)).loss.backward()
        grads[on] = param.videos.grad.clone()
        saliency = temporal_saliency(param.videos.detach(), 3, "triangular", 0.1)
    torch.testing.assert_close(grads[True], grads[False] * saliency)
    # one loss, one hook: a second iteration's gradient is not scaled twice
    param.videos.grad = None
    objective.loss(param, make_generator(1)).loss.backward()
    torch.testing.assert_close(param.videos.grad, grads[True])


def test_soft_labels_and_the_tsgf_a_row(teacher, tmp_path):
    train, test, path, _ = teacher
    cfg = resolve_config("tsgf", {"ipc": 1, "iterations": 3, "objective": {"teacher": str(path), "labels": "soft"}})
    dset = distill(train, cfg, tmp_path / "run").distilled
    assert dset.labels.shape == (3, 3) and torch.allclose(dset.labels.sum(1), torch.ones(3))
    assert dset.storage_bytes()["labels"] == 3 * 3 * 4  # soft labels are counted
    assert dset.manifest.eval_augment["name"] == "tsgf-a"
    report = evaluate(dset, test, get_protocol("cpu").with_runs(1).with_epochs(2), references=())
    assert list(report.augmented) == ["tsgf +tsgf-a"] and len(report.result.runs) == 1  # both rows
    assert "| tsgf +tsgf-a |" in report.to_markdown()
    # the augmented row's fair comparison: random real clips trained with the same augmentation
    report = evaluate(dset, test, get_protocol("cpu").with_runs(1).with_epochs(2), train_store=train,
                      references=("random",), cache_dir=tmp_path / "refs")
    assert list(report.references) == ["random real IPC 1", "random real IPC 1 +tsgf-a"]
    plain, augmented = (report.references[k].runs[0].top1 for k in report.references)
    assert len(list((tmp_path / "refs").glob("*tsgf-a-v1-*.json"))) == 1  # cached apart from the plain one
    assert plain != augmented or report.references["random real IPC 1 +tsgf-a"].runs[0].final_train_loss != \
        report.references["random real IPC 1"].runs[0].final_train_loss  # it did train another way


def test_tsgf_a_prefers_salient_crops_and_is_seeded():
    x = torch.zeros(1, 1, 8, 16, 16)
    x[0, 0, 1::2, :8, :8] = 1.0  # flicker in the top-left quadrant only
    x[0, 0, :, 12, 12] = 0.5  # a static mark elsewhere
    def flicker_seen(eps: float) -> float:
        """Mean over 40 draws of how much of the flicker a crop keeps (its std; near 0 without it)."""
        outs = [saliency_guided(x, torch.Generator().manual_seed(seed), window=1, weighting="uniform", eps=eps,
                                crop=0.5, segment=1.0) for seed in range(40)]
        assert all(o.shape == x.shape for o in outs)
        return sum(float(o[0, 0].std()) for o in outs) / len(outs)

    # guided by saliency (eps 0) the crops keep far more of the flicker than nearly uniform ones (eps 0.99)
    assert flicker_seen(0.0) > 1.3 * flicker_seen(0.99)  # measured: 0.37 against 0.25
    a = saliency_guided(x, torch.Generator().manual_seed(1), window=1, weighting="uniform", eps=0.5, crop=0.5,
                        segment=0.5)
    b = saliency_guided(x, torch.Generator().manual_seed(1), window=1, weighting="uniform", eps=0.5, crop=0.5,
                        segment=0.5)
    assert torch.equal(a, b)


def test_refusals_name_the_teacher(teacher, tmp_path):
    train, _, path, root = teacher
    no_bn = train_and_save(train, tmp_path / "plain.safetensors", ClassifierConfig(model="convnet3d-s", epochs=1,
                                                                                    batch_size=6))[1]
    with pytest.raises(TeacherError, match=r"plain.safetensors: convnet3d-s has no batch norm"):
        make_objective(TemporalSaliencyGuided, train, resolve_config("tsgf", {"objective": {"teacher": str(no_bn)}}),
                       torch.device("cpu"))
    other, _ = make_tiny_stores(tmp_path / "other", num_classes=3, train_per_class=5)
    with pytest.raises(TeacherError, match="teacher.safetensors"):
        make_objective(TemporalSaliencyGuided, other, resolve_config("tsgf", {"objective": {"teacher": str(path)}}),
                       torch.device("cpu"))
    from videodd.teachers.base import read_manifest, save_network
    from videodd.teachers.classifier import load_classifier

    net, _ = load_classifier(path, train)
    with torch.no_grad():
        next(net.parameters()).fill_(float("nan"))  # what a diverged training leaves
    broken = save_network(net, tmp_path / "nan.safetensors", read_manifest(path))
    with pytest.raises(TeacherError, match="diverged"):
        make_objective(TemporalSaliencyGuided, train, resolve_config("tsgf", {"objective": {"teacher": str(broken)}}),
                       torch.device("cpu"))
    with pytest.raises(ValueError, match="odd number"):
        TSGFOptions(teacher="x", window=2)
    with pytest.raises(ValueError, match="required"):
        TSGFOptions()
