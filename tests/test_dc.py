"""Gradient matching (DC/DSA): the distance, the matching loss, the outer/inner schedule, resume, CLI."""

import json
import math

import pytest
import torch
from torch import nn

from conftest import assert_resume_matches
from videodd.augment import AugmentConfig, sample_params
from videodd.distill import make_objective, resolve_config
from videodd.objectives.gradient import (
    GradientMatching,
    class_gradient_loss,
    freeze_batchnorm,
    gradient_distance,
    layer_distance,
)
from videodd.seeding import make_generator, seeded
from videodd.synthesis.pixels import Pixels

CPU = torch.device("cpu")


# -- the distance -------------------------------------------------------------------------------
def test_layer_distance_by_hand_and_bias_is_ignored():
    real = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    syn = torch.tensor([[2.0, 0.0], [1.0, 1.0]])
    # row 0: same direction -> 1 - 2/(2 + 1e-6) ~ 5e-7; row 1: cos((1,1),(0,1)) = 1/sqrt(2)
    expected = (1 - 2 / (2 + 1e-6)) + (1 - 1 / (math.sqrt(2) + 1e-6))
    assert layer_distance(syn, real).item() == pytest.approx(expected, abs=1e-6)
    # DC's distance_wb returns 0 for 1-D tensors (biases, norm scales), however different they are
    assert layer_distance(torch.tensor([1.0, 2.0]), torch.tensor([-1.0, 5.0])).item() == 0.0
    # any rank >= 2 is read as (out, -1): a Conv2d/Conv3d kernel gives the same value as its matrix
    assert layer_distance(syn.reshape(2, 1, 1, 2), real.reshape(2, 1, 1, 2)).item() == pytest.approx(expected)
    assert layer_distance(syn.reshape(2, 1, 1, 1, 2), real.reshape(2, 1, 1, 1, 2)).item() == pytest.approx(expected)
    # the sum over a parameter list: weight + bias
    both = gradient_distance([syn, torch.tensor([3.0, 4.0])], [real, torch.tensor([0.0, 1.0])], "ours")
    assert both.item() == pytest.approx(expected, abs=1e-6)


def test_mse_and_cos_distances_by_hand():
    a = [torch.tensor([[1.0, 2.0]]), torch.tensor([3.0])]
    b = [torch.tensor([[1.0, 0.0]]), torch.tensor([1.0])]
    assert gradient_distance(a, b, "mse").item() == pytest.approx(0 + 4 + 4)
    # concatenated (1, 2, 3) vs (1, 0, 1): cos = 4 / (sqrt(14) sqrt(2))
    assert gradient_distance(a, b, "cos").item() == pytest.approx(1 - 4 / (math.sqrt(14) * math.sqrt(2) + 1e-6))
    with pytest.raises(ValueError, match="valid: ours, mse, cos"):
        gradient_distance(a, b, "l1")


# -- the matching loss --------------------------------------------------------------------------
def _all_real_as_synthetic(train, **overrides):
    per_class = int(train.class_counts()[0])
    cfg = resolve_config("dc", {"ipc": per_class, "batch_real": 100, **overrides})
    param = Pixels(train, per_class, make_generator(0))
    with torch.no_grad():
        param.videos.copy_(train.batch(list(range(len(train)))))  # the store is sorted by class
    return cfg, param


@pytest.mark.parametrize("distance", ["ours", "mse"])
def test_matching_loss_is_zero_when_the_synthetic_set_is_the_real_batch(tiny_stores, distance):
    """The whole class is the real batch, the same augmentation draw hits both: equal gradients.

    ``ours`` keeps DC's 1e-6 in the cosine's denominator, so a row with a tiny gradient norm
    contributes ``1e-6 / |g|^2`` even for equal gradients: the floor here is about 2e-3.
    """
    train, _ = tiny_stores
    cfg, param = _all_real_as_synthetic(train, objective={"distance": distance})
    same = make_objective(GradientMatching, train, cfg, CPU).loss(param, make_generator(1)).loss.item()
    assert same < (1e-2 if distance == "ours" else 1e-8)
    # a different synthetic set is far from it
    with torch.no_grad():
        param.videos.mul_(-1.0)
    other = make_objective(GradientMatching, train, cfg, CPU).loss(param, make_generator(1)).loss.item()
    assert other > 1000 * max(same, 1e-8)


def test_gradients_reach_the_pixels(tiny_stores):
    train, _ = tiny_stores
    cfg = resolve_config("dc", {"ipc": 2, "batch_real": 4})
    param = Pixels(train, 2, make_generator(0))
    out = make_objective(GradientMatching, train, cfg, CPU).loss(param, make_generator(1))
    out.loss.backward()
    assert out.loss.item() > 0
    assert param.videos.grad is not None and param.videos.grad.abs().sum() > 0


def test_matching_is_generic_over_input_rank():
    """Images (N, C, H, W) with a 2D network and T = 1 videos with a 3D one, augmented siamese-ly."""
    aug = AugmentConfig()
    gen = make_generator(3)
    with seeded(gen):
        nets = [
            ((2, 3, 8, 8), nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                                         nn.Flatten(), nn.Linear(4, 2))),
            ((2, 3, 1, 8, 8), nn.Sequential(nn.Conv3d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool3d(1),
                                            nn.Flatten(), nn.Linear(4, 2))),
        ]
    for shape, net in nets:
        real = torch.randn(4, *shape[1:], generator=gen)
        labels = torch.tensor([0, 0, 1, 1])
        draws = [sample_params(aug, gen) for _ in range(2)]
        same = class_gradient_loss(net, real, labels, real.clone(), labels, 2, augment=draws, distance="mse")
        assert same.item() < 1e-10
        syn = torch.randn(2, *shape[1:], generator=gen).requires_grad_(True)
        loss = class_gradient_loss(net, real, labels, syn, torch.tensor([0, 1]), 2, augment=draws)
        loss.backward()
        assert loss.item() > 0 and syn.grad is not None and syn.grad.abs().sum() > 0


# -- the outer / inner loop ---------------------------------------------------------------------
def test_outer_loop_schedule_fresh_network_then_inner_updates_on_the_updated_set(tiny_stores, monkeypatch):
    train, _ = tiny_stores
    cfg = resolve_config("dc", {"ipc": 2, "batch_real": 4, "objective": {"outer_loop": 3, "inner_loop": 2}})
    param = Pixels(train, 2, make_generator(0))
    obj = make_objective(GradientMatching, train, cfg, CPU)
    events = []
    orig_new, orig_train = obj.new_network, obj.train_network
    monkeypatch.setattr(obj, "new_network", lambda gen: events.append("new") or orig_new(gen))

    def spy_train(p, gen):
        events.append(("train", float(p.videos.detach().sum())))
        orig_train(p, gen)

    monkeypatch.setattr(obj, "train_network", spy_train)
    for _ in range(4):
        before = [t.clone() for t in obj.net.parameters()] if obj.net is not None else None
        out = obj.loss(param, make_generator(len(events)))
        with torch.no_grad():  # stands for the loop's optimizer step on the set
            param.videos.add_(0.5)
        if before is not None and events[-1] != "new":
            assert any(not torch.equal(a, b) for a, b in zip(before, obj.net.parameters(), strict=True))
        assert out.metrics["outer_step"] == (len(events) - 1) % 3
    # fresh net, 2 updated steps, fresh net: the net trains on the set AFTER the previous step
    assert [e if e == "new" else e[0] for e in events] == ["new", "train", "train", "new"]
    base = float(Pixels(train, 2, make_generator(0)).videos.detach().sum())
    n = param.videos.numel()
    assert events[1][1] == pytest.approx(base + 0.5 * n, rel=1e-5)
    assert events[2][1] == pytest.approx(base + 1.0 * n, rel=1e-5)


def test_batchnorm_statistics_are_the_real_batch(tiny_stores):
    train, _ = tiny_stores
    cfg = resolve_config("dc", {"ipc": 1, "batch_real": 4, "model": "convnet3d-s-bn"})
    obj = make_objective(GradientMatching, train, cfg, CPU)
    net = obj.new_network(make_generator(0))
    real, _ = obj.sample_real(make_generator(1), 4)
    freeze_batchnorm(net, real)
    assert not net.training
    conv, bn = net.features[0], net.features[1]
    with torch.no_grad():
        mean = conv(real).mean(dim=(0, 2, 3, 4))
    assert torch.allclose(bn.running_mean, mean, atol=1e-5)
    # and the whole objective runs on a BatchNorm network
    out = obj.loss(Pixels(train, 1, make_generator(0)), make_generator(2))
    assert math.isfinite(out.loss.item())


def test_options_are_validated():
    from videodd.config import ConfigError
    from videodd.distill import validate_config

    with pytest.raises(ConfigError, match="distance"):
        validate_config(resolve_config("dc", {"objective": {"distance": "l1"}}))
    with pytest.raises(ConfigError, match="unknown field"):
        validate_config(resolve_config("dc", {"objective": {"outer": 2}}))


# -- resume, end to end -------------------------------------------------------------------------
def test_resume_equals_uninterrupted_run(tiny_stores, tmp_path):
    """The checkpoint at iteration 2 is mid-way through an outer loop of 3: the network and the
    position travel in the checkpoint."""
    train, _ = tiny_stores
    cfg = resolve_config("dc", {"ipc": 1, "iterations": 4, "batch_real": 3, "checkpoint_every": 2,
                                "objective": {"outer_loop": 3, "inner_loop": 1}})
    _, resumed = assert_resume_matches(train, cfg, tmp_path, kill_at=3)
    assert resumed.resumed_from == 2
    rows = [json.loads(x) for x in (tmp_path / "resumed" / "metrics.jsonl").read_text().splitlines()]
    rows_full = [json.loads(x) for x in (tmp_path / "full" / "metrics.jsonl").read_text().splitlines()]
    assert [r["loss"] for r in rows] == [r["loss"] for r in rows_full]


def test_cli_distill_then_evaluate(tmp_path, capsys):
    from conftest import make_tiny_stores
    from videodd.cli import main

    data = tmp_path / "data"
    make_tiny_stores(data)
    run = tmp_path / "run"
    assert main(["distill", "--method", "dc", "--ipc", "1", "--data", str(data), "--out", str(run), "--iterations",
                 "2", "--batch-real", "4", "--set", "objective.distance=ours", "--quiet", "--device", "cpu"]) == 0
    assert main(["evaluate", str(run / "distilled.safetensors"), "--data", str(data), "--protocol", "cpu",
                 "--runs", "1", "--references", "", "--quiet", "--device", "cpu"]) == 0
    report = json.loads((run / "report.json").read_text())
    assert report["method"] == "dc" and len(report["result"]["runs"]) == 1
    assert "| dc | 1 |" in capsys.readouterr().out
