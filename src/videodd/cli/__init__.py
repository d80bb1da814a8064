"""The ``videodd`` command: one module per command (or group), each with ``register(subparsers)``
and ``run(args) -> int``; this module only composes them and turns user errors into one line.

The top layer: it may import anything in videodd, and nothing in videodd imports it. Command
modules import :mod:`videodd.cli.common`, never this package.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from collections.abc import Callable, Sequence

import videodd.distributed as distributed
from videodd._version import __version__
from videodd.cli import (
    codec,
    demo,
    distill,
    evaluate,
    experts,
    export,
    generate,
    info,
    listing,
    prepare,
    report,
    teacher,
)
from videodd.errors import VideoddError
from videodd.guards import VideoddWarning
from videodd.plugins import load_plugins

__all__ = ["build_parser", "main"]

EPILOG = """examples:
  videodd prepare synth-actions --out data/synth
  videodd prepare ucf101 --root ~/data/UCF-101 --out data/ucf101     # see `videodd datasets`
  videodd distill --method dm --ipc 1 --data data/synth --out runs/dm-ipc1
  videodd teacher --data data/synth --out teachers/synth.safetensors --epochs 10
  videodd distill --method herding --data data/synth --set selector.checkpoint=teachers/synth.safetensors
  videodd experts --data data/synth --out experts/synth --num-experts 5 --epochs 6 --keep-epochs 5
  videodd distill --method mtt --data data/synth --set objective.experts=experts/synth --out runs/mtt-ipc1
  videodd train-codec --data data/synth --out codecs/synth
  videodd distill --method latent --data data/synth --set builder.codec=builtin:codecs/synth --match-ipc 1
  videodd train-generator --data data/synth --out generators/synth          # pip install 'videodd[diffusion]'
  videodd distill --method diffusion-tacdt --data data/synth --set builder.generator=generators/synth
  videodd evaluate runs/dm-ipc1/distilled.safetensors --data data/synth --protocol cpu
  videodd info runs/dm-ipc1/distilled.safetensors
  videodd export runs/dm-ipc1/distilled.safetensors --format gif --out previews/dm-ipc1
  videodd report runs/dm-ipc1 runs/herding-ipc1 --out study --html
"""

# the commands that run under ``torchrun --nproc_per_node=N -m videodd`` (docs/ARCHITECTURE.md)
DISTRIBUTED = ("distill", "evaluate", "experts")

# in the order of `videodd --help`
COMMANDS = (prepare.register, distill.register, experts.register, teacher.register, evaluate.register,
            export.register, report.register, codec.register, generate.register, info.register,
            prepare.register_datasets, listing.register, demo.register)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="videodd", description="Distil labelled video datasets into a few videos per class, and evaluate them.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"videodd {__version__}")
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error (for bug reports)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for register in COMMANDS:
        register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    try:
        load_plugins()  # VIDEODD_PLUGINS: their methods and components appear in --help and are usable
    except VideoddError as err:
        print(f"videodd: error: {err}", file=sys.stderr)
        return 2
    args = build_parser().parse_args(argv)
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        if args.command not in DISTRIBUTED:
            print(f"videodd {args.command}: error: runs in one process; torchrun is for "
                  f"{', '.join(DISTRIBUTED)}", file=sys.stderr)
            return 2
        if int(os.environ.get("RANK", "0")) > 0:  # rank 0 prints and warns for the job
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - for the life of the process
            args.quiet = True
            warnings.simplefilter("ignore", VideoddWarning)
    code = 1  # an exception escaping _run (a bug) leaves the group without the closing barrier
    try:
        code = _run(args)
        return code
    finally:
        distributed.shutdown(finished=code == 0)


def _run(args: argparse.Namespace) -> int:
    with warnings.catch_warnings():  # a run's warnings as one line each, like its errors
        warnings.showwarning = _one_line(args.command, warnings.showwarning)
        try:
            code = int(args.func(args) or 0)
            sys.stdout.flush()  # a closed pipe fails here, inside the handler, not at interpreter exit
            return code
        except (VideoddError, OSError) as err:
            if isinstance(err, BrokenPipeError):  # `videodd info X | head`: the reader has gone; so do we
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
                return 141
            if args.debug:
                raise
            print(f"videodd {args.command}: error: {_message(err)}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            return 130


def _message(err: BaseException) -> str:
    """One line: a VideoddError's message, or ``PATH: reason`` for an operating-system error."""
    if isinstance(err, OSError) and not isinstance(err, VideoddError) and err.strerror:
        where = f"{err.filename}: " if err.filename else ""
        return f"{where}{err.strerror.lower()}"
    return str(err).splitlines()[0] if str(err) else type(err).__name__


def _one_line(command: str, default: Callable[..., None]) -> Callable[..., None]:
    """``showwarning`` that prints a VideoddWarning as ``videodd COMMAND: warning: MESSAGE``."""

    def show(message, category, filename, lineno, file=None, line=None) -> None:
        if issubclass(category, VideoddWarning):
            print(f"videodd {command}: warning: {message}", file=sys.stderr)
        else:
            default(message, category, filename, lineno, file, line)

    return show
