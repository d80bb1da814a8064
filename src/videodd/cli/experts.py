"""``videodd experts``: train expert trajectories on DATA/train for trajectory matching (mtt)."""

from __future__ import annotations

import argparse

from videodd.cli.common import add_common_flags, resolve_device, train_store
from videodd.config import ConfigError
from videodd.teachers.experts import ExpertConfig, train_experts


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("experts", help="train expert trajectories for trajectory matching (mtt)",
                       description="Train networks on DATA/train and keep their parameters after every epoch "
                                   "(expert_NNNN.safetensors + experts.json), for --method mtt "
                                   "(--set objective.experts=OUT). Defaults: the published video MTT buffers.")
    p.add_argument("--data", required=True, help="folder written by `videodd prepare` (uses DATA/train)")
    p.add_argument("--out", required=True, help="expert folder")
    p.add_argument("--num-experts", type=int, default=None, help="number of experts (default 30)")
    p.add_argument("--epochs", type=int, default=None, help="training epochs per expert (default 50)")
    p.add_argument("--keep-epochs", type=int, default=None, metavar="K",
                   help="keep snapshots of epochs 0..K only and stop training there; an mtt run with "
                        "max_start_epoch S and expert_epochs M needs K >= S + M - 1 (default: every epoch)")
    p.add_argument("--model", default=None, help="network (default convnet3d-s; no batch norm)")
    p.add_argument("--lr", type=float, default=None, help="SGD lr, constant (default 0.01)")
    p.add_argument("--momentum", type=float, default=None, help="SGD momentum (default 0)")
    p.add_argument("--weight-decay", type=float, default=None, help="weight decay (default 0)")
    p.add_argument("--batch-size", type=int, default=None, help="mini-batch size (default 256)")
    p.add_argument("--augment", type=lambda s: tuple(x for x in s.split(",") if x), default=None, metavar="A,B",
                   help="DSA ops per training batch, comma-separated (default: none, as published for video)")
    p.add_argument("--flip", type=float, default=None, metavar="P",
                   help="probability of a left-right flip of each clip at each read (default 0.5, as the official "
                        "loaders; 0: never, videodd's experts before the published pipeline)")
    p.add_argument("--zscore", choices=("on", "off"), default=None,
                   help="z-score each batch by its own scalar mean and std (default on, as the official epoch())")
    p.add_argument("--renormalize", default=None, metavar="NAME",
                   help="normalization each batch is mapped to before the z-score (default imagenet, as the "
                        "official loaders; none: the store's own)")
    p.add_argument("--seed", type=int, default=0, help="expert i is seeded from (seed, i) (default 0)")
    p.add_argument("--resume", action="store_true",
                   help="skip experts already in OUT (same settings required); more --num-experts adds experts")
    add_common_flags(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    fields = {"model": args.model, "epochs": args.epochs, "lr": args.lr, "momentum": args.momentum,
              "weight_decay": args.weight_decay, "batch_size": args.batch_size, "augment": args.augment,
              "num_experts": args.num_experts, "save_epochs_up_to": args.keep_epochs, "flip": args.flip,
              "zscore": None if args.zscore is None else args.zscore == "on"}
    if args.renormalize is not None:  # "none" is a value here, not "unset"
        fields["renormalize"] = None if args.renormalize.lower() in ("none", "null", "") else args.renormalize
    given = {k: v for k, v in fields.items() if v is not None or k == "renormalize"}
    try:
        cfg = ExpertConfig(**given)
    except ValueError as err:
        raise ConfigError(str(err)) from None
    result = train_experts(train_store(args.data), args.out, cfg, seed=args.seed, resume=args.resume,
                           device=resolve_device(args.device), progress=not args.quiet)
    m = result.manifest
    skipped = f" ({len(result.skipped)} already done)" if result.skipped else ""
    print(f"trained {len(result.trained)} expert(s){skipped} in {result.seconds:.1f} s: {m['num_experts']} experts of "
          f"{m['model']} ({m['num_params']:,} parameters), epochs 0..{m['epochs_kept'][-1]} kept")
    published = "the published pipeline" if cfg.published_pipeline else "NOT the published pipeline"
    print(f"input: flips p={cfg.flip:g}, z-score {'on' if cfg.zscore else 'off'}, renormalize {cfg.renormalize} "
          f"({published})")
    print(f"disk used: {result.total_bytes:,} bytes ({result.total_bytes / 2**20:.1f} MiB) in {result.out_dir}")
    return 0
