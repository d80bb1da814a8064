"""IDTD's pieces against hand-computed values; the contract (resume, storage, kinds) is in test_methods/test_kinds."""

from __future__ import annotations

import pytest
import torch

from videodd.config import ConfigError
from videodd.distill import distill, resolve_config, validate_config
from videodd.seeding import make_generator
from videodd.synthesis.idtd import (
    IDTD,
    Fusor,
    IDTDOptions,
    apply_fusor,
    fuse,
    resample,
    select_segments,
    selection_diversity,
    selector_weights,
)


def test_resample_linear_by_hand():
    x = torch.tensor([0.0, 3.0]).view(1, 1, 2, 1, 1)  # two frames: 0 and 3
    assert resample(x, 4).flatten().tolist() == pytest.approx([0.0, 1.0, 2.0, 3.0])
    assert torch.equal(resample(x, 2), x)
    y = torch.tensor([0.0, 2.0, 4.0, 6.0]).view(1, 1, 4, 1, 1)
    assert resample(y, 2).flatten().tolist() == pytest.approx([0.0, 6.0])  # first and last kept


def test_selectors_pick_their_class_pool_entries():
    k, p, ipc = 2, 3, 2
    pool = torch.arange(k * p, dtype=torch.float32).view(k * p, 1, 1, 1, 1).expand(k * p, 1, 2, 1, 1).contiguous()
    choice = torch.tensor([[0, 2], [1, 1], [2, 0], [0, 1]])  # (K*ipc, S): entries within each class's pool
    logits = 50 * torch.nn.functional.one_hot(choice, p).float()  # near one-hot soft selection
    soft = select_segments(pool, logits, ipc, 1.0, hard=False)  # (4, 2, 1, 2, 1, 1)
    want = torch.tensor([[0, 2], [1, 1], [5, 3], [3, 4]], dtype=torch.float32)  # class 1 reads rows 3..5
    assert torch.allclose(soft[:, :, 0, 0, 0, 0], want, atol=1e-4)
    logits = logits.div(50).requires_grad_(True)  # soft weights far from one-hot
    hard = select_segments(pool, logits, ipc, 1.0, hard=True)
    assert torch.equal(hard[:, :, 0, 0, 0, 0], want)  # exact argmax entries forward
    hard.sum().backward()
    assert logits.grad is not None and logits.grad.abs().sum() > 0  # the straight-through gradient


def test_fusor_starts_as_the_concatenation_and_class_groups_are_separate_fusors():
    torch.manual_seed(0)
    segments = torch.randn(4, 2, 3, 2, 4, 4)  # (N=K*ipc, S, C, L, H, W), K=2, ipc=2
    seq = torch.cat([segments[:, 0], segments[:, 1]], dim=2)  # (N, C, S*L, H, W)
    fusor = Fusor(3, 5, groups=2)
    assert torch.allclose(fuse(segments, fusor, 4, num_classes=2), seq)  # zero-initialised outer layer: identity
    torch.nn.init.normal_(fusor.outer.weight)
    x = torch.randn(4, 3, 4, 4, 4)  # class 0: rows 0-1, class 1: rows 2-3
    out = apply_fusor(x, fusor, num_classes=2)
    for c in range(2):  # group c of the grouped convolutions, alone, on class c's videos
        alone = Fusor(3, 5)
        alone.inner.weight.data = fusor.inner.weight[5 * c : 5 * c + 5].clone()
        alone.inner.bias.data = fusor.inner.bias[5 * c : 5 * c + 5].clone()
        alone.outer.weight.data = fusor.outer.weight[3 * c : 3 * c + 3].clone()
        alone.outer.bias.data = fusor.outer.bias[3 * c : 3 * c + 3].clone()
        assert torch.allclose(out[2 * c : 2 * c + 2], alone(x[2 * c : 2 * c + 2]), atol=1e-5)


def test_selection_diversity_by_hand():
    disjoint = torch.tensor([[[50.0, 0, 0, 0], [0, 50.0, 0, 0]], [[0, 0, 50.0, 0], [0, 0, 0, 50.0]]])  # (2, 2, 4)
    assert selection_diversity(disjoint, ipc=2, temperature=1.0).item() == pytest.approx(0.0, abs=1e-6)
    same = torch.zeros(2, 2, 4)  # uniform everywhere: cosine 1 within instances and between them
    assert selection_diversity(same, ipc=2, temperature=1.0).item() == pytest.approx(2.0)
    assert selection_diversity(same[:1, :1], ipc=1, temperature=1.0).item() == 0.0  # nothing to compare


def test_options_are_validated_with_clear_errors(tiny_stores):
    train, _ = tiny_stores  # 4-frame clips
    with pytest.raises(ValueError, match="cannot exceed pool"):
        IDTDOptions(pool=2, segments=3)
    with pytest.raises(ValueError, match="temperature must be > 0"):
        IDTDOptions(temperature=0)
    with pytest.raises(ValueError, match="unknown fusor 'lstm'"):
        IDTDOptions(fusor="lstm")
    with pytest.raises(ConfigError, match=r"segment_frames must be in \[1, T\] = \[1, 4\], got 5"):
        IDTD(train, 1, make_generator(0), options=IDTDOptions(segment_frames=5))
    with pytest.raises(ConfigError, match="exceeds the pool"):
        IDTD(train, 1, make_generator(0), options=IDTDOptions(segments=3))  # pool defaults to 2 * ipc = 2
    with pytest.raises(ConfigError, match="unknown field"):
        validate_config(resolve_config("idtd-dm", {"parametrization": {"pools": 3}}))


def test_sta_draws_from_its_own_seeded_generator_and_the_set_is_the_deterministic_composition(tiny_stores, tmp_path):
    train, _ = tiny_stores
    a, b = IDTD(train, 2, make_generator(3)), IDTD(train, 2, make_generator(3))
    first, second = a().videos, b().videos
    assert torch.equal(first, second)  # the same seed, the same augmentation
    assert not torch.equal(a().videos, first)  # a new draw every call
    a.eval()
    assert torch.equal(a().videos, a().videos)  # no STA outside training
    cfg = resolve_config("idtd-dm", {"ipc": 2, "iterations": 3, "batch_real": 4,
                                     "parametrization": {"fusor_width": 2}})
    result = distill(train, cfg, tmp_path / "run")
    videos = result.distilled.materialize().videos
    assert videos.shape == (3 * 2, 3, 4, 32, 32)
    detail = result.distilled.storage_detail()
    assert set(detail.parts) == {"pool", "selectors", "fusor"}
    assert sum(detail.parts.values()) == detail.total_bytes - detail.label_bytes  # everything counted


def test_diversity_penalty_pushes_selections_apart(tiny_stores):
    train, _ = tiny_stores
    param = IDTD(train, 2, make_generator(0), options=IDTDOptions(diversity=1.0, pool=4))
    opt = torch.optim.SGD([param.logits], lr=1.0)
    before = float(param.penalty())
    for _ in range(50):
        opt.zero_grad()
        param.penalty().backward()
        opt.step()
    assert float(param.penalty()) < 0.5 * before


def test_selector_weights_of_a_saved_set_use_its_temperature(tiny_stores, tmp_path):
    train, _ = tiny_stores
    cfg = resolve_config("idtd-dm", {"ipc": 2, "iterations": 1, "batch_real": 4,
                                     "parametrization": {"fusor_width": 2, "temperature": 0.5, "hard": True}})
    saved = distill(train, cfg, tmp_path / "run").distilled
    logits = saved.tensors["logits"]  # (K*ipc, S, P)
    weights = selector_weights(saved.tensors, saved.manifest)
    assert weights.shape == logits.shape
    assert torch.allclose(weights, torch.softmax(logits / 0.5, dim=-1))  # soft, at the set's temperature
    assert not torch.allclose(weights, torch.softmax(logits, dim=-1))
