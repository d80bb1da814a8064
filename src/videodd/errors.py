"""Errors caused by the user's input: the CLI prints their message instead of a traceback."""

from __future__ import annotations

from videodd.checkpoint import CheckpointError
from videodd.codecs import CodecError
from videodd.config import ConfigError
from videodd.data.layouts import LayoutError
from videodd.data.prepare import PrepareError
from videodd.data.store import StoreError
from videodd.distill import NonFiniteError
from videodd.distilled import DistilledSetError
from videodd.objectives.experts import ExpertError
from videodd.registry import UnknownNameError

USER_ERRORS: tuple[type[BaseException], ...] = (
    UnknownNameError,
    StoreError,
    LayoutError,
    PrepareError,
    DistilledSetError,
    ExpertError,
    CodecError,
    ConfigError,
    CheckpointError,
    NonFiniteError,
    FileNotFoundError,
)
