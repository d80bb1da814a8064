"""The README's Python code runs as written (issue 15): each ```python block is executed in a fresh folder
holding tiny stores at the paths it names, with the iterations and the protocol made tiny."""

from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path

import pytest

from conftest import make_tiny_stores
from videodd.evaluate import PROTOCOLS

README = Path(__file__).resolve().parent.parent / "README.md"
# what makes a block fast here; every replaced text must be in the README, so the test fails when it drifts
SHRINK = {'"iterations": 200': '"iterations": 2', '"default"': '"readme-test"'}


def blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.S)


def test_the_readme_has_python_code():
    assert blocks()


@pytest.mark.parametrize("index", range(len(blocks())))
def test_readme_python_block_runs(index, tmp_path, monkeypatch):
    code = blocks()[index]
    for old, new in SHRINK.items():
        code = code.replace(old, new)
    if "readme-test" not in PROTOCOLS:
        cpu = PROTOCOLS.get("cpu")
        PROTOCOLS.register("readme-test")(dataclasses.replace(
            cpu, name="readme-test", runs=1, train=dataclasses.replace(cpu.train, epochs=2),
            reference_train=dataclasses.replace(cpu.reference_train, epochs=1)))
    for folder in sorted(set(re.findall(r'"(data/[\w-]+)/(?:train|test)"', code))):
        make_tiny_stores(tmp_path / folder)
    monkeypatch.chdir(tmp_path)
    env = {"__name__": "__readme__"}
    exec(compile(code, f"README.md python block {index}", "exec"), env)  # noqa: S102
    assert os.listdir(tmp_path)


def test_the_shrinking_still_matches_the_readme():
    text = "".join(blocks())
    for old in SHRINK:
        assert old in text, f"{old!r} is no longer in the README's code: update SHRINK"
