"""``videodd prepare``: build DATA/train and DATA/test ClipStores from a dataset source, and
``videodd datasets``: the sources it knows, with their default clip spec."""

from __future__ import annotations

import argparse
import time
from typing import Any

from videodd.cli.common import positive_int
from videodd.data.prepare import PrepareError
from videodd.data.sources import SOURCES, call_source, dataset_help
from videodd.data.spec import CLIP_SPECS


def register(sub: argparse._SubParsersAction) -> None:
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
    g.add_argument("--workers", type=positive_int, default=None,
                   help="decoding processes (default min(4, CPU count))")
    g.add_argument("--resume", action="store_true",
                   help="continue an interrupted prepare (OUT/.SPLIT.partial); refused if the settings differ")
    g.add_argument("--min-videos-per-class", type=positive_int, default=None, metavar="N",
                   help="leave out the classes with fewer than N videos listed in the train or the test split "
                        "(recorded in the manifest); without it such a class stops prepare before decoding")
    g.add_argument("--drop-class", action="append", default=None, metavar="NAME",
                   help="leave class NAME out (recorded in the manifest); repeatable")
    g.add_argument("--test-split", default=None, metavar="NAME",
                   help="folder: the sub-folder that is the test split (test, val or validation; default: the first "
                        "of those that exists)")
    g.add_argument("--force", action="store_true",
                   help="replace the stores already in OUT (kept until the new ones are complete)")
    g.add_argument("--max-per-class", type=int, default=None, help="kinetics400: at most N videos per class and split")
    g.add_argument("--train-list", default=None, help="list: csv (path,label) or txt (path label) of training videos")
    g.add_argument("--test-list", default=None, help="list: the same for test videos")
    g.add_argument("--frame-template", default=None,
                   help="frame folders: file names, e.g. img_{:05d}.jpg (default: auto-detect)")
    g.add_argument("--test-fraction", type=float, default=None,
                   help="folder without train/ and test/: share of each class held out for test (default 0.2)")
    g.add_argument("--chunk-size", type=positive_int, default=None,
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
    p.set_defaults(func=run)


def register_datasets(sub: argparse._SubParsersAction) -> None:
    """``videodd datasets`` (listed after ``info`` in ``videodd --help``, hence its own function)."""
    p = sub.add_parser("datasets", help="list the datasets `videodd prepare` knows, with their default clip spec",
                       description="The datasets `videodd prepare NAME` knows, each with its default clip spec and "
                                   "the options it takes.")
    p.set_defaults(func=run_datasets)


def run(args: argparse.Namespace) -> int:
    # Everything the user set goes to the source, which refuses options it does not use.
    options: dict[str, Any] = {
        "root": args.root, "annotations": args.annotations, "split": args.split, "spec": args.spec,
        "frames": args.frames, "size": args.size, "seed": args.seed, "max_per_class": args.max_per_class,
        "train_list": args.train_list, "test_list": args.test_list, "frame_template": args.frame_template,
        "test_fraction": args.test_fraction, "test_split": args.test_split,
        "min_videos_per_class": args.min_videos_per_class, "drop_class": args.drop_class,
        "train_per_class": args.train_per_class,
        "test_per_class": args.test_per_class, "workers": args.workers, "resume": args.resume or None,
        "chunk_size": args.chunk_size, "progress": not args.quiet,
        "on_summary": lambda summary: print(summary.line(), flush=True)}
    if args.dataset == "synth-actions":
        options["num_classes"] = _synth_num_classes(args)
    else:
        options.update(classes=args.classes, num_classes=args.num_classes)
    start = time.perf_counter()
    train, test = call_source(args.dataset, args.out, force=args.force, **options)
    print(f"wrote {train}\nwrote {test}\nin {time.perf_counter() - start:.1f} s")
    return 0


def run_datasets(args: argparse.Namespace) -> int:
    print(dataset_help(header=True))
    return 0


def _synth_num_classes(args: argparse.Namespace) -> int | None:
    """synth-actions takes a number of classes, as --num-classes or (older spelling) --classes N."""
    if args.classes is None:
        return args.num_classes
    try:
        return int(args.classes)
    except ValueError:
        raise PrepareError(f"synth-actions: --classes is a number of classes, got {args.classes!r}") from None
