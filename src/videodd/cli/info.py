"""``videodd info PATH``: describe what videodd wrote at PATH, recognised by its contents: an experts
folder, a codec folder, a latent store, a ClipStore, a run folder or report JSON (its evaluation reports), a
teacher file or a DistilledSet file."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from safetensors import SafetensorError, safe_open

from videodd.checkpoint import CheckpointError, load_state
from videodd.cli.common import count_parameters
from videodd.codecs import load_codec
from videodd.codecs.encode import LatentStore
from videodd.data.spec import ClipSpec
from videodd.data.store import ClipStore
from videodd.distilled import DistilledSet
from videodd.evaluate import TEST_SELECTED_LABEL, EvalReport
from videodd.models import create_model
from videodd.seeding import make_generator, seeded
from videodd.study import report_dicts
from videodd.teachers.base import read_manifest
from videodd.teachers.experts import ExpertBuffer


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("info", help="describe a DistilledSet or teacher file, or a ClipStore, experts, codec or "
                                    "latents folder",
                       description="Describe what videodd wrote at PATH, recognised by its contents: a DistilledSet "
                                   "(storage by tensor, warnings, tuning), a teacher or checkpoint file, a ClipStore "
                                   "(its failures with their reasons), an experts, codec or latents folder.")
    p.add_argument("path", help="a .safetensors file or a folder written by videodd")
    p.set_defaults(func=run)

    p = sub.add_parser("verify", help="check that stores and sets are what their manifests say (a flipped byte)",
                       description="Recompute what cannot be checked cheaply on every load: a ClipStore's fingerprint "
                                   "over all its clips and labels, a DistilledSet's content checksum. Exit code 2 on "
                                   "the first mismatch.")
    p.add_argument("paths", nargs="+", metavar="PATH", help="ClipStore folders and DistilledSet files")
    p.set_defaults(func=run_verify)


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
    report_file = path / "report.json" if path.is_dir() else path
    if report_file.suffix == ".json" and report_file.is_file():
        print(describe_reports(report_file))
        return 0
    if path.is_dir():
        print(describe_store(ClipStore(path)))
        return 0
    checkpoint = _checkpoint_iteration(path)
    if checkpoint is not None:
        print(f"{path}: the checkpoint of a run at iteration {checkpoint}, not a distilled set. Continue the run with "
              f"`videodd distill ... --out {path.parent} --resume` (the same settings); when it finishes, its set "
              f"is {path.parent / 'distilled.safetensors'}")
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


def _checkpoint_iteration(path: Path) -> int | None:
    """The iteration of a run's checkpoint file, or None for any other file."""
    if not path.is_file():
        return None
    try:
        with safe_open(str(path), framework="pt") as fh:
            meta = fh.metadata() or {}
    except (SafetensorError, OSError, ValueError):
        return None
    if "videodd_checkpoint" not in meta:
        return None
    state = load_state(path)
    return int(state.get("iteration", -1))


def run_verify(args: argparse.Namespace) -> int:
    for name in args.paths:
        path = Path(name)
        if path.is_dir():
            store = ClipStore(path)
            store.verify()
            print(f"{path}: ok, {len(store):,} clips, fingerprint {store.fingerprint}")
        else:
            dset = DistilledSet.load(path)
            dset.verify()
            print(f"{path}: ok, {dset.num_videos} videos, content sha256 {dset.manifest.content_sha256[:16]}")
    return 0


def describe_reports(path: Path) -> str:
    """``videodd info RUN`` (its report.json) or ``videodd info REPORT.json``: each evaluation report's figures,
    the test-selected one labelled as such beside the final set's."""
    reports = [EvalReport.from_json(r) for r in report_dicts(json.loads(path.read_text(encoding="utf-8")))]
    if not reports:
        return f"{path}: holds no evaluation report"
    lines = []
    for r in reports:
        lines += [f"Evaluation report {path}: {r.method} IPC {r.ipc} on {r.dataset}",
                  f"  model: {r.model}  protocol: {r.protocol['name']} v{r.protocol['version']}  "
                  f"precision: {r.protocol.get('precision', 'fp32')}",
                  f"  top-1 (%): {r.result.fmt()} over {len(r.result.runs)} runs (the final set)"]
        if r.test_selected is not None:
            t = r.test_selected
            lines.append(f"  {TEST_SELECTED_LABEL}: {100 * t['top1_mean']:.1f} ± {100 * t['top1_std']:.1f} "
                         f"({t['chosen']}, best of {len(t['candidates'])} by test accuracy)")
        lines += [f"  {name}: {s.fmt()}" for name, s in r.references.items()]
        if r.test_clips:
            lines.append(f"  test clips: {r.test_clips}")
    return "\n".join(lines)


def describe_spec(spec: ClipSpec) -> str:
    """A clip spec in words."""
    if spec.resize:
        resize = f"squashed to {spec.resize[0]}x{spec.resize[1]}, "
    else:
        resize = f"short side to {spec.resize_short}, " if spec.resize_short else ""
    test = "centre clip"
    if spec.test_views:
        test += f" + {spec.test_views} {spec.test_sampling}-start views"
    short = ("published (stride len // T under T x stride frames, the official start range)"
             if spec.short_policy == "stride_fit" else spec.short_policy.replace("_", " "))
    return (f"{spec.frames} frames every {spec.stride}, {resize}centre crop {spec.size}x{spec.size}; train clip "
            f"{spec.train_sampling.replace('_', ' ')}, test {test}; short videos: {short}")


def describe_store(store: ClipStore, max_failures: int = 20) -> str:
    """``videodd info STORE``: dataset, clips, classes, spec, normalization, and every failure with its reason."""
    m = store.meta
    counts = store.class_counts()
    lines = [f"ClipStore {store.root}", f"  dataset: {m.dataset} ({m.split})",
             f"  clips: {len(store)}  shape (C, T, H, W): {store.video_shape}  bytes: {store.nbytes:,}",
             f"  classes ({store.num_classes}): {', '.join(store.classes[:8])}{' ...' if store.num_classes > 8 else ''}"
             f"  ({counts.min()}-{counts.max()} clips per class)",
             f"  spec: {describe_spec(m.spec)}",
             f"  mean: {[round(x, 4) for x in m.mean]}  std: {[round(x, 4) for x in m.std]}",
             f"  fingerprint: {m.fingerprint}", f"  failures: {len(m.failures)}"]
    lines += [f"    {f.get('source_id') or f.get('path')}: {f.get('reason')}" for f in m.failures[:max_failures]]
    if len(m.failures) > max_failures:
        lines.append(f"    ... and {len(m.failures) - max_failures} more (meta.json lists them all)")
    if store.test_views:
        views = m.extra.get("prepare", {}).get("views", {})
        seed = f", seed {views['seed']}" if views.get("seed") is not None else ""
        lines.append(f"  views: {store.test_views} per video (views.npy{seed}), read by the published protocol")
    for d in m.extra.get("prepare", {}).get("dropped_classes", []):
        lines.append(f"  dropped class {d['class']!r}: {d['reason']}")
    return "\n".join(lines)


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
