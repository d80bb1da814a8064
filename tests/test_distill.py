import json

import pytest
import torch

from conftest import assert_resume_matches
from videodd.checkpoint import load_state, save_state
from videodd.config import ConfigError
from videodd.distill import NonFiniteError, distill, resolve_config
from videodd.distilled import DistilledSet


def test_resume_equals_uninterrupted_run(tiny_stores, tmp_path):
    train, _ = tiny_stores
    cfg = resolve_config("dm", {"ipc": 1, "iterations": 7, "batch_real": 4, "checkpoint_every": 3, "log_every": 1})
    full, resumed = assert_resume_matches(train, cfg, tmp_path, kill_at=5)
    assert resumed.resumed_from == 3
    # the metrics log has each iteration once, as the uninterrupted run's
    rows = [json.loads(x) for x in (tmp_path / "resumed" / "metrics.jsonl").read_text().splitlines()]
    rows_full = [json.loads(x) for x in (tmp_path / "full" / "metrics.jsonl").read_text().splitlines()]
    assert [r["iteration"] for r in rows] == list(range(1, 8))
    assert [r["loss"] for r in rows] == [r["loss"] for r in rows_full]
    # and the saved file holds the same
    again = DistilledSet.load(tmp_path / "resumed" / "distilled.safetensors")
    assert torch.equal(again.tensors["videos"], full.distilled.tensors["videos"])


def test_resume_names_every_setting_that_differs_and_more_iterations_extend_the_run(tiny_stores, tmp_path):
    """Issue 15, item 6."""
    from videodd.distill import RunFolderError

    train, _ = tiny_stores
    cfg = resolve_config("dm", {"iterations": 2, "batch_real": 4})
    distill(train, cfg, tmp_path / "r")
    other = resolve_config("dm", {"iterations": 2, "batch_real": 4, "lr": 3.0, "objective": {"pool_size": 2}})
    with pytest.raises(RunFolderError, match=r"distill.lr: 1.0 -> 3.0; distill.objective.pool_size: None -> 2"):
        distill(train, other, tmp_path / "r", resume=True)
    longer = resolve_config("dm", {"iterations": 4, "batch_real": 4})
    extended = distill(train, longer, tmp_path / "r", resume=True)
    assert extended.resumed_from == 2
    straight = distill(train, longer, tmp_path / "straight").distilled
    assert torch.equal(extended.distilled.tensors["videos"], straight.tensors["videos"])
    with pytest.raises(RunFolderError, match=r"distill.iterations: 4 -> 3"):  # a run does not shrink
        distill(train, resolve_config("dm", {"iterations": 3, "batch_real": 4}), tmp_path / "r", resume=True)


def test_a_finished_run_is_never_overwritten_silently(tiny_stores, tmp_path):
    """Issue 15, item 1: refused without --resume/--force; --force keeps the old run until the new one is complete."""
    from videodd.distill import RunFolderError

    train, _ = tiny_stores
    cfg = resolve_config("dm", {"iterations": 2, "batch_real": 4})
    first = distill(train, cfg, tmp_path / "r").distilled.tensors["videos"]
    with pytest.raises(RunFolderError, match=r"holds a finished run \(dm, IPC 1, 2 iterations\).*--resume.*--force"):
        distill(train, resolve_config("dm", {"iterations": 2, "batch_real": 4, "seed": 1}), tmp_path / "r")
    other = resolve_config("dm", {"iterations": 4, "batch_real": 4, "seed": 1})

    def crash(it, _param):
        if it == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):  # the replacement dies half-way: the old run is untouched
        distill(train, other, tmp_path / "r", overwrite=True, on_iteration=crash)
    kept = DistilledSet.load(tmp_path / "r" / "distilled.safetensors")
    assert torch.equal(kept.tensors["videos"], first) and kept.manifest.seed == 0
    replaced = distill(train, other, tmp_path / "r", overwrite=True)
    assert replaced.run_dir == tmp_path / "r"
    assert DistilledSet.load(tmp_path / "r" / "distilled.safetensors").manifest.seed == 1
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]  # no .new / .old folders left
    (tmp_path / "file").write_text("x")
    with pytest.raises(RunFolderError, match="is a file"):
        distill(train, cfg, tmp_path / "file")


def test_nan_stops_with_iteration_and_keeps_last_good_checkpoint(tiny_stores, tmp_path):
    train, _ = tiny_stores
    cfg = resolve_config("dm", {"iterations": 10, "batch_real": 4, "checkpoint_every": 2})

    def poison(it, param):
        if it == 4:
            with torch.no_grad():
                param.videos[0, 0, 0, 0, 0] = float("nan")

    # iteration 4's update is fine, the poison lands after it; iteration 5 sees NaN in the loss
    with pytest.raises(NonFiniteError, match="iteration 5") as err:
        distill(train, cfg, tmp_path / "r", on_iteration=poison)
    assert "iteration 4" in str(err.value)  # last good checkpoint named
    assert "lower --lr and resume" in str(err.value)  # pixels have no step of their own
    state = load_state(tmp_path / "r" / "checkpoint.safetensors")
    assert state["iteration"] == 4 and torch.isfinite(state["param"]["videos"]).all()


def test_random_selection_is_real_clips_per_class(tiny_stores, tmp_path):
    train, _ = tiny_stores
    res = distill(train, resolve_config("random", {"ipc": 2, "seed": 3}), tmp_path / "r")
    d = res.distilled
    assert d.manifest.kind == "real-clips" and d.tensors["clips"].dtype == torch.uint8
    assert d.labels.tolist() == [0, 0, 1, 1, 2, 2]
    ids = d.manifest.info["source_ids"]
    idx = [int(s.split("/")[1]) for s in ids]
    assert all(train.labels[i] == lab for i, lab in zip(idx, d.labels.tolist(), strict=True))
    assert torch.equal(d.tensors["clips"], torch.from_numpy(train.clips[idx].copy()))
    other = distill(train, resolve_config("random", {"ipc": 2, "seed": 4}), tmp_path / "r2").distilled
    assert other.manifest.info["source_ids"] != ids


def test_checkpoint_round_trip_of_nested_state(tmp_path):
    state = {"iteration": 3, "optimizer": {"state": {0: {"momentum_buffer": torch.ones(2)}},
                                           "param_groups": [{"lr": 0.1, "params": [0], "nesterov": False}]},
             "tuple": (1, "a"), "none": None}
    save_state(tmp_path / "c.safetensors", state)
    back = load_state(tmp_path / "c.safetensors")
    assert back["optimizer"]["state"][0]["momentum_buffer"].tolist() == [1.0, 1.0]
    assert back["optimizer"]["param_groups"][0]["lr"] == 0.1 and back["tuple"] == (1, "a") and back["none"] is None


@pytest.mark.slow
def test_sigkilled_cli_run_resumes_to_the_uninterrupted_result(tiny_stores, tmp_path):
    """Kill a real `videodd distill` process mid-run with SIGKILL, resume it, compare bytes."""
    import os
    import signal
    import subprocess
    import sys
    import time

    data = tiny_stores[0].root.parent
    args = [sys.executable, "-m", "videodd.cli", "distill", "--method", "dm", "--data", str(data),
            "--iterations", "40", "--batch-real", "4", "--checkpoint-every", "4", "--log-every", "1", "--quiet",
            "--device", "cpu"]
    subprocess.run([*args, "--out", str(tmp_path / "full")], check=True, capture_output=True)
    proc = subprocess.Popen([*args, "--out", str(tmp_path / "killed")], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    metrics = tmp_path / "killed" / "metrics.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if metrics.exists() and len(metrics.read_text().splitlines()) >= 8:
            break
        time.sleep(0.02)
    assert proc.poll() is None, "the run finished before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (tmp_path / "killed" / "distilled.safetensors").exists()
    out = subprocess.run([*args, "--out", str(tmp_path / "killed"), "--resume"], check=True, capture_output=True,
                         text=True).stdout
    assert "resumed from iteration" in out
    a = DistilledSet.load(tmp_path / "full" / "distilled.safetensors").tensors["videos"]
    b = DistilledSet.load(tmp_path / "killed" / "distilled.safetensors").tensors["videos"]
    assert torch.equal(a, b)


def test_component_options_are_validated(tiny_stores):
    from videodd.config import ConfigError
    from videodd.distill import validate_config

    train, _ = tiny_stores
    with pytest.raises(ConfigError, match=r"unknown field\(s\) \['bogus'\]; valid fields: \['pool_batch'"):
        validate_config(resolve_config("dm", {"objective": {"bogus": 1}}))
    with pytest.raises(ConfigError, match="takes no options"):
        validate_config(resolve_config("random", {"selector": {"bogus": 1}}))
    with pytest.raises(ConfigError, match="has no parametrization"):
        validate_config(resolve_config("random", {"parametrization": {"x": 1}}))


def test_cli_set_parses_component_options():
    from videodd.cli.distill import parse_set
    from videodd.config import ConfigError

    assert parse_set("objective.syn_steps=20") == ("objective", "syn_steps", 20)
    assert parse_set("selector.checkpoint=a/b.safetensors") == ("selector", "checkpoint", "a/b.safetensors")
    with pytest.raises(ConfigError, match="PART.KEY=VALUE"):
        parse_set("syn_steps=20")


def test_cli_set_reads_exponent_numbers():
    from videodd.cli.distill import parse_set

    assert parse_set("objective.lr_lr=1e-5") == ("objective", "lr_lr", 1e-5)
    assert parse_set("builder.select=dpp") == ("builder", "select", "dpp")


def test_dm_can_start_from_a_selection_baseline(tiny_stores, tmp_path):
    """init=herding starts the pixels at exactly the clips the herding selector picks (same seed)."""
    train, _ = tiny_stores
    picked = distill(train, resolve_config("herding", {"ipc": 1}), tmp_path / "herding").distilled
    dm = distill(train, resolve_config("dm", {"ipc": 1, "iterations": 0, "init": "herding"}), tmp_path / "dm").distilled
    index = [train.meta.source_ids.index(s) for s in picked.manifest.info["source_ids"]]
    assert torch.allclose(dm.tensors["videos"], train.batch(torch.tensor(index)))


def test_adam_moves_every_value_by_about_lr_and_resumes(tiny_stores, tmp_path):
    """``optimizer: adam``: Adam's first step is lr * g / (|g| + eps), so no pixel moves more than lr
    and every pixel whose gradient is well above eps (1e-8) moves by lr - where SGD's step would be
    proportional to the gradient. Adam's moments travel in the checkpoint: a resumed run matches."""
    train, _ = tiny_stores
    base = {"ipc": 1, "batch_real": 4, "augment": [], "optimizer": "adam", "lr": 0.01}
    start = distill(train, resolve_config("dm", {**base, "iterations": 0}), tmp_path / "start")
    one = distill(train, resolve_config("dm", {**base, "iterations": 1}), tmp_path / "one")
    step = (one.distilled.tensors["videos"] - start.distilled.tensors["videos"]).abs()
    assert step.max() <= 0.01 * (1 + 1e-4)
    assert ((step - 0.01).abs() < 1e-5).float().mean() > 0.9  # the rest have gradients near eps

    cfg = resolve_config("dm", {**base, "iterations": 6, "checkpoint_every": 2})
    assert_resume_matches(train, cfg, tmp_path, kill_at=3)


def test_unknown_optimizer_lists_the_valid_ones():
    with pytest.raises(ValueError, match=r"optimizer must be one of \['adam', 'sgd'\]"):
        resolve_config("dm", {"optimizer": "rmsprop"})


def test_the_parametrizations_penalty_joins_the_loss(tiny_stores, tmp_path, monkeypatch):
    """``Parametrization.penalty()`` (None by default) is added to the objective's loss by the loop and
    logged: a large L2 penalty on the pixels shrinks them against the same run without it."""
    import json

    from videodd.synthesis.pixels import Pixels

    train, _ = tiny_stores
    cfg = resolve_config("dm", {"ipc": 1, "iterations": 3, "batch_real": 4, "lr": 1.0, "log_every": 1})
    plain = distill(train, cfg, tmp_path / "plain").distilled.tensors["videos"]
    monkeypatch.setattr(Pixels, "penalty", lambda self: 0.1 * self.videos.pow(2).sum())
    penalized = distill(train, cfg, tmp_path / "penalized").distilled.tensors["videos"]
    assert penalized.pow(2).mean() < 0.9 * plain.pow(2).mean()
    lines = [json.loads(x) for x in (tmp_path / "penalized" / "metrics.jsonl").read_text().splitlines()]
    assert all(x["penalty"] > 0 for x in lines)
    assert "penalty" not in (tmp_path / "plain" / "metrics.jsonl").read_text()


def test_snapshots_write_the_set_at_the_asked_iterations(tiny_stores, tmp_path):
    from videodd.distilled import DistilledSet

    train, _ = tiny_stores
    cfg = resolve_config("dm", {"ipc": 1, "iterations": 4, "batch_real": 4, "snapshots": [0, 2, 4],
                                "checkpoint_every": 2})
    result = distill(train, cfg, tmp_path / "run")
    files = sorted(p.name for p in (tmp_path / "run" / "snapshots").iterdir())
    assert files == ["iter-000000.safetensors", "iter-000002.safetensors", "iter-000004.safetensors"]
    last = DistilledSet.load(tmp_path / "run" / "snapshots" / "iter-000004.safetensors")
    assert torch.equal(last.tensors["videos"], result.distilled.tensors["videos"])
    first = DistilledSet.load(tmp_path / "run" / "snapshots" / "iter-000000.safetensors")
    start = distill(train, resolve_config("dm", {"ipc": 1, "iterations": 0}), tmp_path / "init").distilled
    assert torch.equal(first.tensors["videos"], start.tensors["videos"])  # the set before any step
    with pytest.raises(ConfigError, match="snapshots must be iterations in"):
        resolve_config("dm", {"iterations": 4, "snapshots": [5]})
