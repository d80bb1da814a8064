"""Greedy k-center selection (Sener & Savarese 2018, "core-set"), per class.

The first center is the clip nearest the class-mean feature (deterministic, unlike the random
first center of the paper, so a selection depends only on the features); then, repeatedly, the
clip farthest (Euclidean, in feature space) from its nearest chosen center. Features come from a
network trained on the real data (:mod:`videodd.teachers.features`).
"""

from __future__ import annotations

import torch

from videodd.methods import MethodSpec, register_method
from videodd.selection.base import register_selector
from videodd.selection.feature_space import FeatureSelector


def kcenter_order(features: torch.Tensor, k: int) -> torch.Tensor:
    """Indices (int64 ``(k,)``, in pick order) of ``k`` rows of ``features (n, F)`` by greedy k-center.

    Ties go to the lowest index; a row identical to a chosen center is never picked while another
    unpicked row remains (duplicates are all at distance 0, the selected ones are masked out).
    """
    n = features.shape[0]
    if not 1 <= k <= n:
        raise ValueError(f"k-center: cannot pick {k} of {n} samples")
    x = features.detach().to(torch.float64).reshape(n, -1)  # (n, F)
    exact = "donot_use_mm_for_euclid_dist"  # the matmul form loses precision near 0 and flips ties
    first = int(torch.argmin(torch.cdist(x.mean(0, keepdim=True), x, compute_mode=exact)[0]))
    order = [first]
    picked = torch.zeros(n, dtype=torch.bool, device=x.device)
    picked[first] = True
    nearest = torch.cdist(x, x[first : first + 1], compute_mode=exact)[:, 0]  # (n,): distance to nearest center
    for _ in range(k - 1):
        i = int(torch.argmax(nearest.masked_fill(picked, -1.0)))  # distances are >= 0: -1 never wins
        picked[i] = True
        order.append(i)
        nearest = torch.minimum(nearest, torch.cdist(x, x[i : i + 1], compute_mode=exact)[:, 0])
    return torch.tensor(order, dtype=torch.int64)


@register_selector("kcenter")
class KCenter(FeatureSelector):
    """``ipc`` clips per class by greedy k-center from the class mean (grouped by class, pick order)."""

    order = staticmethod(kcenter_order)


register_method(
    MethodSpec(
        "kcenter",
        "k-center: greedy farthest real clips in feature space (net trained on the real data), from the class mean",
        selector="kcenter",
        smoke={"selector": {"feature_epochs": 1}},
    )
)
