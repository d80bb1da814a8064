"""FRePo (krr objective): kernel ridge regression, learned labels end to end, the model pool, resume, CLI."""

import dataclasses
import json
import math

import pytest
import torch

from videodd.checkpoint import load_state
from videodd.distill import distill, make_objective, resolve_config
from videodd.distilled import DistilledSet
from videodd.objectives.krr import KernelRidgeRegression, krr_predict, label_margin
from videodd.seeding import make_generator
from videodd.synthesis.pixels import Pixels, PixelsOptions, initial_labels
from videodd.train import loss_fn

CPU = torch.device("cpu")


class Interrupt(Exception):
    pass


# -- kernel ridge regression --------------------------------------------------------------------
def test_krr_by_hand():
    """Orthonormal support features: K_ss = I, lambda = reg * trace / n = reg, so pred = K_ts Y_s / (1 + reg)."""
    f_syn = torch.eye(2, dtype=torch.float64)
    y_syn = torch.tensor([[1.0, -1.0], [0.5, 2.0]], dtype=torch.float64)
    f_target = torch.tensor([[3.0, 1.0]], dtype=torch.float64)
    pred = krr_predict(f_syn, y_syn, f_target, reg=1.0)
    expected = (3 * y_syn[0] + 1 * y_syn[1]) / 2
    assert torch.allclose(pred, expected[None], atol=1e-12)


def test_krr_predicts_the_support_labels_on_the_support_as_reg_vanishes():
    gen = make_generator(0)
    f_syn = torch.randn(5, 16, generator=gen, dtype=torch.float64)  # n < F: K_ss invertible
    y_syn = torch.randn(5, 3, generator=gen, dtype=torch.float64)
    pred = krr_predict(f_syn, y_syn, f_syn, reg=1e-12)
    assert torch.allclose(pred, y_syn, atol=1e-8)


def test_krr_float32_matches_a_float64_solve():
    gen = make_generator(1)
    f_syn = torch.randn(6, 32, generator=gen)
    y_syn = torch.randn(6, 4, generator=gen)
    f_target = torch.randn(10, 32, generator=gen)
    reg = 1e-3
    ours = krr_predict(f_syn, y_syn, f_target, reg)
    fs, ft, ys = f_syn.double(), f_target.double(), y_syn.double()
    k_ss = fs @ fs.T
    lam = reg * torch.trace(k_ss) / 6
    reference = (ft @ fs.T) @ torch.linalg.solve(k_ss + lam * torch.eye(6, dtype=torch.float64), ys)
    assert ours.dtype == torch.float32
    assert torch.allclose(ours.double(), reference, rtol=1e-4, atol=1e-4)


def test_label_margin_and_mse_label_loss_by_hand():
    labels = torch.tensor([[1.0, 0.5, 0.0], [0.6, 0.5, 0.0]])
    # margins 0.5 -> capped at 1/3, and 0.1
    assert label_margin(labels).item() == pytest.approx(-(1 / 3 + 0.1) / 2)
    logits = torch.tensor([[1.0, 2.0], [0.0, 0.0]])
    targets = torch.tensor([[0.0, 1.0], [1.0, 1.0]])
    assert loss_fn(logits, targets, "mse").item() == pytest.approx((0.5 * 2 + 0.5 * 2) / 2)
    with pytest.raises(ValueError, match="valid: ce, mse"):
        loss_fn(logits, targets, "l1")


# -- learned labels -----------------------------------------------------------------------------
def test_label_inits_by_hand(tiny_stores):
    hard = torch.tensor([0, 2])
    onehot = torch.tensor([[1.0, 0, 0], [0, 0, 1.0]])
    assert torch.equal(initial_labels(hard, 3, "onehot"), onehot)
    assert torch.allclose(initial_labels(hard, 3, "centered"), onehot - 1 / 3)
    assert torch.allclose(initial_labels(hard, 3, "scaled"), (onehot - 1 / 3) / math.sqrt(0.3))
    train, _ = tiny_stores
    param = Pixels(train, 2, make_generator(0), options=PixelsOptions(learn_labels=True, label_lr=0.5))
    assert param.labels().shape == (6, 3) and param.labels().dtype == torch.float32
    assert [g["lr"] for g in param.param_groups()] == [0.5]
    assert Pixels(train, 2, make_generator(0)).param_groups() == []


def test_learned_labels_and_pixels_receive_gradients(tiny_stores):
    train, _ = tiny_stores
    cfg = resolve_config("frepo", {"ipc": 2, "batch_real": 4, "objective": {"num_models": 2}})
    param = Pixels(train, 2, make_generator(0), options=PixelsOptions(learn_labels=True, label_init="scaled"))
    out = make_objective(KernelRidgeRegression, train, cfg, CPU).loss(param, make_generator(1))
    out.loss.backward()
    assert out.loss.item() > 0 and {"krr", "margin", "model"} <= set(out.metrics)
    assert param.soft_labels.grad is not None and param.soft_labels.grad.abs().sum() > 0
    assert param.videos.grad is not None and param.videos.grad.abs().sum() > 0


def test_hard_labels_work_without_label_learning(tiny_stores):
    train, _ = tiny_stores
    cfg = resolve_config("frepo", {"ipc": 1, "batch_real": 4, "parametrization": {"learn_labels": False},
                                   "objective": {"num_models": 1, "target_batch": 6}})
    obj = make_objective(KernelRidgeRegression, train, cfg, CPU)
    param = Pixels(train, 1, make_generator(0))
    out = obj.loss(param, make_generator(1))
    assert math.isfinite(out.loss.item()) and "margin" not in out.metrics
    assert obj.export(param).label_loss == "ce"


# -- the model pool -----------------------------------------------------------------------------
def test_pool_step_follows_the_set_update_and_old_models_are_replaced(tiny_stores, monkeypatch):
    train, _ = tiny_stores
    cfg = resolve_config("frepo", {"ipc": 1, "batch_real": 2,
                                   "objective": {"num_models": 2, "max_online_steps": 2}})
    param = Pixels(train, 1, make_generator(0), options=PixelsOptions(learn_labels=True))
    obj = make_objective(KernelRidgeRegression, train, cfg, CPU)
    gen = make_generator(1)
    obj.loss(param, gen)
    assert obj.pool.steps == [0, 1]  # staggered start: i * max_online_steps // num_models; no step taken yet
    chosen = obj.pending
    seen = []
    orig = obj.train_model
    monkeypatch.setattr(obj, "train_model", lambda i, p, g: seen.append((i, float(p.videos.detach().sum())))
                        or orig(i, p, g))
    with torch.no_grad():  # stands for the loop's step on the set
        param.videos.add_(1.0)
    old = obj.pool.models[chosen]
    obj.loss(param, gen)
    assert seen == [(chosen, pytest.approx(float(param.videos.detach().sum())))]  # on the UPDATED set
    if chosen == 1:  # its counter reached max_online_steps: a fresh network, counter 0
        assert obj.pool.steps[1] == 0 and obj.pool.models[1] is not old
    else:
        assert obj.pool.steps[0] == 1 and obj.pool.models[0] is old


# -- end to end ---------------------------------------------------------------------------------
def test_frepo_distills_learned_soft_labels_and_evaluation_trains_on_them(tiny_stores, tmp_path, monkeypatch):
    import videodd.evaluate as ev
    import videodd.protocol as protocol_module

    train, test = tiny_stores
    cfg = resolve_config("frepo", {"ipc": 1, "iterations": 3, "batch_real": 3, "objective": {"num_models": 2}})
    result = distill(train, cfg, tmp_path / "r")
    labels = result.distilled.labels
    assert labels.dtype == torch.float32 and labels.shape == (3, 3)
    init = initial_labels(torch.arange(3), 3, "scaled")
    assert not torch.equal(labels, init)  # they were learnt
    assert result.distilled.manifest.label_loss == "mse"
    loaded = DistilledSet.load(tmp_path / "r" / "distilled.safetensors")
    assert torch.equal(loaded.labels, labels) and loaded.soft_labels
    assert loaded.storage_bytes()["labels"] == 3 * 3 * 4
    assert torch.equal(loaded.materialize().labels, labels)
    calls = []
    orig_fit = protocol_module.fit

    def spy(model, data, cfg, **kw):
        calls.append((data.labels.clone(), kw.get("label_loss")))
        return orig_fit(model, data, cfg, **kw)

    monkeypatch.setattr(protocol_module, "fit", spy)  # run_protocol's fit
    protocol = ev.get_protocol("cpu").with_runs(1)
    protocol = dataclasses.replace(protocol, train=dataclasses.replace(protocol.train, epochs=3))
    report = ev.evaluate(loaded, test, protocol, references=())
    assert len(calls) == 1 and calls[0][1] == "mse" and torch.equal(calls[0][0], labels)
    assert 0 <= report.result.top1_mean <= 1


def test_resume_equals_uninterrupted_run(tiny_stores, tmp_path):
    """Pool weights, Adam states, counters and the owed step all travel in the checkpoint."""
    train, _ = tiny_stores
    cfg = resolve_config("frepo", {"ipc": 1, "iterations": 4, "batch_real": 3, "checkpoint_every": 2,
                                   "objective": {"num_models": 2, "max_online_steps": 3}})
    full = distill(train, cfg, tmp_path / "full")

    def kill_at_3(it, _param):
        if it == 3:
            raise Interrupt

    with pytest.raises(Interrupt):
        distill(train, cfg, tmp_path / "resumed", on_iteration=kill_at_3)
    # the labels have their own optimizer group (lr label_lr) and are not in the pixels' group
    groups = load_state(tmp_path / "resumed" / "checkpoint.safetensors")["optimizer"]["param_groups"]
    assert [(len(g["params"]), g["lr"]) for g in groups] == [(1, cfg.lr), (1, cfg.parametrization["label_lr"])]
    resumed = distill(train, cfg, tmp_path / "resumed", resume=True)
    assert resumed.resumed_from == 2
    assert torch.equal(full.distilled.tensors["videos"], resumed.distilled.tensors["videos"])
    assert torch.equal(full.distilled.labels, resumed.distilled.labels)
    rows = [json.loads(x) for x in (tmp_path / "resumed" / "metrics.jsonl").read_text().splitlines()]
    rows_full = [json.loads(x) for x in (tmp_path / "full" / "metrics.jsonl").read_text().splitlines()]
    assert [r["loss"] for r in rows] == [r["loss"] for r in rows_full]


def test_cli_distill_then_evaluate(tmp_path, capsys):
    from conftest import make_tiny_stores
    from videodd.cli import main

    data = tmp_path / "data"
    make_tiny_stores(data)
    run = tmp_path / "run"
    assert main(["distill", "--method", "frepo", "--ipc", "1", "--data", str(data), "--out", str(run),
                 "--iterations", "2", "--batch-real", "4", "--set", "objective.num_models=2", "--quiet",
                 "--device", "cpu"]) == 0
    assert main(["evaluate", str(run / "distilled.safetensors"), "--data", str(data), "--protocol", "cpu",
                 "--runs", "1", "--references", "", "--quiet", "--device", "cpu"]) == 0
    report = json.loads((run / "report.json").read_text())
    assert report["method"] == "frepo" and len(report["result"]["runs"]) == 1
    assert report["storage_by_tensor"]["labels"] == 3 * 3 * 4  # the learned labels are counted
    assert "| frepo | 1 |" in capsys.readouterr().out
