"""``videodd train-generator`` (the built-in video diffusion model) and ``videodd generate`` (a candidate pool),
for the generate-then-select methods (``diffusion-tacdt``, ``diffusion-vstunet``, ``diffusion-random``)."""

from __future__ import annotations

import argparse

from videodd.cli.common import add_common_flags, positive_int, resolve_device, split_store
from videodd.generate.candidates import GenerationPlan, generate_candidates
from videodd.generate.diffusion import SAMPLERS, GeneratorTrainConfig, train_generator
from videodd.generate.load import open_generator


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train-generator", help="train the built-in class-conditional video diffusion model",
                       description="Train the small class-conditional spatio-temporal U-Net (DDPM, epsilon target, "
                                   "classifier-free guidance by label dropout) on DATA/train with the one training "
                                   "loop, and write OUT/generator.safetensors + OUT/generator.json. A killed "
                                   "training resumes from OUT/checkpoint.safetensors. Needs videodd[diffusion].")
    p.add_argument("--data", "--store", dest="data", required=True,
                   help="folder written by `videodd prepare` (uses DATA/train) or a ClipStore folder")
    p.add_argument("--out", required=True, help="generator folder")
    defaults = GeneratorTrainConfig()
    p.add_argument("--epochs", type=positive_int, default=defaults.epochs, help=f"(default {defaults.epochs})")
    p.add_argument("--width", type=positive_int, default=defaults.width,
                   help=f"U-Net channels at full resolution (default {defaults.width})")
    p.add_argument("--batch-size", type=positive_int, default=defaults.batch_size,
                   help=f"(default {defaults.batch_size})")
    p.add_argument("--lr", type=float, default=defaults.lr, help=f"Adam learning rate (default {defaults.lr})")
    p.add_argument("--p-uncond", type=float, default=defaults.p_uncond,
                   help=f"label dropout for classifier-free guidance (default {defaults.p_uncond})")
    p.add_argument("--seed", type=int, default=0, help="weights, noise and order (default 0)")
    add_common_flags(p)
    p.set_defaults(func=run_train_generator)

    p = sub.add_parser("generate", help="sample a candidate pool (a ClipStore of generated clips) with a generator",
                       description="Sample PER_CLASS videos per class of DATA/train's classes with a generator into "
                                   "a ClipStore at OUT (resumable batch by batch; the generator, sampler, steps, "
                                   "guidance and seed are recorded in OUT/meta.json).")
    p.add_argument("--data", "--store", dest="data", required=True, help="the training store the generator learned")
    p.add_argument("--generator", required=True,
                   help="generator folder (videodd train-generator), or diffusers:DIR (a local pretrained "
                        "text-to-video pipeline, prompted with the class names)")
    p.add_argument("--prompt", default="{}", help="prompt template of a diffusers: pipeline (default '{}')")
    p.add_argument("--out", required=True, help="candidate store folder")
    p.add_argument("--per-class", type=positive_int, required=True, help="candidates per class")
    p.add_argument("--steps", type=positive_int, default=25, help="sampler steps (default 25)")
    p.add_argument("--guidance", type=float, default=2.0, help="classifier-free guidance scale (default 2)")
    p.add_argument("--sampler", choices=SAMPLERS, default="ddim", help="(default ddim)")
    p.add_argument("--batch", type=positive_int, default=50, help="videos per sampling batch (default 50)")
    p.add_argument("--seed", type=int, default=0, help="(default 0)")
    add_common_flags(p)
    p.set_defaults(func=run_generate)


def run_train_generator(args: argparse.Namespace) -> int:
    cfg = GeneratorTrainConfig(epochs=args.epochs, width=args.width, batch_size=args.batch_size, lr=args.lr,
                               p_uncond=args.p_uncond, seed=args.seed)
    store = split_store(args.data)
    result = train_generator(store, args.out, cfg, device=resolve_device(args.device), progress=not args.quiet)
    g = result.generator
    print(f"trained the video generator on {len(store)} clips of {store.root} in {result.seconds:.1f} s "
          f"({cfg.epochs} epochs, final loss {result.epoch_losses[-1]:.4f}); weights {g.weight_bytes:,} B")
    print(f"wrote {result.path}")
    return 0


def run_generate(args: argparse.Namespace) -> int:
    store = split_store(args.data)
    device = resolve_device(args.device)
    generator = open_generator(store, args.generator, prompt=args.prompt, device=device, progress=not args.quiet)
    plan = GenerationPlan(per_class=args.per_class, steps=args.steps, guidance=args.guidance, sampler=args.sampler,
                          seed=args.seed, batch=args.batch)
    pool = generate_candidates(generator, store, args.out, plan, device=device, progress=not args.quiet)
    record = pool.meta.extra["generation"]
    print(f"generated {len(pool)} candidates ({args.per_class} per class) in {record['seconds']:.1f} s "
          f"({record['seconds_per_candidate']:.2f} s per candidate)")
    print(f"wrote {pool.root}")
    return 0
