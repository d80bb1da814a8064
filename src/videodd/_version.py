"""The library version, importable from every layer (the package root imports the whole API)."""

__version__ = "0.1.0"
