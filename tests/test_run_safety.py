"""Issue 15: nothing lost, nothing misreported. Real processes are killed here, as a user's would be."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from videodd.distill import distill, resolve_config
from videodd.evaluate import get_protocol
from videodd.io import LOCK_NAME, LockedError, exclusive

TESTS = Path(__file__).resolve().parent
CFG = {"iterations": 40, "batch_real": 4, "checkpoint_every": 5}


def start_slow_run(store_root: Path, run: Path) -> subprocess.Popen:
    """A ``distill`` of CFG in another process, slowed to ~0.2 s an iteration so it can be caught mid-way."""
    script = (f"import time\nfrom videodd.data.store import ClipStore\nfrom videodd.distill import distill, "
              f"resolve_config\ncfg = resolve_config('dm', {CFG!r})\n"
              f"distill(ClipStore({str(store_root)!r}), cfg, {str(run)!r}, "
              "on_iteration=lambda it, p: time.sleep(0.2))\n")
    return subprocess.Popen([sys.executable, "-c", script], env={**os.environ, "OMP_NUM_THREADS": "1"})


def wait_for(path: Path, proc: subprocess.Popen, seconds: float = 60) -> None:
    deadline = time.time() + seconds
    while not path.exists():
        assert proc.poll() is None, "the run ended before it was caught"
        assert time.time() < deadline, f"{path} did not appear"
        time.sleep(0.05)


def test_a_second_writer_fails_at_once_and_a_killed_writers_lock_is_taken_over(tiny_stores, tmp_path):
    """Issue 15, item 2: two processes never write one run; kill -9 of the writer loses nothing."""
    train, _ = tiny_stores
    run = tmp_path / "run"
    proc = start_slow_run(train.root, run)
    try:
        wait_for(run / "metrics.jsonl", proc)  # logged lines are on disk at once, not at checkpoints
        with pytest.raises(LockedError, match=f"being written by process {proc.pid}"):
            distill(train, resolve_config("dm", CFG), run, resume=True)
        wait_for(run / "metrics.jsonl", proc)
        while "\"iteration\": 10," not in (run / "metrics.jsonl").read_text():
            assert proc.poll() is None
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert (run / LOCK_NAME).exists()  # the killed process could not clean up: its lock is stale
    resumed = distill(train, resolve_config("dm", CFG), run, resume=True)
    assert resumed.resumed_from >= 5 and not (run / LOCK_NAME).exists()
    straight = distill(train, resolve_config("dm", CFG), tmp_path / "straight").distilled
    assert torch.equal(resumed.distilled.tensors["videos"], straight.tensors["videos"])


def test_the_lock_names_its_holder_and_is_released(tmp_path):
    with exclusive(tmp_path / "f", "store") as lock:
        assert lock.exists() and str(os.getpid()) in lock.read_text()
        with pytest.raises(LockedError, match=f"store is being written by process {os.getpid()}"), \
                exclusive(tmp_path / "f", "store"):
            pass
    assert not lock.exists()


def test_results_get_the_permissions_of_the_umask(tiny_stores, tmp_path):
    """Issue 15: atomic writes used to leave files 0600 and folders 0700 whatever the umask."""
    train, _ = tiny_stores
    old = os.umask(0o022)
    try:
        distill(train, resolve_config("random", {"ipc": 1}), tmp_path / "run")
        from videodd.data.store import write_store

        write_store(tmp_path / "store", train.clips[:3], train.labels[:3], dataset="d", split="train",
                    classes=train.classes, spec=train.spec)
    finally:
        os.umask(old)
    assert oct((tmp_path / "run" / "distilled.safetensors").stat().st_mode & 0o777) == "0o644"
    assert oct((tmp_path / "run" / "config.yaml").stat().st_mode & 0o777) == "0o644"
    assert oct((tmp_path / "store").stat().st_mode & 0o777) == "0o755"


def test_user_errors_are_one_line_with_exit_code_2(tiny_stores, tmp_path, capsys):
    """Issue 15, items 3 and 5: every failure a user can cause is one line naming what to do, never a traceback."""
    from videodd.cli import main

    train, _ = tiny_stores
    data = str(train.root.parent)
    bad = tmp_path / "bad.yaml"
    bad.write_text("method: dm\nlr: [1, 2\n")
    (tmp_path / "afile").write_text("x")
    cases = [
        (["distill", "--config", str(bad), "--data", data], "bad.yaml: not valid YAML"),
        (["distill", "--method", "dm", "--data", data, "--set", "objective.pool_size=[1"], "not valid YAML"),
        (["distill", "--method", "dm", "--data", data, "--out", str(tmp_path / "afile")], "is a file"),
        (["distill", "--method", "random", "--data", data, "--device", "cuda"], "sees no CUDA GPU"),
        (["distill", "--method", "random", "--data", data, "--device", "tpu"], "not a device"),
    ]
    for argv, message in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    with pytest.raises(SystemExit):  # argparse: --runs must be a positive integer
        main(["evaluate", "x.safetensors", "--data", data, "--runs", "0"])
    assert "expected a positive integer" in capsys.readouterr().err
    run = tmp_path / "run"
    assert main(["distill", "--method", "random", "--ipc", "1", "--data", data, "--out", str(run), "--quiet"]) == 0
    assert main(["evaluate", str(run / "distilled.safetensors"), "--data", data, "--references", "randm"]) == 2
    assert "unknown reference(s) ['randm']; valid: random, bytes, h264, full" in capsys.readouterr().err
    assert main(["distill", "--method", "random", "--ipc", "1", "--data", data, "--out", str(run)]) == 2
    assert "holds a finished run (random, IPC 1" in capsys.readouterr().err
    with pytest.raises(Exception):  # noqa: B017  --debug shows the traceback instead
        main(["--debug", "distill", "--method", "random", "--ipc", "1", "--data", data, "--out", str(run)])


def test_a_closed_pipe_ends_the_command_quietly():
    """``videodd methods | head -0``: the reader is gone before the command writes."""
    proc = subprocess.Popen([sys.executable, "-m", "videodd.cli", "methods"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env={**os.environ, "OMP_NUM_THREADS": "1"})
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 141 and "Traceback" not in err and "BrokenPipe" not in err


def test_prepare_refuses_to_replace_stores_and_force_keeps_them_until_the_new_ones_are_complete(tmp_path, capsys,
                                                                                                monkeypatch):
    """Issue 15, item 1 for prepare: a complete store is never replaced silently."""
    import videodd.data.datasets.synth_actions as source
    from videodd.cli import main
    from videodd.data.store import ClipStore

    out = str(tmp_path / "data")
    small = ["--num-classes", "2", "--train-per-class", "3", "--test-per-class", "2"]
    assert main(["prepare", "synth-actions", "--out", out, *small]) == 0
    assert main(["prepare", "synth-actions", "--out", out, "--num-classes", "2", "--train-per-class", "1"]) == 2
    err = capsys.readouterr().err
    assert "already holds prepared stores (train: 6 clips of synth-actions; test: 4 clips" in err and "--force" in err

    def killed(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(source, "prepare_synth_actions", killed)
    assert main(["prepare", "synth-actions", "--out", out, "--force", *small]) == 130
    assert len(ClipStore(tmp_path / "data" / "train")) == 6  # the old stores outlive a killed replacement
    monkeypatch.undo()
    assert main(["prepare", "synth-actions", "--out", out, "--force", "--num-classes", "2", "--train-per-class",
                 "1", "--test-per-class", "1"]) == 0
    assert len(ClipStore(tmp_path / "data" / "train")) == 2 and len(ClipStore(tmp_path / "data" / "test")) == 2
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == ["test", "train"]


def test_verify_finds_a_flipped_byte_in_a_store_and_in_a_set(tiny_stores, tmp_path, capsys):
    """Issue 15: `videodd verify` recomputes what a load does not (info and distill would not notice)."""
    from videodd.cli import main

    train, _ = tiny_stores
    run = tmp_path / "run"
    assert main(["distill", "--method", "random", "--ipc", "1", "--data", str(train.root.parent), "--out",
                 str(run), "--quiet"]) == 0
    assert main(["verify", str(train.root), str(run / "distilled.safetensors")]) == 0
    assert capsys.readouterr().out.count(": ok,") == 2
    raw = bytearray((run / "distilled.safetensors").read_bytes())
    raw[-20] ^= 0xFF  # a pixel of the last clip, inside the tensor data
    (run / "distilled.safetensors").write_bytes(bytes(raw))
    assert main(["info", str(run / "distilled.safetensors")]) == 0  # a load does not notice...
    assert main(["verify", str(run / "distilled.safetensors")]) == 2  # ...verify does
    assert "content checksum" in capsys.readouterr().err
    clips = train.root / "clips.npy"
    raw = bytearray(clips.read_bytes())
    raw[-1] ^= 0xFF
    clips.write_bytes(bytes(raw))
    assert main(["verify", str(train.root)]) == 2
    assert "does not match the manifest" in capsys.readouterr().err


def test_info_on_a_checkpoint_says_how_to_finish_the_run(tiny_stores, tmp_path, capsys):
    from videodd.cli import main

    train, _ = tiny_stores
    distill(train, resolve_config("dm", {"iterations": 2, "batch_real": 4}), tmp_path / "run")
    assert main(["info", str(tmp_path / "run" / "checkpoint.safetensors")]) == 0
    out = capsys.readouterr().out
    assert "the checkpoint of a run at iteration 2, not a distilled set" in out and "--resume" in out


def test_every_command_explains_itself(capsys):
    from videodd.cli import build_parser

    parser = build_parser()
    commands = parser._subparsers._group_actions[0].choices  # noqa: SLF001
    for name, sub in commands.items():
        assert sub.description, f"`videodd {name} --help` has no description"


def test_evaluation_warns_when_the_test_split_is_too_small_to_measure(tiny_stores, tmp_path):
    """4 test clips per class and 3 classes (the tiny stores): both warnings."""
    from videodd.evaluate import evaluate
    from videodd.guards import VideoddWarning

    train, test = tiny_stores
    dset = distill(train, resolve_config("random", {"ipc": 1}), tmp_path / "r").distilled
    with pytest.warns(VideoddWarning) as caught:
        evaluate(dset, test, get_protocol("cpu").with_runs(1).with_epochs(1), references=())
    messages = " ".join(str(w.message) for w in caught)
    assert "only 4 test clip(s)" in messages and "top-5 accuracy is 100 % by construction" in messages
