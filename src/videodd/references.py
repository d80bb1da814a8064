"""What a distilled set is compared with, at the same budget (cached by key: they do not depend on the method).

- ``random``: random real clips at the set's IPC (a new selection per run);
- ``full``: the whole training set;
- ``bytes``: random real uint8 clips filling the set's stored bytes (a float32 set of IPC K costs as much
  as 4K uint8 clips per class): a margin over it is not a dtype effect;
- ``h264``: random real clips kept as H.264 streams in the set's stored bytes, decoded for training.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

import videodd.distributed as distributed
from videodd.augment import resolve_eval_augment
from videodd.config import ConfigError
from videodd.data.media import decode_video, encode_video
from videodd.data.store import ClipStore, normalize_uint8
from videodd.io import write_json
from videodd.protocol import EvalProtocol, Summary, run_protocol, summary_from_json
from videodd.seeding import make_generator
from videodd.selection import select_random
from videodd.train import StoreData, TensorData, TrainConfig, VideoData

try:
    import fcntl  # POSIX file locks: side-by-side evaluations share a reference (``_cached``)
except ImportError:  # Windows: each evaluation computes what it lacks, as before
    fcntl = None  # type: ignore[assignment]

REFERENCES = ("random", "bytes", "h264", "full")
"""The references an evaluation can add (the module docstring); all four by default."""

#: the names of the byte-budget references in reports
BYTES_REFERENCE = "random real uint8, same bytes"
H264_REFERENCE = "H.264 real, same bytes"

#: the H.264 reference keeps this many times the clips that uint8 would fit in the budget, at the best
#: quality (lowest CRF) that fits; halved until one CRF in 0..51 fits (a fixed rule, never chosen by accuracy)
H264_CLIPS_FACTOR = 4


def check_references(references: tuple[str, ...] | list[str]) -> None:
    """ConfigError naming any reference that is not one of :data:`REFERENCES`."""
    unknown = [r for r in references if r not in REFERENCES]
    if unknown:
        raise ConfigError(f"unknown reference(s) {unknown}; valid: {', '.join(REFERENCES)}")


@dataclasses.dataclass(frozen=True)
class ReferenceSetup:
    """What every reference shares: the stores, the protocol and where its results are cached.

    Attributes:
        train_store, test_store: the clips references train on and are tested on.
        protocol: the evaluation protocol (each reference trains ``protocol.runs`` runs).
        seed: the evaluation seed; run ``r`` trains model seed ``seed * 1000 + r``, as the method's runs do.
        cache_dir: where results are kept as JSON by key (they do not depend on the method).
    """

    train_store: ClipStore
    test_store: ClipStore
    protocol: EvalProtocol
    seed: int = 0
    device: str | torch.device = "cpu"
    progress: bool = False
    cache_dir: str | Path | None = None

    @property
    def seeds(self) -> list[int]:
        return [self.seed * 1000 + r for r in range(self.protocol.runs)]

    def key(self, kind: str) -> str:
        """The cache key of reference ``kind`` under this setup."""
        model = self.protocol.model_for(self.test_store.video_shape)
        return (f"{kind}-{self.protocol.name}-v{self.protocol.version}-{model}-r{self.protocol.runs}-s{self.seed}-"
                f"{self.train_store.fingerprint}-{self.test_store.fingerprint}")

    def run(self, datas: VideoData | list[VideoData], desc: str, train_cfg: TrainConfig | None = None,
            augment: Callable[[torch.Tensor, torch.Generator], torch.Tensor] | None = None) -> Summary:
        """:func:`run_protocol` on ``datas`` with this setup's protocol, seeds and device."""
        return run_protocol(datas, self.test_store, self.protocol, train_cfg or self.protocol.train,
                            seeds=self.seeds, device=self.device, progress=self.progress, desc=desc, augment=augment)


def _cached(cache_dir: str | Path | None, key: str, compute: Callable[[], Summary]) -> Summary:
    """Reference results are the same for every method: compute once per key, keep as JSON.

    Evaluations running side by side on one cache share the work: the first to need a key holds
    ``KEY.lock`` (an OS file lock, released if its process dies) while it computes, and the others wait
    for it and read its result instead of computing the same reference again. Under torchrun the ranks
    compute together, so there the lock is not taken (one job, one computation)."""
    if cache_dir is None:
        return compute()
    cache = Path(cache_dir) / f"{key}.json"
    if cache.is_file():
        return _read_cached(cache)
    if distributed.world_size() > 1 or fcntl is None:
        return _compute_and_write(cache, key, compute)
    cache.parent.mkdir(parents=True, exist_ok=True)
    with open(cache.with_suffix(".lock"), "a", encoding="utf-8") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # blocks while another process computes this key
        if cache.is_file():
            return _read_cached(cache)
        return _compute_and_write(cache, key, compute)


def _read_cached(cache: Path) -> Summary:
    return summary_from_json(json.loads(cache.read_text(encoding="utf-8")))


def _compute_and_write(cache: Path, key: str, compute: Callable[[], Summary]) -> Summary:
    summary = compute()
    if distributed.is_main():
        write_json(cache, {"key": key, "runs": [dataclasses.asdict(r) for r in summary.runs], "info": summary.info})
    return summary


def random_real_reference(setup: ReferenceSetup, ipc: int, *, augment: dict[str, Any] | None = None) -> Summary:
    """Random real clips at ``ipc``: run ``r`` trains on its own random selection (cached by key).

    ``augment``: a set's evaluation augmentation (``manifest.eval_augment``), applied to the real clips too,
    so that a method's augmented row is compared with real clips trained the same way.
    """
    train = setup.train_store
    fn = resolve_eval_augment(augment)[1] if augment is not None else None

    def compute() -> Summary:
        datas: list[VideoData] = [StoreData(train, select_random(train, ipc, make_generator(10_000 + setup.seed * 101
                                                                                            + r)))
                                  for r in range(setup.protocol.runs)]
        return setup.run(datas, f"random IPC {ipc}", augment=fn)

    tag = ""
    if augment is not None:  # name, version and options: another augmentation is another reference
        digest = hashlib.sha256(json.dumps(augment, sort_keys=True).encode()).hexdigest()[:8]
        tag = f"-{augment.get('name')}-v{augment.get('version')}-{digest}"
    summary = _cached(setup.cache_dir, setup.key(f"random-ipc{ipc}{tag}"), compute)
    return Summary(summary.runs, info={"ipc": ipc, "bytes": ipc * train.num_classes * clip_bytes(train)})


def full_data_reference(setup: ReferenceSetup) -> Summary:
    """The full training set under ``protocol.reference_train`` (cached by key)."""
    train = setup.train_store
    summary = _cached(setup.cache_dir, setup.key("full"),
                      lambda: setup.run(StoreData(train), "full data", setup.protocol.reference_train))
    return Summary(summary.runs, info={"bytes": train.nbytes})


# -- at the set's bytes -----------------------------------------------------------------------------
def clip_bytes(store: ClipStore) -> int:
    """Bytes of one uint8 clip of ``store``: ``T * H * W * C``."""
    c, t, h, w = store.video_shape
    return c * t * h * w


def uint8_ipc_for(budget: int, store: ClipStore) -> int:
    """How many uint8 clips per class fit in ``budget`` bytes (0 when not even one per class), at most the
    smallest class's count (a budget above it buys no more real clips)."""
    return min(budget // (store.num_classes * clip_bytes(store)), int(store.class_counts().min()))


def equal_bytes_reference(setup: ReferenceSetup, budget: int) -> Summary | None:
    """Random real uint8 clips filling ``budget`` bytes: IPC ``budget // (K * clip bytes)`` (None when that is 0)."""
    ipc = uint8_ipc_for(budget, setup.train_store)
    return random_real_reference(setup, ipc) if ipc >= 1 else None


@dataclasses.dataclass(frozen=True)
class H264Selection:
    """One run's H.264 clips: store indices, the CRF they were encoded at, their bytes, and the streams."""

    indices: list[int]
    crf: int
    bytes: int
    streams: list[bytes]


def encode_selection(store: ClipStore, indices: list[int], budget: int) -> H264Selection | None:
    """The clips ``indices`` as bare H.264 streams at the lowest CRF (best quality) whose total fits ``budget``
    bytes; None when even CRF 51 does not fit. A bisection over CRF: bytes fall as CRF grows."""
    raw = store.raw(indices).numpy()  # (n, T, H, W, C) uint8

    def encoded(crf: int) -> list[bytes]:
        return [encode_video(clip, crf=crf, container="h264") for clip in raw]

    worst = encoded(51)
    if sum(map(len, worst)) > budget:
        return None
    low, high, best = 0, 51, worst  # invariant: CRF `high` fits
    while low < high:
        mid = (low + high) // 2
        streams = encoded(mid)
        if sum(map(len, streams)) <= budget:
            high, best = mid, streams
        else:
            low = mid + 1
    return H264Selection(list(indices), high, sum(map(len, best)), best)


def h264_selections(store: ClipStore, budget: int, runs: int, seed: int) -> list[H264Selection] | None:
    """Each run's random clips kept as H.264 in ``budget`` bytes: :data:`H264_CLIPS_FACTOR` times the uint8
    count per class (at least 1), halved until a CRF fits; None when one clip per class does not fit."""
    c, _, h, w = store.video_shape
    if h % 2 or w % 2:
        return None  # H.264 in yuv420p needs even frame sizes
    per_class = min(H264_CLIPS_FACTOR * max(1, uint8_ipc_for(budget, store)), int(store.class_counts().min()))
    while per_class >= 1:
        out = []
        for r in range(runs):
            idx = select_random(store, per_class, make_generator(20_000 + seed * 101 + r)).tolist()
            chosen = encode_selection(store, idx, budget)
            if chosen is None:
                break
            out.append(chosen)
        if len(out) == runs:
            return out
        per_class //= 2
    return None


def h264_reference(setup: ReferenceSetup, budget: int) -> Summary | None:
    """Random real clips stored as H.264 in ``budget`` bytes and decoded for training (None when they cannot
    fit). ``info``: clips per class, each run's CRF and bytes."""
    train = setup.train_store

    def compute() -> Summary:
        chosen = h264_selections(train, budget, setup.protocol.runs, setup.seed)
        if chosen is None:
            return Summary([], info={"unavailable": True})
        datas: list[VideoData] = []
        for sel in chosen:
            frames = torch.from_numpy(np.stack([decode_video(b, "h264") for b in sel.streams]))  # (n, T, H, W, C)
            videos = normalize_uint8(frames, train.meta.mean, train.meta.std)  # (n, C, T, H, W)
            datas.append(TensorData(videos, train.labels_tensor(sel.indices).long()))
        summary = setup.run(datas, "H.264 real")
        per_class = len(chosen[0].indices) // train.num_classes
        return Summary(summary.runs, info={"ipc": per_class, "crf": [c.crf for c in chosen],
                                           "bytes": [c.bytes for c in chosen], "budget": budget})

    summary = _cached(setup.cache_dir, setup.key(f"h264-b{budget}"), compute)
    return None if summary.info.get("unavailable") else summary
