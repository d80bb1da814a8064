"""Selectors: pick ``ipc`` real (or generated) clips per class; the picks are stored as a
``real-clips`` DistilledSet. Importing the package registers every selector and its recipe.

The contract is :class:`~videodd.selection.base.Selector`; see docs/ARCHITECTURE.md.
"""

from videodd.registry import import_submodules
from videodd.selection.base import REAL_CLIPS, SELECTORS, Selector, check_ipc, per_class, register_selector
from videodd.selection.random import select_random

__all__ = ["REAL_CLIPS", "SELECTORS", "Selector", "check_ipc", "per_class", "register_selector", "select_random"]

import_submodules(__name__)  # every module registers its components: a new file needs no edit here
