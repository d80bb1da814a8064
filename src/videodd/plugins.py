"""Plugins: components and recipes outside the package, loaded before the CLI parses its arguments.

``VIDEODD_PLUGINS`` lists Python modules (``mypkg.my_method``) or files (``path/to/my_method.py``),
separated by commas; each is imported once, so that its ``@register_*`` decorators and
``register_method`` calls add its components and recipes (docs/ARCHITECTURE.md, "Adding a method")::

    VIDEODD_PLUGINS=my_method.py videodd distill --config my-method.yaml --data data/synth
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType

from videodd.errors import ConfigError

ENV = "VIDEODD_PLUGINS"


def load_plugin(name: str) -> ModuleType:
    """Import a module by dotted name, or a ``.py`` file by path (ConfigError when it cannot be found)."""
    if name.endswith(".py"):
        path = Path(name).expanduser().resolve()
        if not path.is_file():
            raise ConfigError(f"{ENV}: {name}: no such file")
        module_name = f"videodd_plugin_{path.stem}"
        if module_name in sys.modules:
            return sys.modules[module_name]
        spec = importlib.util.spec_from_file_location(module_name, path)
        if spec is None or spec.loader is None:
            raise ConfigError(f"{ENV}: {name}: not a Python module")
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        spec.loader.exec_module(module)
        return module
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as err:
        raise ConfigError(f"{ENV}: cannot import {name!r} ({err})") from None


def load_plugins(spec: str | None = None) -> list[ModuleType]:
    """Load every plugin named in ``spec`` (default: the ``VIDEODD_PLUGINS`` environment variable)."""
    text = os.environ.get(ENV, "") if spec is None else spec
    return [load_plugin(item.strip()) for item in text.split(",") if item.strip()]
