"""The worked example of docs/ARCHITECTURE.md ("Adding a method") runs as written: its one file and its
recipe, loaded through VIDEODD_PLUGINS, distil a set with the ``videodd`` command."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from conftest import make_tiny_stores
from videodd.distilled import DistilledSet

DOC = Path(__file__).resolve().parent.parent / "docs" / "ARCHITECTURE.md"


def doc_files() -> dict[str, str]:
    """The fenced blocks of the document that name a file (```python file=NAME)."""
    text = DOC.read_text(encoding="utf-8")
    return dict(re.findall(r"```\w+ file=(\S+)\n(.*?)```", text, re.S))


def videodd(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "videodd.cli", *args], env=env, capture_output=True, text=True,
                          timeout=300)


def test_the_worked_example_is_one_file_and_one_recipe(tmp_path):
    files = doc_files()
    assert set(files) == {"pixel_mean.py", "mean-match.yaml"}
    for name, text in files.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    make_tiny_stores(tmp_path / "data")
    env = {**os.environ, "VIDEODD_PLUGINS": str(tmp_path / "pixel_mean.py"), "OMP_NUM_THREADS": "1"}

    listed = videodd("methods", env=env)
    assert listed.returncode == 0 and "mean-match" in listed.stdout and "pixels x pixel-mean" in listed.stdout

    out = tmp_path / "run"
    run = videodd("distill", "--config", str(tmp_path / "mean-match.yaml"), "--data", str(tmp_path / "data"),
                  "--out", str(out), "--quiet", "--device", "cpu", "--set", "objective.weight=2", env=env)
    assert run.returncode == 0, run.stderr
    dset = DistilledSet.load(out / "distilled.safetensors")
    assert dset.manifest.method == "mean-match" and dset.manifest.kind == "pixels"
    assert dset.manifest.config["objective"] == {"weight": 2.0} and dset.manifest.config["init"] == "noise"
    assert tuple(dset.tensors["videos"].shape) == (3, 3, 4, 32, 32)
    losses = [json.loads(line)["loss"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert len(losses) == 4 and losses[-1] < 0.5 * losses[0]  # log_every 5 of 20 iterations; noise -> class means

    # without the plugin the recipe's method is unknown, and the error says which ones exist
    plain = {k: v for k, v in env.items() if k != "VIDEODD_PLUGINS"}
    refused = videodd("distill", "--config", str(tmp_path / "mean-match.yaml"), "--data", str(tmp_path / "data"),
                      "--out", str(tmp_path / "x"), "--quiet", env=plain)
    assert refused.returncode == 2 and "unknown method 'mean-match'" in refused.stderr
    assert "Traceback" not in refused.stderr
