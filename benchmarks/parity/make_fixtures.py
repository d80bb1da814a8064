"""Make the parity fixtures from a checkout of the official code.

    git clone https://github.com/yuz1wan/video_distillation OFFICIAL && git -C OFFICIAL checkout 5871dc5
    python -m benchmarks.parity.make_fixtures --official OFFICIAL [--only convnet3d,dm]

Each component module in ``benchmarks/parity/components/`` builds both sides with the same weights and
tensors and writes ``tests/fixtures/parity/NAME.safetensors`` (the official outputs and the commit);
``tests/test_parity.py`` then checks videodd against them without the official code.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
from pathlib import Path

import benchmarks.parity.components as components
from benchmarks.parity.common import FIXTURES, OfficialCode


def component_modules() -> dict[str, object]:
    mods = {}
    for info in sorted(pkgutil.iter_modules(components.__path__), key=lambda i: i.name):
        mod = importlib.import_module(f"{components.__name__}.{info.name}")
        mods[mod.NAME] = mod
    return mods


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--official", required=True, help="checkout of yuz1wan/video_distillation")
    parser.add_argument("--only", default="", help="comma-separated components (default: all)")
    parser.add_argument("--out", default=str(FIXTURES), help="fixture folder")
    parser.add_argument("--allow-other-commit", action="store_true")
    args = parser.parse_args(argv)
    official = OfficialCode.open(args.official, allow_other_commit=args.allow_other_commit)
    mods = component_modules()
    only = [n for n in args.only.split(",") if n]
    unknown = sorted(set(only) - set(mods))
    if unknown:
        parser.error(f"unknown components {unknown}; valid: {sorted(mods)}")
    for name in only or sorted(mods):
        path = mods[name].make(official, Path(args.out))
        print(f"{name}: {path}")


if __name__ == "__main__":
    main()
