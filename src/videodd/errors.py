"""Errors a user can act on. Every one derives from :class:`VideoddError`, which the CLI turns into
one line (``videodd COMMAND: error: ...``, exit code 2) instead of a traceback.

Errors of one layer live next to the code that raises them (``StoreError`` in ``data.store``,
``DistilledSetError`` in ``distilled``, ...) and subclass :class:`VideoddError` together with the
built-in exception they refine (``ValueError``, ``KeyError``, ``RuntimeError``), so that code
catching the built-in keeps working. The few that every layer raises are defined here.
"""

from __future__ import annotations


class VideoddError(Exception):
    """Base of every error caused by the user's input, data or settings (not by a bug in videodd)."""


class ConfigError(VideoddError, ValueError):
    """A config has an unknown field, a value of the wrong type, or an invalid combination."""


class UnknownNameError(VideoddError, KeyError):
    """A name is not in a registry; the message lists the valid names."""

    def __str__(self) -> str:  # KeyError quotes its message; we want it readable.
        return str(self.args[0])


class NonFiniteError(VideoddError, RuntimeError):
    """A tensor being optimised or trained became NaN/Inf (a synthetic set, a loss, a network)."""


class VideoddWarning(UserWarning):
    """A problem videodd detected that did not stop it (a guard of a run, a file skipped while indexing).
    The CLI prints each as one line, ``videodd COMMAND: warning: ...``."""
