"""Parametrizations of a synthetic set: learnable tensors -> videos ``(N, C, T, H, W)``.

Importing the package registers every parametrization with its DistilledSet kind and its recipes.
The contract is :class:`~videodd.synthesis.base.Parametrization`; see docs/ARCHITECTURE.md.
"""

from videodd.synthesis import pixels, static_dynamic  # noqa: F401  (registers them)
from videodd.synthesis.base import PARAMETRIZATIONS, Parametrization, Synthetic, register_parametrization

__all__ = ["PARAMETRIZATIONS", "Parametrization", "Synthetic", "register_parametrization"]
