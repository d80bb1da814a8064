"""Models: a registry of video classifiers (``create_model``), all ``(N, C, T, H, W) -> (N, K)`` with
an ``embed`` to ``(N, F)`` features. Importing the package registers every model."""

from videodd.models.base import (
    AUTO,
    CPU_INPUT,
    MODELS,
    auto_model,
    create_model,
    list_models,
    min_input,
    register_model,
    resolve_model,
)
from videodd.registry import import_submodules

__all__ = ["AUTO", "CPU_INPUT", "MODELS", "auto_model", "create_model", "list_models", "min_input", "register_model",
           "resolve_model"]

import_submodules(__name__)  # every module registers its models: a new file needs no edit here
