"""``videodd report``: a study folder whose plots are real images and whose links resolve."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from PIL import Image

from videodd.cli import main
from videodd.distill import distill, resolve_config
from videodd.errors import ConfigError
from videodd.evaluate import evaluate, get_protocol
from videodd.study import build_study, load_entries

pytest.importorskip("matplotlib")  # the plots extra; the dev install has it


@pytest.fixture()
def runs(tiny_stores, tmp_path):
    """Two evaluated run folders (random, DM) with their metrics, sets and report.json."""
    train, test = tiny_stores
    protocol = get_protocol("cpu").with_runs(2).with_epochs(2)
    folders = []
    for method, extra in (("random", {}), ("dm", {"iterations": 6, "batch_real": 4, "log_every": 2})):
        result = distill(train, resolve_config(method, {"ipc": 1, **extra}), tmp_path / method)
        evaluate(result.distilled, test, protocol, train_store=train, cache_dir=tmp_path / "refs").save(
            result.run_dir / "report.json")
        folders.append(result.run_dir)
    return folders


def test_study_plots_are_images_and_links_resolve(runs, tmp_path):
    result = build_study(load_entries(runs), tmp_path / "study", html_page=True)
    names = {f.name for f in result.files}
    assert {"accuracy_vs_bytes.png", "per_class.png", "curves.png", "previews.png", "index.md", "index.html"} <= names
    for f in result.files:
        if f.suffix == ".png":
            image = np.asarray(Image.open(f).convert("L"), dtype=np.float64)
            assert image.shape == (450, 700), f  # 7 x 4.5 inches at 100 dpi
            assert image.std() > 5, f"{f} is blank"
    index = (tmp_path / "study" / "index.md").read_text()
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", index)
    assert len(links) == 4 and all((tmp_path / "study" / link).is_file() for link in links)
    # the table: both methods and every reference row, the byte budgets among them
    for row in ("| random |", "| dm |", "random real IPC 1", "random real uint8, same bytes", "H.264 real, same bytes",
                "full training set"):
        assert row in index, row
    page = (tmp_path / "study" / "index.html").read_text()
    assert page.count("data:image/png;base64,") == 4 and "<table>" in page


def test_report_command_reads_runs_and_results_json(runs, tmp_path, capsys):
    assert main(["report", *map(str, runs), "--out", str(tmp_path / "a")]) == 0
    assert "2 report(s)" in capsys.readouterr().out
    # a results JSON holding reports (as the demo and benchmarks write them)
    bundle = tmp_path / "results.json"
    bundle.write_text(json.dumps({"reports": [json.loads((r / "report.json").read_text()) for r in runs]}))
    entries = load_entries([bundle])
    assert [e.report.method for e in entries] == ["random", "dm"]
    with pytest.raises(ConfigError, match="holds no evaluation report"):
        (tmp_path / "empty.json").write_text("{}")
        load_entries([tmp_path / "empty.json"])
    assert main(["report", str(tmp_path / "nowhere"), "--out", str(tmp_path / "b")]) == 2
