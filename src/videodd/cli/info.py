"""``videodd info PATH``: describe what videodd wrote at PATH, recognised by its contents: an experts
folder, a codec folder, a latent store, a ClipStore, a teacher file or a DistilledSet file."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from videodd.checkpoint import CheckpointError
from videodd.cli.common import count_parameters
from videodd.codecs import load_codec
from videodd.codecs.encode import LatentStore
from videodd.data.store import ClipStore
from videodd.distilled import DistilledSet
from videodd.models import create_model
from videodd.seeding import make_generator, seeded
from videodd.teachers.base import read_manifest
from videodd.teachers.experts import ExpertBuffer


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("info", help="describe a DistilledSet or teacher file, or a ClipStore, experts, codec or "
                                    "latents folder")
    p.add_argument("path")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    path = Path(args.path)
    if path.is_dir() and (path / "experts.json").is_file():
        m = ExpertBuffer(path).manifest
        print(f"Experts {path}\n  model: {m['model']} ({m['num_params']:,} parameters)\n  experts: {m['num_experts']}  "
              f"epochs kept: 0..{m['epochs_kept'][-1]}  bytes: {m['total_bytes']:,}\n  dataset: {m['dataset']}  "
              f"store fingerprint: {m['store_fingerprint']}\n  training: {m['config']}  seed: {m['seed']}")
        return 0
    if path.is_dir() and (path / "codec.json").is_file():
        print(describe_codec(path))
        return 0
    if path.is_dir() and (path / "latents.npy").is_file():
        lat = LatentStore(path)
        print(f"LatentStore {path}\n  source: {lat.meta['dataset']} ({lat.meta['split']}), fingerprint "
              f"{lat.meta['source']['fingerprint']}\n  latents: {len(lat)}  shape (c, t, h, w): {lat.latent_shape}  "
              f"bytes: {lat.nbytes:,} (float32)\n  video shape (C, T, H, W): {lat.video_shape}\n  codec: "
              f"{lat.codec_spec} (sha256 {str(lat.codec_info.get('sha256'))[:16]})")
        return 0
    if path.is_dir():
        store = ClipStore(path)
        m = store.meta
        print(f"ClipStore {path}\n  dataset: {m.dataset} ({m.split})\n  clips: {len(store)}  shape (C, T, H, W): "
              f"{store.video_shape}  bytes: {store.nbytes:,}\n  classes ({store.num_classes}): "
              f"{', '.join(store.classes[:8])}{' ...' if store.num_classes > 8 else ''}\n  spec: {m.spec.to_dict()}\n"
              f"  mean: {[round(x, 4) for x in m.mean]}  std: {[round(x, 4) for x in m.std]}\n"
              f"  fingerprint: {m.fingerprint}\n  failures: {len(m.failures)}")
        return 0
    teacher = _teacher_manifest(path)
    if teacher is not None:
        print(describe_teacher(path, teacher))
        return 0
    print(DistilledSet.load(path).describe())
    return 0


def _teacher_manifest(path: Path) -> dict[str, Any] | None:
    """The teacher manifest of a weights file; None for anything else (left to DistilledSet.load to explain)."""
    if not path.is_file():
        return None
    try:
        return read_manifest(path)
    except CheckpointError:
        return None


def describe_teacher(path: Path, m: dict[str, Any]) -> str:
    """A teacher file written by ``videodd teacher``: model, store, training."""
    shape = tuple(m.get("input_shape", ()))
    with seeded(make_generator(0)):  # only to count the parameters
        params = count_parameters(create_model(m["model"], len(m.get("classes", [])), shape))
    seconds = f"  time: {m['seconds']:.1f} s" if m.get("seconds") else ""
    return (f"Teacher {path} ({m.get('kind')})\n  model: {m['model']} ({params:,} parameters)  "
            f"bytes: {path.stat().st_size:,}\n  dataset: {m.get('dataset')}  store fingerprint: "
            f"{m.get('store_fingerprint')}\n  classes: {len(m.get('classes', []))}  input shape (C, T, H, W): {shape}  "
            f"spec: {m.get('spec')}\n  training: {m.get('config')}  seed: {m.get('seed')}{seconds}  "
            f"(videodd {m.get('library_version')})")


def describe_codec(path: Path) -> str:
    """A built-in codec folder written by ``videodd train-codec``; verifies the weights' sha256."""
    codec = load_codec(f"builtin:{path}")
    info, train = codec.describe(), codec.info
    lines = [f"Codec {path} (builtin)", f"  config: {info['config']}",
             f"  weights: {info['weight_bytes']:,} B (decoder {info['decoder_weight_bytes']:,} B)  sha256: "
             f"{info['sha256'][:16]}"]
    if train:
        epochs = len(train.get("epoch_losses", []))
        lines.append(f"  trained on: {train.get('dataset')} ({train.get('split')}), fingerprint "
                     f"{train.get('fingerprint')}, {train.get('train_clips')} clips, {epochs} epochs")
        lines.append(f"  latent {tuple(train.get('latent_shape', ()))} for video {tuple(train.get('video_shape', ()))}")
        if train.get("holdout"):
            lines.append(f"  held-out PSNR: {train['holdout']['psnr_db']:.2f} dB ({train['holdout_clips']} clips)")
    return "\n".join(lines)
