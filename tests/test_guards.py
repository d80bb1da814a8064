"""Guards name silent failures: pixels far outside the data range, a loss that barely fell, a learned lr
at its floor (tests/test_mtt.py), an evaluation model that predicts one class."""

from __future__ import annotations

import pytest
import torch

from videodd.distill import distill, resolve_config
from videodd.evaluate import EvalReport, RunResult, Summary
from videodd.guards import DistillGuard, VideoddWarning, collapsed, data_range


def test_data_range_is_the_normalized_image_of_zero_one(tiny_stores):
    train, _ = tiny_stores
    low, high = data_range(train)
    raw = torch.tensor([0, 255], dtype=torch.uint8).view(2, 1, 1, 1, 1).expand(2, 1, 1, 1, 3)  # (N, T, H, W, C)
    from videodd.data.store import normalize_uint8

    ends = normalize_uint8(raw, train.meta.mean, train.meta.std)  # (2, C, 1, 1, 1)
    assert torch.allclose(ends[0].flatten(), low) and torch.allclose(ends[1].flatten(), high)


def test_pixel_range_check_by_hand(tiny_stores):
    train, _ = tiny_stores
    guard = DistillGuard(train, iterations=100, range_factor=1.0)
    low, high = guard.low, guard.high
    inside = (low + 0.5 * (high - low)).view(1, -1, 1, 1, 1).expand(2, -1, 2, 4, 4).clone()
    assert guard.pixel_range(inside) is None
    inside[0, 0, 0, 0, 0] = high[0] + 0.9 * (high[0] - low[0])  # 0.9 widths out: tolerated
    assert guard.pixel_range(inside) is None
    inside[0, 0, 0, 0, 1] = low[0] - 1.5 * (high[0] - low[0])  # 1.5 widths out
    message = guard.pixel_range(inside)
    assert message is not None and "left the data range" in message and "--clamp-pixels" in message
    assert DistillGuard(train, 100, range_factor=0).pixel_range(inside) is None  # the check is off


def test_loss_flat_check_by_hand(tiny_stores):
    train, _ = tiny_stores
    guard = DistillGuard(train, iterations=100, range_factor=1.0)  # windows of 10 iterations
    for loss in [1.0] * 10 + [0.95] * 10:
        guard.step(loss)
    message = guard.loss_flat(20)
    assert message is not None and "mean 1 over iterations 1-10, 0.95 over 11-20 (-5.0%)" in message
    falling = DistillGuard(train, iterations=100, range_factor=1.0)
    for loss in [1.0] * 10 + [0.5] * 10:
        falling.step(loss)
    assert falling.loss_flat(20) is None
    short = DistillGuard(train, iterations=100, range_factor=1.0)
    short.step(1.0)
    assert short.loss_flat(1) is None  # too early to say


def test_a_run_whose_pixels_blow_up_warns_once_and_clamping_keeps_them_in_range(tiny_stores, tmp_path):
    train, _ = tiny_stores
    cfg = resolve_config("dm", {"ipc": 1, "iterations": 4, "batch_real": 4, "lr": 3e4, "log_every": 1})
    with pytest.warns(VideoddWarning, match="pixel-range") as caught:
        wild = distill(train, cfg, tmp_path / "wild").distilled
    assert sum("pixel-range" in str(w.message) for w in caught) == 1  # raised once, not every iteration
    assert any(w.startswith("iteration ") and "pixel-range" in w for w in wild.manifest.warnings)
    clamped = distill(train, resolve_config("dm", {**cfg.__dict__, "clamp_pixels": True}), tmp_path / "clamped")
    low, high = data_range(train)
    videos = clamped.distilled.tensors["videos"]  # (N, C, T, H, W)
    assert (videos >= low.view(1, -1, 1, 1, 1) - 1e-6).all() and (videos <= high.view(1, -1, 1, 1, 1) + 1e-6).all()
    assert not any("pixel-range" in w for w in clamped.distilled.manifest.warnings)


def test_collapse_is_detected_and_flagged_in_reports():
    assert collapsed(torch.tensor([[0.0, 1.0], [0.2, 3.0], [-1.0, 0.0]]))  # always class 1
    assert not collapsed(torch.tensor([[0.0, 1.0], [2.0, 0.0]]))
    runs = [RunResult(seed=s, top1=0.5, top5=1.0, per_class=[1.0, 0.0], final_train_loss=0.1, train_seconds=1.0,
                      collapsed=s == 0) for s in range(3)]
    summary = Summary(runs)
    assert summary.collapsed == 1 and summary.fmt() == "50.0 ± 0.0 (1 collapsed)"
    report = EvalReport(method="dm", ipc=1, dataset="d", dataset_fingerprint="f", model="m",
                        protocol={"name": "p", "version": 1, "train": {"lr": 0.01}}, result=summary,
                        classes=["a", "b"], storage_bytes=1, storage_by_tensor={}, full_train_bytes=2,
                        wall_seconds=0.0, peak_memory_bytes=0, peak_memory_kind="", set_warnings=["iteration 3: x: y"])
    text = report.to_markdown()
    assert "dm: 1 of 3 runs collapsed" in text and "warning from distillation: iteration 3: x: y" in text
    assert "trained with the protocol's lr 0.01" in text


def test_the_cli_prints_a_warning_as_one_line_and_info_shows_it(tiny_stores, tmp_path, capsys):
    from videodd.cli import main

    train, _ = tiny_stores
    out = tmp_path / "run"
    assert main(["distill", "--method", "dm", "--ipc", "1", "--data", str(train.root.parent), "--out", str(out),
                 "--iterations", "3", "--batch-real", "4", "--lr", "30000", "--log-every", "1", "--quiet"]) == 0
    err = capsys.readouterr().err
    assert "videodd distill: warning: iteration 1: pixel-range: synthetic pixels left the data range" in err
    assert "Traceback" not in err and "VideoddWarning" not in err
    assert main(["info", str(out / "distilled.safetensors")]) == 0
    assert "warning       iteration 1: pixel-range" in capsys.readouterr().out
