"""The layers of the package, bottom up. A module may import only from its own layer or a lower one,
lazy (function-level) imports included; ``tests/test_layers.py`` checks every import against this
table, and a module outside it fails that test until it is placed here. docs/ARCHITECTURE.md says
what each layer is for.
"""

from __future__ import annotations

LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("foundation", ("videodd._version", "videodd.errors", "videodd.registry", "videodd.config", "videodd.io",
                    "videodd.distributed", "videodd.seeding", "videodd.checkpoint", "videodd.plugins",
                    "videodd.methods", "videodd.layers")),
    ("data", ("videodd.data",)),
    ("format", ("videodd.distilled",)),
    ("models", ("videodd.models",)),
    ("training", ("videodd.augment", "videodd.train")),
    ("teachers", ("videodd.teachers",)),
    ("codecs", ("videodd.codecs",)),
    ("generate", ("videodd.generate",)),
    ("selection", ("videodd.selection",)),
    ("synthesis", ("videodd.synthesis",)),
    ("objectives", ("videodd.objectives",)),
    ("builders", ("videodd.builders",)),
    ("loop", ("videodd.guards", "videodd.distill", "videodd.protocol", "videodd.references", "videodd.evaluate")),
    ("workflows", ("videodd.report", "videodd.pipeline", "videodd.demo", "videodd.tune", "videodd.export",
                   "videodd.study")),
    ("cli", ("videodd.cli", "videodd.__main__")),
    ("api", ("videodd",)),
)
"""``(layer name, module prefixes)`` from the bottom layer to the top one."""


def layer_of(module: str) -> int:
    """The index in :data:`LAYERS` of ``module`` (its longest matching prefix; the package root
    ``videodd`` matches only itself); ValueError if none."""
    best, index = -1, -1
    for i, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            inside = module.startswith(prefix + ".") and "." in prefix
            if (module == prefix or inside) and len(prefix) > best:
                best, index = len(prefix), i
    if index < 0:
        raise ValueError(f"module {module} is in no layer of videodd.layers.LAYERS")
    return index
