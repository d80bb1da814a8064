"""Dataset sources that ``videodd prepare NAME`` knows; each writes ``OUT/train`` and ``OUT/test``.

A source is a function ``prepare(out_dir, **options) -> (train_store, test_store)``. Real datasets
parse their official layout with ``videodd.data.layouts`` (no decoding there) and decode with
``videodd.data.prepare.prepare_dataset``; each has a default clip spec (``DEFAULT_SPECS``).
Use ``call_source`` to run one with user options: it rejects options the source does not use.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from videodd.data.spec import CLIP_SPECS, ClipSpec, get_clip_spec
from videodd.data.store import ClipStore
from videodd.registry import Registry

if TYPE_CHECKING:
    from videodd.data.layouts import SplitIndex
    from videodd.data.prepare import PrepareSummary

Source = Callable[..., tuple[ClipStore, ClipStore]]
SOURCES: Registry[Source] = Registry("dataset")

# The published clip setting of each dataset; generic layouts get a CPU-sized 8x64 (Kinetics/SSv2 frame size).
DEFAULT_SPECS: dict[str, str] = {
    "ucf101": "ucf-16x112",
    "miniucf": "ucf-16x112",
    "hmdb51": "ucf-16x112",
    "hmdb51-vdsd": "ucf-16x112",
    "kinetics400": "k400-8x64",
    "ssv2": "ssv2-8x64",
    "folder": "8x64",
    "list": "8x64",
}

# Options about running (not about the data); a source that does not take them (synth-actions) ignores them.
AMBIENT_OPTIONS = frozenset({"workers", "resume", "progress", "chunk_size", "on_summary"})
# Options every real source takes (``**decode``): the clip spec and how to decode, besides the layout's own.
DECODE_OPTIONS = ("spec", "frames", "size", "seed", "frame_template", *sorted(AMBIENT_OPTIONS))


def call_source(name: str, out_dir: str | Path, **options: Any) -> tuple[ClipStore, ClipStore]:
    """Run source ``name``; options that are None are dropped, options it does not use are an error."""
    from videodd.data.prepare import PrepareError

    source = SOURCES.get(name)
    accepted = _accepted_options(source)
    given = {k: v for k, v in options.items() if v is not None}
    unused = sorted(k for k in given if k not in accepted and k not in AMBIENT_OPTIONS)
    if unused:
        flags = ", ".join("--" + k.replace("_", "-") for k in unused)
        raise PrepareError(f"dataset {name!r} does not use {flags}; it takes "
                           + ", ".join("--" + k.replace("_", "-") for k in sorted(accepted - AMBIENT_OPTIONS)))
    if "spec" in accepted:  # a bad spec fails now, not after indexing a large dataset
        resolve_spec(name, given.get("spec"), given.get("frames"), given.get("size"))
    return source(out_dir, **{k: v for k, v in given.items() if k in accepted})


def _accepted_options(source: Source) -> set[str]:
    """Named keyword parameters, plus the decoding options when the source takes ``**decode``
    (or what its ``accepted_options()`` says, for synth-actions: the generator config's fields)."""
    explicit = getattr(source, "accepted_options", None)
    if explicit is not None:
        return set(explicit())
    params = inspect.signature(source).parameters.values()
    named = {p.name for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY}
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        named |= set(DECODE_OPTIONS)
    return named


def resolve_spec(dataset: str, spec: str | ClipSpec | None = None, frames: int | None = None,
                 size: int | None = None) -> ClipSpec:
    """The dataset's default preset (or ``spec``) with ``frames``/``size`` overrides.

    A new ``size`` scales ``resize_short`` with it (ucf-16x112 resizes to 128 then crops 112; at
    ``size=56`` it resizes to 64), so the crop keeps covering the same part of the frame.
    """
    from videodd.data.prepare import PrepareError

    base = get_clip_spec(spec if spec is not None else DEFAULT_SPECS.get(dataset, "8x64"))
    changes: dict[str, Any] = {}
    if frames is not None:
        changes["frames"] = frames
    if size is not None and size != base.size:
        changes["size"] = size
        if base.resize_short is not None:
            changes["resize_short"] = max(size, round(size * base.resize_short / base.size))
    try:
        return base.replace(**changes) if changes else base
    except ValueError as err:  # e.g. --frames 0
        raise PrepareError(str(err)) from None


def _run(name: str, index: SplitIndex, out_dir: str | Path, *, spec: str | None = None, frames: int | None = None,
         size: int | None = None, seed: int | None = None, frame_template: str | None = None,
         workers: int | None = None, resume: bool = False, progress: bool = True, chunk_size: int | None = None,
         on_summary: Callable[[PrepareSummary], None] | None = None) -> tuple[ClipStore, ClipStore]:
    from videodd.data.prepare import default_workers, prepare_dataset

    clip_spec = resolve_spec(name, spec, frames, size)
    if frame_template is not None:
        index.frame_template = frame_template
    return prepare_dataset(index, out_dir, clip_spec, workers=workers or default_workers(), resume=resume,
                           seed=seed or 0, progress=progress, chunk_size=chunk_size, on_summary=on_summary)


def _need(value: Any, flag: str, dataset: str) -> Any:
    from videodd.data.prepare import PrepareError

    if value is None:
        raise PrepareError(f"dataset {dataset!r} needs {flag} (see README, 'Bring your data')")
    return value


# -- the embedded benchmark ------------------------------------------------------------------------
@SOURCES.register("synth-actions")
def prepare_synth_actions_source(out_dir: str | Path, **options: object) -> tuple[ClipStore, ClipStore]:
    """Embedded synthetic action benchmark, generated from a seed (no download)."""
    from videodd.config import from_dict
    from videodd.data.synthetic import SynthActionsConfig, prepare_synth_actions

    cfg = from_dict(SynthActionsConfig, {k: v for k, v in options.items() if v is not None})
    return prepare_synth_actions(out_dir, cfg)


def _synth_options() -> set[str]:
    import dataclasses

    from videodd.data.synthetic import SynthActionsConfig

    return {f.name for f in dataclasses.fields(SynthActionsConfig)}


prepare_synth_actions_source.accepted_options = _synth_options  # type: ignore[attr-defined]


# -- real datasets ----------------------------------------------------------------------------------
# Each takes the layout options it needs plus the decoding options (spec, frames, size, seed,
# frame_template, workers, resume, progress, chunk_size, on_summary).
@SOURCES.register("ucf101", "UCF101, official ucfTrainTestlist splits 1-3 (--root, --split)")
def ucf101_source(out_dir: str | Path, *, root: str | None = None, annotations: str | None = None,
                  split: int | None = None, **decode: Any) -> tuple[ClipStore, ClipStore]:
    from videodd.data.layouts import index_ucf101

    index = index_ucf101(_need(root, "--root", "ucf101"), split=split or 1, annotations=annotations)
    return _run("ucf101", index, out_dir, **_decode_fields(decode))


@SOURCES.register("miniucf", "MiniUCF: UCF101 split 1 restricted to its 50 classes (--root)")
def miniucf_source(out_dir: str | Path, *, root: str | None = None, annotations: str | None = None,
                   **decode: Any) -> tuple[ClipStore, ClipStore]:
    from videodd.data.layouts import index_miniucf

    index = index_miniucf(_need(root, "--root", "miniucf"), annotations=annotations)
    return _run("miniucf", index, out_dir, **_decode_fields(decode))


@SOURCES.register("hmdb51", "HMDB51, official testTrainMulti_7030_splits split 1-3 (--root, --split)")
def hmdb51_source(out_dir: str | Path, *, root: str | None = None, annotations: str | None = None,
                  split: int | None = None, **decode: Any) -> tuple[ClipStore, ClipStore]:
    from videodd.data.layouts import index_hmdb51

    index = index_hmdb51(_need(root, "--root", "hmdb51"), split=split or 1, annotations=annotations)
    return _run("hmdb51", index, out_dir, **_decode_fields(decode))


@SOURCES.register("hmdb51-vdsd", "HMDB51, 2024 static-dynamic paper variant: train = every non-test video of the split")
def hmdb51_vdsd_source(out_dir: str | Path, *, root: str | None = None, annotations: str | None = None,
                       split: int | None = None, **decode: Any) -> tuple[ClipStore, ClipStore]:
    from videodd.data.layouts import index_hmdb51

    index = index_hmdb51(_need(root, "--root", "hmdb51-vdsd"), split=split or 1, annotations=annotations,
                         variant="vdsd")
    return _run("hmdb51-vdsd", index, out_dir, **_decode_fields(decode))


@SOURCES.register(
    "kinetics400", "Kinetics-400 from csv annotations (--root, --annotations, --classes, --max-per-class)"
)
def kinetics400_source(out_dir: str | Path, *, root: str | None = None, annotations: str | None = None,
                       classes: str | None = None, max_per_class: int | None = None,
                       **decode: Any) -> tuple[ClipStore, ClipStore]:
    from videodd.data.layouts import index_kinetics400

    index = index_kinetics400(_need(root, "--root", "kinetics400"), _need(annotations, "--annotations", "kinetics400"),
                              classes=_class_subset(classes), max_per_class=max_per_class)
    return _run("kinetics400", index, out_dir, **_decode_fields(decode))


@SOURCES.register("ssv2", "Something-Something v2: json labels, <id>.webm videos (--root, --annotations)")
def ssv2_source(out_dir: str | Path, *, root: str | None = None, annotations: str | None = None,
                **decode: Any) -> tuple[ClipStore, ClipStore]:
    from videodd.data.layouts import index_ssv2

    index = index_ssv2(_need(root, "--root", "ssv2"), _need(annotations, "--annotations", "ssv2"))
    return _run("ssv2", index, out_dir, **_decode_fields(decode))


@SOURCES.register("folder", "one sub-folder per class (optionally under train/ and test/) (--root, --test-fraction)")
def folder_source(out_dir: str | Path, *, root: str | None = None, test_fraction: float | None = None,
                  **decode: Any) -> tuple[ClipStore, ClipStore]:
    from videodd.data.layouts import index_folder

    fraction = 0.2 if test_fraction is None else test_fraction
    index = index_folder(_need(root, "--root", "folder"), test_fraction=fraction, seed=decode.get("seed") or 0)
    return _run("folder", index, out_dir, **_decode_fields(decode))


@SOURCES.register("list", "csv/txt lists of `path,label` for train and test (--train-list, --test-list, --root)")
def list_source(out_dir: str | Path, *, train_list: str | None = None, test_list: str | None = None,
                root: str | None = None, **decode: Any) -> tuple[ClipStore, ClipStore]:
    from videodd.data.layouts import index_list

    index = index_list(_need(train_list, "--train-list", "list"), _need(test_list, "--test-list", "list"), root=root)
    return _run("list", index, out_dir, **_decode_fields(decode))


def _decode_fields(decode: dict[str, Any]) -> dict[str, Any]:
    """The decoding options for ``_run`` (call_source has already rejected anything else)."""
    return {k: v for k, v in decode.items() if k in DECODE_OPTIONS}


def _class_subset(classes: str | None) -> list[str] | str | None:
    """``--classes``: a comma-separated list of names, or a path to a txt file (passed on as a path)."""
    from videodd.data.prepare import PrepareError

    if classes is None:
        return None
    if Path(classes).is_file():
        return classes
    if classes.endswith(".txt"):
        raise PrepareError(f"{classes}: class list file not found")
    return [c.strip() for c in classes.split(",") if c.strip()]


def dataset_help() -> str:
    """One line per dataset: name, default clip spec, description (for `videodd datasets` and --help)."""
    lines = []
    for name in SOURCES:
        spec = DEFAULT_SPECS.get(name, "")
        lines.append(f"  {name:14s} {spec:11s} {SOURCES.doc(name)}")
    return "\n".join(lines)


__all__ = ["CLIP_SPECS", "DEFAULT_SPECS", "SOURCES", "call_source", "dataset_help", "resolve_spec"]
