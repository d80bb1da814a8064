"""Objectives score a parametrization: ``objective.loss(param, generator) -> ObjectiveOutput``.

Importing the package registers every objective and the recipes it is the new part of. The
contract is :class:`~videodd.objectives.base.Objective`; see docs/ARCHITECTURE.md.
"""

from videodd.objectives.base import (
    OBJECTIVES,
    NetworkPool,
    Objective,
    ObjectiveExport,
    ObjectiveOutput,
    ObjectiveSetup,
    register_objective,
)
from videodd.registry import import_submodules

__all__ = ["OBJECTIVES", "NetworkPool", "Objective", "ObjectiveExport", "ObjectiveOutput", "ObjectiveSetup",
           "register_objective"]

import_submodules(__name__)  # every module registers its components: a new file needs no edit here
