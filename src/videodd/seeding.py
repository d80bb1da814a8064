"""Explicit randomness: every random draw in videodd comes from a ``torch.Generator``.

Module initialisation in ``torch.nn`` uses the global RNG; ``seeded`` runs it from a seed drawn
from our generator inside ``torch.random.fork_rng`` so the global state is left untouched and a
run is reproducible from its seed alone.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import numpy as np
import torch


def make_generator(seed: int) -> torch.Generator:
    """A CPU generator seeded with ``seed``."""
    gen = torch.Generator()
    gen.manual_seed(int(seed))
    return gen


def draw_seed(generator: torch.Generator) -> int:
    """A 63-bit seed drawn from ``generator``."""
    return int(torch.randint(0, 2**62, (1,), generator=generator).item())


@contextlib.contextmanager
def seeded(generator: torch.Generator) -> Iterator[None]:
    """Run a block (typically module construction) with the global RNG seeded from ``generator``."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(draw_seed(generator))
        yield


def numpy_rng(generator: torch.Generator) -> np.random.Generator:
    """A numpy Generator seeded from ``generator`` (for index sampling on memmaps)."""
    return np.random.default_rng(draw_seed(generator))
