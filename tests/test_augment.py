"""Tests for videodd.augment: siamese, frame-consistent, differentiable video augmentation."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from videodd.augment import (
    DEFAULT_OPS,
    VALID_OPS,
    AugmentConfig,
    AugmentParams,
    VideoAugment,
    apply_augment,
    apply_augment_grouped,
    sample_params,
)

# One hand-made draw per op (so each op is exercised whatever the sampler picks), and all at once.
ONE_OP = {
    "color": AugmentParams(brightness=0.2, saturation=1.7, contrast=0.8),
    "crop": AugmentParams(translate=(0.125, -0.0625)),
    "cutout": AugmentParams(cutout=(0.3, 0.6, 0.5)),
    "scale": AugmentParams(scale=(1.15, 0.9)),
    "rotate": AugmentParams(rotate=12.0),
    "flip": AugmentParams(flip=True),
    "reverse": AugmentParams(reverse=True),
}
EVERYTHING = AugmentParams(
    brightness=-0.3, saturation=0.6, contrast=1.3, translate=(-0.1, 0.07), cutout=(0.8, 0.2, 0.5),
    scale=(0.9, 1.1), rotate=-9.0, flip=True, reverse=True,
)
ALL_DRAWS = {**ONE_OP, "everything": EVERYTHING}


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def video(n: int = 2, c: int = 3, t: int = 4, h: int = 16, w: int = 16, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, c, t, h, w, generator=gen(seed))


# ---------------------------------------------------------------- config and sampling


def test_default_ops_exclude_flip_and_reverse() -> None:
    cfg = AugmentConfig()
    assert cfg.ops == DEFAULT_OPS == ("color", "crop", "cutout", "scale", "rotate")
    assert "flip" not in cfg.ops and "reverse" not in cfg.ops
    assert set(VALID_OPS) == set(DEFAULT_OPS) | {"flip", "reverse"}
    assert cfg.mode == "single"
    assert (cfg.brightness, cfg.saturation, cfg.contrast, cfg.crop, cfg.cutout, cfg.scale, cfg.rotate,
            cfg.flip) == (1.0, 2.0, 0.5, 0.125, 0.5, 1.2, 15.0, 0.5)


def test_unknown_op_lists_valid_ops() -> None:
    with pytest.raises(ValueError, match="unknown augmentation op") as err:
        AugmentConfig(ops=("color", "jitter"))
    for op in VALID_OPS:
        assert op in str(err.value)


@pytest.mark.parametrize(
    "kwargs",
    [{"mode": "many"}, {"ops": ("crop", "crop")}, {"ops": "crop"}, {"brightness": -1.0}, {"scale": 0.5},
     {"cutout": 0.0}, {"flip": 1.5}, {"rotate": float("nan")}],
)
def test_bad_config_raises(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        AugmentConfig(**kwargs)


def test_ops_list_becomes_tuple() -> None:
    assert AugmentConfig(ops=["crop", "color"]).ops == ("crop", "color")  # type: ignore[arg-type]


def test_sampling_is_deterministic_and_leaves_global_rng_alone() -> None:
    for mode in ("single", "all"):
        cfg = AugmentConfig(ops=VALID_OPS, mode=mode)
        state = torch.random.get_rng_state()
        g1, g2 = gen(123), gen(123)
        draws1 = [sample_params(cfg, g1) for _ in range(20)]
        draws2 = [sample_params(cfg, g2) for _ in range(20)]
        apply_augment(video(), draws1[0])
        VideoAugment(cfg).pair(video(), video(seed=1), gen(5))
        assert torch.equal(torch.random.get_rng_state(), state)
        assert draws1 == draws2
        assert draws1 != [sample_params(cfg, gen(124)) for _ in range(20)]


def test_op_order_in_config_does_not_change_the_draw() -> None:
    a = AugmentConfig(ops=("color", "crop", "rotate"), mode="all")
    b = AugmentConfig(ops=("rotate", "color", "crop"), mode="all")
    assert sample_params(a, gen(7)) == sample_params(b, gen(7))


def test_all_mode_draws_every_enabled_op_and_nothing_else() -> None:
    p = sample_params(AugmentConfig(mode="all"), gen())
    expected = {"brightness", "saturation", "contrast", "translate", "cutout", "scale", "rotate"}
    assert set(p.active()) == expected
    p = sample_params(AugmentConfig(ops=("crop",), mode="all"), gen())
    assert p.active() == ("translate",)


def test_single_mode_draws_one_op_and_covers_all() -> None:
    cfg = AugmentConfig(ops=VALID_OPS)
    g = gen(3)
    seen = set()
    field_to_op = {"brightness": "color", "saturation": "color", "contrast": "color", "translate": "crop"}
    field_to_op |= {op: op for op in ("cutout", "scale", "rotate", "flip", "reverse")}
    for _ in range(200):
        ops = {field_to_op[f] for f in sample_params(cfg, g).active()}
        assert len(ops) == 1
        seen |= ops
    assert seen == set(VALID_OPS)


def test_sampled_values_are_in_dsa_ranges() -> None:
    cfg = AugmentConfig(ops=VALID_OPS, mode="all")
    g = gen(11)
    draws = [sample_params(cfg, g) for _ in range(500)]
    for p in draws:
        assert -0.5 <= p.brightness <= 0.5
        assert 0 <= p.saturation <= 2.0
        assert 0.5 <= p.contrast <= 1.5
        assert all(-0.125 <= v <= 0.125 for v in p.translate)
        assert all(0 <= v < 1 for v in p.cutout[:2]) and p.cutout[2] == 0.5
        assert all(1 / 1.2 <= v <= 1.2 for v in p.scale)
        assert -15 <= p.rotate <= 15
        assert isinstance(p.flip, bool) and isinstance(p.reverse, bool)
    flips = sum(p.flip for p in draws) / len(draws)
    assert 0.4 < flips < 0.6


def test_empty_ops_is_identity() -> None:
    cfg = AugmentConfig(ops=())
    p = sample_params(cfg, gen())
    assert p == AugmentParams() and p.active() == ()
    x = video()
    assert apply_augment(x, p) is x
    real, syn = VideoAugment(cfg).pair(x, video(seed=1), gen())
    assert real is x


# ---------------------------------------------------------------- siamese and frame consistency


@pytest.mark.parametrize("name", list(ALL_DRAWS))
def test_same_draw_same_transform_across_batches(name: str) -> None:
    p = ALL_DRAWS[name]
    a, b = video(n=2, seed=1), video(n=3, seed=2)
    joint = apply_augment(torch.cat([a, b]), p)
    torch.testing.assert_close(joint, torch.cat([apply_augment(a, p), apply_augment(b, p)]))


@pytest.mark.parametrize("name", list(ALL_DRAWS))
def test_identical_frames_stay_identical(name: str) -> None:
    frame = torch.randn(2, 3, 1, 12, 20, generator=gen(4))
    x = frame.expand(2, 3, 5, 12, 20).contiguous()  # (N, C, T, H, W), every frame equal
    y = apply_augment(x, ALL_DRAWS[name])
    assert y.shape == x.shape
    for t in range(1, 5):
        torch.testing.assert_close(y[:, :, t], y[:, :, 0], rtol=0, atol=0)


@pytest.mark.parametrize("name", ["crop", "scale", "rotate", "flip", "cutout"])
def test_every_frame_gets_the_same_spatial_transform(name: str) -> None:
    # different frames: each output frame must equal that frame augmented on its own
    x = video(n=2, t=4, h=12, w=20)
    p = ALL_DRAWS[name]
    y = apply_augment(x, p)
    for t in range(4):
        torch.testing.assert_close(y[:, :, t : t + 1], apply_augment(x[:, :, t : t + 1], p))


def test_pair_draws_once_for_both() -> None:
    aug = VideoAugment(AugmentConfig(ops=VALID_OPS, mode="all"))
    real, syn = video(n=3, seed=1), video(n=1, seed=2)
    real_aug, syn_aug = aug.pair(real, syn, gen(9))
    p = aug.sample(gen(9))
    torch.testing.assert_close(real_aug, aug(real, p))
    torch.testing.assert_close(syn_aug, aug(syn, p))
    with pytest.raises(ValueError, match="differ"):
        aug.pair(real, video(h=8), gen())


def test_grouped_matches_per_group() -> None:
    g = gen(21)
    draws = [sample_params(AugmentConfig(ops=VALID_OPS), g) for _ in range(5)] + [EVERYTHING, AugmentParams()]
    labels = torch.tensor([0, 3, 1, 6, 5, 2, 4, 5, 0, 3, 6])
    x = video(n=len(labels), h=12, w=14)
    y = apply_augment_grouped(x, draws, labels)
    for i, c in enumerate(labels.tolist()):
        torch.testing.assert_close(y[i : i + 1], apply_augment(x[i : i + 1], draws[c]), atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError):
        apply_augment_grouped(x, draws, torch.full((len(labels),), 7))


# ---------------------------------------------------------------- hand-checkable geometry


def test_translation_moves_a_pixel_by_whole_pixels() -> None:
    x = torch.zeros(1, 1, 2, 16, 16)
    x[..., 5, 7] = 1.0
    y = apply_augment(x, AugmentParams(translate=(2 / 16, -3 / 16)))  # 2 px right, 3 px up
    expected = torch.zeros_like(x)
    expected[..., 2, 9] = 1.0
    torch.testing.assert_close(y, expected, atol=1e-5, rtol=0)


def test_translation_fills_with_zeros() -> None:
    x = torch.ones(1, 1, 1, 8, 8)
    y = apply_augment(x, AugmentParams(translate=(1 / 8, 0.0)))
    torch.testing.assert_close(y[..., 0], torch.zeros(1, 1, 1, 8))
    torch.testing.assert_close(y[..., 1:], torch.ones(1, 1, 1, 8, 7))


def test_flip_mirrors_w() -> None:
    x = video(h=10, w=14)
    torch.testing.assert_close(apply_augment(x, AugmentParams(flip=True)), x.flip(-1))
    assert apply_augment(x, AugmentParams(flip=False)) is x


def test_reverse_reverses_t() -> None:
    x = video(t=5)
    assert torch.equal(apply_augment(x, AugmentParams(reverse=True)), x.flip(2))
    assert apply_augment(x, AugmentParams(reverse=False)) is x


def test_rotate_90_is_counter_clockwise_rot90() -> None:
    x = video(h=10, w=10)
    y = apply_augment(x, AugmentParams(rotate=90.0))
    torch.testing.assert_close(y, torch.rot90(x, 1, dims=(-2, -1)), atol=1e-5, rtol=0)


def test_rotation_is_aspect_correct_on_non_square_frames() -> None:
    # centre of a 16x32 frame is (7.5, 15.5); pixel (7, 20) sits at (dx, dy) = (4.5, -0.5)
    x = torch.zeros(1, 1, 1, 16, 32)
    x[..., 7, 20] = 1.0
    y = apply_augment(x, AugmentParams(rotate=90.0))[0, 0, 0]
    expected = torch.zeros(16, 32)
    expected[3, 15] = 1.0  # counter-clockwise: (4.5, -0.5) -> (-0.5, -4.5)
    torch.testing.assert_close(y, expected, atol=1e-5, rtol=0)


def test_scale_one_and_zero_translation_are_identity() -> None:
    x = video()
    assert apply_augment(x, AugmentParams(scale=(1.0, 1.0), translate=(0.0, 0.0), rotate=0.0)) is x


def test_scale_two_shrinks_content_about_the_centre() -> None:
    x = torch.zeros(1, 1, 1, 8, 8)
    x[..., 2:6, 2:6] = 1.0  # 4x4 centre square
    y = apply_augment(x, AugmentParams(scale=(2.0, 2.0)))[0, 0, 0]
    assert math.isclose(float(y.sum()), 4.0, abs_tol=1e-4)  # area / 4
    assert float(y[:2].abs().sum() + y[6:].abs().sum()) < 1e-6


def test_cutout_zeroes_the_same_box_in_every_frame() -> None:
    x = video(n=2, t=3, h=16, w=16) + 10.0  # no zeros in the input
    y = apply_augment(x, AugmentParams(cutout=(0.5, 0.5, 0.5)))
    zero = (y == 0).all(dim=(0, 1, 2))  # (H, W)
    assert int(zero.sum()) == 64  # 8x8 box
    rows, cols = zero.nonzero(as_tuple=True)
    assert (int(rows.min()), int(rows.max()), int(cols.min()), int(cols.max())) == (4, 11, 4, 11)
    assert torch.equal(y[..., ~zero], x[..., ~zero])


def test_cutout_box_is_clipped_at_the_border() -> None:
    x = torch.ones(1, 1, 1, 16, 16)
    y = apply_augment(x, AugmentParams(cutout=(0.0, 0.999, 0.5)))[0, 0, 0]
    assert int((y == 0).sum()) == 4 * 4  # centre at (16, 0): only a quarter of the 8x8 box is inside


# ---------------------------------------------------------------- colour


def test_color_ops_match_dsa_formulas() -> None:
    x = video()
    b, s, c = 0.2, 1.7, 0.8
    y = x + b
    m = y.mean(dim=1, keepdim=True)
    y = (y - m) * s + m
    m = y.mean(dim=(1, 2, 3, 4), keepdim=True)
    y = (y - m) * c + m
    torch.testing.assert_close(apply_augment(x, AugmentParams(brightness=b, saturation=s, contrast=c)), y)


# ---------------------------------------------------------------- gradients, shapes, dtypes


@pytest.mark.parametrize("name", list(ALL_DRAWS))
def test_gradients_flow_to_pixels(name: str) -> None:
    x = video(h=12, w=12).requires_grad_(True)
    y = apply_augment(x, ALL_DRAWS[name])
    weights = torch.randn(y.shape, generator=gen(1))
    (y * weights).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_gradient_is_zero_inside_cutout() -> None:
    x = torch.randn(1, 1, 2, 16, 16, requires_grad=True)
    apply_augment(x, AugmentParams(cutout=(0.5, 0.5, 0.5))).sum().backward()
    assert torch.all(x.grad[..., 4:12, 4:12] == 0)
    assert torch.all(x.grad[..., :4, :] == 1)


def test_sampled_draws_apply_to_any_shape() -> None:
    aug = VideoAugment(AugmentConfig(ops=VALID_OPS, mode="all"))
    g = gen(2)
    for shape in [(1, 3, 1, 8, 8), (2, 1, 3, 7, 13), (3, 3, 8, 32, 32)]:
        x = torch.randn(shape)
        y = aug(x, aug.sample(g))
        assert y.shape == x.shape and y.dtype == x.dtype and torch.isfinite(y).all()


def test_half_precision_input_keeps_its_dtype() -> None:
    x = video().to(torch.bfloat16)
    y = apply_augment(x, EVERYTHING)
    assert y.dtype == torch.bfloat16
    torch.testing.assert_close(y.float(), apply_augment(x.float(), EVERYTHING), atol=0.1, rtol=0.05)


@pytest.mark.parametrize("bad", [torch.zeros(2, 3, 8, 8), torch.zeros(1, 3, 2, 8, 8, dtype=torch.uint8)])
def test_bad_input_raises(bad: torch.Tensor) -> None:
    with pytest.raises(ValueError, match="video"):
        apply_augment(bad, EVERYTHING)


def test_params_are_frozen_and_serialisable() -> None:
    p = sample_params(AugmentConfig(ops=VALID_OPS, mode="all"), gen())
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.rotate = 0.0  # type: ignore[misc]
    assert AugmentParams(**dataclasses.asdict(p)) == p
