"""Herding selection (Welling 2009; as used by iCaRL and the DC benchmark).

Per class, greedily add the clip that keeps the mean of the selected features closest to the
class-mean feature. Features come from a network trained on the real data (:mod:`videodd.teachers.features`).
"""

from __future__ import annotations

import torch

from videodd.methods import MethodSpec, register_method
from videodd.selection.base import register_selector
from videodd.selection.feature_space import FeatureSelector


def herding_order(features: torch.Tensor, k: int) -> torch.Tensor:
    """Indices (int64 ``(k,)``, in pick order) of ``k`` rows of ``features (n, F)`` chosen by herding.

    Step ``j`` (1-based) picks the unselected row ``x`` minimising ``||j * mu - s - x||``, where
    ``mu`` is the mean of all rows and ``s`` the sum of the rows already picked, i.e. the row that
    brings the mean of the picks closest to ``mu`` (the DC-benchmark form). Ties go to the lowest
    index. Distances are computed in float64 so the picks do not depend on summation order.
    """
    n = features.shape[0]
    if not 1 <= k <= n:
        raise ValueError(f"herding: cannot pick {k} of {n} samples")
    x = features.detach().to(torch.float64).reshape(n, -1)  # (n, F)
    mu = x.mean(0)
    picked = torch.zeros(n, dtype=torch.bool, device=x.device)
    total = torch.zeros_like(mu)
    order = []
    for j in range(1, k + 1):
        target = (j * mu - total)[None]  # (1, F): what the next pick should be
        dist = torch.cdist(target, x, compute_mode="donot_use_mm_for_euclid_dist")[0]  # (n,)
        dist = dist.masked_fill(picked, float("inf"))
        i = int(torch.argmin(dist))  # the first minimum: ties go to the lowest index
        picked[i] = True
        total = total + x[i]
        order.append(i)
    return torch.tensor(order, dtype=torch.int64)


@register_selector("herding")
class Herding(FeatureSelector):
    """``ipc`` clips per class whose mean feature herds towards the class mean (grouped by class, pick order)."""

    order = staticmethod(herding_order)


register_method(
    MethodSpec(
        "herding",
        "herding: real clips whose running mean feature (net trained on the real data) tracks the class mean",
        selector="herding",
        smoke={"selector": {"feature_epochs": 1}},
    )
)
