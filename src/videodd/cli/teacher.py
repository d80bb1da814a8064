"""``videodd teacher``: train a classifier teacher on DATA/train and write it as one safetensors
file with a manifest (model, store fingerprint, classes, clip spec, config, seed).

Feature-based selectors load it instead of training their own network:
``videodd distill --method herding --set selector.checkpoint=FILE`` (refused on another store).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from videodd.cli.common import (
    add_common_flags,
    add_dataclass_flags,
    count_parameters,
    dataclass_values,
    field_docs,
    resolve_device,
    train_store,
)
from videodd.config import ConfigError
from videodd.models import resolve_model
from videodd.teachers.classifier import ClassifierConfig, train_and_save


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("teacher", help="train a classifier teacher (the feature network of herding and kcenter)",
                       description="Train a classifier on DATA/train with the one training loop (SGD, lr x0.1 at "
                                   "half the epochs) and write OUT: safetensors weights with a manifest (model, store "
                                   "fingerprint, classes, clip spec, config, seed). Use it with --method herding or "
                                   "kcenter as --set selector.checkpoint=OUT; a run on another store refuses it.")
    p.add_argument("--data", required=True, help="folder written by `videodd prepare` (uses DATA/train)")
    p.add_argument("--out", required=True, help="teacher file to write, e.g. teachers/synth.safetensors")
    add_dataclass_flags(p, ClassifierConfig, field_docs(ClassifierConfig))
    p.add_argument("--seed", type=int, default=0, help="initialisation and shuffling (default 0)")
    add_common_flags(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    values = dataclass_values(args, ClassifierConfig)
    try:
        cfg = ClassifierConfig(**values)
    except ValueError as err:
        given = ", ".join(f"{k}={v}" for k, v in values.items())
        raise ConfigError(f"{err}{f' (got {given})' if given else ''}") from None
    if Path(args.out).is_dir():
        raise ConfigError(f"--out {args.out} is a folder; give a file, e.g. {Path(args.out) / 'teacher.safetensors'}")
    store = train_store(args.data)
    start = time.perf_counter()
    model, path = train_and_save(store, args.out, cfg, seed=args.seed, device=resolve_device(args.device),
                                 progress=not args.quiet)
    seconds = time.perf_counter() - start
    epochs = f"{cfg.epochs} epoch{'s' * (cfg.epochs != 1)}"
    print(f"trained teacher {resolve_model(cfg.model, store.video_shape)} ({count_parameters(model):,} parameters) "
          f"on {len(store)} clips of {store.root}, {epochs} in {seconds:.1f} s; wrote {path}")
    return 0
