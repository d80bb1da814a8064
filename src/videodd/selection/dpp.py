"""Exact k-DPP sampling (Kulesza & Taskar 2012, Algorithm 8), per class.

A k-DPP over ``n`` items with an L-ensemble kernel ``L`` draws a size-``k`` subset ``S`` with
probability ``det(L_S) / e_k(lambda_1..lambda_n)``, where ``e_k`` is the ``k``-th elementary symmetric
polynomial of the eigenvalues of ``L``: similar items (large ``L_ij``) rarely appear together, so the
picks spread over the modes of the data while staying random. Sampling is exact:

1. eigendecompose ``L = sum_n lambda_n v_n v_n^T`` (float64);
2. walk the eigenvalues from the last to the first, keeping eigenvector ``n`` with probability
   ``lambda_n e_{l-1}^{n-1} / e_l^n`` (``l`` = how many are still to keep), which picks ``k``
   eigenvectors with the mixture weights of the k-DPP;
3. sample the elementary DPP spanned by the kept eigenvectors: pick item ``i`` with probability
   ``sum_v (v^T e_i)^2 / |V|``, project ``V`` onto the orthogonal complement of ``e_i``, repeat.

Kernels (``kernel_matrix``):

- ``rbf``: ``L_ij = exp(-||x_i - x_j||^2 / sigma^2)`` with ``sigma^2`` = the **median** of the
  pairwise squared distances (the median heuristic), or a fixed ``bandwidth``. The median matters:
  the published latent-distillation code uses a fixed bandwidth, but squared distances between
  high-dimensional latents grow with the dimension (thousands for a 4x8x8x8 latent), so
  ``exp(-d^2 / sigma^2)`` underflows to 0 off the diagonal, ``L`` becomes the identity and the k-DPP
  is exactly uniform sampling (every ``det(L_S) = 1``) - diversity in name only
  (``tests/test_dpp.py`` shows both regimes). With the median heuristic the kernel value between a
  typical pair is ``1/e`` at any dimension or scale.
- ``cosine``: cosine similarity of the class-centred features (``L = X_c X_c^T`` with unit rows).
  Centring first because latents share a large common offset that would make every pair look
  alike (cosine near 1).

A small ridge ``jitter * I`` keeps the k-DPP defined when ``L`` has rank below ``k`` (duplicate
clips, or ``k = n`` with the centred cosine kernel).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from videodd.methods import MethodSpec, register_method
from videodd.selection.base import PixelSelector, register_selector

KERNELS = ("rbf", "cosine")
DEFAULT_JITTER = 1e-6


def pairwise_sq_dists(features: torch.Tensor) -> torch.Tensor:
    """Squared Euclidean distances ``(n, n)`` of the rows of ``features (n, D)``, in float64, >= 0."""
    x = features.detach().to(torch.float64).reshape(features.shape[0], -1)  # (n, D)
    sq = (x * x).sum(1)
    d2 = (sq[:, None] + sq[None, :] - 2.0 * (x @ x.T)).clamp_min_(0.0)
    d2.fill_diagonal_(0.0)
    return d2


def median_bandwidth(d2: torch.Tensor) -> float:
    """The median heuristic: the median of the off-diagonal squared distances (1.0 if all are 0)."""
    n = d2.shape[0]
    if n < 2:
        return 1.0
    iu = torch.triu_indices(n, n, offset=1, device=d2.device)
    off = d2[iu[0], iu[1]]
    med = float(off.median())
    if med > 0:
        return med
    positive = off[off > 0]  # more than half the pairs are duplicates: use the typical non-zero distance
    return float(positive.median()) if positive.numel() else 1.0


def kernel_matrix(
    features: torch.Tensor, kernel: str = "rbf", *, bandwidth: float | None = None
) -> torch.Tensor:
    """The L-ensemble kernel ``(n, n)`` (float64) of the rows of ``features (n, ...)``.

    Args:
        kernel: ``rbf`` (``exp(-d^2 / sigma^2)``) or ``cosine`` (of the centred rows).
        bandwidth: ``sigma^2`` of the RBF kernel; ``None`` is the median heuristic.
    """
    n = features.shape[0]
    if kernel == "rbf":
        d2 = pairwise_sq_dists(features)
        sigma2 = median_bandwidth(d2) if bandwidth is None else float(bandwidth)
        if not sigma2 > 0:
            raise ValueError(f"the RBF bandwidth must be > 0, got {sigma2}")
        return torch.exp(-d2 / sigma2)
    if kernel == "cosine":
        if bandwidth is not None:
            raise ValueError("the cosine kernel has no bandwidth")
        x = features.detach().to(torch.float64).reshape(n, -1)  # (n, D)
        x = x - x.mean(0, keepdim=True)
        x = x / x.norm(dim=1, keepdim=True).clamp_min(1e-12)
        return x @ x.T
    raise ValueError(f"unknown DPP kernel {kernel!r}; valid kernels: {', '.join(KERNELS)}")


def elementary_symmetric(eigenvalues: torch.Tensor | np.ndarray, k: int) -> np.ndarray:
    """``E[l, j]`` = ``e_l`` of the first ``j`` eigenvalues, ``l = 0..k``, ``j = 0..n`` (float64 ``(k+1, n+1)``).

    Each column is divided by its largest entry (k-DPP ratios only compare entries of one column,
    so the scale cancels); this keeps ``e_k`` of hundreds of eigenvalues from overflowing.
    """
    lam = np.asarray(eigenvalues, dtype=np.float64)
    n = lam.size
    table = np.zeros((k + 1, n + 1), dtype=np.float64)
    table[0, 0] = 1.0
    for j in range(1, n + 1):
        prev = table[:, j - 1]
        col = prev.copy()
        col[1:] += lam[j - 1] * prev[:-1]  # e_l^j = e_l^{j-1} + lambda_j e_{l-1}^{j-1}
        table[:, j] = col / col.max()
    return table


def kdpp_sample_kernel(L: torch.Tensor, k: int, generator: torch.Generator) -> torch.Tensor:
    """An exact sample of the k-DPP with kernel ``L (n, n)`` (symmetric PSD): sorted int64 indices ``(k,)``.

    The uniforms come from ``generator`` in one draw of ``n + k`` numbers (so a sample consumes a
    fixed amount of the generator); the small sequential loops run in numpy float64 (torch's
    per-op overhead dominates at this size), the linear algebra in torch.
    """
    n = L.shape[0]
    if tuple(L.shape) != (n, n):
        raise ValueError(f"the k-DPP kernel must be square, got {tuple(L.shape)}")
    if not 1 <= k <= n:
        raise ValueError(f"k-DPP: cannot pick {k} of {n} samples")
    uniforms = torch.rand(n + k, generator=generator, dtype=torch.float64).numpy()
    if k == n:
        return torch.arange(n, dtype=torch.int64)
    a = L.detach().to("cpu", torch.float64)
    lam_t, vecs_t = torch.linalg.eigh((a + a.T) / 2)  # ascending eigenvalues, orthonormal eigenvectors (columns)
    lam, vecs = lam_t.numpy(), vecs_t.numpy()
    # round-off leaves the zero eigenvalues of a rank-deficient PSD kernel at +-n*eps*max, with a sign that
    # depends on the LAPACK build: they are zeros (otherwise a rank test passes on one CPU and fails on another)
    lam = np.where(lam > n * np.finfo(np.float64).eps * max(lam.max(), 0.0), lam, 0.0)
    scale = lam.mean()
    if not scale > 0:
        raise ValueError("k-DPP: the kernel is zero")
    lam = lam / scale  # k-DPP probabilities do not change with the kernel's scale
    table = elementary_symmetric(lam, k)
    if not table[k, n] > 0:
        raise ValueError(f"k-DPP: the kernel has rank below k={k}; add jitter or pick fewer")

    # phase 1: which eigenvectors (Kulesza & Taskar Alg. 8, lines 2-9)
    keep: list[int] = []
    remaining = k
    for j in range(n, 0, -1):
        if remaining == 0:
            break
        if j == remaining:  # every eigenvector left must be kept (probability 1)
            keep.extend(range(j - 1, -1, -1))
            break
        take = lam[j - 1] * table[remaining - 1, j - 1]
        skip = table[remaining, j - 1]
        # e_l^j = e_l^{j-1} + lambda_j e_{l-1}^{j-1}: both terms are in column j-1's scale
        if uniforms[n - j] < take / (take + skip):
            keep.append(j - 1)
            remaining -= 1

    # phase 2: sample the elementary DPP spanned by the kept eigenvectors (lines 10-16)
    V = vecs[:, keep]  # (n, k)
    picks: list[int] = []
    for step in range(k):
        weights = (V * V).sum(1)
        weights[picks] = 0.0  # already zero in exact arithmetic
        cdf = np.cumsum(weights)
        i = min(int(np.searchsorted(cdf, uniforms[n + step] * cdf[-1], side="right")), n - 1)
        picks.append(i)
        if V.shape[1] == 1:
            break
        j = int(np.argmax(np.abs(V[i])))
        # eliminate e_i: subtract a multiple of column j from every column so row i becomes 0,
        # drop column j, and re-orthonormalize the remaining basis
        V = V - np.outer(V[:, j], V[i] / V[i, j])
        V = np.delete(V, j, axis=1)  # (n, |V| - 1)
        V = torch.linalg.qr(torch.from_numpy(V)).Q.numpy()
    return torch.tensor(sorted(picks), dtype=torch.int64)


def kdpp_sample(
    features: torch.Tensor,
    k: int,
    generator: torch.Generator,
    *,
    kernel: str = "rbf",
    bandwidth: float | None = None,
    jitter: float = DEFAULT_JITTER,
) -> torch.Tensor:
    """``k`` diverse rows of ``features (n, ...)`` by an exact k-DPP: sorted int64 indices ``(k,)``.

    The kernel is ``kernel_matrix(features, kernel, bandwidth=) + jitter * I`` (see the module doc).
    """
    L = kernel_matrix(features, kernel, bandwidth=bandwidth)
    if jitter:
        L = L + jitter * torch.eye(L.shape[0], dtype=L.dtype)
    return kdpp_sample_kernel(L, k, generator)


def kdpp_subset_probability(L: torch.Tensor, subset: list[int] | tuple[int, ...], k: int) -> float:
    """The exact probability ``det(L_S) / e_k`` of ``subset`` under the k-DPP of ``L`` (tests, small n)."""
    L = L.detach().to(torch.float64)
    lam = torch.linalg.eigvalsh(L).clamp_min(0.0)
    e_k = torch.zeros(k + 1, dtype=torch.float64)
    e_k[0] = 1.0
    for x in lam:  # unnormalized recursion, fine for the small n this is meant for
        e_k[1:] = e_k[1:] + x * e_k[:-1].clone()
    idx = torch.tensor(list(subset))
    return float(torch.linalg.det(L[idx][:, idx]) / e_k[k])


# -- the selector ------------------------------------------------------------------------------
@dataclass(frozen=True)
class DPPOptions:
    """Settings of the k-DPP selector (``--set selector.KEY=VALUE``).

    Attributes:
        kernel: ``rbf`` (median-heuristic bandwidth unless ``bandwidth`` is given) or ``cosine``.
        bandwidth: a fixed ``sigma^2`` of the RBF kernel instead of the median heuristic (mind the
            module docstring: a fixed value degenerates to uniform sampling in high dimension).
        jitter: ridge added to the kernel's diagonal so it has rank >= k.
    """

    kernel: Literal["rbf", "cosine"] = "rbf"
    bandwidth: float | None = None
    jitter: float = DEFAULT_JITTER

    def __post_init__(self) -> None:
        if self.bandwidth is not None and not self.bandwidth > 0:
            raise ValueError(f"bandwidth must be > 0, got {self.bandwidth}")
        if self.jitter < 0:
            raise ValueError(f"jitter must be >= 0, got {self.jitter}")


@register_selector("dpp")
class KDPP(PixelSelector):
    """``ipc`` clips per class by an exact k-DPP on flattened normalized pixels (grouped by class, sorted)."""

    Options = DPPOptions

    def choose(self, features: torch.Tensor, k: int, generator: torch.Generator) -> torch.Tensor:
        o = self.options
        return kdpp_sample(features, k, generator, kernel=o.kernel, bandwidth=o.bandwidth, jitter=o.jitter)


register_method(
    MethodSpec(
        "dpp",
        "k-DPP: diverse real clips per class, exact k-DPP on flattened pixels (RBF, median-heuristic bandwidth)",
        selector="dpp",
    )
)
