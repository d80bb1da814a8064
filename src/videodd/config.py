"""Typed dataclass configs: build from dicts/YAML with validation, dump to JSON-able dicts.

YAML recipes may start from other files: ``base: FILE`` (or a list of files), relative to the
recipe, is read first and the recipe's own keys go on top (:func:`load_yaml`). Components
(parametrizations, objectives, selectors, builders) declare their settings as an ``Options``
dataclass, validated by :func:`component_options`.
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

from videodd.errors import ConfigError

__all__ = ["ConfigError", "component_options", "from_dict", "load_yaml", "merge", "to_dict"]

C = TypeVar("C")
_SCIENTIFIC = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")


def _coerce(value: Any, annotation: Any, where: str) -> Any:
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if annotation is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, where)
            except ConfigError as err:
                errors.append(str(err))
        raise ConfigError("; ".join(errors))
    if origin is typing.Literal:
        if value not in args:
            raise ConfigError(f"{where}: {value!r} is not one of {list(args)}")
        return value
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(value) != len(args):
                raise ConfigError(f"{where}: expected {len(args)} values, got {value!r}")
            return tuple(_coerce(v, a, where) for v, a in zip(value, args, strict=True))
        inner = args[0] if args else Any
        return origin(_coerce(v, inner, where) for v in value)
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return dict(value)
    if dataclasses.is_dataclass(annotation):
        if isinstance(value, annotation):
            return value
        return from_dict(annotation, value, where)
    if annotation is float:
        if isinstance(value, str) and _SCIENTIFIC.fullmatch(value.strip()):
            value = float(value)  # PyYAML (YAML 1.1) reads 1e-5, without a dot, as a string
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if annotation is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return value
    if annotation is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true/false, got {value!r}")
        return value
    if annotation is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return value
    return value


def from_dict(cls: type[C], data: dict[str, Any] | None, where: str | None = None) -> C:
    """Build dataclass ``cls`` from ``data``; unknown keys and wrong types raise ConfigError."""
    where = where or cls.__name__
    data = dict(data or {})
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(f"{where}: unknown field(s) {unknown}; valid fields: {sorted(fields)}")
    kwargs = {k: _coerce(v, hints[k], f"{where}.{k}") for k, v in data.items()}
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"{where}: {err}") from None


def to_dict(obj: Any) -> dict[str, Any]:
    """A dataclass as plain JSON-able dict (tuples become lists)."""

    def clean(v: Any) -> Any:
        if isinstance(v, (list, tuple)):
            return [clean(x) for x in v]
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items()}
        return v

    return clean(dataclasses.asdict(obj))


BASE_KEY = "base"


def merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """``over`` on top of ``base``: mappings merge key by key (recursively), anything else is replaced."""
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def load_yaml(path: str | Path, *, _seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """Read a YAML mapping (safe loader: never constructs Python objects).

    A ``base:`` key (a path or a list of paths, relative to this file) names files that are read
    first, in order, each merged onto the previous ones; this file's own keys go on top
    (:func:`merge`). The ``base`` key itself is not returned. Bases may have bases of their own.
    """
    path = Path(path)
    try:
        with open(path, encoding="utf-8") as fh:
            data = yaml.safe_load(fh) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML ({err})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    bases = data.pop(BASE_KEY, None)
    if bases is None:
        return data
    if isinstance(bases, str):
        bases = [bases]
    if not isinstance(bases, list) or not all(isinstance(b, str) for b in bases):
        raise ConfigError(f"{path}: '{BASE_KEY}' must be a file or a list of files, got {bases!r}")
    here = path.resolve()
    merged: dict[str, Any] = {}
    for name in bases:
        base = (here.parent / name).resolve()
        if base in (*_seen, here):
            raise ConfigError(f"{path}: '{BASE_KEY}' {name} leads back to itself")
        if not base.is_file():
            raise ConfigError(f"{path}: '{BASE_KEY}' {name} does not exist ({base})")
        merged = merge(merged, load_yaml(base, _seen=(*_seen, here)))
    return merge(merged, data)


def component_options(component: Any, options: dict[str, Any] | None, where: str) -> Any:
    """``options`` validated into ``component.Options`` (a dataclass); ``None`` when it has none.

    A component without an ``Options`` class takes no options: any given is a ConfigError.
    """
    cls = getattr(component, "Options", None)
    if cls is None:
        if options:
            raise ConfigError(f"{where}: this component takes no options, got {sorted(options)}")
        return None
    return from_dict(cls, dict(options or {}), where)
