"""Expert trajectories and the MTT objective (trajectory matching) on tiny stores."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest
import torch
from torch import nn

from conftest import assert_resume_matches, make_tiny_stores
from videodd.cli import main
from videodd.distill import distill, make_objective, resolve_config
from videodd.distilled import DistilledSet
from videodd.evaluate import PROTOCOLS, evaluate
from videodd.models import MODELS, create_model, register_model
from videodd.models.convnet3d import ConvNet3D
from videodd.objectives.mtt import TrajectoryMatching
from videodd.seeding import make_generator, seeded
from videodd.synthesis.pixels import Pixels
from videodd.teachers.experts import (
    ExpertBuffer,
    ExpertConfig,
    ExpertError,
    expert_path,
    expert_seed,
    flatten_params,
    train_experts,
)

CPU = torch.device("cpu")


# -- test-only models: far cheaper than convnet3d-s on a loaded 2-core machine ---------------------
class _Linear(nn.Module):
    """Softmax regression on the flattened clip: one SGD step is computable by hand."""

    def __init__(self, num_classes: int, input_shape: tuple[int, ...]) -> None:
        super().__init__()
        self.fc = nn.Linear(math.prod(input_shape), num_classes)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1)  # (N, C*T*H*W)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x.flatten(1))


if "mtt-test-linear" not in MODELS:
    register_model("mtt-test-linear")(lambda num_classes, input_shape: _Linear(num_classes, input_shape))
    # one conv block + dropout head: exercises convolutions, max-pooling and dropout in the unroll
    register_model("mtt-test-tiny")(lambda num_classes, input_shape: ConvNet3D(
        num_classes, input_shape, widths=(4,), kernel=(1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1),
        pools=((1, 2, 2),), head_pool=(1, 1, 1)))

if "mtt-test" not in PROTOCOLS:  # evaluation as the cpu protocol, but 3 epochs: the test checks the lr it uses
    _cpu = PROTOCOLS.get("cpu")
    PROTOCOLS.register("mtt-test")(dataclasses.replace(_cpu, name="mtt-test", runs=1,
                                                       train=dataclasses.replace(_cpu.train, epochs=3)))

TINY = ExpertConfig(model="mtt-test-tiny", epochs=2, batch_size=18, num_experts=2)  # one step per epoch


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    return make_tiny_stores(tmp_path_factory.mktemp("mtt") / "data")


@pytest.fixture(scope="module")
def tiny_experts(stores, tmp_path_factory):
    """Two experts trained without interruption: the reference for the resume test."""
    out = tmp_path_factory.mktemp("experts") / "tiny"
    train_experts(stores[0], out, TINY, seed=3)
    return out


@pytest.fixture(scope="module")
def convnet_experts(stores, tmp_path_factory):
    out = tmp_path_factory.mktemp("experts") / "convnet3d-s"
    cfg = ExpertConfig(model="convnet3d-s", epochs=4, save_epochs_up_to=2, batch_size=18, num_experts=1)
    result = train_experts(stores[0], out, cfg, seed=0)
    return out, result


def _mtt_cfg(experts, **objective):
    top = ("model", "ipc", "augment", "iterations", "checkpoint_every", "log_every", "lr")  # DistillConfig fields
    overrides = {k: objective.pop(k) for k in top if k in objective}
    base = {"experts": str(experts), "syn_steps": 2, "max_start_epoch": 2}
    return resolve_config("mtt", {"model": "mtt-test-tiny", **overrides, "objective": {**base, **objective}})


# -- experts ----------------------------------------------------------------------------------
def test_expert_snapshots_count_init_and_change(stores, convnet_experts):
    train, _ = stores
    out, result = convnet_experts
    assert sorted(p.name for p in out.iterdir()) == ["expert_0000.safetensors", "experts.json"]
    manifest = json.loads((out / "experts.json").read_text())
    assert manifest["epochs_kept"] == [0, 1, 2] and manifest["model"] == "convnet3d-s"
    assert manifest["store_fingerprint"] == train.fingerprint and manifest["classes"] == train.classes
    size = expert_path(out, 0).stat().st_size
    assert manifest["experts"][0]["bytes"] == size and manifest["total_bytes"] == size == result.total_bytes
    # training stopped at the last kept epoch (4 epochs asked, snapshots up to 2 kept)
    assert len(manifest["experts"][0]["epoch_losses"]) == 2
    traj = ExpertBuffer(out).snapshots(0, [0, 1, 2])  # (3, P)
    with seeded(make_generator(expert_seed(0, 0))):
        init = create_model("convnet3d-s", train.num_classes, train.video_shape)
    assert traj.shape == (3, manifest["num_params"])
    assert torch.equal(traj[0], flatten_params(init))  # epoch 0 is the initialisation
    steps = (traj[1:] - traj[:-1]).norm(dim=1)
    assert (steps > 0).all()


def test_resume_skips_finished_experts_and_matches_an_uninterrupted_run(stores, tiny_experts, tmp_path):
    train, _ = stores
    out = tmp_path / "experts"
    first = train_experts(train, out, dataclasses.replace(TINY, num_experts=1), seed=3)
    assert first.trained == [0]
    stamp = expert_path(out, 0).stat().st_mtime_ns
    second = train_experts(train, out, TINY, seed=3, resume=True)
    assert second.skipped == [0] and second.trained == [1]
    assert expert_path(out, 0).stat().st_mtime_ns == stamp  # untouched
    ref, got = ExpertBuffer(tiny_experts), ExpertBuffer(out)
    epochs = ref.epochs_kept
    for i in range(2):
        assert torch.equal(got.snapshots(i, epochs), ref.snapshots(i, epochs))
    # a lost expert file is trained again, to the same bytes
    expert_path(out, 0).unlink()
    third = train_experts(train, out, TINY, seed=3)
    assert third.trained == [0] and torch.equal(ExpertBuffer(out).snapshots(0, epochs), ref.snapshots(0, epochs))
    assert third.manifest["num_experts"] == 2
    with pytest.raises(ExpertError, match="already holds"):
        train_experts(train, out, TINY, seed=3, resume=False)
    with pytest.raises(ExpertError, match="other settings"):
        train_experts(train, out, dataclasses.replace(TINY, lr=0.02), seed=3)


def test_a_folder_of_format_1_reads_as_trained_without_the_published_pipeline(stores, tmp_path):
    """Experts written before the pipeline was recorded: no flips, no renormalization, no z-score; they resume
    under exactly that config and are refused under the published one."""
    from safetensors.torch import load_file, save_file

    from videodd.teachers.experts import META_KEY

    train, _ = stores
    legacy = dataclasses.replace(TINY, num_experts=1, flip=0.0, zscore=False, renormalize=None)
    out = tmp_path / "v1"
    train_experts(train, out, legacy, seed=3)
    for_v1 = ("flip", "zscore", "renormalize")
    manifest = json.loads((out / "experts.json").read_text())
    manifest["config"] = {k: v for k, v in manifest["config"].items() if k not in for_v1}
    (out / "experts.json").write_text(json.dumps({**manifest, "version": 1}))
    path = expert_path(out, 0)
    meta = json.loads(read_meta(path))
    meta["config"] = {k: v for k, v in meta["config"].items() if k not in for_v1}
    save_file(load_file(path), str(path), metadata={META_KEY: json.dumps({**meta, "version": 1})})

    assert ExpertBuffer(out).pipeline == {"flip": 0.0, "zscore": False, "renormalize": None}
    assert train_experts(train, out, legacy, seed=3).skipped == [0]
    with pytest.raises(ExpertError, match="other settings.*config"):
        train_experts(train, out, dataclasses.replace(TINY, num_experts=1), seed=3)


def read_meta(path):
    from safetensors import safe_open

    from videodd.teachers.experts import META_KEY

    with safe_open(str(path), framework="pt") as fh:
        return fh.metadata()[META_KEY]


def test_batchnorm_other_model_and_missing_epochs_are_refused(stores, tiny_experts, tmp_path):
    train, _ = stores
    with pytest.raises(ExpertError, match="batch norm"):
        train_experts(train, tmp_path / "bn", ExpertConfig(model="convnet3d-s-bn", epochs=1, num_experts=1))
    with pytest.raises(ExpertError, match="batch norm"):
        make_objective(TrajectoryMatching, train, _mtt_cfg(tiny_experts, model="convnet3d-s-bn"), CPU)
    with pytest.raises(ExpertError, match="trained with model 'mtt-test-tiny'.*--model mtt-test-tiny"):
        make_objective(TrajectoryMatching, train, _mtt_cfg(tiny_experts, model="convnet3d-s"), CPU)
    with pytest.raises(ExpertError, match="up to 3, but .* keeps epochs 0..2; train experts with --keep-epochs 3"):
        make_objective(TrajectoryMatching, train, _mtt_cfg(tiny_experts, max_start_epoch=2, expert_epochs=2), CPU)
    with pytest.raises(ExpertError, match="no experts.json"):
        make_objective(TrajectoryMatching, train, _mtt_cfg(tmp_path / "nothing"), CPU)


# -- the objective ----------------------------------------------------------------------------
def test_one_student_step_loss_and_lr_gradient_by_hand(stores, tmp_path):
    """Softmax regression, one full-batch step: θ1 = θ0 - lr * g with g = ((p - Y)ᵀ x, Σ(p - Y)) / n, where
    x is the synthetic set in the experts' ImageNet normalization and NOT z-scored (the published student)."""
    train, _ = stores
    experts = tmp_path / "linear"
    train_experts(train, experts, ExpertConfig(model="mtt-test-linear", epochs=2, batch_size=18, num_experts=1))
    # start epoch 0 (the init): later, the softmax saturates and float32 p - y loses digits
    cfg = _mtt_cfg(experts, model="mtt-test-linear", syn_steps=1, max_start_epoch=1, ipc=2)
    objective = make_objective(TrajectoryMatching, train, cfg, CPU)
    param = Pixels(train, 2, make_generator(0))
    out = objective.loss(param, make_generator(1))
    out.loss.backward()

    start, target = ExpertBuffer(experts).snapshots(0, [out.metrics["start_epoch"], out.metrics["start_epoch"] + 1])
    def channels(v):
        return torch.tensor(v, dtype=torch.float64).view(1, -1, 1, 1, 1)  # over (n, C, T, H, W)

    pixels = param.videos.detach().double() * channels(train.meta.std) + channels(train.meta.mean)
    imagenet = (pixels - channels((0.485, 0.456, 0.406))) / channels((0.229, 0.224, 0.225))
    assert abs(imagenet.mean().item()) > 0.1  # not z-scored (a z-scored input would have mean 0)
    x = imagenet.flatten(1)  # (n, D)
    y = torch.nn.functional.one_hot(param.labels(), train.num_classes).double()  # (n, K)
    k, d = y.shape[1], x.shape[1]
    w, b = start[: k * d].double().view(k, d), start[k * d :].double()
    p = torch.softmax(x @ w.T + b, dim=1)
    g = torch.cat([((p - y).T @ x / len(x)).flatten(), (p - y).sum(0) / len(x)])
    theta1 = start.double() - 0.01 * g  # lr_init
    dist = (start.double() - target.double()).pow(2).sum()
    expected = (theta1 - target.double()).pow(2).sum() / dist
    assert abs(expected.item() - 1) > 0.1  # a wrong g would show
    assert out.loss.item() == pytest.approx(expected.item(), rel=1e-5)
    expected_lr_grad = -2 * ((theta1 - target.double()) * g).sum() / dist
    assert objective.syn_lr.grad.item() == pytest.approx(expected_lr_grad.item(), rel=1e-5)
    assert param.videos.grad.abs().sum() > 0


def test_checkpointed_unroll_gives_the_plain_gradients(stores, convnet_experts):
    """convnet3d-s with dropout, DSA per clip, mini-batches that wrap around the permutation."""
    train, _ = stores
    grads = {}
    for unroll in ("plain", "checkpoint"):
        cfg = _mtt_cfg(convnet_experts[0], model="convnet3d-s", ipc=2, syn_steps=3, batch_syn=4, unroll=unroll,
                       augment=["color", "crop", "cutout", "scale", "rotate"])
        objective = make_objective(TrajectoryMatching, train, cfg, CPU)
        param = Pixels(train, 2, make_generator(0))
        out = objective.loss(param, make_generator(7))
        out.loss.backward()
        grads[unroll] = (out.loss.detach(), param.videos.grad.clone(), objective.syn_lr.grad.clone())
    (l0, v0, lr0), (l1, v1, lr1) = grads["plain"], grads["checkpoint"]
    assert torch.equal(l0, l1)
    assert v0.abs().max() > 0
    torch.testing.assert_close(v1, v0, rtol=1e-4, atol=1e-6 * v0.abs().max().item())
    torch.testing.assert_close(lr1, lr0, rtol=1e-4, atol=0.0)


def test_distill_learns_the_lr_stores_it_and_resumes(stores, tiny_experts, tmp_path):
    train, _ = stores
    cfg = _mtt_cfg(tiny_experts, iterations=3, checkpoint_every=1, log_every=1, lr=100.0, lr_lr=1e-5,
                   unroll="checkpoint")
    full = distill(train, cfg, tmp_path / "full")
    learned = full.distilled.manifest.learned_lr
    assert learned is not None and learned != pytest.approx(0.01)
    assert DistilledSet.load(tmp_path / "full" / "distilled.safetensors").manifest.learned_lr == learned
    rows = [json.loads(r) for r in (tmp_path / "full" / "metrics.jsonl").read_text().splitlines()]
    assert all(math.isfinite(r["loss"]) for r in rows) and len({r["syn_lr"] for r in rows}) > 1

    class Stop(Exception):
        pass

    def stop_at_2(it, _param):
        if it == 2:  # after its checkpoint: the resumed run does iteration 3 only
            raise Stop

    with pytest.raises(Stop):
        distill(train, cfg, tmp_path / "resumed", on_iteration=stop_at_2)
    resumed = distill(train, cfg, tmp_path / "resumed", resume=True)
    assert resumed.resumed_from == 2
    assert torch.equal(resumed.distilled.tensors["videos"], full.distilled.tensors["videos"])
    assert resumed.distilled.manifest.learned_lr == learned


def test_a_resumed_run_follows_the_experts_of_an_uninterrupted_one(stores, tmp_path):
    """The expert cycle (its group, this cycle's order, the position) is checkpointed: killed mid-cycle and
    resumed, a run takes the same experts and ends with the same set as an uninterrupted one."""
    train, _ = stores
    experts = tmp_path / "linear6"
    train_experts(train, experts, ExpertConfig(model="mtt-test-linear", epochs=2, batch_size=18, num_experts=6))
    cfg = _mtt_cfg(experts, model="mtt-test-linear", iterations=5, checkpoint_every=1, log_every=1, lr=1.0,
                   expert_group=3)
    assert_resume_matches(train, cfg, tmp_path, kill_at=2)  # mid-cycle: 2 of the group's 3 experts taken

    def followed(run):
        return [json.loads(r)["expert"] for r in (tmp_path / run / "metrics.jsonl").read_text().splitlines()]

    seq = followed("full")
    assert followed("resumed") == seq
    assert sorted(seq[:3]) in ([0, 1, 2], [3, 4, 5]) and set(seq[3:]) <= set(seq[:3])


def test_a_learned_lr_at_its_floor_is_named_and_not_used_by_evaluation(stores, tiny_experts, tmp_path):
    """A student lr driven to ``min_lr`` means the student stopped moving: the run warns (once, with the
    iteration), the set records the warning and keeps the lr aside, and evaluation trains with the
    protocol's lr, saying so."""
    from videodd.guards import VideoddWarning

    train, test = stores
    cfg = _mtt_cfg(tiny_experts, iterations=3, log_every=1, lr=100.0, lr_lr=1e-3)
    with pytest.warns(VideoddWarning, match="iteration 1: lr-floor"):
        dset = distill(train, cfg, tmp_path / "run").distilled
    m = dset.manifest
    assert m.learned_lr is None and m.info["mtt_student_lr_at_floor"] == pytest.approx(0.001)
    assert any("lr-floor" in w for w in m.warnings) and any("protocol's lr" in w for w in m.warnings)
    report = evaluate(dset, test, "mtt-test")
    assert report.learned_lr_used is None and "protocol's lr" in report.to_markdown()


def test_cli_experts_distill_evaluate_uses_the_learned_lr(stores, tmp_path, capsys, monkeypatch):
    data = tmp_path / "data"
    make_tiny_stores(data)
    experts = tmp_path / "experts"
    argv = ["experts", "--data", str(data), "--out", str(experts), "--num-experts", "1", "--epochs", "3",
            "--keep-epochs", "2", "--model", "mtt-test-tiny", "--batch-size", "9", "--quiet", "--device", "cpu"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    total = json.loads((experts / "experts.json").read_text())["total_bytes"]
    assert f"disk used: {total:,} bytes" in out and "epochs 0..2 kept" in out
    assert "flips p=0.5, z-score on, renormalize imagenet (the published pipeline)" in out
    config = json.loads((experts / "experts.json").read_text())["config"]
    assert (config["flip"], config["zscore"], config["renormalize"]) == (0.5, True, "imagenet")
    plain = tmp_path / "plain-experts"
    assert main([*argv[:4], str(plain), *argv[5:], "--flip", "0", "--zscore", "off", "--renormalize", "none"]) == 0
    assert "(NOT the published pipeline)" in capsys.readouterr().out
    assert ExpertBuffer(plain).pipeline == {"flip": 0.0, "zscore": False, "renormalize": None}
    assert main(argv) == 2  # the folder holds experts: --resume or another folder
    assert "--resume" in capsys.readouterr().err
    assert main([*argv, "--resume"]) == 0 and "1 already done" in capsys.readouterr().out
    assert main(["info", str(experts)]) == 0 and "epochs kept: 0..2" in capsys.readouterr().out

    run = tmp_path / "run"
    distill_argv = ["distill", "--method", "mtt", "--data", str(data), "--out", str(run), "--model", "mtt-test-tiny",
                    "--iterations", "2", "--lr", "100", "--set", "objective.syn_steps=2",
                    "--set", "objective.max_start_epoch=2", "--quiet", "--device", "cpu"]
    assert main(distill_argv) == 2 and "objective.experts=DIR" in capsys.readouterr().err  # experts required
    assert main([*distill_argv, "--set", f"objective.experts={experts}", "--set", "objective.lr_lr=1e-3"]) == 0
    learned = DistilledSet.load(run / "distilled.safetensors").manifest.learned_lr
    assert learned is not None and learned != pytest.approx(0.01)

    import videodd.evaluate as ev

    used = []
    original = ev.run_protocol

    def spy(data, test, protocol, train_cfg, **kw):
        used.append(train_cfg.lr)
        return original(data, test, protocol, train_cfg, **kw)

    monkeypatch.setattr(ev, "run_protocol", spy)
    assert main(["evaluate", str(run / "distilled.safetensors"), "--data", str(data), "--protocol", "mtt-test",
                 "--models", "mtt-test-tiny", "--references", "", "--quiet", "--device", "cpu"]) == 0
    assert used == [pytest.approx(learned)]
    assert "| mtt | 1 |" in capsys.readouterr().out
