"""``videodd train-codec`` (the built-in video autoencoder) and ``videodd encode`` (a ClipStore to
latents), for the latent method."""

from __future__ import annotations

import argparse
import math

from videodd.cli.common import add_common_flags, positive_int, resolve_device, split_store
from videodd.codecs import load_codec
from videodd.codecs.autoencoder import CodecTrainConfig, train_codec
from videodd.codecs.encode import encode_store


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train-codec", help="train the built-in video autoencoder (codec) on a training split",
                       description="Train the small built-in 3D conv autoencoder on DATA/train with the one training "
                                   "loop (Adam, MSE [+ L1]) and write OUT/codec.safetensors + OUT/codec.json (config, "
                                   "sha256, store fingerprint, held-out reconstruction PSNR). Use it as "
                                   "--codec builtin:OUT.")
    p.add_argument("--data", "--store", dest="data", required=True,
                   help="folder written by `videodd prepare` (uses DATA/train) or a ClipStore folder")
    p.add_argument("--out", required=True, help="codec folder")
    p.add_argument("--epochs", type=int, default=None, help="passes over the clips (default 10)")
    p.add_argument("--latent-channels", type=int, default=None, help="latent channels (default 8)")
    p.add_argument("--spatial-down", type=int, default=None, help="H, W downsampling, power of two (default 4)")
    p.add_argument("--temporal-down", type=int, default=None, help="T downsampling, power of two (default 2)")
    p.add_argument("--width", type=int, default=None, help="channels of the first stage (default 16)")
    p.add_argument("--blocks", type=int, default=None, help="residual blocks at the latent resolution (default 0)")
    p.add_argument("--batch-size", type=int, default=None, help="clips per step (default 32)")
    p.add_argument("--lr", type=float, default=None, help="Adam learning rate (default 2e-3)")
    p.add_argument("--l1-weight", type=float, default=None, help="weight of an added L1 loss (default 0)")
    p.add_argument("--holdout", type=float, default=None,
                   help="share of the clips held out to measure the reconstruction PSNR (default 0.05)")
    p.add_argument("--seed", type=int, default=None, help="initialisation, shuffling, held-out split (default 0)")
    add_common_flags(p)
    p.set_defaults(func=run_train_codec)

    p = sub.add_parser("encode", help="encode a ClipStore into latents with a codec",
                       description="Stream DATA/SPLIT through a codec into OUT/latents.npy (float32 memmap), "
                                   "OUT/labels.npy and OUT/meta.json; resumable, deterministic (posterior mean).")
    p.add_argument("--data", required=True, help="folder written by `videodd prepare` or a ClipStore folder")
    p.add_argument("--codec", required=True,
                   help="builtin:DIR (from `videodd train-codec`), diffusers:DIR (a local diffusers VAE) or DIR")
    p.add_argument("--out", required=True, help="latent store folder")
    p.add_argument("--split", default="train", choices=("train", "test"), help="which split of DATA (default train)")
    p.add_argument("--batch-size", type=positive_int, default=64, help="clips per batch (default 64)")
    p.add_argument("--resume", action="store_true", help="continue an interrupted encoding in OUT")
    p.add_argument("--sample", action="store_true", help="sample from the posterior instead of taking its mean")
    p.add_argument("--seed", type=int, default=0, help="seed of the posterior samples with --sample (default 0)")
    add_common_flags(p)
    p.set_defaults(func=run_encode)


def run_train_codec(args: argparse.Namespace) -> int:
    fields = {"latent_channels": args.latent_channels, "spatial_down": args.spatial_down,
              "temporal_down": args.temporal_down, "width": args.width, "blocks": args.blocks,
              "epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr, "l1_weight": args.l1_weight,
              "holdout": args.holdout, "seed": args.seed}
    cfg = CodecTrainConfig(**{k: v for k, v in fields.items() if v is not None})
    store = split_store(args.data, "train")
    result = train_codec(store, args.out, cfg, device=resolve_device(args.device), progress=not args.quiet)
    codec, info = result.codec, result.codec.info
    latent, pixels = math.prod(info["latent_shape"]), math.prod(info["video_shape"])
    print(f"trained the built-in codec on {info['train_clips']} clips of {store.root} in {result.seconds:.1f} s "
          f"({cfg.epochs} epochs, final loss {result.epoch_losses[-1]:.5f})")
    if result.holdout:
        h = result.holdout
        print(f"held-out reconstruction ({info['holdout_clips']} clips): PSNR {h['psnr_db']:.2f} dB "
              f"(MSE {h['mse']:.5f}; predicting the mean: {h['mean_baseline_psnr_db']:.2f} dB)")
    print(f"latent {tuple(info['latent_shape'])} for video {tuple(info['video_shape'])}: {latent:,} values instead "
          f"of {pixels:,}; per clip {2 * latent:,} B at float16 / {4 * latent:,} B at float32 vs {pixels:,} B of "
          f"uint8 pixels (x{pixels / (2 * latent):.1f} / x{pixels / (4 * latent):.1f}) and {4 * pixels:,} B of "
          f"float32 pixels (x{2 * pixels / latent:.1f} / x{pixels / latent:.1f}); codec weights "
          f"{codec.weight_bytes():,} B, of which the decoder {codec.decoder_weight_bytes():,} B")
    print(f"wrote {result.path}")
    return 0


def run_encode(args: argparse.Namespace) -> int:
    store = split_store(args.data, args.split)
    device = resolve_device(args.device)
    codec = load_codec(args.codec, device=device)
    latents = encode_store(store, codec, args.out, batch_size=args.batch_size, resume=args.resume,
                           progress=not args.quiet, device=device, sample=args.sample, seed=args.seed)
    print(f"encoded {len(latents)} clips of {store.root} with {codec.spec}: latents {latents.latent_shape} float32, "
          f"{latents.nbytes:,} B (clips: {store.nbytes:,} B)")
    print(f"wrote {latents.root}")
    return 0
