"""Model registry. Every model takes ``(N, C, T, H, W)`` and offers ``forward -> (N, K)``
logits and ``embed -> (N, F)`` features.

>>> model = create_model("convnet3d", num_classes=50, input_shape=(3, 16, 112, 112))
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from videodd.registry import Registry

MODELS: Registry[Callable[..., nn.Module]] = Registry("model")


def register_model(name: str) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator: register a factory ``f(num_classes, input_shape, **kw) -> nn.Module``."""
    return MODELS.register(name)


def create_model(name: str, num_classes: int, input_shape: tuple[int, int, int, int], **kwargs) -> nn.Module:
    """Build a registered model.

    Args:
        name: registry name (see ``list_models()``).
        num_classes: number of output logits K.
        input_shape: ``(C, T, H, W)`` of one input video.
    """
    return MODELS.get(name)(num_classes=num_classes, input_shape=tuple(input_shape), **kwargs)


def list_models() -> list[str]:
    return MODELS.names()


# Importing the modules registers their models.
from videodd.models import convnet3d, framewise, resnet3d  # noqa: E402,F401
