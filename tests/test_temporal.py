"""Temporal compression in the pixels parametrization: t stored frames expanded to T (nearest / linear / learned)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from conftest import make_tiny_stores
from videodd.cli import main
from videodd.config import ConfigError
from videodd.distill import distill, make_objective, resolve_config
from videodd.distilled import DistilledSet, DistilledSetError
from videodd.models import MODELS, register_model
from videodd.models.convnet3d import ConvNet3D
from videodd.objectives.dm import DistributionMatching
from videodd.seeding import make_generator
from videodd.synthesis.pixels import Pixels, PixelsOptions
from videodd.synthesis.temporal import anchor_frames, interp_matrix

CPU = torch.device("cpu")
TINY = "temporal-test-tiny"

if TINY not in MODELS:  # one conv block: cheap on a loaded 2-core machine
    register_model(TINY)(lambda num_classes, input_shape: ConvNet3D(
        num_classes, input_shape, widths=(4,), kernel=(3, 3, 3), stride=(1, 2, 2), padding=(1, 1, 1),
        pools=((1, 2, 2),), head_pool=(1, 1, 1)))


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    return make_tiny_stores(tmp_path_factory.mktemp("temporal") / "data")  # 3 classes, T=4, 32x32


def _cfg(**over):
    return resolve_config("dm", {"ipc": 2, "iterations": 2, "batch_real": 4, "model": TINY, "augment": [],
                                 "checkpoint_every": 1, **over})


# -- the matrices -------------------------------------------------------------------------------------
def test_matrices_match_hand_computed_values():
    third = 1.0 / 3.0
    assert torch.allclose(interp_matrix(4, 2, "linear"),
                          torch.tensor([[1, 0], [2 * third, third], [third, 2 * third], [0, 1]]))
    assert torch.equal(interp_matrix(4, 2, "nearest"), torch.tensor([[1.0, 0], [1, 0], [0, 1], [0, 1]]))
    assert torch.equal(interp_matrix(5, 3, "linear"),
                       torch.tensor([[1, 0, 0], [0.5, 0.5, 0], [0, 1, 0], [0, 0.5, 0.5], [0, 0, 1.0]]))
    assert torch.equal(interp_matrix(3, 2, "nearest"), torch.tensor([[1.0, 0], [0, 1], [0, 1]]))  # tie -> later
    for mode in ("nearest", "linear"):
        assert torch.equal(interp_matrix(4, 1, mode), torch.ones(4, 1))  # t = 1: the frame repeated
        assert torch.equal(interp_matrix(4, 4, mode), torch.eye(4))  # t = T: nothing changes
    # linear is align_corners=True interpolation along time; every row sums to 1
    for big, small in [(4, 2), (4, 3), (8, 3), (16, 5), (16, 4)]:
        x = torch.randn(2, 3, small, 2, 2, dtype=torch.float64)
        ref = F.interpolate(x, size=(big, 2, 2), mode="trilinear", align_corners=True)
        got = torch.einsum("ts,ncshw->ncthw", interp_matrix(big, small, "linear").double(), x)
        assert torch.allclose(got, ref, atol=1e-6), (big, small)
        assert torch.allclose(interp_matrix(big, small, "nearest").sum(1), torch.ones(big))
    with pytest.raises(ValueError, match="1 <= stored frames"):
        interp_matrix(4, 5, "linear")


def test_anchor_frames_are_where_the_linear_matrix_is_exact():
    assert anchor_frames(4, 2) == [0, 3] and anchor_frames(4, 1) == [2] and anchor_frames(4, 4) == [0, 1, 2, 3]
    assert anchor_frames(5, 3) == [0, 2, 4] and anchor_frames(16, 4) == [0, 5, 10, 15]
    assert anchor_frames(4, 3) == [0, 2, 3]  # 1.5 rounds half up
    for big, small in [(4, 2), (5, 3), (16, 4), (16, 6)]:  # (T - 1) divisible by (t - 1): output frame = stored frame
        m = interp_matrix(big, small, "linear")
        assert torch.equal(m[anchor_frames(big, small)], torch.eye(small)), (big, small)


# -- the parametrization -------------------------------------------------------------------------------
@pytest.mark.parametrize("interp", ["nearest", "linear", "learned"])
@pytest.mark.parametrize("frames", [1, 2, 4])
def test_stored_and_expanded_shapes(stores, frames, interp):
    train, _ = stores
    c, t, h, w = train.video_shape
    param = Pixels(train, 2, make_generator(0), options=PixelsOptions(frames=frames, interp=interp))
    assert param.videos.shape == (6, c, frames, h, w)
    videos = param().videos
    assert videos.shape == (6, c, t, h, w)
    if frames == 1:  # the stored frame repeated over time
        assert torch.equal(videos, param.videos.expand(-1, -1, t, -1, -1))
    if frames == t:  # linear/nearest (and learned at init) are the identity
        assert torch.equal(videos, param.videos)
    assert param.stored_tensors()["videos"].shape == (6, c, frames, h, w)
    assert ("interp_matrix" in param.stored_tensors()) == (interp == "learned")
    assert param.layout() == {"temporal": {"frames": frames, "interp": interp}}


def test_default_pixels_are_unchanged(stores):
    train, _ = stores
    plain = Pixels(train, 2, make_generator(0))
    assert plain.videos.shape == (6, *train.video_shape) and plain().videos is plain.videos
    assert plain.layout() == {} and set(plain.stored_tensors()) == {"videos"} and plain.param_groups() == []


@pytest.mark.parametrize("frames", [1, 2, 3])
def test_real_init_keeps_the_anchored_frames_of_the_same_clips(stores, frames):
    train, _ = stores
    full = Pixels(train, 2, make_generator(5)).videos.detach()  # same seed: the same random clips
    compact = Pixels(train, 2, make_generator(5), options=PixelsOptions(frames=frames)).videos.detach()
    assert torch.equal(compact, full[:, :, anchor_frames(4, frames)])
    noise = Pixels(train, 2, make_generator(5), init="noise", options=PixelsOptions(frames=frames))
    assert noise.videos.shape == (6, 3, frames, 32, 32)


def test_options_are_validated(stores):
    train, _ = stores
    with pytest.raises(ValueError, match="frames must be >= 1"):
        PixelsOptions(frames=0)
    with pytest.raises(ValueError, match="interp"):
        PixelsOptions(interp="cubic")
    with pytest.raises(ValueError, match="interp_lr"):
        PixelsOptions(interp_lr=0.0)
    with pytest.raises(ConfigError, match=r"frames must be in \[1, T\] = \[1, 4\]"):
        Pixels(train, 1, make_generator(0), options=PixelsOptions(frames=5))


def test_learned_matrix_gets_gradients_and_its_own_group(stores):
    train, _ = stores
    param = Pixels(train, 2, make_generator(0), options=PixelsOptions(frames=2, interp="learned", interp_lr=0.05))
    assert torch.equal(param.interp.detach(), interp_matrix(4, 2, "linear"))
    (group,) = param.param_groups()
    assert group["params"] == [param.interp] and group["lr"] == 0.05
    out = make_objective(DistributionMatching, train, _cfg(), CPU).loss(param, make_generator(1))
    out.loss.backward()
    assert param.interp.grad is not None and param.interp.grad.abs().sum() > 0
    assert param.videos.grad is not None and param.videos.grad.abs().sum() > 0
    fixed = Pixels(train, 2, make_generator(0), options=PixelsOptions(frames=2, interp="linear"))
    assert [n for n, _ in fixed.named_parameters()] == ["videos"] and fixed.param_groups() == []


# -- the DistilledSet ----------------------------------------------------------------------------------
@pytest.mark.parametrize("interp", ["linear", "learned"])
def test_round_trip_materializes_the_expanded_videos_with_t_frames_of_storage(stores, tmp_path, interp):
    train, _ = stores
    seen = {}
    result = distill(train, _cfg(parametrization={"frames": 2, "interp": interp}), tmp_path / "run",
                     on_iteration=lambda i, p: seen.update(param=p))
    with torch.no_grad():
        expected = seen["param"]().videos
    loaded = DistilledSet.load(tmp_path / "run" / "distilled.safetensors")
    assert loaded.manifest.kind == "pixels" and loaded.manifest.layout["temporal"] == {"frames": 2, "interp": interp}
    assert torch.equal(loaded.materialize().videos, expected)
    assert torch.equal(result.distilled.materialize().videos, expected)
    if interp == "learned":  # the matrix was trained and is what the file keeps
        assert not torch.equal(loaded.tensors["interp_matrix"], interp_matrix(4, 2, "linear"))
    # storage: t / T of the full pixels (+ the (T, t) matrix)
    full = distill(train, _cfg(iterations=0), tmp_path / "full").distilled.storage_bytes()
    sizes, detail = loaded.storage_bytes(), loaded.storage_detail()
    assert sizes["videos"] * 4 == full["videos"] * 2
    assert sizes.get("interp_matrix", 0) == (4 * 2 * 4 if interp == "learned" else 0)
    assert sizes["total"] == sizes["videos"] + sizes.get("interp_matrix", 0) + sizes["labels"]
    assert detail.parts == {"videos": sizes["videos"], "interp_matrix": sizes.get("interp_matrix", 0)}
    assert any(f"2 stored frames per video, expanded to T=4 by {interp}" in n for n in detail.notes)
    assert DistilledSet.load(tmp_path / "full" / "distilled.safetensors").storage_detail().parts == {}
    text = loaded.describe()
    assert "temporal" in text and "2 stored frames" in text and interp in text


def test_inconsistent_files_are_refused(stores, tmp_path):
    train, _ = stores
    dset = distill(train, _cfg(iterations=0, parametrization={"frames": 2}), tmp_path / "run").distilled
    dset.manifest.layout["temporal"] = {"frames": 3, "interp": "linear"}
    with pytest.raises(DistilledSetError, match="videos"):
        dset.save(tmp_path / "bad.safetensors")
    dset.manifest.layout["temporal"] = {"frames": 2, "interp": "learned"}  # no matrix stored
    with pytest.raises(DistilledSetError, match="interp_matrix"):
        dset.validate()
    dset.manifest.layout["temporal"] = {"frames": 9, "interp": "linear"}
    with pytest.raises(DistilledSetError, match="frames"):
        dset.validate()


def test_resume_matches_an_uninterrupted_run(stores, tmp_path):
    train, _ = stores
    cfg = _cfg(iterations=3, parametrization={"frames": 2, "interp": "learned"})
    ref = distill(train, cfg, tmp_path / "ref").distilled

    def stop(i, _):
        if i == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        distill(train, cfg, tmp_path / "cut", on_iteration=stop)
    got = distill(train, cfg, tmp_path / "cut", resume=True).distilled
    for name, t in ref.tensors.items():
        assert torch.equal(t, got.tensors[name]), name


def test_cli_distill_evaluate_info(tmp_path, capsys):
    data = tmp_path / "data"
    make_tiny_stores(data)
    run = tmp_path / "run"
    common = ["--data", str(data), "--quiet", "--device", "cpu"]
    assert main(["distill", "--method", "dm", "--out", str(run), "--iterations", "2", "--batch-real", "4",
                 "--model", TINY, *common, "--set", "parametrization.frames=2",
                 "--set", "parametrization.interp=learned"]) == 0
    path = run / "distilled.safetensors"
    assert main(["evaluate", str(path), "--protocol", "cpu", "--runs", "1", "--references", "", "--epochs", "2",
                 *common]) == 0
    assert "| dm | 1 |" in capsys.readouterr().out
    assert main(["info", str(path)]) == 0
    out = capsys.readouterr().out
    assert "2 stored frames" in out and "learned" in out and "interp_matrix" in out
    assert main(["distill", "--method", "dm", "--out", str(tmp_path / "bad"), "--iterations", "1", *common,
                 "--set", "parametrization.frames=9"]) == 2
    assert "parametrization.frames must be in [1, T]" in capsys.readouterr().err
