"""ClipStore: one prepared split on disk, opened instantly through a uint8 memmap.

Layout of a store folder::

    clips.npy    uint8 (N, T, H, W, C), memory-mapped on open
    labels.npy   int64 (N,)
    views.npy    optional, uint8 (K, N, T, H, W, C): K more clips of each video (a test store whose spec
                 asks for several test clips: ``ClipSpec.test_views``); ``meta.views`` = K
    meta.json    dataset, split, classes, ClipSpec, mean/std, fingerprint, source ids, failures
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from videodd.data.spec import ClipSpec
from videodd.errors import VideoddError
from videodd.io import atomic_dir

if TYPE_CHECKING:  # torch is imported lazily: prepare's worker processes use this module without it
    import torch

STORE_FORMAT_VERSION = 1


class StoreError(VideoddError, ValueError):
    """A ClipStore is missing, corrupt or does not match what it is used with."""


@dataclass
class StoreMeta:
    """The manifest of a ClipStore (``meta.json``)."""

    dataset: str
    split: str
    classes: list[str]
    spec: ClipSpec
    mean: list[float]
    std: list[float]
    fingerprint: str = ""
    num_clips: int = 0
    source_ids: list[str] = field(default_factory=list)
    failures: list[dict[str, str]] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)
    format_version: int = STORE_FORMAT_VERSION
    views: int = 0  # K of views.npy (0: the store has no views)

    def to_json(self) -> dict[str, Any]:
        return {
            "format_version": self.format_version,
            "dataset": self.dataset,
            "split": self.split,
            "classes": list(self.classes),
            "spec": self.spec.to_dict(),
            "mean": list(self.mean),
            "std": list(self.std),
            "fingerprint": self.fingerprint,
            "num_clips": self.num_clips,
            "views": self.views,
            "source_ids": list(self.source_ids),
            "failures": list(self.failures),
            "extra": dict(self.extra),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> StoreMeta:
        return cls(
            dataset=data["dataset"],
            split=data["split"],
            classes=list(data["classes"]),
            spec=ClipSpec.from_dict(data["spec"]),
            mean=[float(x) for x in data["mean"]],
            std=[float(x) for x in data["std"]],
            fingerprint=data.get("fingerprint", ""),
            num_clips=int(data.get("num_clips", 0)),
            source_ids=list(data.get("source_ids", [])),
            failures=list(data.get("failures", [])),
            extra=dict(data.get("extra", {})),
            format_version=int(data.get("format_version", STORE_FORMAT_VERSION)),
            views=int(data.get("views", 0)),
        )


def compute_mean_std(clips: np.ndarray, chunk: int = 256) -> tuple[list[float], list[float]]:
    """Per-channel mean and std of uint8 clips ``(N, T, H, W, C)`` in [0, 1] units.

    Accumulated in float64 over chunks so a memmapped store is never loaded whole.
    """
    channels = clips.shape[-1]
    total = np.zeros(channels)
    total_sq = np.zeros(channels)
    count = 0
    for start in range(0, len(clips), chunk):
        block = np.asarray(clips[start : start + chunk], dtype=np.float64) / 255.0
        block = block.reshape(-1, channels)  # (n*T*H*W, C)
        total += block.sum(0)
        total_sq += (block**2).sum(0)
        count += block.shape[0]
    if count == 0:
        raise StoreError("cannot compute mean/std of an empty set of clips")
    mean = total / count
    std = np.sqrt(np.maximum(total_sq / count - mean**2, 1e-12))
    return mean.tolist(), std.tolist()


def fingerprint_arrays(clips: np.ndarray, labels: np.ndarray, classes: list[str], spec: ClipSpec,
                       views: np.ndarray | None = None) -> str:
    """sha256 of the clip bytes, labels, class names, spec and the views when there are any (first 16 hex
    digits; a store without views has the digest it had before views existed)."""
    h = hashlib.sha256()
    h.update(json.dumps({"classes": classes, "spec": spec.to_dict()}, sort_keys=True).encode())
    h.update(np.ascontiguousarray(labels, dtype=np.int64).tobytes())
    _hash_clips(h, clips)
    if views is not None and len(views):
        h.update(f"views {list(views.shape)}".encode())
        for view in views:  # (N, T, H, W, C) each
            _hash_clips(h, view)
    return h.hexdigest()[:16]


def _hash_clips(h: Any, clips: np.ndarray) -> None:
    block = _clips_per_block(clips)  # the digest does not depend on the block size (sha256 streams)
    for start in range(0, len(clips), block):
        h.update(np.ascontiguousarray(clips[start : start + block]).tobytes())


def _clips_per_block(clips: np.ndarray, budget_bytes: int = 64 << 20) -> int:
    """How many clips to read at once from a (memmapped) array so one block stays near ``budget_bytes``."""
    per_clip = int(np.prod(clips.shape[1:], dtype=np.int64)) * clips.dtype.itemsize if clips.ndim > 1 else 1
    return max(1, min(256, budget_bytes // max(1, per_clip)))


def check_arrays(clips: np.ndarray, labels: np.ndarray, classes: list[str], spec: ClipSpec,
                 views: np.ndarray | None = None) -> None:
    """Raise StoreError unless clips are uint8 ``(N, *spec.shape, C)`` with N labels in ``[0, len(classes))``
    and views, when given, uint8 ``(K, N, *spec.shape, C)``."""
    if views is not None and (views.dtype != np.uint8 or views.ndim != 6 or views.shape[1:] != clips.shape):
        raise StoreError(f"views must be uint8 (K, *clips.shape) = (K, {', '.join(map(str, clips.shape))}), got "
                         f"{views.dtype} {views.shape}")
    if clips.dtype != np.uint8 or clips.ndim != 5:
        raise StoreError(f"clips must be uint8 (N, T, H, W, C), got {clips.dtype} {clips.shape}")
    if clips.shape[1:4] != spec.shape:
        raise StoreError(f"clips have (T, H, W) = {clips.shape[1:4]} but the spec says {spec.shape}")
    if labels.shape != (len(clips),):
        raise StoreError(f"labels have shape {labels.shape}, expected ({len(clips)},)")
    if len(labels) and (labels.min() < 0 or labels.max() >= len(classes)):
        raise StoreError(f"labels must be in [0, {len(classes)}), got [{labels.min()}, {labels.max()}]")


def write_manifest(
    folder: Path,
    clips: np.ndarray,
    labels: np.ndarray,
    *,
    dataset: str,
    split: str,
    classes: list[str],
    spec: ClipSpec,
    mean: list[float] | None = None,
    std: list[float] | None = None,
    source_ids: list[str] | None = None,
    failures: list[dict[str, str]] | None = None,
    extra: dict[str, Any] | None = None,
    views: np.ndarray | None = None,
) -> StoreMeta:
    """Write ``folder/meta.json`` for clips and labels already in (or about to be moved into) ``folder``.

    Shared by ``write_store`` (arrays in memory) and ``prepare`` (a memmap assembled from chunks), so
    both give the same mean/std, fingerprint and manifest bytes for the same clips. ``views``: the
    ``(K, N, T, H, W, C)`` array of ``views.npy`` (fingerprinted; mean/std come from ``clips`` alone).
    """
    if mean is None or std is None:
        mean, std = compute_mean_std(clips, chunk=_clips_per_block(clips, 8 << 20))  # float64 copies: 8x
    meta = StoreMeta(
        dataset=dataset,
        split=split,
        classes=list(classes),
        spec=spec,
        mean=list(mean),
        std=list(std),
        fingerprint=fingerprint_arrays(clips, labels, list(classes), spec, views),
        num_clips=len(clips),
        views=0 if views is None else len(views),
        source_ids=list(source_ids or []),
        failures=list(failures or []),
        extra=dict(extra or {}),
    )
    (folder / "meta.json").write_text(json.dumps(meta.to_json(), indent=2) + "\n", encoding="utf-8")
    return meta


def write_store(
    root: str | Path,
    clips: np.ndarray,
    labels: np.ndarray,
    *,
    dataset: str,
    split: str,
    classes: list[str],
    spec: ClipSpec,
    mean: list[float] | None = None,
    std: list[float] | None = None,
    source_ids: list[str] | None = None,
    failures: list[dict[str, str]] | None = None,
    extra: dict[str, Any] | None = None,
    views: np.ndarray | None = None,
) -> ClipStore:
    """Write a ClipStore atomically (the folder appears whole or not at all).

    Args:
        clips: uint8 ``(N, T, H, W, C)``.
        labels: integer class indices ``(N,)`` into ``classes``.
        mean, std: normalization; computed from ``clips`` when omitted (pass the training
            store's values when writing a test store).
        views: optional uint8 ``(K, N, T, H, W, C)``: K more clips of each video (``views.npy``).
    """
    clips = np.asarray(clips)
    labels = np.asarray(labels, dtype=np.int64)
    views = None if views is None or len(views) == 0 else np.asarray(views)
    check_arrays(clips, labels, classes, spec, views)
    with atomic_dir(root) as tmp:
        np.save(tmp / "clips.npy", clips)
        np.save(tmp / "labels.npy", labels)
        if views is not None:
            np.save(tmp / "views.npy", views)
        write_manifest(tmp, clips, labels, dataset=dataset, split=split, classes=classes, spec=spec, mean=mean,
                       std=std, source_ids=source_ids, failures=failures, extra=extra, views=views)
    return ClipStore(root)


def _load_array(path: Path, *, mmap: bool = False) -> np.ndarray:
    """A ``.npy`` array of a store (memory-mapped with ``mmap``); StoreError naming the file when it is
    truncated, not a numpy array, or holds Python objects (which are never loaded)."""
    try:
        return np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except (ValueError, OSError, EOFError) as err:
        reason = ("it holds Python objects, which videodd never loads" if "pickle" in str(err)
                  else "truncated or not a numpy array")
        raise StoreError(f"{path}: corrupt store file: {reason}; prepare the store again (videodd prepare ... "
                         "--force)") from None


class ClipStore:
    """A prepared split: uint8 clips memory-mapped from ``clips.npy``, labels and manifest.

    ``batch(indices)`` returns normalized float videos ``(N, C, T, H, W)``; a store with views
    (``test_views`` K > 0) also gives ``view_batch(indices, view)``, the same from ``views.npy``.
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise StoreError(f"{self.root}: no such ClipStore folder (run `videodd prepare` first)")
        meta_path = self.root / "meta.json"
        for name in ("meta.json", "clips.npy", "labels.npy"):
            if not (self.root / name).is_file():
                raise StoreError(f"{self.root / name}: missing; {self.root} is not a complete ClipStore")
        try:
            self.meta = StoreMeta.from_json(json.loads(meta_path.read_text(encoding="utf-8")))
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as err:
            raise StoreError(f"{meta_path}: unreadable store manifest ({err})") from None
        self.clips = _load_array(self.root / "clips.npy", mmap=True)
        self.labels = _load_array(self.root / "labels.npy").astype(np.int64)
        expected = (self.meta.num_clips, *self.meta.spec.shape)
        if self.clips.dtype != np.uint8 or self.clips.shape[:4] != expected:
            raise StoreError(
                f"{self.root / 'clips.npy'}: shape {self.clips.shape} {self.clips.dtype} does not match the "
                f"manifest (N, T, H, W) = {expected} uint8"
            )
        if self.labels.shape != (self.meta.num_clips,):
            raise StoreError(f"{self.root / 'labels.npy'}: {self.labels.shape} labels for {expected[0]} clips")
        self.views: np.ndarray | None = None
        if self.meta.views:
            path = self.root / "views.npy"
            if not path.is_file():
                raise StoreError(f"{path}: missing; the manifest says the store has {self.meta.views} views")
            self.views = _load_array(path, mmap=True)
            if self.views.dtype != np.uint8 or self.views.shape != (self.meta.views, *self.clips.shape):
                raise StoreError(f"{path}: shape {self.views.shape} {self.views.dtype} does not match the manifest "
                                 f"(K, N, T, H, W, C) = {(self.meta.views, *self.clips.shape)} uint8")

    # -- description -------------------------------------------------------------------------
    @property
    def classes(self) -> list[str]:
        return self.meta.classes

    @property
    def num_classes(self) -> int:
        return len(self.meta.classes)

    @property
    def spec(self) -> ClipSpec:
        return self.meta.spec

    @property
    def channels(self) -> int:
        return int(self.clips.shape[-1])

    @property
    def video_shape(self) -> tuple[int, int, int, int]:
        """(C, T, H, W) of one normalized float clip."""
        return (self.channels, *self.spec.shape)

    @property
    def fingerprint(self) -> str:
        return self.meta.fingerprint

    @property
    def test_views(self) -> int:
        """K, the views per video in ``views.npy`` (0: the store has none)."""
        return int(self.meta.views)

    @property
    def nbytes(self) -> int:
        """Bytes of the uint8 clips."""
        return int(self.clips.nbytes)

    def __len__(self) -> int:
        return int(self.meta.num_clips)

    def __repr__(self) -> str:
        return (
            f"ClipStore({str(self.root)!r}, dataset={self.meta.dataset!r}, split={self.meta.split!r}, "
            f"clips={len(self)}, classes={self.num_classes}, shape={self.video_shape})"
        )

    def class_indices(self, c: int) -> np.ndarray:
        """Indices of the clips of class ``c``."""
        return np.flatnonzero(self.labels == c)

    def class_counts(self) -> np.ndarray:
        return np.bincount(self.labels, minlength=self.num_classes)

    # -- reading -----------------------------------------------------------------------------
    def normalization(self) -> tuple[torch.Tensor, torch.Tensor]:
        """mean, std as float tensors shaped (C, 1, 1, 1) to broadcast over (N, C, T, H, W)."""
        import torch

        mean = torch.tensor(self.meta.mean, dtype=torch.float32).view(-1, 1, 1, 1)
        std = torch.tensor(self.meta.std, dtype=torch.float32).view(-1, 1, 1, 1)
        return mean, std

    def batch(self, indices: np.ndarray | list[int] | torch.Tensor, device: str | torch.device = "cpu") -> torch.Tensor:
        """Normalized float32 videos ``(n, C, T, H, W)`` for the given clip indices."""
        import torch

        idx = np.asarray(indices, dtype=np.int64)
        order = np.argsort(idx, kind="stable")  # sorted reads are faster on a memmap
        raw = np.empty((len(idx), *self.clips.shape[1:]), dtype=np.uint8)
        raw[order] = self.clips[idx[order]]
        return normalize_uint8(torch.from_numpy(raw).to(device), self.meta.mean, self.meta.std)

    def view_batch(self, indices: np.ndarray | list[int] | torch.Tensor, view: int,
                   device: str | torch.device = "cpu") -> torch.Tensor:
        """Normalized float32 videos ``(n, C, T, H, W)`` of view ``view`` (0 <= view < ``test_views``) of the
        given videos, normalized like :meth:`batch`."""
        import torch

        if self.views is None or not 0 <= view < self.test_views:
            raise StoreError(f"{self.root}: no view {view}; the store has {self.test_views} views per video "
                             "(prepare with a spec whose test_sampling is 'random' and test_clips >= 1)")
        idx = np.asarray(indices, dtype=np.int64)
        order = np.argsort(idx, kind="stable")  # sorted reads are faster on a memmap
        raw = np.empty((len(idx), *self.clips.shape[1:]), dtype=np.uint8)
        raw[order] = self.views[view][idx[order]]
        return normalize_uint8(torch.from_numpy(raw).to(device), self.meta.mean, self.meta.std)

    def raw(self, indices: np.ndarray | list[int]) -> torch.Tensor:
        """The uint8 clips ``(n, T, H, W, C)`` as stored, for the given indices (a copy)."""
        import torch

        return torch.from_numpy(self.clips[np.asarray(indices, dtype=np.int64)].copy())

    def source_id(self, i: int) -> str:
        """The source video of clip ``i`` (its path relative to the dataset root), or ``index:i``."""
        return self.meta.source_ids[i] if i < len(self.meta.source_ids) else f"index:{i}"

    def labels_tensor(self, indices: np.ndarray | list[int] | None = None) -> torch.Tensor:
        import torch

        labels = self.labels if indices is None else self.labels[np.asarray(indices, dtype=np.int64)]
        return torch.from_numpy(np.ascontiguousarray(labels))

    # -- checks ------------------------------------------------------------------------------
    def verify(self) -> None:
        """Recompute the fingerprint; raise StoreError if the data changed on disk."""
        actual = fingerprint_arrays(self.clips, self.labels, self.classes, self.spec, self.views)
        if actual != self.meta.fingerprint:
            raise StoreError(
                f"{self.root}: fingerprint {actual} does not match the manifest's {self.meta.fingerprint}; "
                "the clips, views or labels were changed after prepare"
            )

    def check_compatible(self, *, classes: list[str], spec: ClipSpec, what: str) -> None:
        """Refuse to pair this store with something made for other classes or another clip spec."""
        problems = []
        if list(classes) != list(self.classes):
            missing = [c for c in classes if c not in self.classes]
            extra = [c for c in self.classes if c not in classes]
            if missing or extra:
                problems.append(f"classes differ (only in {what}: {missing[:5]}; only in store: {extra[:5]})")
            else:
                problems.append("the same classes in a different order")
        if spec.shape != self.spec.shape:
            problems.append(f"clip shape (T, H, W) {spec.shape} in {what} vs {self.spec.shape} in the store")
        if problems:
            raise StoreError(f"{what} does not match store {self.root}: " + "; ".join(problems))


def normalize_uint8(raw: torch.Tensor, mean: list[float], std: list[float]) -> torch.Tensor:
    """uint8 ``(N, T, H, W, C)`` -> normalized float32 ``(N, C, T, H, W)``."""
    import torch

    m = torch.tensor(mean, dtype=torch.float32, device=raw.device)
    s = torch.tensor(std, dtype=torch.float32, device=raw.device)
    # (u / 255 - m) / s == u * scale + shift: one fused pass over the float copy
    scale = (1.0 / (255.0 * s)).view(1, -1, 1, 1, 1)
    shift = (-m / s).view(1, -1, 1, 1, 1)
    x = raw.permute(0, 4, 1, 2, 3).to(torch.float32, memory_format=torch.contiguous_format)  # (N, C, T, H, W)
    return x.mul_(scale).add_(shift)


def denormalize_to_uint8(x: torch.Tensor, mean: list[float], std: list[float]) -> torch.Tensor:
    """Normalized float ``(N, C, T, H, W)`` -> uint8 ``(N, T, H, W, C)`` (clamped)."""
    import torch

    m = torch.tensor(mean, dtype=x.dtype, device=x.device).view(1, -1, 1, 1, 1)
    s = torch.tensor(std, dtype=x.dtype, device=x.device).view(1, -1, 1, 1, 1)
    pixels = (x * s + m).clamp(0, 1).mul(255).round().to(torch.uint8)
    return pixels.permute(0, 2, 3, 4, 1).contiguous()  # (N, T, H, W, C)
