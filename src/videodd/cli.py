"""The ``videodd`` command: prepare, distill, evaluate, info, datasets, methods, models, demo."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import sys
import time
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from videodd._version import __version__

EPILOG = """examples:
  videodd prepare synth-actions --out data/synth
  videodd prepare ucf101 --root ~/data/UCF-101 --out data/ucf101     # see `videodd datasets`
  videodd distill --method dm --ipc 1 --data data/synth --out runs/dm-ipc1
  videodd experts --data data/synth --out experts/synth --num-experts 5 --epochs 6 --keep-epochs 5
  videodd distill --method mtt --data data/synth --set objective.experts=experts/synth --out runs/mtt-ipc1
  videodd train-codec --data data/synth --out codecs/synth
  videodd distill --method latent --data data/synth --set builder.codec=builtin:codecs/synth --match-ipc 1
  videodd evaluate runs/dm-ipc1/distilled.safetensors --data data/synth --protocol cpu
  videodd info runs/dm-ipc1/distilled.safetensors
"""


# -- helpers ---------------------------------------------------------------------------------
def _stores(data: str):
    """``DIR/train`` and ``DIR/test`` as written by ``videodd prepare``."""
    from videodd.data.store import ClipStore

    root = Path(data)
    return ClipStore(root / "train"), ClipStore(root / "test")


def _device(name: str) -> str:
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return name


def _add_dataclass_flags(parser: argparse.ArgumentParser, cls: type, docs: dict[str, str], skip: set[str]) -> None:
    """One ``--field`` flag per dataclass field; default None means 'keep the recipe value'."""
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        flag = "--" + f.name.replace("_", "-")
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
        help_text = f"{docs.get(f.name, '')} (default: {default})"
        hint = hints[f.name]
        if hint is bool:
            parser.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction, default=None, help=help_text)
        elif typing.get_origin(hint) is tuple:
            parser.add_argument(flag, dest=f.name, type=lambda s: tuple(x for x in s.split(",") if x), default=None,
                                help=help_text + "; comma-separated, empty string for none", metavar="A,B")
        else:
            base = hint if hint in (int, float, str) else str
            parser.add_argument(flag, dest=f.name, type=base, default=None, help=help_text)


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text}")
    return value


def _field_docs(cls: type) -> dict[str, str]:
    """Each field's text in ``cls``'s "Attributes:" docstring, continuation lines (indented deeper
    than the ``name:`` line) joined, so that ``--help`` shows the whole of it."""
    names = {f.name for f in dataclasses.fields(cls)}
    out: dict[str, str] = {}
    current, indent = None, 0
    for ln in (cls.__doc__ or "").splitlines():
        depth = len(ln) - len(ln.lstrip())
        name, sep, text = ln.strip().partition(":")
        if sep and name in names and (current is None or depth <= indent):
            current, indent = name, depth
            out[name] = text.strip()
        elif current is not None and ln.strip() and depth > indent:
            out[current] += " " + ln.strip()
        else:
            current = None
    return out


# -- commands ----------------------------------------------------------------------------------
def cmd_prepare(args: argparse.Namespace) -> int:
    from videodd.data.sources import call_source

    # Everything the user set goes to the source, which refuses options it does not use.
    options: dict[str, Any] = {
        "root": args.root, "annotations": args.annotations, "split": args.split, "spec": args.spec,
        "frames": args.frames, "size": args.size, "seed": args.seed, "max_per_class": args.max_per_class,
        "train_list": args.train_list, "test_list": args.test_list, "frame_template": args.frame_template,
        "test_fraction": args.test_fraction, "train_per_class": args.train_per_class,
        "test_per_class": args.test_per_class, "workers": args.workers, "resume": args.resume or None,
        "chunk_size": args.chunk_size, "progress": not args.quiet,
        "on_summary": lambda summary: print(summary.line(), flush=True)}
    if args.dataset == "synth-actions":
        options["num_classes"] = _synth_num_classes(args)
    else:
        options.update(classes=args.classes, num_classes=args.num_classes)
    start = time.perf_counter()
    train, test = call_source(args.dataset, args.out, **options)
    print(f"wrote {train}\nwrote {test}\nin {time.perf_counter() - start:.1f} s")
    return 0


def _synth_num_classes(args: argparse.Namespace) -> int | None:
    """synth-actions takes a number of classes, as --num-classes or (older spelling) --classes N."""
    from videodd.data.prepare import PrepareError

    if args.classes is None:
        return args.num_classes
    try:
        return int(args.classes)
    except ValueError:
        raise PrepareError(f"synth-actions: --classes is a number of classes, got {args.classes!r}") from None


def cmd_datasets(args: argparse.Namespace) -> int:
    from videodd.data.sources import dataset_help

    print("  dataset        spec        description\n" + dataset_help())
    return 0


def _parse_set(item: str) -> tuple[str, str, Any]:
    """``objective.syn_steps=20`` -> ("objective", "syn_steps", 20); the value is parsed as YAML."""
    import yaml

    from videodd.config import ConfigError
    from videodd.distill import COMPONENTS

    target, eq, raw = item.partition("=")
    part, dot, key = target.partition(".")
    if not eq or not dot or part not in COMPONENTS or not key:
        raise ConfigError(f"--set {item!r}: expected PART.KEY=VALUE with PART one of {list(COMPONENTS)}")
    value = yaml.safe_load(raw)
    if isinstance(value, str):  # YAML 1.1 reads "1e3" as a string; users mean a number
        with contextlib.suppress(ValueError):
            value = float(value)
    return part, key, value


def cmd_distill(args: argparse.Namespace) -> int:
    from videodd.config import load_yaml
    from videodd.distill import DistillConfig, distill, resolve_config

    overrides: dict[str, Any] = load_yaml(args.config) if args.config else {}
    method = args.method or overrides.pop("method", None)
    if method is None:
        raise SystemExit("videodd distill: error: --method is required (or a --config with a method field)")
    overrides.pop("method", None)
    for f in dataclasses.fields(DistillConfig):
        value = getattr(args, f.name, None)
        if value is not None and f.name != "method":
            overrides[f.name] = value
    for item in args.set_options:
        part, key, value = _parse_set(item)
        overrides[part] = {**(overrides.get(part) or {}), key: value}
    for key in ("match_ipc", "budget_bytes"):  # equal-storage shorthands for --set builder.KEY=VALUE
        if getattr(args, key) is not None:
            overrides["builder"] = {**(overrides.get("builder") or {}), key: getattr(args, key)}
    cfg = resolve_config(method, overrides)
    train, _ = _stores(args.data)
    out = Path(args.out or f"runs/{train.meta.dataset}-{cfg.method}-ipc{cfg.ipc}-s{cfg.seed}")
    result = distill(train, cfg, out, resume=args.resume, device=_device(args.device), progress=not args.quiet)
    extra = f", {result.seconds_per_iteration:.3f} s/iteration" if result.seconds_per_iteration else ""
    resumed = f" (resumed from iteration {result.resumed_from})" if result.resumed_from else ""
    print(f"{cfg.method} IPC {result.distilled.ipc}: {result.distilled.num_videos} videos in {result.seconds:.1f} s"
          f"{extra}{resumed}")
    for note in result.distilled.storage_detail().notes:
        print(note)
    print(f"wrote {out / 'distilled.safetensors'}")
    return 0


def cmd_experts(args: argparse.Namespace) -> int:
    from videodd.data.store import ClipStore
    from videodd.teachers.experts import ExpertConfig, train_experts

    fields = {"model": args.model, "epochs": args.epochs, "lr": args.lr, "momentum": args.momentum,
              "weight_decay": args.weight_decay, "batch_size": args.batch_size, "augment": args.augment,
              "num_experts": args.num_experts, "save_epochs_up_to": args.keep_epochs}
    try:
        cfg = ExpertConfig(**{k: v for k, v in fields.items() if v is not None})
    except ValueError as err:
        from videodd.config import ConfigError

        raise ConfigError(f"videodd experts: {err}") from None
    train = ClipStore(Path(args.data) / "train")
    result = train_experts(train, args.out, cfg, seed=args.seed, resume=args.resume, device=_device(args.device),
                           progress=not args.quiet)
    m = result.manifest
    skipped = f" ({len(result.skipped)} already done)" if result.skipped else ""
    print(f"trained {len(result.trained)} expert(s){skipped} in {result.seconds:.1f} s: {m['num_experts']} experts of "
          f"{m['model']} ({m['num_params']:,} parameters), epochs 0..{m['epochs_kept'][-1]} kept")
    print(f"disk used: {result.total_bytes:,} bytes ({result.total_bytes / 2**20:.1f} MiB) in {result.out_dir}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from videodd.distilled import DistilledSet
    from videodd.evaluate import evaluate, get_protocol
    from videodd.io import atomic_path, write_json
    from videodd.models import MODELS
    from videodd.report import cross_arch_table, markdown_table, rows_from_report

    distilled = DistilledSet.load(args.distilled)
    train, test = _stores(args.data)
    protocol = get_protocol(args.protocol)
    if args.runs:
        protocol = protocol.with_runs(args.runs)
    if args.epochs:
        protocol = protocol.with_epochs(args.epochs)
    models = [m for m in args.models.split(",") if m] if args.models else [protocol.model]
    for model in models:  # a typo in the last model should fail now, not after the others have trained
        if model != "auto":
            MODELS.get(model)
    refs = tuple(r for r in args.references.split(",") if r)
    reports = []
    for model in models:
        report = evaluate(distilled, test, protocol.with_model(model), train_store=train, references=refs,
                          seed=args.seed, device=_device(args.device), progress=not args.quiet,
                          cache_dir=Path(args.data) / "references")  # references do not depend on the method
        reports.append(report)
        print(f"\nmodel {report.model}, protocol {protocol.name} v{protocol.version}")
        print(markdown_table(rows_from_report(report)))
    text = "\n\n".join(r.to_markdown() for r in reports)
    if len(reports) > 1:
        title = (f"cross-architecture: {distilled.manifest.method} IPC {distilled.ipc} on "
                 f"{distilled.manifest.dataset}, protocol {protocol.name} v{protocol.version}")
        table = cross_arch_table(reports)
        print(f"\n{title}\n{table}")
        text = f"## {title}\n\n{table}\n\n{text}"
    out = Path(args.out) if args.out else Path(args.distilled).with_name("report.json")
    # one report per model: a list when there are several
    write_json(out, [r.to_json() for r in reports] if len(reports) > 1 else reports[0].to_json())
    with atomic_path(out.with_suffix(".md")) as tmp:
        tmp.write_text(text + "\n", encoding="utf-8")
    print(f"\nwrote {out} and {out.with_suffix('.md')}")
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    path = Path(args.path)
    if path.is_dir() and (path / "experts.json").is_file():
        from videodd.teachers.experts import ExpertBuffer

        m = ExpertBuffer(path).manifest
        print(f"Experts {path}\n  model: {m['model']} ({m['num_params']:,} parameters)\n  experts: {m['num_experts']}  "
              f"epochs kept: 0..{m['epochs_kept'][-1]}  bytes: {m['total_bytes']:,}\n  dataset: {m['dataset']}  "
              f"store fingerprint: {m['store_fingerprint']}\n  training: {m['config']}  seed: {m['seed']}")
        return 0
    if path.is_dir() and (path / "codec.json").is_file():
        print(_describe_codec(path))
        return 0
    if path.is_dir() and (path / "latents.npy").is_file():
        from videodd.codecs.encode import LatentStore

        lat = LatentStore(path)
        print(f"LatentStore {path}\n  source: {lat.meta['dataset']} ({lat.meta['split']}), fingerprint "
              f"{lat.meta['source']['fingerprint']}\n  latents: {len(lat)}  shape (c, t, h, w): {lat.latent_shape}  "
              f"bytes: {lat.nbytes:,} (float32)\n  video shape (C, T, H, W): {lat.video_shape}\n  codec: "
              f"{lat.codec_spec} (sha256 {str(lat.codec_info.get('sha256'))[:16]})")
        return 0
    if path.is_dir():
        from videodd.data.store import ClipStore

        store = ClipStore(path)
        m = store.meta
        print(f"ClipStore {path}\n  dataset: {m.dataset} ({m.split})\n  clips: {len(store)}  shape (C, T, H, W): "
              f"{store.video_shape}  bytes: {store.nbytes:,}\n  classes ({store.num_classes}): "
              f"{', '.join(store.classes[:8])}{' ...' if store.num_classes > 8 else ''}\n  spec: {m.spec.to_dict()}\n"
              f"  mean: {[round(x, 4) for x in m.mean]}  std: {[round(x, 4) for x in m.std]}\n"
              f"  fingerprint: {m.fingerprint}\n  failures: {len(m.failures)}")
        return 0
    from videodd.distilled import DistilledSet

    print(DistilledSet.load(path).describe())
    return 0


def cmd_methods(args: argparse.Namespace) -> int:
    from videodd.methods import METHODS

    for name in METHODS:
        spec = METHODS.get(name)
        print(f"{name:12s} {spec.parts:22s} {spec.description}")
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    from videodd.models import MODELS

    for name in MODELS:
        print(f"{name:16s} {MODELS.doc(name)}")
    return 0


def _codec_store(data: str, split: str):
    """A ClipStore given as DATA/SPLIT of a `videodd prepare` folder or as the store folder itself."""
    from videodd.data.store import ClipStore

    root = Path(data)
    return ClipStore(root if (root / "meta.json").is_file() else root / split)


def cmd_train_codec(args: argparse.Namespace) -> int:
    import math

    from videodd.codecs.autoencoder import CodecTrainConfig, train_codec

    fields = {"latent_channels": args.latent_channels, "spatial_down": args.spatial_down,
              "temporal_down": args.temporal_down, "width": args.width, "blocks": args.blocks,
              "epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr, "l1_weight": args.l1_weight,
              "holdout": args.holdout, "seed": args.seed}
    cfg = CodecTrainConfig(**{k: v for k, v in fields.items() if v is not None})
    store = _codec_store(args.data, "train")
    result = train_codec(store, args.out, cfg, device=_device(args.device), progress=not args.quiet)
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


def _describe_codec(path: Path) -> str:
    from videodd.codecs import load_codec

    codec = load_codec(f"builtin:{path}")  # verifies the weights' sha256
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


def cmd_encode(args: argparse.Namespace) -> int:
    from videodd.codecs import load_codec
    from videodd.codecs.encode import encode_store

    store = _codec_store(args.data, args.split)
    device = _device(args.device)
    codec = load_codec(args.codec, device=device)
    latents = encode_store(store, codec, args.out, batch_size=args.batch_size, resume=args.resume,
                           progress=not args.quiet, device=device, sample=args.sample, seed=args.seed)
    print(f"encoded {len(latents)} clips of {store.root} with {codec.spec}: latents {latents.latent_shape} float32, "
          f"{latents.nbytes:,} B (clips: {store.nbytes:,} B)")
    print(f"wrote {latents.root}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from videodd.demo import run_demo

    run_demo(Path(args.out), iterations=args.iterations, runs=args.runs, ipc=args.ipc, device=_device(args.device),
             progress=not args.quiet)
    return 0


# -- parser ------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    from videodd.data.sources import SOURCES, dataset_help
    from videodd.data.spec import CLIP_SPECS
    from videodd.distill import COMPONENTS, DistillConfig
    from videodd.evaluate import PROTOCOLS
    from videodd.methods import METHODS

    parser = argparse.ArgumentParser(
        prog="videodd", description="Distil labelled video datasets into a few videos per class, and evaluate them.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"videodd {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default: auto)")
        p.add_argument("--quiet", action="store_true", help="no progress bars")

    p = sub.add_parser(
        "prepare", help="build train/test ClipStores from a dataset",
        description="Build OUT/train and OUT/test ClipStores (uint8 clips, labels, manifest) from the embedded "
                    "synth-actions benchmark or from a dataset on disk in its official layout (see README, "
                    "'Bring your data'). Unreadable videos are recorded in the manifest, not fatal.",
        epilog="datasets (name, default clip spec):\n" + dataset_help() + "\n\nexamples:\n"
               "  videodd prepare synth-actions --out data/synth\n"
               "  videodd prepare ucf101 --root ~/data/UCF-101 --split 1 --out data/ucf101\n"
               "  videodd prepare folder --root ~/videos --spec 8x64 --out data/mine --resume",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("dataset", help=f"dataset source: {', '.join(SOURCES)}")
    p.add_argument("--out", required=True, help="output folder; OUT/train and OUT/test are written atomically")
    g = p.add_argument_group("datasets on disk")
    g.add_argument("--root", default=None, help="the dataset folder holding the videos (or frame folders)")
    g.add_argument("--annotations", default=None,
                   help="split/label files: a folder (ucfTrainTestlist, testTrainMulti_7030_splits, SSv2 json) "
                        "or a Kinetics csv (default: looked up next to --root)")
    g.add_argument("--split", type=int, default=None, help="ucf101/hmdb51: official split 1-3 (default 1)")
    g.add_argument("--spec", default=None,
                   help=f"clip spec preset: {', '.join(CLIP_SPECS)} (default: per dataset, see below)")
    g.add_argument("--workers", type=_positive_int, default=None,
                   help="decoding processes (default min(4, CPU count))")
    g.add_argument("--resume", action="store_true",
                   help="continue an interrupted prepare (OUT/.SPLIT.partial); refused if the settings differ")
    g.add_argument("--max-per-class", type=int, default=None, help="kinetics400: at most N videos per class and split")
    g.add_argument("--train-list", default=None, help="list: csv (path,label) or txt (path label) of training videos")
    g.add_argument("--test-list", default=None, help="list: the same for test videos")
    g.add_argument("--frame-template", default=None,
                   help="frame folders: file names, e.g. img_{:05d}.jpg (default: auto-detect)")
    g.add_argument("--test-fraction", type=float, default=None,
                   help="folder without train/ and test/: share of each class held out for test (default 0.2)")
    g.add_argument("--chunk-size", type=_positive_int, default=None,
                   help="videos per work chunk, the unit of --resume (default 16)")
    g.add_argument("--quiet", action="store_true", help="no progress bar")
    g = p.add_argument_group("both")
    g.add_argument("--classes", default=None,
                   help="kinetics400: class subset, comma-separated names or a txt file; "
                        "synth-actions: number of classes (same as --num-classes)")
    g.add_argument("--frames", type=int, default=None, help="frames per clip (overrides the spec; synth default 8)")
    g.add_argument("--size", type=int, default=None,
                   help="frame height = width (overrides the spec, scaling its resize; synth default 32)")
    g.add_argument("--seed", type=int, default=None,
                   help="random training-clip starts and the folder split (default 0); synth-actions: generator seed")
    g = p.add_argument_group("synth-actions")
    g.add_argument("--num-classes", type=int, default=None, help="number of classes (default 10)")
    g.add_argument("--train-per-class", type=int, default=None, help="training clips per class")
    g.add_argument("--test-per-class", type=int, default=None, help="test clips per class")
    p.set_defaults(func=cmd_prepare)

    p = sub.add_parser("distill", help="distil a training store into a DistilledSet",
                       description="Run a method on DATA/train. Flags override the method's defaults and --config.")
    p.add_argument("--method", default=None, help=f"method: {', '.join(METHODS)}")
    p.add_argument("--data", required=True, help="folder written by `videodd prepare` (uses DATA/train)")
    p.add_argument("--out", default=None, help="run folder (default runs/DATASET-METHOD-ipcK-sSEED)")
    p.add_argument("--config", default=None, help="YAML recipe with DistillConfig fields (see configs/)")
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.safetensors")
    _add_dataclass_flags(p, DistillConfig, _field_docs(DistillConfig),
                         skip={"method", *COMPONENTS})
    p.add_argument("--set", dest="set_options", action="append", default=[], metavar="PART.KEY=VALUE",
                   help="a component option, e.g. --set objective.syn_steps=20 or --set selector.feature_epochs=5 "
                        "(PART is objective, parametrization, selector or builder; VALUE is read as YAML); repeatable")
    g = p.add_argument_group("equal storage (latent method)")
    g.add_argument("--match-ipc", dest="match_ipc", type=_positive_int, default=None, metavar="K",
                   help="the largest latent IPC whose stored bytes fit pixel IPC K at float32 (overrides --ipc); "
                        "same as --set builder.match_ipc=K")
    g.add_argument("--budget-bytes", dest="budget_bytes", type=_positive_int, default=None, metavar="B",
                   help="the largest latent IPC whose stored bytes fit B bytes (overrides --ipc); "
                        "same as --set builder.budget_bytes=B")
    common(p)
    p.set_defaults(func=cmd_distill)

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
    p.add_argument("--seed", type=int, default=0, help="expert i is seeded from (seed, i) (default 0)")
    p.add_argument("--resume", action="store_true",
                   help="skip experts already in OUT (same settings required); more --num-experts adds experts")
    common(p)
    p.set_defaults(func=cmd_experts)

    p = sub.add_parser("evaluate", help="train fresh models on a DistilledSet and test them",
                       description="Evaluate a DistilledSet under a fixed protocol, with references.")
    p.add_argument("distilled", help="a .safetensors DistilledSet")
    p.add_argument("--data", required=True,
                   help="folder written by `videodd prepare` (DATA/test, and DATA/train for references)")
    p.add_argument("--protocol", default="default", help=f"protocol: {', '.join(PROTOCOLS)} (default: default)")
    p.add_argument("--runs", type=int, default=None, help="override the protocol's number of runs")
    p.add_argument("--models", default=None,
                   help="comma-separated evaluation models (cross-architecture: one report per model and a "
                        "combined table; see `videodd models`)")
    p.add_argument("--epochs", type=_positive_int, default=None,
                   help="override the protocol's training epochs on the set (and on random real clips); the "
                        "protocol is renamed NAME+epochs=E in the report")
    p.add_argument("--references", default="random,full",
                   help="references to compute: random (random real clips at the same IPC), full (whole training set)")
    p.add_argument("--seed", type=int, default=0, help="seed of the evaluation runs (default 0)")
    p.add_argument("--out", default=None,
                   help="report JSON path (default: report.json next to the set); markdown beside it (.md)")
    common(p)
    p.set_defaults(func=cmd_evaluate)

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
    common(p)
    p.set_defaults(func=cmd_train_codec)

    p = sub.add_parser("encode", help="encode a ClipStore into latents with a codec",
                       description="Stream DATA/SPLIT through a codec into OUT/latents.npy (float32 memmap), "
                                   "OUT/labels.npy and OUT/meta.json; resumable, deterministic (posterior mean).")
    p.add_argument("--data", required=True, help="folder written by `videodd prepare` or a ClipStore folder")
    p.add_argument("--codec", required=True,
                   help="builtin:DIR (from `videodd train-codec`), diffusers:DIR (a local diffusers VAE) or DIR")
    p.add_argument("--out", required=True, help="latent store folder")
    p.add_argument("--split", default="train", choices=("train", "test"), help="which split of DATA (default train)")
    p.add_argument("--batch-size", type=_positive_int, default=64, help="clips per batch (default 64)")
    p.add_argument("--resume", action="store_true", help="continue an interrupted encoding in OUT")
    p.add_argument("--sample", action="store_true", help="sample from the posterior instead of taking its mean")
    p.add_argument("--seed", type=int, default=0, help="seed of the posterior samples with --sample (default 0)")
    common(p)
    p.set_defaults(func=cmd_encode)

    p = sub.add_parser("info", help="describe a DistilledSet file, a ClipStore folder or an experts folder")
    p.add_argument("path")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("datasets", help="list the datasets `videodd prepare` knows, with their default clip spec")
    p.set_defaults(func=cmd_datasets)
    p = sub.add_parser("methods", help="list the distillation methods")
    p.set_defaults(func=cmd_methods)
    p = sub.add_parser("models", help="list the registered models")
    p.set_defaults(func=cmd_models)

    p = sub.add_parser("demo", help="prepare synth-actions, distil random, herding and DM, evaluate, print a table")
    p.add_argument("--out", default="demo-out", help="working folder (default demo-out)")
    p.add_argument("--ipc", type=int, default=1, help="videos per class (default 1)")
    p.add_argument("--iterations", type=int, default=None, help="DM iterations (default: the demo recipe's)")
    p.add_argument("--runs", type=int, default=3, help="evaluation runs per set (default 3)")
    common(p)
    p.set_defaults(func=cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from videodd.errors import VideoddError

    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (VideoddError, FileNotFoundError) as err:
        print(f"videodd {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
