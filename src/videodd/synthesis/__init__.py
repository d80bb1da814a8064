"""Parametrizations of a synthetic set: learnable tensors -> videos ``(N, C, T, H, W)``.

Importing the package registers every parametrization with its DistilledSet kind and its recipes.
The contract is :class:`~videodd.synthesis.base.Parametrization`; see docs/ARCHITECTURE.md.
"""

from videodd.registry import import_submodules
from videodd.synthesis.base import PARAMETRIZATIONS, Parametrization, Synthetic, register_parametrization

__all__ = ["PARAMETRIZATIONS", "Parametrization", "Synthetic", "register_parametrization"]

import_submodules(__name__)  # every module registers its components: a new file needs no edit here
