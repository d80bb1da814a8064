"""Guards that name silent failures of a distillation run, so that a user does not have to find them
by evaluating a broken set.

:class:`DistillGuard` watches a run at its log points and raises each warning once, with the
iteration and a suggested action:

- ``pixel-range``: the synthetic pixels left the data range (the normalized image of [0, 1]) by more
  than ``DistillConfig.guard_range`` times its width;
- ``loss-flat``: the matching loss barely fell, or stopped falling, between the run's first and
  latest windows of iterations;
- objective-specific problems from :meth:`~videodd.objectives.base.Objective.health` (MTT: the
  learned student lr sits at its floor).

Each warning is issued as a :class:`VideoddWarning` (Python's ``warnings``: shown once on stderr,
filterable) and recorded in the DistilledSet's manifest (``warnings``), which reports show.
Evaluation adds its own: a model that predicts one class for every test clip has *collapsed*
(:func:`collapsed`).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any

import torch

from videodd.data.clips import ClipSource
from videodd.errors import VideoddWarning
from videodd.objectives import Objective
from videodd.synthesis import Parametrization

__all__ = ["DistillGuard", "RunWarning", "VideoddWarning", "collapsed", "data_range"]

FLAT_DROP = 0.10
"""The least relative fall of the loss, first window to latest, before ``loss-flat`` is raised."""


@dataclass(frozen=True)
class RunWarning:
    """One named problem of a run."""

    iteration: int
    code: str
    message: str

    def line(self) -> str:
        return f"iteration {self.iteration}: {self.code}: {self.message}"


def data_range(source: ClipSource | Any) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel ``(low, high)`` of real pixels in the normalized space: the image of [0, 1]."""
    mean = torch.tensor(source.meta.mean, dtype=torch.float32)
    std = torch.tensor(source.meta.std, dtype=torch.float32)
    return (0 - mean) / std, (1 - mean) / std


def collapsed(logits: torch.Tensor) -> bool:
    """A model whose predictions ``logits (N, K)`` are one class for every input has collapsed."""
    return len(logits) > 1 and int(logits.argmax(1).unique().numel()) == 1


class DistillGuard:
    """Watches one distillation run (see the module docstring).

    Args:
        store: the training clips (their normalization gives the data range).
        iterations: the run's iterations (the loss windows are a tenth of them, at least 10).
        range_factor: ``pixel-range`` is raised when a value lies farther outside the data range than
            this many times its width (0 turns the check off).
    """

    def __init__(self, store: ClipSource | Any, iterations: int, range_factor: float) -> None:
        self.low, self.high = data_range(store)
        self.window = max(10, iterations // 10)
        self.range_factor = range_factor
        self.losses: list[float] = []
        self.raised: dict[str, RunWarning] = {}

    # -- checks ------------------------------------------------------------------------------------
    def pixel_range(self, videos: torch.Tensor) -> str | None:
        """A message when ``videos (N, C, T, H, W)`` leave the data range by more than the factor."""
        if self.range_factor <= 0:
            return None
        low = self.low.to(videos.device).view(1, -1, 1, 1, 1)
        high = self.high.to(videos.device).view(1, -1, 1, 1, 1)
        width = high - low
        excess = torch.maximum(low - videos, videos - high).clamp_min(0) / width  # in data-range widths
        if not float(excess.max()) > self.range_factor:
            return None
        outside = float((excess > 0).float().mean())
        return (f"synthetic pixels left the data range: values span [{float(videos.min()):.3g}, "
                f"{float(videos.max()):.3g}] (std {float(videos.std()):.3g}) where real pixels lie in "
                f"[{float(self.low.min()):.3g}, {float(self.high.max()):.3g}]; {100 * outside:.1f}% are outside. "
                "Lower --lr, or keep them in range with --clamp-pixels")

    def loss_flat(self, done: int) -> str | None:
        """A message when the mean loss of the latest window is not ``FLAT_DROP`` below the first's."""
        w = self.window
        if len(self.losses) < 2 * w:
            return None
        first = sum(self.losses[:w]) / w
        last = sum(self.losses[-w:]) / w
        if not (math.isfinite(first) and first > 0) or last < (1 - FLAT_DROP) * first:
            return None
        what = "rose" if last > first else "barely fell"
        return (f"the matching loss {what}: mean {first:.4g} over iterations 1-{w}, {last:.4g} over "
                f"{done - w + 1}-{done} ({100 * (last / first - 1):+.1f}%); the optimisation is not improving the "
                "set's fit. Another --lr or more iterations may help (choose them with --tune lr=...)")

    # -- the run's hooks -----------------------------------------------------------------------------
    def step(self, loss: float) -> None:
        """Record one iteration's loss."""
        self.losses.append(loss)

    def check(self, done: int, param: Parametrization, objective: Objective, *, final: bool = False
              ) -> list[RunWarning]:
        """The new warnings at iteration ``done`` (each code once per run)."""
        found: list[tuple[str, str | None]] = []
        with torch.no_grad():
            found.append(("pixel-range", self.pixel_range(param().videos)))
        if final or len(self.losses) >= 4 * self.window:  # early in a long run, at the end of a short one
            found.append(("loss-flat", self.loss_flat(done)))
        found += list(objective.health())
        new = []
        for code, message in found:
            if message is not None and code not in self.raised:
                self.raised[code] = RunWarning(done, code, message)
                warnings.warn(self.raised[code].line(), VideoddWarning, stacklevel=3)
                new.append(self.raised[code])
        return new

    def lines(self) -> list[str]:
        """Every warning raised, as lines for the manifest."""
        return [w.line() for w in self.raised.values()]

    # -- checkpoints ---------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {"losses": list(self.losses), "raised": [[w.iteration, w.code, w.message] for w in self.raised.values()]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.losses = [float(x) for x in state.get("losses", [])]
        self.raised = {code: RunWarning(int(it), code, msg) for it, code, msg in state.get("raised", [])}
