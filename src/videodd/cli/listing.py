"""``videodd methods`` and ``videodd models``: what the registries hold, one line each."""

from __future__ import annotations

import argparse

from videodd.methods import METHODS
from videodd.models import MODELS


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("methods", help="list the distillation methods",
                       description="Every registered method (recipe): its name, what it combines (a selector, a "
                                   "builder, or a parametrization x an objective) and what it does.")
    p.set_defaults(func=run_methods)
    p = sub.add_parser("models", help="list the registered models",
                       description="Every registered network, for --model and evaluate --models.")
    p.set_defaults(func=run_models)


def run_methods(args: argparse.Namespace) -> int:
    for name in METHODS:
        spec = METHODS.get(name)
        print(f"{name:12s} {spec.parts:22s} {spec.description}")
    return 0


def run_models(args: argparse.Namespace) -> int:
    width = max(len(n) for n in MODELS)  # the *-published names are the longest
    for name in MODELS:
        print(f"{name:{width}s} {MODELS.doc(name)}")
    return 0
