"""--tune: settings chosen on a validation split carved from the training store, never the test split."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest

from conftest import SmokeRuns
from videodd.cli import main
from videodd.config import ConfigError
from videodd.data.store import ClipStore
from videodd.distill import resolve_config
from videodd.errors import NonFiniteError, VideoddWarning
from videodd.evaluate import evaluate
from videodd.teachers.experts import ExpertBuffer
from videodd.tune import TuneConfig, carve_split, distill_tuned


def test_the_split_is_stratified_disjoint_and_reused(tiny_stores, tmp_path):
    train, _ = tiny_stores
    fit, val = carve_split(train, tmp_path / "split", val_fraction=0.34, seed=0)
    assert val.class_counts().tolist() == [2, 2, 2] and fit.class_counts().tolist() == [4, 4, 4]
    record = json.loads((tmp_path / "split" / "split.json").read_text())
    assert sorted(record["fit"] + record["val"]) == list(range(len(train))) and not set(record["fit"]) & set(
        record["val"])
    assert np.array_equal(val.clips[:], train.clips[record["val"]])  # the held-out clips themselves
    assert fit.meta.mean == train.meta.mean and val.meta.std == train.meta.std  # the training normalization
    stamp = (tmp_path / "split" / "val" / "clips.npy").stat().st_mtime_ns
    carve_split(train, tmp_path / "split", val_fraction=0.34, seed=0)
    assert (tmp_path / "split" / "val" / "clips.npy").stat().st_mtime_ns == stamp  # reused, not written again
    other, _ = carve_split(train, tmp_path / "other", val_fraction=0.34, seed=1)
    assert json.loads((tmp_path / "other" / "split.json").read_text())["val"] != record["val"]


def test_tuning_chooses_on_validation_and_runs_the_choice_on_all_the_training_clips(tiny_stores, tmp_path,
                                                                                   monkeypatch):
    """Noise scores at chance on the held-out clips and real clips do not: the real start is chosen, run on the
    whole training store, and the report says how it was chosen. A resumed tuning evaluates nothing again."""
    import videodd.tune as tune_module

    train, test = tiny_stores
    cfg = resolve_config("dm", {"ipc": 1, "iterations": 0})
    tune = TuneConfig(grid={"init": ["noise", "real"]}, val_fraction=0.34, epochs=20, runs=1)
    result, tuned = distill_tuned(train, cfg, tmp_path / "run", tune)
    rows = {row["key"]: row["val_top1_mean"] for row in tuned.rows}
    assert set(rows) == {"init=noise", "init=real"} and rows["init=real"] > rows["init=noise"]
    assert tuned.chosen["key"] == "init=real" and result.distilled.manifest.config["init"] == "real"
    assert result.distilled.manifest.dataset_fingerprint == train.fingerprint  # the final run: all of train
    assert ClipStore(tmp_path / "run" / "tune" / "val").fingerprint not in (train.fingerprint, test.fingerprint)
    assert "init=real **(chosen)**" in (tmp_path / "run" / "tune" / "tune.md").read_text()
    report = evaluate(result.distilled, test, "cpu")
    assert "settings chosen on a validation split of the training store" in report.to_markdown()
    assert "**init=real**" in report.to_markdown()

    calls = []
    monkeypatch.setattr(tune_module, "evaluate", lambda *a, **k: calls.append(a) or None)
    again, retuned = distill_tuned(train, cfg, tmp_path / "run", tune, resume=True)
    assert calls == [] and retuned.rows == tuned.rows  # every candidate was finished: nothing evaluated again


def test_a_diverged_candidate_is_recorded_and_not_chosen(tiny_stores, tmp_path, monkeypatch):
    """A step too large for the data makes NaN pixels: the search records it and goes on (seen on synth-motion,
    where one seed's lr=1e5 candidate ended a whole tuning); only a grid where everything diverges stops."""
    import videodd.tune as tune_module

    real_distill = tune_module.distill

    def distill(train, cfg, run_dir, **kwargs):
        if cfg.lr >= 1000:
            raise NonFiniteError("iteration 3: NaN/Inf in parameters ['videos'] of the synthetic set; stopped")
        return real_distill(train, cfg, run_dir, **kwargs)

    monkeypatch.setattr(tune_module, "distill", distill)
    train, test = tiny_stores
    cfg = resolve_config("dm", {"ipc": 1, "iterations": 1})
    tune = TuneConfig(grid={"lr": [1000, 1]}, val_fraction=0.34, epochs=5, runs=1)
    result, tuned = distill_tuned(train, cfg, tmp_path / "run", tune)
    assert [row.get("diverged") for row in tuned.rows] == [
        "iteration 3: NaN/Inf in parameters ['videos'] of the synthetic set", None]
    assert tuned.chosen["key"] == "lr=1" and result.distilled.manifest.config["lr"] == 1
    table = (tmp_path / "run" / "tune" / "tune.md").read_text()
    assert "| lr=1000 | 1 | diverged: iteration 3" in table and "lr=1 **(chosen)**" in table
    assert "lr=1000: diverged" in evaluate(result.distilled, test, "cpu").to_markdown()

    # validation that cannot tell the candidates from guessing (3 classes: 33.3 %) says so
    guess = SimpleNamespace(top1_mean=1 / 3, top1_std=0.0, runs=[SimpleNamespace(top1=1 / 3)], collapsed=0)
    monkeypatch.setattr(tune_module, "evaluate", lambda *a, **k: SimpleNamespace(result=guess, wall_seconds=0.0))
    with pytest.warns(VideoddWarning, match=r"\(lr=1\) scores 33.3 ± 0.0 % on validation, within its spread of chance"):
        distill_tuned(train, cfg, tmp_path / "chance", TuneConfig(grid={"lr": [1000, 1]}, val_fraction=0.34))
    with pytest.raises(NonFiniteError, match="every candidate diverged"):
        distill_tuned(train, cfg, tmp_path / "all", TuneConfig(grid={"lr": [1000, 2000]}, val_fraction=0.34))


def test_teachers_are_trained_again_on_the_fit_part(smoke_runs: SmokeRuns, tmp_path):
    """MTT's experts saw the validation clips: tuning trains them again on the fit part, with their settings."""
    cfg = smoke_runs.config("mtt")
    tune = TuneConfig(grid={"lr": [10.0, 100.0]}, epochs=2, runs=1, val_fraction=0.34)
    result, tuned = distill_tuned(smoke_runs.train, cfg, tmp_path / "run", tune)
    refit = ExpertBuffer(tmp_path / "run" / "tune" / "experts")
    original = ExpertBuffer(cfg.objective["experts"])
    fit = ClipStore(tmp_path / "run" / "tune" / "fit")
    assert refit.manifest["store_fingerprint"] == fit.fingerprint != original.manifest["store_fingerprint"]
    assert refit.manifest["config"] == original.manifest["config"] and len(refit) == len(original)
    assert result.distilled.manifest.config["objective"]["experts"] == cfg.objective["experts"]  # the final run's
    assert len(tuned.rows) == 2


def test_tune_settings_are_checked(tiny_stores, tmp_path, capsys):
    with pytest.raises(ValueError, match="val_fraction"):
        TuneConfig(val_fraction=1.0)
    with pytest.raises(ValueError, match="non-empty list"):
        TuneConfig(grid={"lr": []})
    train, _ = tiny_stores
    with pytest.raises(ConfigError, match="unknown field"):
        distill_tuned(train, resolve_config("dm", {"iterations": 0}), tmp_path / "r", TuneConfig(grid={"rate": [1]}))
    with pytest.raises(ConfigError, match="must start with one of"):
        distill_tuned(train, resolve_config("dm", {"iterations": 0}), tmp_path / "r",
                      TuneConfig(grid={"optimizer.beta": [1]}))
    data = str(train.root.parent)
    assert main(["distill", "--method", "dm", "--data", data, "--out", str(tmp_path / "x"), "--tune", "lr"]) == 2
    assert "expected KEY=V1,V2" in capsys.readouterr().err


def test_a_recipes_tune_mapping_runs_unless_no_tune(tiny_stores, tmp_path, capsys):
    train, _ = tiny_stores
    recipe = tmp_path / "r.yaml"
    recipe.write_text("method: dm\nipc: 1\niterations: 2\nbatch_real: 4\n"
                      "tune:\n  grid: {lr: [1, 10]}\n  epochs: 2\n  runs: 1\n  val_fraction: 0.34\n")
    data = str(train.root.parent)
    assert main(["distill", "--config", str(recipe), "--data", data, "--out", str(tmp_path / "t"), "--quiet"]) == 0
    assert "| lr=1" in capsys.readouterr().out and (tmp_path / "t" / "tune" / "tune.json").is_file()
    assert main(["distill", "--config", str(recipe), "--data", data, "--out", str(tmp_path / "n"), "--no-tune",
                 "--quiet"]) == 0
    assert not (tmp_path / "n" / "tune").exists()
