"""Selectors that order each class's clips in the feature space of a network trained on the real
data (a feature teacher, :mod:`videodd.teachers.features`): herding and k-center."""

from __future__ import annotations

import numpy as np
import torch

from videodd.data.clips import ClipSource
from videodd.selection.base import Selector, check_ipc, per_class
from videodd.teachers.features import FeatureOptions, store_features


class FeatureSelector(Selector):
    """Per class, ``order(class_features (n, F), ipc)`` gives the picks (positions in the class), in
    pick order. Subclasses implement :meth:`order`."""

    Options = FeatureOptions

    @staticmethod
    def order(features: torch.Tensor, k: int) -> torch.Tensor:  # pragma: no cover - interface
        """Indices (int64 ``(k,)``, in pick order) of ``k`` rows of ``features (n, F)``."""
        raise NotImplementedError

    def select(self, source: ClipSource, ipc: int, generator: torch.Generator, *,
               device: str | torch.device = "cpu") -> np.ndarray:
        """Store indices grouped by class, in pick order."""
        check_ipc(source, ipc)  # before the feature network is trained
        feats = store_features(source, self.options, generator, device=device)  # (N, F)
        return per_class(source, ipc, lambda members: members[self.order(feats[members], ipc).numpy()])
