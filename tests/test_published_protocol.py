"""The ``published`` protocol: its schedule, its test (passes, views, flips, z-score), the ``vdsd`` alias, the
unchanged ``default``, and the labelled test-selected figure end to end (report, JSON, info, report table)."""

from __future__ import annotations

import dataclasses
import json
import warnings
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from conftest import make_tiny_stores
from videodd.cli import main
from videodd.evaluate import TEST_SELECTED_LABEL, EvalReport, select_on_test
from videodd.guards import VideoddWarning
from videodd.protocol import (
    PROTOCOLS,
    RunResult,
    Summary,
    describe_test,
    get_protocol,
    pass_generator,
    predict_test_set,
    published_schedule,
)
from videodd.seeding import make_generator
from videodd.train import Renormalize, StoreData, TensorData, TrainConfig, fit, fit_runs


# -- the registry ---------------------------------------------------------------------------------------
def test_vdsd_is_another_name_of_published():
    assert get_protocol("vdsd") is get_protocol("published") and get_protocol("vdsd").name == "published"
    assert "vdsd" in PROTOCOLS and "vdsd" not in PROTOCOLS.names() and PROTOCOLS.aliases() == {"vdsd": "published"}
    assert get_protocol("published").runs == 5 and get_protocol("published").precision == "tf32"


def test_default_is_unchanged():
    """``default``: the published optimiser with MultiStepLR at half and momentum kept, the stored test clips in
    one pass, no renormalization, flips or z-score."""
    d = get_protocol("default")
    assert d.train == TrainConfig(epochs=500, batch_size=256, lr=0.01, momentum=0.9, weight_decay=5e-4,
                                  lr_milestones=(0.5,))
    assert d.reference_train == TrainConfig(epochs=50, batch_size=64, lr=0.01, lr_milestones=(0.5,))
    assert (d.version, d.runs, d.eval_batch_size, d.precision, d.model) == (1, 3, 256, "tf32", "auto")
    assert (d.test_passes, d.test_flip, d.test_starts, d.test_zscore) == (1, 0.0, "stored", False)
    assert d.train.milestones() == [250] and not d.train.optimizer_reset


# -- the schedule -----------------------------------------------------------------------------------------
def test_published_schedule_follows_the_official_loop():
    """``for ep in range(E + 1)``, a new SGD at x0.1 after ``ep == E // 2 + 1``: E + 1 epochs, E // 2 + 2 at the lr."""
    for e, milestone in ((500, 252), (10, 7), (3, 3)):
        cfg = published_schedule(e)
        assert (cfg.epochs, cfg.milestones(), cfg.optimizer_reset) == (e + 1, [milestone], True)
    ref = get_protocol("published").reference_train  # real clips are flipped at every read, as the loaders do
    assert (ref.flip, ref.batch_zscore, ref.renormalize) == (0.5, True, "imagenet")
    short = get_protocol("published").with_epochs(10)
    assert short.name == "published+epochs=10" and short.train.milestones() == [5]  # 252 / 501 of 10


def _spy_fit(cfg: TrainConfig, monkeypatch) -> list[tuple[float, bool]]:
    """(lr, momentum buffers present) at every optimizer step of ``fit``."""
    import videodd.train as train_mod

    seen = []

    class Spy(torch.optim.SGD):
        def step(self, *a, **k):
            seen.append((self.param_groups[0]["lr"], bool(self.state)))
            return super().step(*a, **k)

    monkeypatch.setattr(train_mod.torch.optim, "SGD", Spy)
    model = nn.Linear(3, 2)
    data = TensorData(torch.randn(4, 3, 1, 1, 1), torch.tensor([0, 1, 0, 1]))

    class Flat(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lin = model

        def forward(self, x):
            return self.lin(x.flatten(1))

    fit(Flat(), data, cfg, generator=make_generator(0))
    return seen


def test_optimizer_reset_clears_the_momentum_at_the_milestone(monkeypatch):
    base = TrainConfig(epochs=5, batch_size=4, lr=0.1, lr_milestones=(), lr_milestone_epochs=(2,))
    reset = _spy_fit(dataclasses.replace(base, optimizer_reset=True), monkeypatch)
    assert [(round(lr, 6), m) for lr, m in reset] == [(0.1, False), (0.1, True), (0.01, False), (0.01, True),
                                                      (0.01, True)]
    kept = _spy_fit(base, monkeypatch)
    assert [m for _, m in kept] == [False, True, True, True, True]


def test_milestones_are_fractions_or_absolute_not_both():
    with pytest.raises(ValueError, match="not both"):
        TrainConfig(lr_milestones=(0.5,), lr_milestone_epochs=(3,))
    assert TrainConfig(epochs=10, lr_milestones=(0.5,)).milestones() == [5]


def test_runs_trained_at_once_reset_as_fit_does(tiny_stores):
    from videodd.models import create_model
    from videodd.seeding import seeded

    train, _ = tiny_stores
    cfg = TrainConfig(epochs=3, batch_size=6, lr=0.05, lr_milestones=(), lr_milestone_epochs=(1,),
                      optimizer_reset=True, batch_zscore=True, renormalize="imagenet")

    def model():
        with seeded(make_generator(3)):
            return create_model("convnet3d-s-bn", 3, train.video_shape, dropout=0.0)  # no dropout: vmap's own masks

    a, b = model(), model()
    fit(a, StoreData(train), cfg, generator=make_generator(1))
    fit_runs([b], [StoreData(train)], cfg, generators=[make_generator(1)])
    for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True):
        torch.testing.assert_close(x, y, rtol=1e-4, atol=1e-5)


# -- the renormalization ------------------------------------------------------------------------------------
def test_renormalize_to_imagenet_is_the_imagenet_normalization_of_the_pixels():
    pixels = torch.rand(2, 3, 2, 4, 4)
    mean, std = (0.3, 0.4, 0.5), (0.1, 0.2, 0.3)
    store_space = (pixels - torch.tensor(mean).view(1, 3, 1, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1, 1)
    want = (pixels - torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1, 1)) / torch.tensor(
        [0.229, 0.224, 0.225]).view(1, 3, 1, 1, 1)
    torch.testing.assert_close(Renormalize.to("imagenet", mean, std)(store_space), want)
    with pytest.raises(ValueError, match="3-channel"):
        Renormalize.to("imagenet", [0.5], [0.2])
    with pytest.raises(ValueError, match="needs the data's normalization"):
        fit(nn.Linear(1, 1), TensorData(torch.zeros(1, 3, 1, 1, 1), torch.zeros(1, dtype=torch.long)),
            TrainConfig(epochs=1, renormalize="imagenet"), generator=make_generator(0))


# -- the test -----------------------------------------------------------------------------------------------
class ViewStore:
    """A fake test store with ``views`` random-start views per video (``test_views``/``view_batch``, as
    ClipStore gives them), or none."""

    def __init__(self, n: int = 10, views: int = 2) -> None:
        gen = make_generator(5)
        self.views = torch.randn(max(views, 1), n, 3, 2, 4, 4, generator=gen)  # (K, N, C, T, H, W)
        self.centre = torch.randn(n, 3, 2, 4, 4, generator=gen)
        self.labels = np.arange(n) % 3
        self.test_views = views
        self.meta = SimpleNamespace(mean=[0.4, 0.45, 0.5], std=[0.2, 0.25, 0.3])

    def __len__(self) -> int:
        return len(self.centre)

    def batch(self, indices, device="cpu"):
        return self.centre[torch.as_tensor(np.asarray(indices))].to(device)

    def view_batch(self, indices, view, device="cpu"):
        return self.views[view][torch.as_tensor(np.asarray(indices))].to(device)

    def labels_tensor(self, indices=None):
        return torch.from_numpy(self.labels if indices is None else self.labels[np.asarray(indices)])


class Recording(nn.Module):
    """Logits from the left half of the clip (a flip changes them), fixed weights; keeps every input."""

    def __init__(self) -> None:
        super().__init__()
        gen = make_generator(1)
        self.weight = nn.Parameter(torch.randn(3, 3, generator=gen))
        self.seen: list[torch.Tensor] = []

    def forward(self, x):
        self.seen.append(x.clone())
        return x[..., : x.shape[-1] // 2].mean(dim=(2, 3, 4)) @ self.weight


def _plain(protocol_name: str = "published", **changes):
    return dataclasses.replace(get_protocol(protocol_name), **changes)


def test_each_pass_reads_view_pass_mod_k():
    store, model = ViewStore(n=10, views=2), Recording()
    pred = predict_test_set(model, store, _plain(test_flip=0.0, test_zscore=False, eval_batch_size=64), run_seed=0)
    assert len(pred.labels) == 30 and len(model.seen) == 3
    for p, seen in enumerate(model.seen):
        assert torch.equal(seen, store.views[p % 2])
    model.seen.clear()
    predict_test_set(model, store, _plain(test_flip=1.0, test_zscore=False), run_seed=0)
    assert torch.equal(model.seen[0], store.views[0].flip(-1))


def test_no_views_means_the_centre_clip_every_pass_and_the_report_says_so():
    store, model = ViewStore(n=10, views=0), Recording()
    predict_test_set(model, store, _plain(test_flip=0.0, test_zscore=False), run_seed=0)
    assert all(torch.equal(s, store.centre) for s in model.seen)
    assert "centre (the store holds no random-start views)" in describe_test(get_protocol("published"), store)
    assert "view pass % 2" in describe_test(get_protocol("published"), ViewStore(views=2))


def test_published_test_is_reproducible_and_batches_are_z_scored_by_64():
    store = ViewStore(n=70, views=3)
    protocol = get_protocol("published")

    def run(seed):
        model = Recording()
        return predict_test_set(model, store, protocol, run_seed=seed, renormalize="imagenet"), model.seen

    (a, seen), (b, _), (c, _) = run(4), run(4), run(5)
    assert torch.equal(a.logits, b.logits) and a.topk(1) == b.topk(1)  # same seed, same test
    assert not torch.equal(a.logits, c.logits)  # another run's flips
    assert [len(s) for s in seen] == [64, 6] * 3
    for s in seen:  # each batch z-scored by itself
        assert abs(float(s.mean())) < 1e-5 and abs(float(s.std()) - 1) < 1e-5
    first = torch.rand(70, generator=pass_generator(4, 0))
    assert torch.equal(first, torch.rand(70, generator=pass_generator(4, 0)))  # from run and pass alone
    assert not torch.equal(first, torch.rand(70, generator=pass_generator(4, 1)))


def test_the_default_test_is_predict_on_the_stored_clips(tiny_stores):
    from videodd.train import predict

    _, test = tiny_stores
    model = Recording()
    ours = predict_test_set(model, test, get_protocol("default"), run_seed=3)
    assert torch.equal(ours.logits, predict(model, StoreData(test), batch_size=256).logits)


# -- the test-selected figure -----------------------------------------------------------------------------
def _summary(*top1):
    return Summary([RunResult(seed=i, top1=t, top5=1.0, per_class=[t], final_train_loss=0.1, train_seconds=1.0)
                    for i, t in enumerate(top1)])


def test_select_on_test_keeps_the_first_best_and_labels_it():
    chosen = select_on_test(_summary(0.3, 0.5), [("iter-000000", 0, _summary(0.2, 0.2)),
                                                 ("iter-000500", 500, _summary(0.5, 0.3))])
    assert chosen["label"] == TEST_SELECTED_LABEL == "test-selected, as published: optimistic"
    assert (chosen["chosen"], chosen["iteration"]) == ("iter-000500", 500)  # ties: the earlier, as the strict >
    assert chosen["top1_mean"] == pytest.approx(0.4) and chosen["final_top1_mean"] == pytest.approx(0.4)
    assert [c["name"] for c in chosen["candidates"]] == ["iter-000000", "iter-000500", "final"]


def test_evaluate_published_test_selected_end_to_end(tmp_path, capsys):
    data = tmp_path / "data"
    make_tiny_stores(data)
    run = tmp_path / "run"
    (tmp_path / "snap.yaml").write_text("snapshots: [0, 2]\n")
    assert main(["distill", "--method", "dm", "--ipc", "1", "--data", str(data), "--out", str(run), "--iterations",
                 "3", "--batch-real", "4", "--quiet", "--device", "cpu", "--config", str(tmp_path / "snap.yaml")]) == 0
    args = ["evaluate", str(run), "--data", str(data), "--protocol", "vdsd", "--runs", "1", "--epochs", "2",
            "--references", "random", "--quiet", "--device", "cpu"]
    assert main(args) == 0  # without --test-selected: the final set only
    report = json.loads((run / "report.json").read_text())
    assert report["protocol"]["name"] == "published+epochs=2" and report["test_selected"] is None
    assert report["protocol"]["train"]["lr_milestone_epochs"] == [1] and report["protocol"]["test_passes"] == 3
    assert len(report["result"]["runs"]) == 1
    capsys.readouterr()

    assert main([*args, "--test-selected"]) == 0
    out = capsys.readouterr().out
    assert "snapshot iter-000000:" in out and "snapshot iter-000002:" in out
    report = json.loads((run / "report.json").read_text())
    selected = report["test_selected"]
    assert selected["label"] == TEST_SELECTED_LABEL
    assert [c["name"] for c in selected["candidates"]] == ["iter-000000", "iter-000002", "final"]
    assert selected["final_top1_mean"] == report["result"]["top1_mean"]  # the report's result stays the final set
    md = (run / "report.md").read_text()
    assert f"| dm [{TEST_SELECTED_LABEL}: {selected['chosen']}] |" in md and f"**{TEST_SELECTED_LABEL}**" in md
    assert "centre (the store holds no random-start views)" in md
    again = EvalReport.from_json(report)
    assert again.test_selected == selected and again.test_selected_summary.top1_mean == selected["top1_mean"]

    assert main(["info", str(run)]) == 0
    info = capsys.readouterr().out
    assert f"{TEST_SELECTED_LABEL}: " in info and "(the final set)" in info

    pytest.importorskip("matplotlib")
    assert main(["report", str(run), "--out", str(tmp_path / "study")]) == 0
    index = (tmp_path / "study" / "index.md").read_text()
    assert f"| dm [{TEST_SELECTED_LABEL}: {selected['chosen']}] | 1 |" in index
    assert index.count("| dm | 1 |") == 1


def test_test_selected_needs_snapshots(tmp_path, capsys):
    data = tmp_path / "data"
    make_tiny_stores(data)
    run = tmp_path / "run"
    assert main(["distill", "--method", "random", "--data", str(data), "--out", str(run), "--quiet"]) == 0
    assert main(["evaluate", str(run), "--data", str(data), "--protocol", "published", "--test-selected",
                 "--quiet", "--device", "cpu"]) == 2
    assert "holds no snapshots" in capsys.readouterr().err


@pytest.mark.slow
def test_published_test_is_the_same_under_torchrun(tmp_path):
    """Runs spread over two ranks draw their test flips from (run seed, pass), not the rank: the same figures."""
    from test_distributed import torchrun

    if not torch.distributed.is_available():
        pytest.skip("torch.distributed is not available")
    data = tmp_path / "data"
    make_tiny_stores(data)
    assert main(["distill", "--method", "random", "--data", str(data), "--out", str(tmp_path / "set"), "--quiet"]) == 0
    args = ["evaluate", str(tmp_path / "set"), "--data", str(data), "--protocol", "published", "--runs", "2",
            "--epochs", "2", "--references", "", "--device", "cpu", "--quiet"]
    assert main([*args, "--out", str(tmp_path / "one.json")]) == 0
    done = torchrun([*args, "--out", str(tmp_path / "two.json")])
    assert done.returncode == 0, done.stderr[-3000:]
    one, two = (json.loads((tmp_path / f"{n}.json").read_text())["result"]["runs"] for n in ("one", "two"))
    assert [r["top1"] for r in two] == [r["top1"] for r in one]
    assert [r["final_train_loss"] for r in two] == pytest.approx([r["final_train_loss"] for r in one], rel=1e-6)


def test_an_mtt_set_whose_experts_saw_another_input_is_flagged_at_evaluation():
    from videodd.evaluate import _warn_on_expert_pipeline

    def mtt_set(zscore: bool, renormalize: str | None) -> SimpleNamespace:
        pipeline = {"flip": 0.5, "zscore": zscore, "renormalize": renormalize}
        return SimpleNamespace(manifest=SimpleNamespace(info={"mtt_experts_pipeline": pipeline}))

    with pytest.warns(VideoddWarning, match="experts trained on batches z-scored, imagenet normalization; "
                                            "protocol default trains on batches not z-scored"):
        _warn_on_expert_pipeline(mtt_set(True, "imagenet"), get_protocol("default"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _warn_on_expert_pipeline(mtt_set(True, "imagenet"), get_protocol("published"))  # matched: no warning
        _warn_on_expert_pipeline(mtt_set(False, None), get_protocol("default"))
        _warn_on_expert_pipeline(SimpleNamespace(manifest=SimpleNamespace(info={})), get_protocol("default"))
