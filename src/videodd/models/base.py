"""The model registry. Every model takes ``(N, C, T, H, W)`` and offers ``forward -> (N, K)``
logits and ``embed -> (N, F)`` features; each declares the smallest input it is built for.

>>> model = create_model("convnet3d", num_classes=50, input_shape=(3, 16, 112, 112))
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from videodd.registry import Registry

MODELS: Registry[Callable[..., nn.Module]] = Registry("model")
_MIN_INPUT: dict[str, tuple[int, int, int, int]] = {}

CPU_INPUT = (3, 8, 32, 32)
"""The CPU-scale clip ``(C, T, H, W)``: 8 frames at 32x32."""


def register_model(name: str, *, min_input: tuple[int, int, int, int] = CPU_INPUT
                   ) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator: register a factory ``f(num_classes, input_shape, **kw) -> nn.Module``.

    ``min_input`` is the smallest ``(C, T, H, W)`` the model is built for (a model made for one
    frame declares ``T = 1``); tests run every model there.
    """

    def decorator(factory: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        MODELS.register(name)(factory)
        _MIN_INPUT[name] = min_input
        return factory

    return decorator


def create_model(name: str, num_classes: int, input_shape: tuple[int, int, int, int], **kwargs) -> nn.Module:
    """Build a registered model.

    Args:
        name: registry name (see ``list_models()``).
        num_classes: number of output logits K.
        input_shape: ``(C, T, H, W)`` of one input video.
    """
    return MODELS.get(name)(num_classes=num_classes, input_shape=tuple(input_shape), **kwargs)


def min_input(name: str) -> tuple[int, int, int, int]:
    """The smallest ``(C, T, H, W)`` model ``name`` is built for."""
    MODELS.get(name)
    return _MIN_INPUT[name]


def list_models() -> list[str]:
    return MODELS.names()


AUTO = "auto"


def auto_model(video_shape: tuple[int, ...]) -> str:
    """The evaluation network for videos ``(C, T, H, W)``: the published ``convnet3d`` for frames of
    64 px and more, ``convnet3d-s-bn`` below (the published layout shrinks 32x32 frames to nothing,
    and without normalization the small net trained on 10 clips at lr 0.01 diverges in about one
    run in six; benchmarks/RESULTS.md section 1)."""
    return "convnet3d" if min(video_shape[-2:]) >= 64 else "convnet3d-s-bn"


def resolve_model(name: str, video_shape: tuple[int, ...]) -> str:
    """``name``, or :func:`auto_model` of ``video_shape`` when ``name`` is ``"auto"``."""
    return auto_model(video_shape) if name == AUTO else name
