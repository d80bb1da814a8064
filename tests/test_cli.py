"""End-to-end CLI runs on a tiny store made in the test."""

import json

import pytest

from conftest import make_tiny_stores
from videodd.cli import main


@pytest.fixture()
def data_dir(tmp_path):
    make_tiny_stores(tmp_path / "data")
    return tmp_path / "data"


def test_distill_evaluate_info_end_to_end(data_dir, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["distill", "--method", "dm", "--ipc", "1", "--data", str(data_dir), "--out", str(run),
                 "--iterations", "3", "--batch-real", "4", "--quiet", "--device", "cpu"]) == 0
    assert (run / "distilled.safetensors").is_file() and (run / "config.yaml").is_file()
    assert len((run / "metrics.jsonl").read_text().splitlines()) >= 1
    assert main(["evaluate", str(run / "distilled.safetensors"), "--data", str(data_dir), "--protocol", "cpu",
                 "--runs", "1", "--quiet", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "| dm | 1 |" in out and "random real IPC 1" in out and "full training set" in out
    report = json.loads((run / "report.json").read_text())
    assert report["method"] == "dm" and len(report["result"]["runs"]) == 1
    assert report["storage_bytes"] > 0 and report["compression_ratio"] > 1
    assert set(report["per_class_mean"]) == {"class0", "class1", "class2"}
    assert list((data_dir / "references").glob("full-*.json"))  # cached for the next method
    assert main(["info", str(run / "distilled.safetensors")]) == 0
    assert "IPC" in capsys.readouterr().out
    assert main(["info", str(data_dir / "train")]) == 0
    assert "ClipStore" in capsys.readouterr().out


def test_resume_flag_continues(data_dir, tmp_path, capsys):
    run = tmp_path / "run"
    args = ["distill", "--method", "dm", "--data", str(data_dir), "--out", str(run), "--iterations", "4",
            "--batch-real", "4", "--checkpoint-every", "2", "--quiet", "--device", "cpu"]
    assert main(args) == 0
    assert main([*args, "--resume"]) == 0
    assert "resumed from iteration 4" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv, message",
    [
        (["distill", "--method", "dmm", "--data", "{data}"], "valid methods: "),
        (["distill", "--method", "dm", "--model", "vgg", "--data", "{data}", "--out", "{tmp}/r"], "valid models"),
        (["distill", "--method", "dm", "--augment", "blur", "--data", "{data}", "--out", "{tmp}/r"], "valid ops"),
        (["evaluate", "{tmp}/missing.safetensors", "--data", "{data}"], "missing.safetensors"),
        (["evaluate", "{tmp}/garbage.safetensors", "--data", "{data}"], "truncated or not a safetensors file"),
        (["evaluate", "{tmp}/x.safetensors", "--data", "{data}", "--protocol", "nope"], "valid evaluation protocols"),
        (["prepare", "kinetics-9000", "--out", "{tmp}/x"], "valid datasets"),
        (["distill", "--method", "dm", "--data", "{tmp}/nothing"], "no such ClipStore"),
    ],
)
def test_bad_input_gets_a_clear_error(data_dir, tmp_path, capsys, argv, message):
    (tmp_path / "garbage.safetensors").write_bytes(b"\x00" * 7)
    if "x.safetensors" in " ".join(argv):
        main(["distill", "--method", "random", "--data", str(data_dir), "--out", str(tmp_path), "--quiet"])
        (tmp_path / "distilled.safetensors").rename(tmp_path / "x.safetensors")
    argv = [a.format(data=data_dir, tmp=tmp_path) for a in argv]
    assert main([*argv, "--quiet"] if argv[0] in ("distill", "evaluate") else argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "r").exists()  # refused before anything was written


def test_mismatched_store_is_refused(data_dir, tmp_path, capsys):
    from conftest import make_tiny_stores

    other = tmp_path / "other"
    make_tiny_stores(other, num_classes=4)
    main(["distill", "--method", "random", "--data", str(data_dir), "--out", str(tmp_path / "r"), "--quiet"])
    code = main(["evaluate", str(tmp_path / "r" / "distilled.safetensors"), "--data", str(other), "--quiet"])
    assert code == 2 and "class3" in capsys.readouterr().err


def test_help_explains_every_flag(capsys):
    with pytest.raises(SystemExit):
        main(["distill", "--help"])
    text = capsys.readouterr().out
    for flag in ("--ipc", "--iterations", "--lr", "--batch-real", "--augment", "--resume", "--checkpoint-every",
                 "--optimizer"):
        assert flag in text
    # a field documented over several docstring lines is shown whole, not cut at its first line
    flat = " ".join(text.split())
    assert "``herding`` / ``kcenter``, the clips that selector picks)" in flat
    main(["methods"])
    main(["models"])
    out = capsys.readouterr().out
    assert "dm" in out and "convnet3d-s" in out


def test_prepare_synth_actions_then_distill_random(tmp_path, capsys):
    out = tmp_path / "synth"
    assert main(["prepare", "synth-actions", "--out", str(out), "--classes", "4", "--train-per-class", "3",
                 "--test-per-class", "2", "--seed", "5"]) == 0
    from videodd.data.store import ClipStore

    train, test = ClipStore(out / "train"), ClipStore(out / "test")
    assert (len(train), len(test), train.video_shape) == (12, 8, (3, 8, 32, 32))
    assert train.classes[:2] == ["red-disk-up", "red-disk-down"] and test.meta.mean == train.meta.mean
    assert main(["distill", "--method", "random", "--ipc", "2", "--data", str(out), "--out", str(tmp_path / "r"),
                 "--quiet"]) == 0
    assert main(["prepare", "synth-actions", "--out", str(tmp_path / "bad"), "--classes", "1"]) == 2
    assert "num_classes" in capsys.readouterr().err


def test_evaluate_cross_architecture_table(data_dir, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["distill", "--method", "random", "--data", str(data_dir), "--out", str(run), "--quiet"]) == 0
    args = ["evaluate", str(run / "distilled.safetensors"), "--data", str(data_dir), "--protocol", "cpu",
            "--runs", "1", "--epochs", "2", "--quiet", "--device", "cpu"]
    assert main([*args, "--models", "convnet3d-s,nope"]) == 2  # refused before any model trains
    assert "valid models" in capsys.readouterr().err and not (run / "report.json").exists()
    assert main([*args, "--models", "convnet3d-s-bn,convnet-mean", "--references", "random"]) == 0
    out = capsys.readouterr().out
    table = out[out.index("cross-architecture: random IPC 1 on tiny, protocol cpu+epochs=2 v1"):]
    assert "| model | top-1 (%) | top-5 (%) | runs | random real IPC 1 top-1 (%) | wall time |" in table
    assert "\n| convnet3d-s-bn | " in table and "\n| convnet-mean | " in table
    reports = json.loads((run / "report.json").read_text())
    assert [r["model"] for r in reports] == ["convnet3d-s-bn", "convnet-mean"]
    assert all(r["protocol"]["name"] == "cpu+epochs=2" and r["protocol"]["train"]["epochs"] == 2 for r in reports)
    assert reports[0]["protocol"]["reference_train"]["epochs"] == 30  # the full-data schedule is untouched
    assert "cross-architecture" in (run / "report.md").read_text()
    # the references trained under the shortened schedule are cached under its own name
    assert {p.name.split("-v1-")[0] for p in (data_dir / "references").glob("*.json")} == {"random-ipc1-cpu+epochs=2"}


def test_every_command_is_listed_in_order(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    text = capsys.readouterr().out
    names = ["prepare", "distill", "experts", "teacher", "evaluate", "train-codec", "encode", "info", "datasets",
             "methods", "models", "demo"]
    positions = [text.index(f"\n    {name} ") if f"\n    {name} " in text else text.index(f"\n    {name}\n")
                 for name in names]
    assert positions == sorted(positions)
    assert "videodd teacher --data data/synth" in text and "selector.checkpoint=" in text
    assert main(["datasets"]) == 0
    assert "synth-actions" in capsys.readouterr().out


def test_a_missing_plugin_is_a_one_line_error(monkeypatch, capsys):
    monkeypatch.setenv("VIDEODD_PLUGINS", "no/such/plugin.py")
    assert main(["methods"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("videodd: error: VIDEODD_PLUGINS: no/such/plugin.py") and "Traceback" not in err
