"""Named recipes: a method is a parametrization x objective, or a selector (DESIGN section 1).

Recipes are data, not code: adding a method is registering a ``MethodSpec`` with the parts it
combines and the defaults it changes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from videodd.registry import Registry


@dataclass(frozen=True)
class MethodSpec:
    """A recipe: either ``selector`` or (``parametrization``, ``objective``), plus default config."""

    name: str
    description: str
    selector: str | None = None
    parametrization: str | None = None
    objective: str | None = None
    defaults: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        synth = self.parametrization is not None and self.objective is not None
        if synth == (self.selector is not None):
            raise ValueError(f"method {self.name!r} needs a selector or a parametrization and an objective")


METHODS: Registry[MethodSpec] = Registry("method")


def register_method(spec: MethodSpec) -> MethodSpec:
    METHODS.register(spec.name, spec.description)(spec)
    return spec


def get_method(name: str) -> MethodSpec:
    return METHODS.get(name)


register_method(MethodSpec("random", "random real clips per class (selection baseline)", selector="random"))
register_method(
    MethodSpec(
        "dm",
        "distribution matching: pixels pulled to the real class-mean embedding of fresh random networks",
        parametrization="pixels",
        objective="dm",
        defaults={"lr": 1.0, "momentum": 0.5},
    )
)
