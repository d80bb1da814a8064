"""Static-dynamic disentanglement: the single-frame store view, the parametrization, its kind and recipes."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from conftest import make_tiny_stores
from videodd.cli import main
from videodd.config import ConfigError
from videodd.distill import distill, make_objective, resolve_config
from videodd.distilled import DistilledSet
from videodd.errors import NonFiniteError
from videodd.models import MODELS, register_model
from videodd.models.convnet3d import ConvNet3D
from videodd.objectives.dm import DistributionMatching
from videodd.objectives.krr import KernelRidgeRegression
from videodd.objectives.mtt import TrajectoryMatching
from videodd.seeding import make_generator
from videodd.synthesis.static_dynamic import Hallucinator, StaticDynamic, StaticDynamicOptions, fixed_pairs
from videodd.teachers.experts import ExpertConfig, train_experts

CPU = torch.device("cpu")

if "vdsd-test-tiny" not in MODELS:  # one conv block: far cheaper than convnet3d-s on a loaded 2-core machine
    register_model("vdsd-test-tiny")(lambda num_classes, input_shape: ConvNet3D(
        num_classes, input_shape, widths=(4,), kernel=(1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1),
        pools=((1, 2, 2),), head_pool=(1, 1, 1)))


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    return make_tiny_stores(tmp_path_factory.mktemp("vdsd") / "data")


@pytest.fixture(scope="module")
def stills(stores, tmp_path_factory):
    """A stage-1 set of 3 stills per class (0 iterations: random real frames; the format is what matters)."""
    out = tmp_path_factory.mktemp("stills")
    distill(stores[0], resolve_config("vdsd-static", {"ipc": 3, "iterations": 0}), out)
    return out / "distilled.safetensors"


# -- stage 1 ------------------------------------------------------------------------------------------
def test_frame_store_draws_one_fresh_frame_per_clip(stores):
    from videodd.data.frames import FrameStore

    train, _ = stores
    view = FrameStore(train, make_generator(0))
    c, t, h, w = train.video_shape
    assert view.video_shape == (c, 1, h, w) and view.spec.shape == (1, h, w) and view.num_classes == 3
    clips = train.batch([0, 1, 2] * 4)  # (12, C, T, H, W)
    frames = view.batch([0, 1, 2] * 4)  # (12, C, 1, H, W)
    assert frames.shape == (12, c, 1, h, w)
    match = (frames - clips).abs().amax(dim=(1, 3, 4)) < 1e-6  # (12, T): which frame each still is
    assert bool((match.sum(1) >= 1).all())  # every still is a frame of its clip
    assert len({tuple(row.tolist()) for row in match}) > 1  # and the frame is re-drawn


def test_stage_one_writes_stills_of_the_store(stills, stores):
    dset = DistilledSet.load(stills)
    c, _, h, w = stores[0].video_shape
    assert dset.manifest.kind == "pixels" and dset.manifest.spec.shape == (1, h, w)
    assert dset.materialize().videos.shape == (9, c, 1, h, w)
    assert dset.manifest.config["model"] == "convnet2d"


# -- the parametrization ------------------------------------------------------------------------------
@pytest.mark.parametrize(("spc", "dpc", "ipc", "mode"), [(1, 1, 1, "concat"), (2, 3, 6, "add"), (3, 1, 2, "concat"),
                                                         (1, 4, 3, "add")])
def test_any_layout_materializes_the_right_shapes_and_labels(stores, spc, dpc, ipc, mode):
    train, _ = stores
    c, t, h, w = train.video_shape
    param = StaticDynamic(train, ipc, make_generator(0),
                          options=StaticDynamicOptions(spc=spc, dpc=dpc, mode=mode, width=4))
    syn = param()
    assert syn.videos.shape == (3 * ipc, c, t, h, w)
    assert syn.labels.tolist() == [k for k in range(3) for _ in range(ipc)]
    stored = param.stored_tensors()
    assert stored["statics"].shape == (3 * spc, c, 1, h, w) and stored["dynamics"].shape == (3 * dpc, 1, t, h, w)
    # random pairs stay within the class and are re-drawn; fixed pairs enumerate every combination once
    for _ in range(3):
        s_idx, d_idx = param.pairs()
        assert (s_idx // spc).tolist() == syn.labels.tolist() and (d_idx // dpc).tolist() == syn.labels.tolist()
    s_idx, d_idx = fixed_pairs(3, spc * dpc, spc, dpc)
    assert len(set(zip(s_idx.tolist(), d_idx.tolist(), strict=True))) == 3 * spc * dpc


def test_statics_come_from_a_stage_one_file_and_stay_frozen(stores, stills):
    train, _ = stores
    file_stills = DistilledSet.load(stills).materialize().videos  # (9, C, 1, H, W), 3 per class
    param = StaticDynamic(train, 2, make_generator(0), options=StaticDynamicOptions(statics=str(stills), spc=2))
    assert param.spc == 2 and torch.equal(param.statics, file_stills.view(3, 3, *file_stills.shape[1:])[:, :2]
                                          .reshape(6, *file_stills.shape[1:]))
    names = {n for n, _ in param.named_parameters()}
    assert "statics" not in names and "dynamics" in names and {n for n in names if n.startswith("h.")}
    assert StaticDynamic(train, 1, make_generator(0), options=StaticDynamicOptions(statics=str(stills))).spc == 3
    with pytest.raises(ValueError, match="only 3 stills"):
        StaticDynamic(train, 1, make_generator(0), options=StaticDynamicOptions(statics=str(stills), spc=4))
    with pytest.raises(ValueError, match="mode"):
        StaticDynamicOptions(mode="multiply")


# -- gradients from each objective ------------------------------------------------------------------
def _assert_h_and_dynamics_learn(param: StaticDynamic, loss: torch.Tensor) -> None:
    loss.backward()
    assert math.isfinite(loss.item())
    assert param.dynamics.grad is not None and param.dynamics.grad.abs().sum() > 0
    for name, p in param.h.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


@pytest.mark.parametrize("mode", ["concat", "add"])
def test_dm_trains_the_hallucinator_and_dynamics(stores, mode):
    train, _ = stores
    cfg = resolve_config("vdsd-dm", {"ipc": 2, "batch_real": 4, "model": "vdsd-test-tiny",
                                     "parametrization": {"dpc": 2, "mode": mode}})
    param = StaticDynamic(train, 2, make_generator(0), options=StaticDynamicOptions(dpc=2, mode=mode))
    objective = make_objective(DistributionMatching, train, cfg, CPU)
    _assert_h_and_dynamics_learn(param, objective.loss(param, make_generator(1)).loss)


def test_krr_trains_the_hallucinator_and_dynamics(stores):
    train, _ = stores
    cfg = resolve_config("vdsd-krr", {"ipc": 1, "batch_real": 4, "model": "vdsd-test-tiny",
                                      "objective": {"num_models": 1}})
    param = StaticDynamic(train, 1, make_generator(0))
    objective = make_objective(KernelRidgeRegression, train, cfg, CPU)
    _assert_h_and_dynamics_learn(param, objective.loss(param, make_generator(1)).loss)


def test_mtt_trains_the_hallucinator_and_dynamics(stores, tmp_path):
    train, _ = stores
    experts = tmp_path / "experts"
    train_experts(train, experts, ExpertConfig(model="vdsd-test-tiny", epochs=2, batch_size=18, num_experts=1), seed=0)
    cfg = resolve_config("vdsd-mtt", {"ipc": 1, "model": "vdsd-test-tiny", "objective": {
        "experts": str(experts), "syn_steps": 2, "max_start_epoch": 1, "expert_epochs": 1}})
    param = StaticDynamic(train, 1, make_generator(0))
    objective = make_objective(TrajectoryMatching, train, cfg, CPU)
    _assert_h_and_dynamics_learn(param, objective.loss(param, make_generator(1)).loss)


# -- the DistilledSet kind --------------------------------------------------------------------------
def _vdsd_dm_cfg(stills, **over):
    return resolve_config("vdsd-dm", {"ipc": 4, "iterations": 2, "batch_real": 4, "model": "vdsd-test-tiny",
                                      "checkpoint_every": 1, **over,
                                      "parametrization": {"statics": str(stills), "spc": 2, "dpc": 2, "width": 4}})


def test_saved_set_reloads_and_materializes_identically_with_exact_storage(stores, stills, tmp_path):
    train, _ = stores
    seen = {}
    result = distill(train, _vdsd_dm_cfg(stills), tmp_path / "run", on_iteration=lambda i, p: seen.update(param=p))
    loaded = DistilledSet.load(tmp_path / "run" / "distilled.safetensors")
    first, again = loaded.materialize(), loaded.materialize()
    assert torch.equal(first.videos, again.videos) and torch.equal(first.videos, result.distilled.materialize().videos)
    param = seen["param"]
    param.options = dataclasses.replace(param.options, pairing="fixed")
    with torch.no_grad():
        assert torch.allclose(param().videos, first.videos, atol=1e-6)
    assert first.labels.tolist() == [k for k in range(3) for _ in range(4)]
    # storage: statics + dynamics + H, exactly
    c, t, h, w = train.video_shape
    h_bytes = 4 * sum(p.numel() for p in Hallucinator(c, "concat", 4).parameters())
    detail, sizes = loaded.storage_detail().parts, loaded.storage_bytes()
    assert detail["statics"] == 4 * 6 * c * h * w and detail["dynamics"] == 4 * 6 * t * h * w
    assert detail["hallucinator"] == h_bytes
    assert sizes["total"] - sizes["labels"] == detail["statics"] + detail["dynamics"] + h_bytes
    assert loaded.manifest.layout["static_dynamic"]["spc"] == 2


def test_resume_matches_an_uninterrupted_run(stores, stills, tmp_path):
    train, _ = stores
    ref = distill(train, _vdsd_dm_cfg(stills, iterations=3), tmp_path / "ref").distilled

    def stop(i, _):
        if i == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        distill(train, _vdsd_dm_cfg(stills, iterations=3), tmp_path / "cut", on_iteration=stop)
    got = distill(train, _vdsd_dm_cfg(stills, iterations=3), tmp_path / "cut", resume=True).distilled
    for name, t in ref.tensors.items():
        assert torch.equal(t, got.tensors[name]), name


def test_a_diverging_hallucinator_names_its_own_step(stores, stills, tmp_path):
    """H has its own optimizer group: when it blows up, lowering --lr alone would not help, so the error
    names ``parametrization.h_lr`` too."""
    train, _ = stores
    cfg = _vdsd_dm_cfg(stills, iterations=20, lr=1e-6)
    cfg = dataclasses.replace(cfg, parametrization={**cfg.parametrization, "h_lr": 1e12})
    with pytest.raises(NonFiniteError, match=r"lower (--lr or )?--set parametrization\.h_lr and resume"):
        distill(train, cfg, tmp_path / "run")


def test_cli_end_to_end_two_stages(tmp_path, capsys):
    data = tmp_path / "data"
    make_tiny_stores(data)
    s1, s2 = tmp_path / "s1", tmp_path / "s2"
    common = ["--data", str(data), "--iterations", "2", "--batch-real", "4", "--quiet", "--device", "cpu"]
    assert main(["distill", "--method", "vdsd-static", "--out", str(s1), *common,
                 "--set", "objective.outer_loop=1", "--set", "objective.inner_loop=1"]) == 0
    assert main(["distill", "--method", "vdsd-dm", "--out", str(s2), "--ipc", "2", *common,
                 "--set", f"parametrization.statics={s1 / 'distilled.safetensors'}",
                 "--set", "parametrization.dpc=2"]) == 0
    assert main(["evaluate", str(s2 / "distilled.safetensors"), "--data", str(data), "--protocol", "cpu",
                 "--runs", "1", "--references", "", "--epochs", "2", "--quiet", "--device", "cpu"]) == 0
    assert "| vdsd-dm | 2 |" in capsys.readouterr().out
    assert main(["info", str(s2 / "distilled.safetensors")]) == 0
    out = capsys.readouterr().out
    assert "static_dynamic" in out and "hallucinator" in out and "dynamics" in out and "statics" in out


# -- ablations: H frozen at its initialisation; statics only -----------------------------------------
@pytest.mark.parametrize("train_h", [True, False])
def test_train_h_switch_freezes_or_trains_the_hallucinator(stores, stills, tmp_path, train_h):
    train, _ = stores
    over = {"statics": str(stills), "spc": 2, "dpc": 2, "width": 4, "train_h": train_h}
    cfg = resolve_config("vdsd-dm", {"ipc": 4, "iterations": 2, "batch_real": 4, "model": "vdsd-test-tiny",
                                     "parametrization": over})
    # the run's parametrization is built first from make_generator(seed): this is its initial state
    init = StaticDynamic(train, 4, make_generator(cfg.seed), options=StaticDynamicOptions(**over))
    groups = init.param_groups()
    assert [g["params"] for g in groups] == ([list(init.h.parameters())] if train_h else [])
    assert all(p.requires_grad == train_h for p in init.h.parameters())
    out = distill(train, cfg, tmp_path / "run").distilled
    h_same = [torch.equal(out.tensors[f"h.{n}"], p.detach()) for n, p in init.h.state_dict().items()]
    assert all(h_same) if not train_h else not any(h_same)
    assert not torch.equal(out.tensors["dynamics"], init.dynamics.detach())  # the dynamics learn either way
    assert out.manifest.layout["static_dynamic"]["train_h"] is train_h
    if not train_h:
        assert "frozen at init" in out.describe()


def test_statics_only_repeats_the_stills_over_time(stores, stills, tmp_path):
    train, _ = stores
    c, t, h, w = train.video_shape
    over = {"statics": str(stills), "spc": 2, "dynamics": False}
    param = StaticDynamic(train, 2, make_generator(0), options=StaticDynamicOptions(**over, pairing="fixed"))
    assert list(param.parameters()) == [] and param.param_groups() == [] and set(param.stored_tensors()) == {"statics"}
    videos = param().videos
    assert videos.shape == (6, c, t, h, w) and torch.equal(videos, param.statics.expand(-1, -1, t, -1, -1))
    cfg = resolve_config("vdsd-dm", {"ipc": 2, "iterations": 0, "batch_real": 4, "model": "vdsd-test-tiny",
                                     "parametrization": over})
    distill(train, cfg, tmp_path / "run")
    loaded = DistilledSet.load(tmp_path / "run" / "distilled.safetensors")
    assert set(loaded.tensors) == {"statics"} and loaded.manifest.layout["static_dynamic"]["dynamics"] is False
    assert torch.equal(loaded.materialize().videos, videos)
    detail = loaded.storage_detail().parts
    assert detail["statics"] == 4 * 6 * c * h * w
    assert detail["dynamics"] == detail["hallucinator"] == 0
    assert "statics only" in loaded.describe()
    with pytest.raises(ConfigError, match="nothing to learn"):
        distill(train, dataclasses.replace(cfg, iterations=1), tmp_path / "again")


def test_files_without_the_ablation_keys_still_load(stores, stills, tmp_path):
    train, _ = stores
    dset = distill(train, _vdsd_dm_cfg(stills, iterations=0), tmp_path / "run").distilled
    before = dset.materialize().videos
    del dset.manifest.layout["static_dynamic"]["train_h"]  # as written before the option existed
    dset.save(tmp_path / "old.safetensors")
    assert torch.equal(DistilledSet.load(tmp_path / "old.safetensors").materialize().videos, before)
