"""prepare: decode a list of videos into a ClipStore, in parallel worker processes, resumably.

``prepare_split`` writes ``OUT/<split>`` (a ClipStore) from a list of ``VideoItem``; ``prepare_dataset``
writes ``OUT/train`` then ``OUT/test`` from a ``SplitIndex`` (the test store is normalized with the
training store's mean/std).

Work folder ``OUT/.<split>.partial/`` while a split is being prepared::

    settings.json       what is being prepared; resuming with other settings is refused
    chunk-00000.npy     uint8 (n_ok, T, H, W, 3): the clips of videos [0, K) that decoded
    chunk-00000.views.npy  uint8 (n_ok, V, T, H, W, 3): their V test views (only when the spec asks for them)
    chunk-00000.json    their labels, source ids, ClipInfo, and the failures (written last: the "done" marker)

Each chunk is written atomically by a worker, so a killed run leaves only whole chunks and
``--resume`` decodes only the rest. The final store is assembled by streaming the chunks into
``clips.npy`` through ``np.lib.format.open_memmap`` (never the whole split in RAM); then the work
folder is removed.

Determinism: a training clip's random start comes from ``np.random.default_rng([seed, i])`` (``i`` the
video's index in the split), never from worker scheduling, and chunks are assembled in order, so a
resumed run, or one with more workers, writes the same bytes as a single uninterrupted run. Timings
are reported in ``PrepareSummary`` and never written into the store.

Sampling: training clips follow ``spec.train_sampling`` (``cached_random``: one random clip per
video drawn here; ``random`` is stored the same way, since a store holds fixed clips; ``center``).
The test store's ``clips.npy`` holds the deterministic centre clip of each video. A spec with test views
(``ClipSpec.test_views`` V > 0: ``test_sampling`` ``random``, or ``uniform`` with several clips) also gets
``views.npy`` (V, N, T, H, W, 3): view ``k`` of video ``i`` starts at a draw of
``np.random.default_rng([seed, i, k])`` (``random``; the published test reads a new random start at every
read, ``distill_utils/dataset.py:432-433``, fixed here so every evaluation sees the same views) or at the
``k``-th of V evenly spaced starts (``uniform``).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from videodd.data.spec import ClipSpec
from videodd.data.store import ClipStore, StoreError, StoreMeta, write_manifest
from videodd.errors import VideoddError
from videodd.io import atomic_dir, atomic_path, write_json

if TYPE_CHECKING:
    from videodd.data.layouts import SplitIndex, VideoItem

WORK_FORMAT = 1
DEFAULT_CHUNK_SIZE = 16
CHUNK_SIZE_ENV = "VIDEODD_PREPARE_CHUNK"  # lets tests and benchmarks use tiny chunks without a flag


class PrepareError(VideoddError, ValueError):
    """prepare cannot go on: unfinished work with other settings, a class without clips, bad options."""


@dataclass
class PrepareSummary:
    """What one ``prepare_split`` run did (timings live here, never in the store)."""

    dataset: str
    split: str
    path: str
    videos: int  # videos in the split's list
    ok: int  # clips in the store
    failed: int  # videos that could not be decoded (recorded in meta.failures)
    missing: int  # listed in the annotations but absent on disk (recorded in meta.failures)
    decoded: int  # videos decoded in this run (fewer than ``videos`` when resumed)
    seconds: float
    bytes: int  # size of clips.npy

    @property
    def videos_per_second(self) -> float:
        return self.decoded / self.seconds if self.seconds > 0 else 0.0

    def line(self) -> str:
        resumed = f", {self.videos - self.decoded} resumed" if self.decoded < self.videos else ""
        return (f"{self.split}: {self.ok} clips from {self.videos} videos ({self.failed} failed, "
                f"{self.missing} missing{resumed}) in {self.seconds:.1f} s, {self.videos_per_second:.1f} videos/s, "
                f"{self.bytes / 2**20:.1f} MiB -> {self.path}")


# -- settings of a split: what a resume must match ------------------------------------------------
def _sampling(spec: ClipSpec, split: str) -> str:
    """read_clip's sampling of the clips.npy clip of this split (a store holds fixed clips: per-read random
    is cached); the test clip is always the centre one, its other clips are views (:func:`_views`)."""
    if split == "train":
        return "center" if spec.train_sampling == "center" else "random"
    return "center"


def _views(spec: ClipSpec, split: str) -> tuple[int, str | None]:
    """(views per video, read_clip sampling of the views): test stores only."""
    views = spec.test_views if split == "test" else 0
    return views, (spec.test_sampling if views else None)


def _settings(items: Sequence[VideoItem], *, classes: list[str], spec: ClipSpec, dataset: str, split: str,
              seed: int, frame_template: str | None) -> dict[str, Any]:
    """Everything that decides the store's bytes (the video list by id and label, not by absolute path,
    so a dataset moved to another disk can still be resumed)."""
    sampling = _sampling(spec, split)
    views, view_sampling = _views(spec, split)
    seeded = sampling == "random" or view_sampling == "random"
    h = hashlib.sha256()
    for item in items:
        h.update(f"{item.source_id}\t{item.label}\n".encode())
    return {
        "work_format": WORK_FORMAT,
        "dataset": dataset,
        "split": split,
        "classes": list(classes),
        "spec": spec.to_dict(),
        "sampling": sampling,
        "seed": int(seed) if seeded else None,  # the centre clip does not depend on it
        **({"views": views, "view_sampling": view_sampling} if views else {}),  # absent: old settings unchanged
        "frame_template": frame_template,
        "videos": len(items),
        "videos_sha256": h.hexdigest(),
    }


def _settings_digest(settings: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]


def _describe_mismatch(old: dict[str, Any], new: dict[str, Any]) -> str:
    keys = [k for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)]
    parts = []
    for k in keys:
        if k == "spec" and isinstance(old.get(k), dict):
            parts += [f"spec.{f}: {old[k].get(f)!r} -> {new[k].get(f)!r}" for f in new[k] if old[k].get(f) != new[k][f]]
        elif k in ("classes", "videos_sha256"):
            parts.append(f"{'class list' if k == 'classes' else 'video list'} differs")
        else:
            parts.append(f"{k}: {old.get(k)!r} -> {new.get(k)!r}")
    return "; ".join(parts)


# -- work folder ---------------------------------------------------------------------------------
def _work_dir(out: Path, split: str) -> Path:
    return out / f".{split}.partial"


def _chunk_paths(work: Path, index: int) -> tuple[Path, Path]:
    return work / f"chunk-{index:05d}.npy", work / f"chunk-{index:05d}.json"


def _chunk_views_path(work: Path, index: int) -> Path:
    return work / f"chunk-{index:05d}.views.npy"


def _chunk_done(work: Path, index: int) -> bool:
    npy, record = _chunk_paths(work, index)
    return npy.is_file() and record.is_file()  # the json is written after the npy


def _open_work(work: Path, settings: dict[str, Any], *, resume: bool, chunk_size: int) -> int:
    """Create or reopen the work folder; returns the chunk size to use (a resume keeps the old one)."""
    path = work / "settings.json"
    if not resume:
        _refuse_leftovers(work)
    if path.is_file():
        try:
            saved = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise PrepareError(f"{path}: unreadable ({err}); delete {work} to start over") from None
        if saved.get("settings") != settings:
            why = _describe_mismatch(saved.get("settings", {}), settings)
            raise PrepareError(f"{work} was started with other settings ({why}); rerun with the original settings, "
                               "or delete that folder to start over")
        return int(saved["chunk_size"])
    work.mkdir(parents=True, exist_ok=True)
    write_json(path, {"settings": settings, "chunk_size": chunk_size})
    return chunk_size


def _finished_store(store_dir: Path, settings: dict[str, Any], mean: Sequence[float] | None) -> ClipStore | None:
    """The store at ``store_dir`` when it was prepared with exactly these settings (resume skips it)."""
    try:
        store = ClipStore(store_dir)
    except StoreError:
        return None
    prep = store.meta.extra.get("prepare", {})
    if prep.get("settings_digest") != _settings_digest(settings):
        return None
    if mean is not None and list(store.meta.mean) != list(mean):
        return None  # a test store normalized with another training store's statistics
    return store


# -- workers ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _ChunkTask:
    """One chunk of videos for a worker; plain data so it pickles cheaply across processes."""

    work: str
    index: int
    items: tuple[tuple[int, str, int, str], ...]  # (index in split, path, label, source_id)
    spec: dict[str, Any]
    sampling: str
    seed: int
    frame_template: str | None
    threads: int | None  # decoder threads: 1 inside a pool (the pool is the parallelism), FFmpeg's default alone
    views: int = 0  # test views per video (0: none)
    view_sampling: str | None = None  # read_clip sampling of the views


def _load_reader() -> tuple[Callable[..., Any], type[BaseException]]:
    """read_clip and DecodeError, imported in the worker (a seam tests can replace)."""
    from videodd.data.decode import DecodeError, read_clip

    return read_clip, DecodeError


def _read_one(read_clip: Callable[..., Any], decode_error: type[BaseException], task: _ChunkTask, spec: ClipSpec,
              index: int, path: str) -> tuple[np.ndarray | None, dict[str, Any] | None, str | None]:
    """(clip, info, None) or (None, None, reason); with views, clip is (1 + V, T, H, W, 3): the clip, then
    its views, and ``info["views"]`` their starts and strides."""
    rng = np.random.default_rng([task.seed, index]) if task.sampling == "random" else None
    reads: list[dict[str, Any]] = [{"sampling": task.sampling, "rng": rng}]
    for k in range(task.views):
        if task.view_sampling == "random":
            reads.append({"sampling": "random", "rng": np.random.default_rng([task.seed, index, k])})
        else:
            reads.append({"sampling": "uniform", "clip_index": k, "num_clips": task.views})
    clips, infos = [], []
    expected = (*spec.shape, 3)
    for read in reads:
        try:
            clip, info = read_clip(path, spec, frame_template=task.frame_template, threads=task.threads, **read)
        except decode_error as err:
            return None, None, str(getattr(err, "reason", err))
        except Exception as err:  # noqa: BLE001 - one odd file must not end a day-long prepare; it is recorded
            return None, None, f"unexpected {type(err).__name__}: {err}"
        if clip.dtype != np.uint8 or clip.shape != expected:
            return None, None, f"decoder returned {clip.dtype} {clip.shape}, expected uint8 {expected}"
        clips.append(clip)
        infos.append(info.to_dict())
    info = infos[0]
    if task.views:
        info["views"] = [{"start": v["start"], "stride": v["stride"]} for v in infos[1:]]
        return np.stack(clips), info, None
    return clips[0], info, None


def _process_chunk(task: _ChunkTask) -> tuple[int, int]:
    """Decode one chunk and write its two files atomically; returns (videos, clips)."""
    read_clip, decode_error = _load_reader()
    spec = ClipSpec.from_dict(task.spec)
    clips: list[np.ndarray] = []
    record: dict[str, Any] = {"labels": [], "source_ids": [], "infos": [], "failures": []}
    for index, path, label, source_id in task.items:
        clip, info, reason = _read_one(read_clip, decode_error, task, spec, index, path)
        if clip is None:
            record["failures"].append({"path": path, "source_id": source_id, "reason": reason})
            continue
        clips.append(clip)
        record["labels"].append(label)
        record["source_ids"].append(source_id)
        record["infos"].append(info)
    shape = (1 + task.views, *spec.shape, 3) if task.views else (*spec.shape, 3)
    array = np.stack(clips) if clips else np.zeros((0, *shape), dtype=np.uint8)  # (n_ok, [1 + V,] T, H, W, 3)
    npy, meta = _chunk_paths(Path(task.work), task.index)
    if task.views:
        _save_npy(_chunk_views_path(Path(task.work), task.index), array[:, 1:])
        array = array[:, 0]
    _save_npy(npy, array)
    write_json(meta, record)  # last: its presence marks the chunk done
    return len(task.items), len(clips)


def _save_npy(path: Path, array: np.ndarray) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.save(fh, np.ascontiguousarray(array))  # a file handle: np.save would append ".npy" to the temporary name


def _spawn_can_start() -> bool:
    """Spawned workers re-import the parent's ``__main__`` from its file; a script read from stdin
    (``python - < x.py``) has none, so its workers would die at start."""
    main_file = getattr(sys.modules.get("__main__"), "__file__", None)
    return main_file is None or Path(main_file).is_file()


def _run_chunks(tasks: list[_ChunkTask], workers: int, on_done: Callable[[int], None]) -> None:
    """Run the chunk tasks, in this process (workers <= 1) or in a pool of spawned processes."""
    if workers > 1 and len(tasks) > 1 and not _spawn_can_start():
        print("videodd prepare: __main__ is not a file, so worker processes cannot start; decoding in this "
              "process", file=sys.stderr)
        workers = 1
    if workers <= 1 or len(tasks) <= 1:
        for task in tasks:
            on_done(_process_chunk(task)[0])
        return
    import concurrent.futures as cf
    import multiprocessing
    from concurrent.futures.process import BrokenProcessPool

    # "spawn": the parent may hold torch and its threads, which fork does not copy safely; workers
    # need only numpy, PyAV and Pillow (videodd.data imports torch lazily for this reason).
    ctx = multiprocessing.get_context("spawn")
    previous = os.environ.get(WORKER_ENV)
    os.environ[WORKER_ENV] = "1"  # spawned workers import only the data layer (see videodd/__init__.py)
    try:
        with cf.ProcessPoolExecutor(max_workers=min(workers, len(tasks)), mp_context=ctx,
                                    initializer=_exit_with_parent, initargs=(os.getpid(),)) as pool:
            futures = [pool.submit(_process_chunk, task) for task in tasks]
            try:
                for future in cf.as_completed(futures):
                    on_done(future.result()[0])
            except BrokenProcessPool:
                raise PrepareError("a decoding worker process died (out of memory, or killed); the chunks already "
                                   "done are kept: rerun with --resume (and fewer --workers)") from None
            except BaseException:
                pool.shutdown(wait=True, cancel_futures=True)  # finished chunks stay on disk for --resume
                raise
    finally:
        if previous is None:
            os.environ.pop(WORKER_ENV, None)
        else:
            os.environ[WORKER_ENV] = previous


WORKER_ENV = "VIDEODD_DATA_WORKER"
"""Set (to 1) in the environment of decoding workers: the package root then skips importing the whole API."""


def _exit_with_parent(parent: int) -> None:
    """Worker initializer: end this process when the parent that started it is gone (killed with -9, it
    cannot stop its pool), instead of decoding on as an orphan."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.2)
        os._exit(1)

    threading.Thread(target=watch, daemon=True, name="videodd-parent-watch").start()


# -- assembly --------------------------------------------------------------------------------------
def _read_records(work: Path, count: int) -> list[dict[str, Any]]:
    records = []
    for i in range(count):
        path = _chunk_paths(work, i)[1]
        try:
            records.append(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, json.JSONDecodeError) as err:
            raise PrepareError(f"{path}: unreadable chunk record ({err}); delete it and rerun with --resume") from None
    return records


def _check_classes(labels: np.ndarray, classes: list[str], failures: list[dict[str, str]],
                   items: Sequence[VideoItem], where: Path) -> None:
    """Every class needs at least one clip; name the empty ones and why."""
    counts = np.bincount(labels, minlength=len(classes)) if len(labels) else np.zeros(len(classes), dtype=np.int64)
    empty = [c for c in range(len(classes)) if counts[c] == 0]
    if not empty:
        return
    failed_ids = {f["source_id"] for f in failures}
    details = []
    for c in empty[:5]:
        listed = [it for it in items if it.label == c]
        failed = sum(it.source_id in failed_ids for it in listed)
        details.append(f"{classes[c]!r} ({len(listed)} videos listed, {failed} failed to decode)")
    more = f" and {len(empty) - 5} more" if len(empty) > 5 else ""
    empty_ids = {it.source_id for it in items if it.label in set(empty)}  # examples from the empty classes only
    reasons = "; ".join([f"{f['path']}: {f['reason']}" for f in failures if f["source_id"] in empty_ids][:2])
    raise PrepareError(f"{where}: no clips for class {', '.join(details)}{more}"
                       + (f"; e.g. {reasons}" if reasons else "")
                       + "; --drop-class NAME leaves a class out (recorded in the manifest), or fix the files")


def _missing_failures(missing: Iterable[dict[str, str]]) -> list[dict[str, str]]:
    out = []
    for m in missing:
        path = str(m.get("path", ""))
        out.append({"path": path, "source_id": str(m.get("source_id") or path),
                    "reason": str(m.get("reason", "listed in the annotations but not found"))})
    return out


def _short_counts(records: list[dict[str, Any]]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for r in records:
        for info in r["infos"]:
            if info.get("short"):
                counts[info["short"]] = counts.get(info["short"], 0) + 1
    return dict(sorted(counts.items()))


def _assemble(work: Path, records: list[dict[str, Any]], store_dir: Path, *, spec: ClipSpec, labels: np.ndarray,
              manifest: dict[str, Any], views: int = 0) -> StoreMeta:
    """Stream the chunk files into ``store_dir/clips.npy`` (a memmap) and, with ``views``, ``views.npy``, then
    labels and manifest, atomically."""
    shape = (len(labels), *spec.shape, 3)
    with atomic_dir(store_dir) as tmp:
        clips = np.lib.format.open_memmap(tmp / "clips.npy", mode="w+", dtype=np.uint8, shape=shape)
        out_views = (np.lib.format.open_memmap(tmp / "views.npy", mode="w+", dtype=np.uint8, shape=(views, *shape))
                     if views else None)
        pos = 0
        for i, record in enumerate(records):
            part = _load_chunk(_chunk_paths(work, i)[0], (len(record["labels"]), *shape[1:]))
            clips[pos : pos + len(part)] = part
            if out_views is not None:
                part_views = _load_chunk(_chunk_views_path(work, i), (len(part), views, *shape[1:]))
                out_views[:, pos : pos + len(part)] = part_views.swapaxes(0, 1)  # (n, V, ...) -> (V, n, ...)
            pos += len(part)
        clips.flush()
        if out_views is not None:
            out_views.flush()
        np.save(tmp / "labels.npy", labels)
        meta = write_manifest(tmp, clips, labels, spec=spec, views=out_views, **manifest)
        _write_clip_sources(tmp / "sources.jsonl", records)
        del clips, out_views  # close the memmaps before the folder is renamed
    return meta


def _load_chunk(path: Path, shape: tuple[int, ...]) -> np.ndarray:
    """A chunk array (memory-mapped) that must have ``shape`` (its clip count is the record's label count)."""
    try:
        part = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as err:
        raise PrepareError(f"{path}: unreadable chunk ({err}); delete it and its .json and rerun with "
                           "--resume") from None
    if part.shape != shape:
        raise PrepareError(f"{path}: shape {part.shape}, expected {shape} from its record; delete it and rerun "
                           "with --resume")
    return part


def _write_clip_sources(path: Path, records: list[dict[str, Any]]) -> None:
    """One line per clip: which source frames it came from (start, stride, short-video policy...)."""
    with open(path, "w", encoding="utf-8") as fh:
        for r in records:
            for source_id, info in zip(r["source_ids"], r["infos"], strict=True):
                fh.write(json.dumps({"source_id": source_id, **info}, sort_keys=True) + "\n")


# -- public API ----------------------------------------------------------------------------------
def default_chunk_size() -> int:
    """Videos per chunk: ``$VIDEODD_PREPARE_CHUNK`` or 16 (a chunk is the unit of resume and of progress)."""
    value = os.environ.get(CHUNK_SIZE_ENV)
    return max(1, int(value)) if value else DEFAULT_CHUNK_SIZE


def default_workers() -> int:
    return max(1, min(4, os.cpu_count() or 1))


def prepare_split_summary(
    items: Sequence[VideoItem],
    *,
    out: str | Path,
    classes: list[str],
    spec: ClipSpec,
    dataset: str,
    split: str,
    workers: int = 1,
    resume: bool = False,
    seed: int = 0,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    frame_template: str | None = None,
    missing: Iterable[dict[str, str]] = (),
    progress: bool = True,
    chunk_size: int | None = None,
    dropped: Sequence[dict[str, Any]] = (),
) -> tuple[ClipStore, PrepareSummary]:
    """``prepare_split`` that also returns what the run did (see there for the arguments); ``dropped``: the
    classes left out of the index on purpose, recorded in the manifest."""
    start = time.perf_counter()
    out = Path(out)
    missing_failures = _missing_failures(missing)
    settings = _split_settings(items, missing_failures, classes=classes, spec=spec, dataset=dataset, split=split,
                               seed=seed, frame_template=frame_template)
    work = _work_dir(out, split)
    if resume and not work.exists():
        done = _finished_store(out / split, settings, mean)
        if done is not None:
            return done, _summary(done, dataset, split, len(items), 0, time.perf_counter() - start)
    chunk = _open_work(work, settings, resume=resume, chunk_size=chunk_size or default_chunk_size())
    decoded, chunks = _decode_chunks(items, work, chunk, spec=spec, settings=settings, seed=seed, workers=workers,
                                     progress=progress, desc=f"{dataset} {split}")
    records = _read_records(work, chunks)
    _write_split(work, records, items, out / split, spec=spec, settings=settings, missing_failures=missing_failures,
                 mean=mean, std=std, dropped=list(dropped))
    shutil.rmtree(work, ignore_errors=True)
    store = ClipStore(out / split)
    return store, _summary(store, dataset, split, len(items), decoded, time.perf_counter() - start)


def _split_settings(items: Sequence[VideoItem], missing_failures: list[dict[str, str]], **fields: Any
                    ) -> dict[str, Any]:
    """What identifies a split's decoding work (a resume must match it)."""
    settings = _settings(items, **fields)
    settings["missing_sha256"] = hashlib.sha256(json.dumps(missing_failures, sort_keys=True).encode()).hexdigest()
    return settings


def _decode_chunks(items: Sequence[VideoItem], work: Path, chunk: int, *, spec: ClipSpec, settings: dict[str, Any],
                   seed: int, workers: int, progress: bool, desc: str) -> tuple[int, int]:
    """Decode the chunks not done yet; returns (videos decoded now, number of chunks)."""
    bounds = [(i, s, min(s + chunk, len(items))) for i, s in enumerate(range(0, len(items), chunk))]
    threads = 1 if workers > 1 else None
    tasks = [_task(work, i, items[s:e], s, spec, settings, seed, threads) for i, s, e in bounds
             if not _chunk_done(work, i)]
    todo = sum(len(t.items) for t in tasks)
    _decode_with_progress(tasks, workers, total=len(items), done=len(items) - todo, progress=progress, desc=desc)
    return todo, len(bounds)


def _write_split(work: Path, records: list[dict[str, Any]], items: Sequence[VideoItem], store_dir: Path, *,
                 spec: ClipSpec, settings: dict[str, Any], missing_failures: list[dict[str, str]],
                 mean: Sequence[float] | None, std: Sequence[float] | None, dropped: list[dict[str, Any]]) -> None:
    """Check every class has clips, then assemble the store (only deterministic fields in the manifest)."""
    classes = settings["classes"]
    labels = np.asarray([lab for r in records for lab in r["labels"]], dtype=np.int64)
    failures = missing_failures + [f for r in records for f in r["failures"]]
    _check_classes(labels, classes, failures, items, store_dir)
    extra = {"prepare": {"settings_digest": _settings_digest(settings), "sampling": settings["sampling"],
                         "seed": settings["seed"], "frame_template": settings["frame_template"],
                         "videos": len(items), "missing": len(missing_failures),
                         "short_videos": _short_counts(records),
                         **_views_extra(settings),
                         **({"dropped_classes": dropped} if dropped else {})}}
    _assemble(work, records, store_dir, spec=spec, labels=labels, views=settings.get("views", 0), manifest={
        "dataset": settings["dataset"], "split": settings["split"], "classes": list(classes),
        "mean": None if mean is None else list(mean), "std": None if std is None else list(std),
        "source_ids": [s for r in records for s in r["source_ids"]], "failures": failures, "extra": extra})


def _views_extra(settings: dict[str, Any]) -> dict[str, Any]:
    """What meta.json says about the views (nothing without views)."""
    if not settings.get("views"):
        return {}
    how = ("np.random.default_rng([seed, i, k]).integers over the spec's start range (i: the video's index in "
           "the split's list, k: the view)" if settings["view_sampling"] == "random"
           else "the k-th of the views' evenly spaced starts")
    return {"views": {"count": settings["views"], "file": "views.npy", "shape": "(K, N, T, H, W, C)",
                      "sampling": settings["view_sampling"], "seed": settings["seed"], "starts": how,
                      "flip": "none (a read-time flip is the protocol's)"}}


def _task(work: Path, index: int, items: Sequence[VideoItem], first: int, spec: ClipSpec, settings: dict[str, Any],
          seed: int, threads: int | None) -> _ChunkTask:
    return _ChunkTask(work=str(work), index=index, spec=spec.to_dict(), sampling=settings["sampling"], seed=int(seed),
                      frame_template=settings["frame_template"], threads=threads,
                      views=int(settings.get("views", 0)), view_sampling=settings.get("view_sampling"),
                      items=tuple((first + k, str(it.path), int(it.label), it.source_id) for k, it in enumerate(items)))


def _decode_with_progress(tasks: list[_ChunkTask], workers: int, *, total: int, done: int, progress: bool,
                          desc: str) -> None:
    from tqdm import tqdm

    with tqdm(total=total, initial=done, unit="video", desc=desc, disable=not progress, file=sys.stderr,
              dynamic_ncols=True, smoothing=0.1) as bar:
        _run_chunks(tasks, workers, bar.update)


def _summary(store: ClipStore, dataset: str, split: str, videos: int, decoded: int, seconds: float) -> PrepareSummary:
    failures = store.meta.failures
    missing = int(store.meta.extra.get("prepare", {}).get("missing", 0))
    return PrepareSummary(dataset=dataset, split=split, path=str(store.root), videos=videos, ok=len(store),
                          failed=len(failures) - missing, missing=missing, decoded=decoded, seconds=seconds,
                          bytes=(store.root / "clips.npy").stat().st_size)


def prepare_split(
    items: Sequence[VideoItem],
    *,
    out: str | Path,
    classes: list[str],
    spec: ClipSpec,
    dataset: str,
    split: str,
    workers: int = 1,
    resume: bool = False,
    seed: int = 0,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    frame_template: str | None = None,
    missing: Iterable[dict[str, str]] = (),
    progress: bool = True,
    chunk_size: int | None = None,
) -> ClipStore:
    """Decode ``items`` into the ClipStore ``OUT/<split>`` (work folder ``OUT/.<split>.partial``).

    Args:
        items: the split's videos (files or frame folders) with labels into ``classes``.
        out: the dataset folder (the store is ``out/split``).
        spec: frames, size, stride and sampling of the clips.
        workers: decoding processes (1: decode in this process).
        resume: continue an interrupted run (refused if its settings differ); without it, leftover
            unfinished work is an error rather than silently thrown away.
        seed: seed of the cached random training clips (clip ``i`` uses ``default_rng([seed, i])``).
        mean, std: normalization to record (the training store's, for a test split); computed from
            the clips when omitted.
        frame_template: file name template of frame folders (``img_{:05d}.jpg``); None auto-detects.
        missing: listed-but-absent videos (``{"path", "reason"}``), recorded in ``meta.failures``.
        chunk_size: videos per chunk (default ``$VIDEODD_PREPARE_CHUNK`` or 16).

    Raises:
        PrepareError: a class ends with no clips, or unfinished work does not match.
    """
    store, _ = prepare_split_summary(items, out=out, classes=classes, spec=spec, dataset=dataset, split=split,
                                     workers=workers, resume=resume, seed=seed, mean=mean, std=std,
                                     frame_template=frame_template, missing=missing, progress=progress,
                                     chunk_size=chunk_size)
    return store


def _missing_for(index: SplitIndex, split: str) -> list[dict[str, str]]:
    """The index's missing entries of one split (an entry that does not say its split counts as train)."""
    return [m for m in index.missing if m.get("split", "train") == split]


def check_index(index: SplitIndex, min_videos: int = 1) -> None:
    """Refuse, before anything is decoded, an index with a class that has fewer than ``min_videos`` videos
    listed in the training or the test split (each split needs every class)."""
    short = [(c, n) for c, n in index.counts().items() if min(n) < min_videos]
    if short:
        shown = ", ".join(f"{c!r} ({tr} train, {te} test)" for c, (tr, te) in short[:5])
        more = f" and {len(short) - 5} more" if len(short) > 5 else ""
        raise PrepareError(f"{index.dataset}: classes with fewer than {min_videos} video(s) in a split: {shown}{more}. "
                           "Each split needs every class: --min-videos-per-class N drops the classes below N "
                           "(recorded in the manifest), --drop-class NAME drops one, or fix the layout")


def prepare_dataset(
    index: SplitIndex,
    out: str | Path,
    spec: ClipSpec,
    *,
    workers: int = 1,
    resume: bool = False,
    seed: int = 0,
    progress: bool = True,
    chunk_size: int | None = None,
    on_summary: Callable[[PrepareSummary], None] | None = None,
) -> tuple[ClipStore, ClipStore]:
    """Write ``OUT/train`` (mean/std from its clips) then ``OUT/test`` (the training mean/std).

    What the index knows is checked before decoding (every class has videos in both splits), and the test
    split is decoded first, so that a class whose test videos are all unreadable fails before hours of
    training-split decoding. ``on_summary`` receives each split's PrepareSummary (the CLI prints them).
    With ``resume``, a split whose store is already finished with the same settings is kept as it is.
    """
    out = Path(out)
    check_index(index)
    if not resume:  # refuse before spending hours on train when test has leftovers
        for split in ("train", "test"):
            _refuse_leftovers(_work_dir(out, split))
    _decode_test_first(index, out, spec, workers=workers, resume=resume, seed=seed, progress=progress,
                       chunk_size=chunk_size)
    stores = []
    mean = std = None
    for split, items in (("train", index.train), ("test", index.test)):
        store, summary = prepare_split_summary(
            items, out=out, classes=index.classes, spec=spec, dataset=index.dataset, split=split, workers=workers,
            resume=resume or split == "test", seed=seed, mean=mean, std=std, frame_template=index.frame_template,
            missing=_missing_for(index, split), progress=progress, chunk_size=chunk_size, dropped=index.dropped)
        if on_summary is not None:
            on_summary(summary)
        mean, std = store.meta.mean, store.meta.std
        stores.append(store)
    return stores[0], stores[1]


def _decode_test_first(index: SplitIndex, out: Path, spec: ClipSpec, *, workers: int, resume: bool, seed: int,
                       progress: bool, chunk_size: int | None) -> None:
    """Decode the test split's chunks (not its store, which needs the training statistics) and check that
    every class has a clip there; the later ``prepare_split_summary`` of the test split reuses the chunks."""
    missing = _missing_failures(_missing_for(index, "test"))
    settings = _split_settings(index.test, missing, classes=index.classes, spec=spec, dataset=index.dataset,
                               split="test", seed=seed, frame_template=index.frame_template)
    work = _work_dir(out, "test")
    if resume and not work.exists() and _finished_store(out / "test", settings, None) is not None:
        return  # a finished test store with these settings: nothing to check again
    chunk = _open_work(work, settings, resume=resume, chunk_size=chunk_size or default_chunk_size())
    _, chunks = _decode_chunks(index.test, work, chunk, spec=spec, settings=settings, seed=seed, workers=workers,
                               progress=progress, desc=f"{index.dataset} test")
    records = _read_records(work, chunks)
    labels = np.asarray([lab for r in records for lab in r["labels"]], dtype=np.int64)
    _check_classes(labels, list(index.classes), missing + [f for r in records for f in r["failures"]], index.test,
                   out / "test")


def _refuse_leftovers(work: Path) -> None:
    """Unfinished work is never thrown away silently: it may be hours of decoding."""
    if work.exists():
        done = len(list(work.glob("chunk-*.json")))
        raise PrepareError(f"{work} holds unfinished work ({done} chunks done); pass --resume to continue it, "
                           "or delete that folder to start over")
