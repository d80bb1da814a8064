"""Objectives score a parametrization: ``objective.loss(param, generator) -> ObjectiveOutput``.

Importing the package registers every objective and the recipes it is the new part of. The
contract is :class:`~videodd.objectives.base.Objective`; see docs/ARCHITECTURE.md.
"""

from videodd.objectives import dm, gradient, krr, mtt  # noqa: F401  (registers them)
from videodd.objectives.base import (
    OBJECTIVES,
    NetworkPool,
    Objective,
    ObjectiveExport,
    ObjectiveOutput,
    ObjectiveSetup,
    register_objective,
)

__all__ = ["OBJECTIVES", "NetworkPool", "Objective", "ObjectiveExport", "ObjectiveOutput", "ObjectiveSetup",
           "register_objective"]
