"""Named recipes: a method is a parametrization x objective, a selector, or a set builder.

Recipes are data, not code: a method is a ``MethodSpec`` naming the components it combines and
the defaults it changes. Each component file registers the recipes it is the new part of, next to
the component (``objectives/dm.py`` registers ``dm``, ``selection/herding.py`` registers
``herding``, ...), so adding a method is one file; see docs/ARCHITECTURE.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from videodd.registry import Registry


@dataclass(frozen=True)
class MethodSpec:
    """A recipe: exactly one of ``selector``, (``parametrization``, ``objective``) or ``builder``, plus defaults.

    A ``builder`` (``videodd.builders``) is a training-free method that writes its own kind of
    DistilledSet (e.g. ``latent``); it takes its options from ``DistillConfig.builder``.
    ``frames=True`` distils still images: the objective and parametrization see a single-frame view
    of the store (:class:`videodd.data.frames.FrameStore`, clips ``(C, 1, H, W)``).

    ``smoke`` holds the overrides that make the recipe run in seconds on a tiny store (a few
    iterations, small networks); ``tests/test_methods.py`` runs every recipe with them. A value
    ``"${experts}"`` or ``"${codec}"`` stands for a tiny expert folder or built-in codec that the test
    provides (the way a model declares its smallest input).
    """

    name: str
    description: str
    selector: str | None = None
    parametrization: str | None = None
    objective: str | None = None
    defaults: dict[str, Any] = field(default_factory=dict)
    builder: str | None = None
    frames: bool = False
    smoke: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        synth = self.parametrization is not None and self.objective is not None
        if synth + (self.selector is not None) + (self.builder is not None) != 1:
            raise ValueError(f"method {self.name!r} needs a selector, a builder, or a parametrization and an objective")

    @property
    def kind(self) -> str:
        """``selector``, ``builder`` or ``synthesis`` (a parametrization optimised under an objective)."""
        return "selector" if self.selector else "builder" if self.builder else "synthesis"

    @property
    def parts(self) -> str:
        """What the recipe combines, for listings: ``selector=NAME``, ``builder=NAME`` or ``P x O``."""
        if self.selector:
            return f"selector={self.selector}"
        if self.builder:
            return f"builder={self.builder}"
        return f"{self.parametrization} x {self.objective}"


METHODS: Registry[MethodSpec] = Registry("method")


def register_method(spec: MethodSpec) -> MethodSpec:
    """Add a recipe to :data:`METHODS` (a name registered twice is an error)."""
    METHODS.register(spec.name, spec.description)(spec)
    return spec


def get_method(name: str) -> MethodSpec:
    """The recipe ``name`` (an error lists the registered ones)."""
    return METHODS.get(name)


