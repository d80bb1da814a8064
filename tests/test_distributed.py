"""Several processes, one job: ``torchrun --nproc_per_node=2 -m videodd ...`` on CPU (gloo).

A class-sharded DM run must write the set one process writes (to float rounding: the summed
gradients add in another order); a resumed sharded run must match an uninterrupted one; evaluation
runs spread over the ranks must give the single-process figures exactly; experts spread over the
ranks must be the files one process trains. Two real processes each time: slow-ish, so few tests.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from conftest import make_tiny_stores
from videodd.cli import main
from videodd.distilled import DistilledSet
from videodd.teachers.experts import expert_path

pytestmark = pytest.mark.slow


def torchrun(args: list[str], nproc: int = 2, timeout: int = 240) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
           "-m", "videodd", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("ddp") / "data"
    make_tiny_stores(root, num_classes=4, train_per_class=6, test_per_class=3)
    return root


DM = ["distill", "--method", "dm", "--ipc", "2", "--iterations", "6", "--batch-real", "4", "--lr", "10",
      "--device", "cpu", "--quiet"]


def test_sharded_dm_matches_one_process(data: Path, tmp_path: Path) -> None:
    assert main([*DM, "--data", str(data), "--out", str(tmp_path / "one")]) == 0
    done = torchrun([*DM, "--data", str(data), "--out", str(tmp_path / "two")])
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("wrote ") == 1  # rank 0 alone prints
    one = DistilledSet.load(tmp_path / "one" / "distilled.safetensors")
    two = DistilledSet.load(tmp_path / "two" / "distilled.safetensors")
    torch.testing.assert_close(two.tensors["videos"], one.tensors["videos"], rtol=1e-4, atol=1e-5)
    assert torch.equal(two.labels, one.labels)
    losses = [[json.loads(line)["loss"] for line in (tmp_path / name / "metrics.jsonl").read_text().splitlines()]
              for name in ("one", "two")]
    assert losses[1] == pytest.approx(losses[0], rel=1e-4)  # the job's loss: the ranks' terms summed


def test_sharded_resume_matches_uninterrupted(data: Path, tmp_path: Path) -> None:
    first = torchrun([*DM[:6], "3", *DM[7:], "--data", str(data), "--out", str(tmp_path / "run")])
    assert first.returncode == 0, first.stderr[-3000:]
    more = torchrun([*DM, "--data", str(data), "--out", str(tmp_path / "run"), "--resume"])
    assert more.returncode == 0, more.stderr[-3000:]
    assert main([*DM, "--data", str(data), "--out", str(tmp_path / "whole")]) == 0
    resumed = DistilledSet.load(tmp_path / "run" / "distilled.safetensors").tensors["videos"]
    whole = DistilledSet.load(tmp_path / "whole" / "distilled.safetensors").tensors["videos"]
    torch.testing.assert_close(resumed, whole, rtol=1e-4, atol=1e-5)


def test_evaluation_runs_spread_over_ranks(data: Path, tmp_path: Path) -> None:
    assert main(["distill", "--method", "random", "--ipc", "2", "--data", str(data), "--out", str(tmp_path / "set"),
                 "--device", "cpu", "--quiet"]) == 0
    args = ["evaluate", str(tmp_path / "set" / "distilled.safetensors"), "--data", str(data), "--protocol", "cpu",
            "--runs", "3", "--epochs", "2", "--references", "", "--device", "cpu", "--quiet"]
    assert main([*args, "--out", str(tmp_path / "one.json")]) == 0
    done = torchrun([*args, "--out", str(tmp_path / "two.json")])
    assert done.returncode == 0, done.stderr[-3000:]
    one = json.loads((tmp_path / "one.json").read_text())["result"]["runs"]
    two = json.loads((tmp_path / "two.json").read_text())["result"]["runs"]
    assert [r["seed"] for r in two] == [r["seed"] for r in one]
    assert [r["top1"] for r in two] == [r["top1"] for r in one]  # same runs, same seeds: the same figures
    assert [r["final_train_loss"] for r in two] == pytest.approx([r["final_train_loss"] for r in one], rel=1e-6)


def test_commands_that_run_in_one_process_refuse_torchrun(data: Path, tmp_path: Path) -> None:
    done = torchrun(["prepare", "synth-actions", "--out", str(tmp_path / "p")])
    assert done.returncode != 0
    assert "runs in one process" in done.stderr


def test_experts_spread_over_ranks_then_mtt_replicas(data: Path, tmp_path: Path) -> None:
    args = ["experts", "--data", str(data), "--num-experts", "3", "--epochs", "2", "--model", "convnet3d-s",
            "--device", "cpu", "--quiet"]
    assert main([*args, "--out", str(tmp_path / "one")]) == 0
    done = torchrun([*args, "--out", str(tmp_path / "two")])
    assert done.returncode == 0, done.stderr[-3000:]
    for i in range(3):  # expert i trained by rank i % 2: the same trajectory as one process trains
        one, two = (load_file(expert_path(tmp_path / side, i))["trajectory"] for side in ("one", "two"))
        assert torch.equal(one, two)
    manifest = json.loads((tmp_path / "two" / "experts.json").read_text())
    assert manifest["num_experts"] == 3
    mtt = ["distill", "--method", "mtt", "--ipc", "1", "--iterations", "3", "--model", "convnet3d-s", "--data",
           str(data), "--set", f"objective.experts={tmp_path / 'two'}", "--set", "objective.syn_steps=2",
           "--set", "objective.max_start_epoch=1", "--device", "cpu", "--quiet", "--out", str(tmp_path / "mtt")]
    done = torchrun(mtt)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = [json.loads(line) for line in (tmp_path / "mtt" / "metrics.jsonl").read_text().splitlines()]
    assert rows and all(torch.isfinite(torch.tensor([r["loss"], r["syn_lr"]])).all() for r in rows)
    assert torch.isfinite(DistilledSet.load(tmp_path / "mtt" / "distilled.safetensors").tensors["videos"]).all()
