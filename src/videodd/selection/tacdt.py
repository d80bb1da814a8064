"""TAC-DT: training-free temporal-aware clustering of videos (generate-then-select, 2025), as a selector.

Each clip's feature joins appearance and dynamics:

    f(x) = [ normalize(embed(x)) , w * normalize(embed(dx)) ]

``embed`` is a feature network's embedding (``feature: random``: a network drawn from the run's seed and
never trained, as DM uses; ``feature: teacher``: one trained on the real clips, or loaded from
``checkpoint``); ``dx`` is the clip's frame differences ``x_t - x_{t-1}`` (the first difference repeated
at ``t = 0``, so it keeps the clip's shape), and ``w`` is ``dynamics_weight``. Per class, k-means with
``k = ipc`` on these features; the member nearest each centre is kept (distinct members). It works on any
clip source: real training clips, or generated candidates.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from videodd.data.clips import ClipSource
from videodd.methods import MethodSpec, register_method
from videodd.models import create_model, resolve_model
from videodd.seeding import seeded
from videodd.selection.base import Selector, check_ipc, per_class, register_selector
from videodd.selection.kmeans import kmeans_select
from videodd.teachers.features import FeatureOptions, feature_network

FEATURES = ("random", "teacher")


@dataclass(frozen=True)
class TACDTOptions:
    """Settings of the ``tacdt`` selector (``--set selector.KEY=VALUE``).

    Attributes:
        feature: ``random`` (an untrained network from the run's seed) or ``teacher`` (trained on the source's
            clips with ``feature_epochs``, or loaded from ``checkpoint``).
        feature_model: the network (``auto``: the evaluation protocol's choice for the clip size).
        feature_epochs: training epochs of the ``teacher`` feature network.
        checkpoint: a teacher file for ``feature: teacher`` (refused if trained on another store).
        dynamics_weight: the weight ``w`` of the frame-difference embedding (0: appearance alone).
        batch: clips per forward pass.
        max_iter, n_init: k-means settings (Lloyd iterations, k-means++ restarts).
    """

    feature: str = "random"
    feature_model: str = "auto"
    feature_epochs: int = 10
    checkpoint: str | None = None
    dynamics_weight: float = 1.0
    batch: int = 64
    max_iter: int = 100
    n_init: int = 4

    def __post_init__(self) -> None:
        if self.feature not in FEATURES:
            raise ValueError(f"feature must be one of {list(FEATURES)}, got {self.feature!r}")
        if self.dynamics_weight < 0 or self.batch < 1 or self.max_iter < 1 or self.n_init < 1:
            raise ValueError("dynamics_weight >= 0, batch, max_iter and n_init >= 1 are required")


def frame_differences(x: torch.Tensor) -> torch.Tensor:
    """``(N, C, T, H, W)`` -> ``(N, C, T, H, W)``: ``x_t - x_{t-1}``, the first difference repeated at t = 0."""
    if x.shape[2] == 1:
        return torch.zeros_like(x)
    d = x[:, :, 1:] - x[:, :, :-1]  # (N, C, T-1, H, W)
    return torch.cat([d[:, :, :1], d], dim=2)


@torch.no_grad()
def temporal_features(net: torch.nn.Module, source: ClipSource, dynamics_weight: float, *, batch: int = 64,
                      device: str | torch.device = "cpu") -> torch.Tensor:
    """``[normalize(embed(x)), w * normalize(embed(dx))]`` of every clip of ``source``: float32 ``(N, 2F)``."""
    net.to(device).eval()
    out = []
    for s in range(0, len(source), batch):
        x = source.batch(np.arange(s, min(s + batch, len(source))), device)  # (n, C, T, H, W)
        appearance = F.normalize(net.embed(x).float(), dim=1)
        dynamics = F.normalize(net.embed(frame_differences(x)).float(), dim=1)
        out.append(torch.cat([appearance, dynamics_weight * dynamics], dim=1).cpu())
    return torch.cat(out)


@register_selector("tacdt")
class TACDT(Selector):
    """Per class, the clip nearest each k-means centre of appearance + dynamics features (by class, sorted)."""

    Options = TACDTOptions
    options: TACDTOptions

    def select(self, source: ClipSource, ipc: int, generator: torch.Generator, *,
               device: str | torch.device = "cpu") -> np.ndarray:
        check_ipc(source, ipc)
        o = self.options
        if o.feature == "random":
            with seeded(generator):  # the network's weights come from the run's seed
                net = create_model(resolve_model(o.feature_model, source.video_shape), source.num_classes,
                                   source.video_shape)
        else:
            net = feature_network(source, FeatureOptions(feature_model=o.feature_model, feature_epochs=o.feature_epochs,
                                                         checkpoint=o.checkpoint), generator, device=device)
        feats = temporal_features(net, source, o.dynamics_weight, batch=o.batch, device=device)  # (N, 2F)
        return per_class(source, ipc, lambda members: members[
            kmeans_select(feats[members], ipc, generator, max_iter=o.max_iter, n_init=o.n_init).numpy()])


register_method(
    MethodSpec(
        "tacdt",
        "TAC-DT: real clips nearest the k-means centres of appearance + frame-difference features (untrained net)",
        selector="tacdt",
        smoke={"selector": {"n_init": 1}},
    )
)
