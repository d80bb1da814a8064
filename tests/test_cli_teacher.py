"""``videodd teacher``: train a classifier teacher on a tiny store, describe it with ``videodd info``,
reuse it as the feature network of herding, refuse it on another store."""

from __future__ import annotations

import pytest

from conftest import TINY_SPEC, make_tiny_stores, tiny_clips
from videodd.cli import main
from videodd.data.store import ClipStore, write_store
from videodd.distilled import DistilledSet
from videodd.selection.herding import herding_order
from videodd.teachers.base import embed_all, read_manifest
from videodd.teachers.classifier import load_classifier


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """DATA (the tiny stores) and a 1-epoch teacher trained on DATA/train, shared by the module's tests."""
    root = tmp_path_factory.mktemp("teacher")
    make_tiny_stores(root / "data")
    path = root / "teachers" / "tiny.safetensors"  # the parent folder does not exist yet
    assert main(["teacher", "--data", str(root / "data"), "--out", str(path), "--epochs", "1", "--batch-size", "8",
                 "--quiet", "--device", "cpu"]) == 0
    return root / "data", path


def test_teacher_writes_a_file_fingerprinted_with_the_store(trained):
    data, path = trained
    manifest = read_manifest(path)
    train = ClipStore(data / "train")
    assert manifest["kind"] == "classifier" and manifest["store_fingerprint"] == train.fingerprint
    assert manifest["model"] == "convnet3d-s-bn"  # auto at 32 px
    assert manifest["config"]["epochs"] == 1 and manifest["config"]["batch_size"] == 8 and manifest["seed"] == 0
    assert manifest["classes"] == train.classes and manifest["input_shape"] == list(train.video_shape)


def test_teacher_prints_one_line(tmp_path, capsys):
    make_tiny_stores(tmp_path / "data")
    out = tmp_path / "t.safetensors"
    assert main(["teacher", "--data", str(tmp_path / "data"), "--out", str(out), "--epochs", "1",
                 "--model", "convnet3d-s", "--quiet", "--device", "cpu"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("trained teacher convnet3d-s (")
    assert " parameters) on 18 clips of " in lines[0] and lines[0].endswith(f"wrote {out}")


def test_info_describes_a_teacher_file(trained, capsys):
    data, path = trained
    assert main(["info", str(path)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"Teacher {path} (classifier)")
    assert "model: convnet3d-s-bn (" in out and " parameters)" in out
    assert ClipStore(data / "train").fingerprint in out and "classes: 3" in out and "(3, 4, 32, 32)" in out
    assert "'epochs': 1" in out and "seed: 0" in out


def test_herding_uses_the_teacher_whatever_the_seed(trained, tmp_path):
    data, path = trained
    train = ClipStore(data / "train")
    model, _ = load_classifier(path, train)
    feats = embed_all(model, train)
    expected = [int(train.class_indices(c)[herding_order(feats[train.class_indices(c)], 1)[0]])
                for c in range(train.num_classes)]
    for seed in ("0", "7"):  # loaded weights: nothing random is left
        run = tmp_path / f"run{seed}"
        assert main(["distill", "--method", "herding", "--ipc", "1", "--seed", seed, "--data", str(data),
                     "--out", str(run), "--set", f"selector.checkpoint={path}", "--quiet", "--device", "cpu"]) == 0
        ids = DistilledSet.load(run / "distilled.safetensors").manifest.info["source_ids"]
        assert [int(s.split("/")[1]) for s in ids] == expected


def test_a_teacher_of_another_store_is_refused(trained, tmp_path, capsys):
    data, _ = trained
    train = ClipStore(data / "train")
    clips, labels = tiny_clips(3, 6, seed=7)  # same classes and clip shape, other clips
    write_store(tmp_path / "other" / "train", clips, labels, dataset="tiny", split="train", classes=train.classes,
                spec=TINY_SPEC)
    other = tmp_path / "other.safetensors"
    assert main(["teacher", "--data", str(tmp_path / "other"), "--out", str(other), "--epochs", "1", "--quiet",
                 "--device", "cpu"]) == 0
    capsys.readouterr()
    assert main(["distill", "--method", "herding", "--ipc", "1", "--data", str(data), "--out", str(tmp_path / "r"),
                 "--set", f"selector.checkpoint={other}", "--quiet", "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and err.startswith("videodd distill: error: ")
    assert str(other) in err and "fingerprint" in err and "Traceback" not in err
    assert not (tmp_path / "r" / "distilled.safetensors").exists()


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--epochs", "0"], "epochs >= 1"),
        (["--lr", "0"], "lr > 0"),
        (["--model", "vgg"], "valid models"),
        (["--out", "{tmp}"], "is a folder"),
    ],
)
def test_bad_settings_are_one_line_errors(tmp_path, capsys, flags, message):
    make_tiny_stores(tmp_path / "data")
    flags = [f.format(tmp=tmp_path) for f in flags]
    argv = ["teacher", "--data", str(tmp_path / "data"), "--out", str(tmp_path / "t.safetensors"), *flags, "--quiet"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("videodd teacher: error: ") and len(err.strip().splitlines()) == 1
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "t.safetensors").exists()


def test_help_shows_the_config_fields(capsys):
    with pytest.raises(SystemExit):
        main(["teacher", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for flag in ("--model", "--epochs", "--lr", "--momentum", "--weight-decay", "--batch-size", "--seed", "--device"):
        assert flag in text
    assert "passes over the training store. (default: 10)" in text and "(default: 0.0005)" in text
