"""Name registries: a decorator to register, a lookup that lists the valid names on error."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from videodd.errors import UnknownNameError

__all__ = ["Registry", "UnknownNameError", "import_submodules"]

T = TypeVar("T")


class Registry(Generic[T]):
    """A named collection of factories (classes or functions).

    >>> MODELS = Registry("model")
    >>> @MODELS.register("tiny")
    ... def tiny(num_classes): ...
    >>> MODELS.get("tiny") is tiny
    True
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}
        self._docs: dict[str, str] = {}
        self._aliases: dict[str, str] = {}

    def register(self, name: str, doc: str | None = None) -> Callable[[T], T]:
        def decorator(obj: T) -> T:
            if name in self._items or name in self._aliases:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._items[name] = obj
            text = doc if doc is not None else (getattr(obj, "__doc__", None) or "")
            self._docs[name] = text.strip().splitlines()[0] if text.strip() else ""
            return obj

        return decorator

    def alias(self, name: str, target: str) -> None:
        """Make ``name`` another name of the registered ``target``: ``get(name)`` returns ``target``'s object
        (which keeps its own name); ``names()`` lists only ``target``."""
        self.get(target)
        if name in self._items or name in self._aliases:
            raise ValueError(f"{self.kind} {name!r} is registered twice")
        self._aliases[name] = target

    def aliases(self) -> dict[str, str]:
        """alias -> registered name."""
        return dict(self._aliases)

    def get(self, name: str) -> T:
        try:
            return self._items[self._aliases.get(name, name)]
        except KeyError:
            valid = ", ".join(sorted(self._items)) or "(none registered)"
            raise UnknownNameError(f"unknown {self.kind} {name!r}; valid {self.kind}s: {valid}") from None

    def doc(self, name: str) -> str:
        """First line of the registered object's docstring."""
        self.get(name)
        return self._docs[self._aliases.get(name, name)]

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items or name in self._aliases

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._items)


def import_submodules(package: str) -> list[str]:
    """Import every module of ``package`` (sorted by name), so that their registration decorators run.

    A package's ``__init__`` calls it on itself: a new component is found by adding its file, with
    no list of modules to edit. Returns the names imported.
    """
    pkg = importlib.import_module(package)
    names = sorted(info.name for info in pkgutil.iter_modules(pkg.__path__) if not info.name.startswith("_"))
    for name in names:
        importlib.import_module(f"{package}.{name}")
    return names
