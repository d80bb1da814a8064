"""k-DPP and k-means selection: exactness, diversity, degenerate bandwidths, selectors on pixels."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from videodd.distill import distill, resolve_config
from videodd.seeding import make_generator
from videodd.selection import SELECTORS
from videodd.selection.dpp import (
    elementary_symmetric,
    kdpp_sample,
    kdpp_sample_kernel,
    kdpp_subset_probability,
    kernel_matrix,
    median_bandwidth,
    pairwise_sq_dists,
)
from videodd.selection.kmeans import kmeans, kmeans_select, nearest_distinct


@pytest.fixture(autouse=True)
def _one_thread():
    """Many tiny eigendecompositions: intra-op threads only add overhead (and stall on a busy machine)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def clustered(k: int, per: int, dim: int, seed: int, spread: float = 3.0) -> tuple[torch.Tensor, torch.Tensor]:
    """``k`` Gaussian clusters of ``per`` points in ``dim`` dimensions: features (k*per, dim), cluster ids."""
    gen = make_generator(seed)
    centres = spread * torch.randn(k, dim, generator=gen)
    ids = torch.arange(k).repeat_interleave(per)
    return centres[ids] + torch.randn(k * per, dim, generator=gen), ids


def test_elementary_symmetric_polynomials_by_hand():
    lam = torch.tensor([1.0, 2.0, 3.0])
    table = elementary_symmetric(lam, 3)
    last = table[:, 3] / table[0, 3]  # columns are scaled; e_0 = 1 fixes the scale
    assert np.allclose(last, [1.0, 6.0, 11.0, 6.0])


def test_kdpp_matches_exact_subset_probabilities():
    # N=4, k=2: 6 subsets; frequencies over many draws against det(L_S) / e_2
    x = torch.tensor([[0.0, 0.0], [0.3, 0.0], [2.0, 0.0], [0.0, 1.5]])
    L = kernel_matrix(x, "rbf", bandwidth=1.0)
    subsets = list(itertools.combinations(range(4), 2))
    exact = np.array([kdpp_subset_probability(L, s, 2) for s in subsets])
    assert exact.sum() == pytest.approx(1.0, abs=1e-12)
    assert exact.max() / exact.min() > 3  # far from uniform, so the test can see a wrong sampler
    draws = 4000
    gen = make_generator(0)
    counts = dict.fromkeys(subsets, 0)
    for _ in range(draws):
        counts[tuple(kdpp_sample_kernel(L, 2, gen).tolist())] += 1
    observed = np.array([counts[s] for s in subsets])
    expected = exact * draws
    chi2 = float(((observed - expected) ** 2 / expected).sum())
    assert chi2 < 20.5  # chi-square, 5 degrees of freedom: p ~ 0.001


def test_kdpp_picks_more_clusters_than_random():
    feats, ids = clustered(k=5, per=20, dim=64, seed=0, spread=10.0)
    seeds = range(60)
    dpp = [len(set(ids[kdpp_sample(feats, 5, make_generator(s))].tolist())) for s in seeds]
    rand = [len(set(ids[torch.randperm(100, generator=make_generator(s))[:5]].tolist())) for s in seeds]
    # random: 5 * (1 - C(80,5)/C(100,5)) = 3.4 clusters on average; the k-DPP nearly always covers all 5
    assert np.mean(rand) < 3.8
    assert np.mean(dpp) > 4.6
    assert np.mean(dpp) - np.mean(rand) > 0.9


def test_cosine_kernel_is_diverse_too():
    feats, ids = clustered(k=5, per=12, dim=32, seed=1, spread=10.0)
    feats = feats + 50.0  # a shared offset: without centring every cosine would be close to 1
    L = kernel_matrix(feats, "cosine")
    assert torch.allclose(torch.diagonal(L), torch.ones(60, dtype=torch.float64))
    dpp = [len(set(ids[kdpp_sample(feats, 5, make_generator(s), kernel="cosine")].tolist())) for s in range(40)]
    rand = [len(set(ids[torch.randperm(60, generator=make_generator(s))[:5]].tolist())) for s in range(40)]
    assert np.mean(dpp) - np.mean(rand) > 0.6


def test_fixed_bandwidth_degenerates_to_uniform_in_high_dimension():
    # the published fixed bandwidth: in 2048 dims, squared distances are in the thousands, so exp(-d^2)
    # underflows off the diagonal, L == I and every k-subset is equally likely (no diversity at all)
    feats, ids = clustered(k=4, per=3, dim=2048, seed=2)
    fixed = kernel_matrix(feats, "rbf", bandwidth=1.0)
    assert torch.equal(fixed, torch.eye(12, dtype=torch.float64))
    probs = [kdpp_subset_probability(fixed, s, 4) for s in itertools.combinations(range(12), 4)]
    assert max(probs) == pytest.approx(min(probs), rel=1e-9)  # uniform over the 495 subsets
    # the median heuristic scales with the data: typical pairs get 1/e, same-cluster pairs much more
    d2 = pairwise_sq_dists(feats)
    assert median_bandwidth(d2) > 1000
    median = kernel_matrix(feats, "rbf")
    same = ids[:, None] == ids[None, :]
    off = ~torch.eye(12, dtype=torch.bool)
    assert median[same & off].min() > 0.8 and median[~same].max() < 0.5
    probs = np.array([kdpp_subset_probability(median, s, 4) for s in itertools.combinations(range(12), 4)])
    covering = np.array([len(set(ids[list(s)].tolist())) == 4 for s in itertools.combinations(range(12), 4)])
    # 81 of the 495 subsets take one clip from every cluster: 16% of the mass under uniform sampling, 50% here
    assert covering.sum() == 81 and probs[covering].sum() > 0.4
    gen = make_generator(0)
    uniform_cover = np.mean([len(set(ids[kdpp_sample(feats, 4, gen, bandwidth=1.0)].tolist())) == 4
                             for _ in range(200)])
    assert uniform_cover < 0.3


def test_kdpp_edge_cases():
    gen = make_generator(0)
    x = torch.randn(6, 3, generator=gen)
    assert kdpp_sample(x, 6, gen).tolist() == list(range(6))
    with pytest.raises(ValueError, match="cannot pick 7 of 6"):
        kdpp_sample(x, 7, gen)
    dupes = torch.ones(5, 4)  # rank 1: defined only thanks to the jitter
    assert len(set(kdpp_sample(dupes, 3, gen).tolist())) == 3
    with pytest.raises(ValueError, match="rank below"):
        kdpp_sample(dupes, 3, gen, jitter=0.0)
    with pytest.raises(ValueError, match="unknown DPP kernel"):
        kernel_matrix(x, "laplace")
    same = [kdpp_sample(x, 3, make_generator(5)).tolist() for _ in range(2)]
    assert same[0] == same[1]


def test_kmeans_picks_one_member_per_separable_cluster():
    feats, ids = clustered(k=6, per=10, dim=16, seed=3, spread=10.0)
    for seed in range(8):
        picks = kmeans_select(feats, 6, make_generator(seed))
        assert picks.tolist() == sorted(picks.tolist())
        assert sorted(ids[picks].tolist()) == list(range(6))
    result = kmeans(feats, 6, make_generator(0))
    # on separable clusters Lloyd converges to the true partition
    assert len({(int(a), int(b)) for a, b in zip(result.assignment, ids, strict=True)}) == 6
    assert result.iterations < 100


def test_nearest_distinct_never_repeats_a_member():
    feats = torch.tensor([[0.0], [10.0], [11.0]])
    centres = torch.tensor([[0.1], [0.2], [9.0]])  # two centres both nearest to row 0
    assert sorted(nearest_distinct(feats, centres).tolist()) == [0, 1, 2]
    assert sorted(kmeans_select(torch.ones(4, 3), 4, make_generator(0)).tolist()) == [0, 1, 2, 3]


@pytest.mark.parametrize("method", ["kmeans", "dpp"])
def test_selectors_run_on_pixels_through_distill(tiny_stores, tmp_path, method):
    train, _ = tiny_stores
    idx = SELECTORS.get(method)().select(train, 2, make_generator(0))
    assert idx.dtype == np.int64 and len(idx) == 6 and len(set(idx.tolist())) == 6
    assert train.labels[idx].tolist() == [0, 0, 1, 1, 2, 2]
    cfg = resolve_config(method, {"ipc": 2, "seed": 1})
    a = distill(train, cfg, tmp_path / "a").distilled
    b = distill(train, cfg, tmp_path / "b").distilled
    assert a.manifest.kind == "real-clips" and torch.equal(a.tensors["clips"], b.tensors["clips"])


def test_dpp_selector_options_are_validated(tiny_stores, tmp_path):
    from videodd.config import ConfigError

    train, _ = tiny_stores
    with pytest.raises(ConfigError, match="kernel"):
        distill(train, resolve_config("dpp", {"selector": {"kernel": "laplace"}}), tmp_path / "x")
    cfg = resolve_config("dpp", {"ipc": 2, "selector": {"kernel": "cosine"}})
    assert distill(train, cfg, tmp_path / "y").distilled.num_videos == 6
