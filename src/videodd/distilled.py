"""DistilledSet: the output of every method, stored as ONE ``.safetensors`` file.

The file holds the tensors a method keeps (pixels, real clips, statics + dynamics + weights,
latent cores, ...), the labels (tensor ``"labels"``: int64 ``(N,)`` hard labels or float
``(N, K)`` soft labels) and a JSON :class:`DistilledManifest` in the safetensors metadata under
the key ``"videodd"``. Loading never executes code (no pickle).

A manifest's ``kind`` names a *materializer* in :data:`MATERIALIZERS`: a function
``(tensors, manifest) -> videos`` that turns the stored tensors into normalized float32 videos
``(N, C, T, H, W)`` (the layout ``Conv3d`` takes, used everywhere in the library).
Built-in kinds:

- ``"pixels"``: ``tensors["videos"]`` float ``(N, C, T, H, W)``, already normalized. With
  ``manifest.extra["temporal"] = {"frames": t, "interp": ...}`` (temporal compression,
  :mod:`videodd.synthesis.temporal`) ``videos`` holds ``t`` frames ``(N, C, t, H, W)``, expanded
  to ``T`` by a fixed ``nearest``/``linear`` matrix or the stored ``interp_matrix`` ``(T, t)``.
- ``"real-clips"``: ``tensors["clips"]`` uint8 ``(N, T, H, W, C)`` real clips, normalized with
  the manifest's mean/std.
- ``"latent"``: recompressed codec latents (``latent.*``) and optionally the decoder weights
  (``codec.*``); decoded with the codec the manifest references (:mod:`videodd.codecs.latent_set`).
- ``"static_dynamic"``: frozen stills ``statics``, one-channel ``dynamics`` and the hallucinator's
  weights ``h.*`` (:mod:`videodd.synthesis.static_dynamic`), composed with a fixed pairing.

New kinds register a materializer with :func:`register_kind` (optionally with a cheap check of
the stored tensors that runs in :meth:`DistilledSet.validate`).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from videodd import __version__
from videodd.config import ConfigError, from_dict
from videodd.data.spec import ClipSpec
from videodd.data.store import ClipStore, StoreError, normalize_uint8
from videodd.io import atomic_path
from videodd.registry import Registry, UnknownNameError

__all__ = [
    "FORMAT_VERSION",
    "MATERIALIZERS",
    "METADATA_KEY",
    "DistilledManifest",
    "DistilledSet",
    "DistilledSetError",
    "IncompatibleStoreError",
    "Materialized",
    "human_bytes",
    "register_kind",
]

FORMAT_VERSION = 1
"""The newest DistilledSet format this library writes and reads."""

METADATA_KEY = "videodd"
"""The safetensors metadata key that holds the manifest JSON."""

LABELS_KEY = "labels"


class DistilledSetError(ValueError):
    """A distilled set cannot be loaded, saved or used; the message names the file and the problem."""


class IncompatibleStoreError(DistilledSetError, StoreError):
    """A distilled set does not match a ClipStore (classes, clip shape or normalization).

    Both a :class:`DistilledSetError` and a :class:`~videodd.data.store.StoreError`.
    """


def _where(path: str | os.PathLike[str] | None) -> str:
    return f"{path}: " if path is not None else ""


def _utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


# ------------------------------------------------------------------------------------------------
# Manifest
# ------------------------------------------------------------------------------------------------
@dataclass(kw_only=True)
class DistilledManifest:
    """Everything needed to interpret a distilled set, stored as JSON in the file's metadata.

    Attributes:
        kind: how to materialize the tensors into videos (a name in :data:`MATERIALIZERS`).
        method: the recipe that produced the set (e.g. ``"dm"``).
        config: the resolved method config (JSON-able).
        dataset: dataset name of the training store.
        dataset_fingerprint: fingerprint of the training store.
        classes: class names; label ``k`` means ``classes[k]``.
        spec: the ClipSpec of the videos: they are ``(N, C, T, H, W)`` with ``(T, H, W) = spec.shape``.
        mean, std: per-channel normalization of the training clips (the set lives in that space).
        seed: the seed of the distillation run.
        ipc: instances (videos) per class.
        learned_lr: a learning rate learned with the set (e.g. MTT), used by evaluation if given.
        storage_bytes: bytes of each stored tensor (``"labels"`` included) and ``"total"``;
            filled by :meth:`DistilledSet.save` and checked on load.
        library_version: videodd version that wrote the file.
        created: UTC ISO-8601 creation time (metadata only; nothing depends on it).
        extra: free-form JSON-able extras (e.g. ``"full_train_bytes"`` for the compression ratio).
        format_version: file format version.
    """

    kind: str
    method: str
    config: dict[str, Any]
    dataset: str
    dataset_fingerprint: str
    classes: list[str]
    spec: ClipSpec
    mean: list[float]
    std: list[float]
    seed: int
    ipc: int
    learned_lr: float | None = None
    storage_bytes: dict[str, int] = field(default_factory=dict)
    library_version: str = __version__
    created: str = field(default_factory=_utc_now)
    extra: dict[str, Any] = field(default_factory=dict)
    format_version: int = FORMAT_VERSION

    def to_json(self) -> dict[str, Any]:
        """A JSON-able dict (the spec through ``ClipSpec.to_dict``)."""
        return {
            "format_version": self.format_version,
            "kind": self.kind,
            "method": self.method,
            "config": dict(self.config),
            "dataset": self.dataset,
            "dataset_fingerprint": self.dataset_fingerprint,
            "classes": list(self.classes),
            "spec": self.spec.to_dict(),
            "mean": [float(x) for x in self.mean],
            "std": [float(x) for x in self.std],
            "seed": self.seed,
            "ipc": self.ipc,
            "learned_lr": self.learned_lr,
            "storage_bytes": {k: int(v) for k, v in self.storage_bytes.items()},
            "library_version": self.library_version,
            "created": self.created,
            "extra": dict(self.extra),
        }

    def dumps(self) -> str:
        """The manifest as a JSON string; raises DistilledSetError if a field is not JSON-able."""
        try:
            return json.dumps(self.to_json())
        except (TypeError, ValueError) as err:
            raise DistilledSetError(
                f"the manifest is not JSON-serializable ({err}); check config and extra"
            ) from None

    @classmethod
    def from_json(cls, data: Any, path: str | os.PathLike[str] | None = None) -> DistilledManifest:
        """Build a manifest from its JSON dict; errors name the missing or malformed fields.

        Unknown keys are ignored (a newer library may add optional fields without a new format
        version); a ``format_version`` newer than :data:`FORMAT_VERSION` is refused.
        """
        where = _where(path)
        if not isinstance(data, dict):
            raise DistilledSetError(f"{where}manifest must be a JSON object, got {type(data).__name__}")
        version = data.get("format_version")
        if isinstance(version, bool) or not isinstance(version, int):
            raise DistilledSetError(f"{where}manifest has no valid 'format_version' (got {version!r})")
        if version > FORMAT_VERSION:
            raise DistilledSetError(
                f"{where}written in distilled-set format {version}, but this videodd ({__version__}) reads "
                f"formats up to {FORMAT_VERSION}; upgrade videodd to load it"
            )
        if version < 1:
            raise DistilledSetError(f"{where}invalid format_version {version}")
        fields = {f.name: f for f in dataclasses.fields(cls)}
        required = [
            name
            for name, f in fields.items()
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        ]
        missing = [name for name in required if name not in data]
        if missing:
            raise DistilledSetError(f"{where}manifest is missing field(s) {missing}")
        known = {k: v for k, v in data.items() if k in fields}
        try:
            known["spec"] = ClipSpec.from_dict(known["spec"])
        except (ConfigError, TypeError, ValueError, AttributeError) as err:
            raise DistilledSetError(f"{where}manifest field 'spec' is invalid ({err})") from None
        try:
            return from_dict(cls, known, "manifest")
        except ConfigError as err:
            raise DistilledSetError(f"{where}invalid manifest ({err})") from None


# ------------------------------------------------------------------------------------------------
# Materializers
# ------------------------------------------------------------------------------------------------
Materializer = Callable[[dict[str, torch.Tensor], DistilledManifest], torch.Tensor]
KindCheck = Callable[[dict[str, torch.Tensor], DistilledManifest, int], None]
KindSummary = Callable[[dict[str, torch.Tensor], DistilledManifest], list[tuple[str, str]]]
KindStorage = Callable[[dict[str, torch.Tensor], DistilledManifest], dict[str, Any]]

MATERIALIZERS: Registry[Materializer] = Registry("distilled-set kind")
"""kind name -> ``(tensors, manifest) -> normalized float32 videos (N, C, T, H, W)``."""

_KIND_CHECKS: dict[str, KindCheck] = {}
_KIND_SUMMARIES: dict[str, KindSummary] = {}
_KIND_STORAGE: dict[str, KindStorage] = {}


def register_kind(
    name: str, *, check: KindCheck | None = None, summary: KindSummary | None = None,
    storage: KindStorage | None = None,
) -> Callable[[Materializer], Materializer]:
    """Register a materializer for a distilled-set kind.

    Args:
        name: the kind, as written in ``manifest.kind``.
        check: optional cheap validation ``(tensors, manifest, num_videos) -> None`` of the stored
            tensors (no materialization); it raises :class:`DistilledSetError`. It runs in
            :meth:`DistilledSet.validate`, so bad sets are refused at save and load time.
        summary: optional ``(tensors, manifest) -> [(key, value), ...]`` rows that
            :meth:`DistilledSet.describe` (``videodd info``) adds after the storage table.
        storage: optional ``(tensors, manifest) -> dict`` of storage figures by part, merged into
            :meth:`DistilledSet.storage_detail` (evaluation reports carry it).
    """

    def decorator(fn: Materializer) -> Materializer:
        MATERIALIZERS.register(name)(fn)
        if check is not None:
            _KIND_CHECKS[name] = check
        if summary is not None:
            _KIND_SUMMARIES[name] = summary
        if storage is not None:
            _KIND_STORAGE[name] = storage
        return fn

    return decorator


def _require(tensors: dict[str, torch.Tensor], name: str, manifest: DistilledManifest) -> torch.Tensor:
    if name not in tensors:
        raise DistilledSetError(
            f"a {manifest.kind!r} distilled set needs a tensor {name!r}; it has {sorted(tensors)}"
        )
    return tensors[name]


def _temporal_meta(manifest: DistilledManifest) -> dict[str, Any] | None:
    """The temporal-compression entry of a pixels set, or None (plain pixels; no import then)."""
    if "temporal" not in manifest.extra:
        return None
    from videodd.synthesis.temporal import temporal_meta  # lazy: synthesis imports torch.nn

    try:
        return temporal_meta(manifest)
    except ValueError as err:
        raise DistilledSetError(str(err)) from None


def _check_pixels(tensors: dict[str, torch.Tensor], manifest: DistilledManifest, num_videos: int) -> None:
    meta = _temporal_meta(manifest)
    if meta is not None:
        from videodd.synthesis.temporal import check_temporal

        try:
            check_temporal(tensors, manifest, num_videos, meta)
        except ValueError as err:
            raise DistilledSetError(str(err)) from None
        return
    videos = _require(tensors, "videos", manifest)
    expected = (num_videos, len(manifest.mean), *manifest.spec.shape)
    if not videos.is_floating_point() or tuple(videos.shape) != expected:
        raise DistilledSetError(
            f"tensor 'videos' must be float (N, C, T, H, W) = {expected}, "
            f"got {videos.dtype} {tuple(videos.shape)}"
        )


def _check_real_clips(tensors: dict[str, torch.Tensor], manifest: DistilledManifest, num_videos: int) -> None:
    clips = _require(tensors, "clips", manifest)
    expected = (num_videos, *manifest.spec.shape, len(manifest.mean))
    if clips.dtype != torch.uint8 or tuple(clips.shape) != expected:
        raise DistilledSetError(
            f"tensor 'clips' must be uint8 (N, T, H, W, C) = {expected}, "
            f"got {clips.dtype} {tuple(clips.shape)}"
        )


def _pixels_storage(tensors: dict[str, torch.Tensor], manifest: DistilledManifest) -> dict[str, Any]:
    meta = _temporal_meta(manifest)
    if meta is None:
        return {}
    from videodd.synthesis.temporal import MATRIX_KEY

    matrix = tensors.get(MATRIX_KEY)
    return {"stored_frames": int(meta["frames"]), "interp": meta["interp"],
            "videos_bytes": _tensor_bytes(_require(tensors, "videos", manifest)),
            "interp_matrix_bytes": 0 if matrix is None else _tensor_bytes(matrix)}


def _summarize_pixels(tensors: dict[str, torch.Tensor], manifest: DistilledManifest) -> list[tuple[str, str]]:
    meta = _temporal_meta(manifest)
    if meta is None:
        return []
    part = _pixels_storage(tensors, manifest)
    big = manifest.spec.frames
    matrix = (f"; learned ({big}, {meta['frames']}) matrix {human_bytes(part['interp_matrix_bytes'])}"
              if meta["interp"] == "learned" else "")
    return [("temporal", f"{meta['frames']} stored frames per video, expanded to T={big} by {meta['interp']} "
                         f"interpolation ({meta['frames']}/{big} of the pixels{matrix})")]


@register_kind("pixels", check=_check_pixels, summary=_summarize_pixels, storage=_pixels_storage)
def materialize_pixels(tensors: dict[str, torch.Tensor], manifest: DistilledManifest) -> torch.Tensor:
    """Synthetic pixels: ``videos`` float (N, C, T, H, W), already in normalized space; with temporal
    compression ``(N, C, t, H, W)`` expanded to ``T`` frames (:mod:`videodd.synthesis.temporal`)."""
    meta = _temporal_meta(manifest)
    if meta is not None:
        from videodd.synthesis.temporal import materialize_temporal

        return materialize_temporal(tensors, manifest, meta)
    return _require(tensors, "videos", manifest).float()


@register_kind("real-clips", check=_check_real_clips)
def materialize_real_clips(tensors: dict[str, torch.Tensor], manifest: DistilledManifest) -> torch.Tensor:
    """Selected real clips: ``clips`` uint8 (N, T, H, W, C), normalized with the manifest mean/std."""
    clips = _require(tensors, "clips", manifest)
    if clips.dtype != torch.uint8:
        raise DistilledSetError(f"tensor 'clips' must be uint8 (N, T, H, W, C), got {clips.dtype}")
    return normalize_uint8(clips, manifest.mean, manifest.std)


def _check_latent(tensors: dict[str, torch.Tensor], manifest: DistilledManifest, num_videos: int) -> None:
    from videodd.codecs.latent_set import check_latent_set  # lazy: codecs import torch.nn models

    try:
        check_latent_set(tensors, manifest, num_videos)
    except ValueError as err:
        raise DistilledSetError(str(err)) from None


def _summarize_latent(tensors: dict[str, torch.Tensor], manifest: DistilledManifest) -> list[tuple[str, str]]:
    from videodd.codecs.latent_set import latent_storage

    part = latent_storage(tensors, manifest)
    m = manifest.extra
    codec = m.get("codec") or {}
    where = "embedded in this file" if part["codec_embedded"] else (
        f"not in this file: {codec.get('kind')}:{codec.get('path')} (sha256 {str(codec.get('sha256'))[:16]})")
    match = m.get("match_ipc")
    budget = m.get("budget_bytes")
    budget_text = (f"; chosen to fit pixel IPC {match} ({human_bytes(int(budget))})" if match is not None
                   else f"; chosen to fit {human_bytes(int(budget))}" if budget is not None else "")
    err = (m.get("reconstruction_error") or {}).get("total")
    return [
        ("latents", f"{m.get('num_latents')} x {tuple(m.get('latent_shape') or ())}, compression "
                    f"{m.get('compression')}" + (f" (relative error {err:.3g})" if err is not None else "")),
        ("latent bytes", f"{human_bytes(part['latent_bytes'])} ({part['latent_bytes']:,})"),
        ("decoder bytes", f"{human_bytes(part['decoder_bytes'])} ({part['decoder_bytes']:,}), {where}"),
        ("pixel-eq. IPC", f"{part['pixel_equivalent_ipc']:.3g} (latent bytes / bytes of one float32 pixel IPC)"
                          + budget_text),
    ]


def _latent_storage(tensors: dict[str, torch.Tensor], manifest: DistilledManifest) -> dict[str, Any]:
    from videodd.codecs.latent_set import latent_storage

    return {**latent_storage(tensors, manifest), "match_ipc": manifest.extra.get("match_ipc"),
            "budget_bytes": manifest.extra.get("budget_bytes")}


@register_kind("latent", check=_check_latent, summary=_summarize_latent, storage=_latent_storage)
def materialize_latent(tensors: dict[str, torch.Tensor], manifest: DistilledManifest) -> torch.Tensor:
    """Codec latents: decompress ``latent.*``, decode with the referenced (or embedded) codec, normalize."""
    from videodd.codecs import CodecError
    from videodd.codecs.latent_set import decode_latent_set

    try:
        return decode_latent_set(tensors, manifest)
    except (CodecError, ValueError) as err:
        raise DistilledSetError(str(err)) from None


def _check_static_dynamic(tensors: dict[str, torch.Tensor], manifest: DistilledManifest, num_videos: int) -> None:
    from videodd.synthesis.static_dynamic import check_static_dynamic  # lazy: synthesis imports torch.nn

    try:
        check_static_dynamic(tensors, manifest, num_videos)
    except ValueError as err:
        raise DistilledSetError(str(err)) from None


def _static_dynamic_storage(tensors: dict[str, torch.Tensor], manifest: DistilledManifest) -> dict[str, Any]:
    from videodd.synthesis.static_dynamic import static_dynamic_storage

    return dict(static_dynamic_storage(tensors, manifest))


def _summarize_static_dynamic(tensors: dict[str, torch.Tensor],
                              manifest: DistilledManifest) -> list[tuple[str, str]]:
    part = _static_dynamic_storage(tensors, manifest)
    m = manifest.extra.get("static_dynamic") or {}
    if m.get("dynamics", True) is False:
        layout = f"statics only: spc {m.get('spc')} per class repeated over time (no dynamics, no H), "
    else:
        frozen = " (frozen at init, not trained)" if m.get("train_h", True) is False else ""
        layout = (f"spc {m.get('spc')} x dpc {m.get('dpc')} per class, H {m.get('mode')} width {m.get('width')}"
                  f"{frozen}, ")
    return [
        ("layout", layout + f"statics from {m.get('statics')}"),
        ("statics", f"{human_bytes(part['statics_bytes'])} ({part['statics_bytes']:,})"),
        ("dynamics", f"{human_bytes(part['dynamics_bytes'])} ({part['dynamics_bytes']:,})"),
        ("hallucinator", f"{human_bytes(part['hallucinator_bytes'])} ({part['hallucinator_bytes']:,})"),
    ]


@register_kind("static_dynamic", check=_check_static_dynamic, summary=_summarize_static_dynamic,
               storage=_static_dynamic_storage)
def materialize_static_dynamic(tensors: dict[str, torch.Tensor], manifest: DistilledManifest) -> torch.Tensor:
    """Static-dynamic sets: frozen ``statics``, ``dynamics`` and hallucinator ``h.*``, fixed pairing."""
    from videodd.synthesis.static_dynamic import materialize_static_dynamic as materialize

    try:
        return materialize(tensors, manifest)
    except (ValueError, RuntimeError, KeyError) as err:
        raise DistilledSetError(str(err)) from None


# ------------------------------------------------------------------------------------------------
# DistilledSet
# ------------------------------------------------------------------------------------------------
@dataclass
class Materialized:
    """Videos and labels ready for training.

    Attributes:
        videos: normalized float32 ``(N, C, T, H, W)``.
        labels: int64 ``(N,)`` hard labels or float ``(N, K)`` soft labels.
    """

    videos: torch.Tensor
    labels: torch.Tensor


def human_bytes(n: int) -> str:
    """``1536 -> '1.50 KiB'``; bytes below 1 KiB are printed exactly (``'80 B'``)."""
    n = int(n)
    if abs(n) < 1024:
        return f"{n} B"
    value = float(n)
    for unit in ("KiB", "MiB", "GiB", "TiB"):
        value /= 1024.0
        if abs(value) < 1024.0 or unit == "TiB":
            return f"{value:.2f} {unit}"
    raise AssertionError("unreachable")


def _tensor_bytes(t: torch.Tensor) -> int:
    return int(t.numel() * t.element_size())


@dataclass(eq=False, repr=False)
class DistilledSet:
    """A distilled set: the tensors a method keeps, labels, and the manifest.

    Attributes:
        tensors: method tensors by name (never ``"labels"``); their meaning depends on
            ``manifest.kind``.
        labels: int64 ``(N,)`` hard labels or float ``(N, K)`` soft labels, ``K = len(classes)``.
        manifest: the :class:`DistilledManifest`.
        path: the file it was loaded from or last saved to (for messages), if any.

    ``materialize()`` turns it into normalized float32 videos ``(N, C, T, H, W)`` and labels.
    """

    tensors: dict[str, torch.Tensor]
    labels: torch.Tensor
    manifest: DistilledManifest
    path: Path | None = None

    # -- description -------------------------------------------------------------------------
    @property
    def num_videos(self) -> int:
        """N, the number of videos (rows of the labels)."""
        return int(self.labels.shape[0]) if self.labels.dim() > 0 else 0

    @property
    def ipc(self) -> int:
        """Instances per class, as recorded in the manifest."""
        return int(self.manifest.ipc)

    @property
    def num_classes(self) -> int:
        return len(self.manifest.classes)

    @property
    def soft_labels(self) -> bool:
        """True for float ``(N, K)`` labels, False for integer ``(N,)`` labels."""
        return self.labels.is_floating_point()

    def __repr__(self) -> str:
        shapes = ", ".join(f"{k!r}: {tuple(v.shape)}" for k, v in self.tensors.items())
        where = f", path={str(self.path)!r}" if self.path is not None else ""
        return (
            f"DistilledSet(method={self.manifest.method!r}, kind={self.manifest.kind!r}, "
            f"videos={self.num_videos}, classes={self.num_classes}, ipc={self.ipc}, "
            f"tensors={{{shapes}}}{where})"
        )

    def storage_bytes(self) -> dict[str, int]:
        """Bytes of each tensor as stored (``numel * element_size``), ``"labels"`` and ``"total"``."""
        sizes = {name: _tensor_bytes(t) for name, t in self.tensors.items()}
        sizes[LABELS_KEY] = _tensor_bytes(self.labels)
        sizes["total"] = sum(sizes.values())
        return sizes

    def storage_detail(self) -> dict[str, Any]:
        """Storage figures for reports: ``pixel_bytes_per_ipc`` (one IPC of float32 videos, the
        published convention), ``pixel_equivalent_ipc`` (stored bytes without labels over it) and the
        kind's own parts (latent sets: ``latent_bytes``, ``decoder_bytes``, ``codec_embedded``, and a
        ``pixel_equivalent_ipc`` of the latent bytes alone)."""
        sizes = self.storage_bytes()
        per_ipc = 4 * len(self.manifest.classes) * len(self.manifest.mean) * math.prod(self.manifest.spec.shape)
        detail: dict[str, Any] = {
            "pixel_bytes_per_ipc": per_ipc,
            "pixel_equivalent_ipc": (sizes["total"] - sizes[LABELS_KEY]) / per_ipc if per_ipc else float("nan"),
        }
        hook = _KIND_STORAGE.get(self.manifest.kind)
        if hook is not None:
            detail.update(hook(self.tensors, self.manifest))
        return detail

    # -- checks ------------------------------------------------------------------------------
    def validate(self) -> None:
        """Raise DistilledSetError unless the set is consistent and finite.

        Checks: the kind is registered; the manifest's classes, normalization and ipc are sane;
        labels are ``(N,)`` integers in ``[0, K)`` or ``(N, K)`` floats; the kind's own tensor check;
        every floating tensor (labels included) is finite.
        """
        where = _where(self.path)
        m = self.manifest
        try:
            MATERIALIZERS.get(m.kind)
        except UnknownNameError as err:
            raise DistilledSetError(f"{where}{err}") from None
        k = len(m.classes)
        if k == 0:
            raise DistilledSetError(f"{where}the manifest lists no classes")
        if len(set(m.classes)) != k:
            dupes = sorted({c for c in m.classes if m.classes.count(c) > 1})
            raise DistilledSetError(f"{where}duplicate class names {dupes[:5]}")
        if not m.mean or len(m.mean) != len(m.std):
            raise DistilledSetError(
                f"{where}mean ({len(m.mean)} values) and std ({len(m.std)} values) must be one per channel"
            )
        if any(not math.isfinite(s) or s <= 0 for s in m.std) or any(not math.isfinite(x) for x in m.mean):
            raise DistilledSetError(f"{where}invalid normalization mean={m.mean} std={m.std}")
        if m.ipc < 0:
            raise DistilledSetError(f"{where}ipc must be >= 0, got {m.ipc}")
        if m.learned_lr is not None and not (math.isfinite(m.learned_lr) and m.learned_lr > 0):
            raise DistilledSetError(f"{where}learned_lr must be a positive finite number, got {m.learned_lr}")

        if not isinstance(self.labels, torch.Tensor):
            raise DistilledSetError(f"{where}labels must be a tensor, got {type(self.labels).__name__}")
        for name, t in self.tensors.items():
            if not isinstance(t, torch.Tensor):
                raise DistilledSetError(f"{where}tensor {name!r} is a {type(t).__name__}, not a torch.Tensor")
        if LABELS_KEY in self.tensors:
            raise DistilledSetError(
                f"{where}a method tensor may not be named {LABELS_KEY!r} (reserved for the labels)"
            )

        labels = self.labels
        if labels.is_floating_point():
            if labels.dim() != 2 or labels.shape[1] != k:
                raise DistilledSetError(
                    f"{where}soft labels must be float (N, K) with K = {k} classes, got {tuple(labels.shape)}"
                )
        elif labels.dtype in (torch.bool, torch.complex64, torch.complex128):
            raise DistilledSetError(f"{where}labels must be int64 (N,) or float (N, K), got {labels.dtype}")
        else:
            if labels.dim() != 1:
                raise DistilledSetError(
                    f"{where}hard labels must be integer (N,), got shape {tuple(labels.shape)}"
                )
            if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= k):
                raise DistilledSetError(
                    f"{where}hard labels must be in [0, {k}) for {k} classes, "
                    f"got [{int(labels.min())}, {int(labels.max())}]"
                )

        check = _KIND_CHECKS.get(m.kind)
        if check is not None:
            try:
                check(self.tensors, m, self.num_videos)
            except DistilledSetError as err:
                raise DistilledSetError(f"{where}{err}") from None

        for name, t in [*self.tensors.items(), (LABELS_KEY, labels)]:
            if t.is_floating_point() or t.is_complex():
                finite = torch.isfinite(t)
                if not bool(finite.all()):
                    n_nan = int(torch.isnan(t).sum())
                    n_inf = int((~finite).sum()) - n_nan
                    raise DistilledSetError(
                        f"{where}tensor {name!r} has {n_nan + n_inf} non-finite value(s) "
                        f"({n_nan} NaN, {n_inf} Inf) of {t.numel()}; refusing a broken distilled set"
                    )

    def check_compatible(self, store: ClipStore, *, check_normalization: bool = True) -> None:
        """Refuse a ClipStore with other classes, another clip shape or (optionally) other normalization.

        Raises :class:`IncompatibleStoreError` (both a DistilledSetError and a StoreError) whose
        message says what differs.
        """
        where = self.path if self.path is not None else f"({self.manifest.method})"
        what = f"distilled set {where}"
        try:
            store.check_compatible(classes=self.manifest.classes, spec=self.manifest.spec, what=what)
        except StoreError as err:
            raise IncompatibleStoreError(str(err)) from None
        if store.channels != len(self.manifest.mean):
            raise IncompatibleStoreError(
                f"{what} does not match store {store.root}: {len(self.manifest.mean)} channels in {what} vs "
                f"{store.channels} in the store"
            )
        if check_normalization:
            ours = self.manifest.mean + self.manifest.std
            theirs = list(store.meta.mean) + list(store.meta.std)
            same = len(ours) == len(theirs) and all(
                math.isclose(a, b, rel_tol=1e-5, abs_tol=1e-7) for a, b in zip(ours, theirs, strict=True)
            )
            if not same:
                raise IncompatibleStoreError(
                    f"{what} does not match store {store.root}: normalization differs "
                    f"(mean/std {self.manifest.mean}/{self.manifest.std} in {what} vs "
                    f"{store.meta.mean}/{store.meta.std} in the store); write the store with the training "
                    "store's mean/std"
                )

    # -- use ---------------------------------------------------------------------------------
    def materialize(self, device: str | torch.device = "cpu") -> Materialized:
        """Videos as normalized float32 ``(N, C, T, H, W)`` on ``device``, and the labels.

        Hard labels come back as int64 ``(N,)``, soft labels as stored ``(N, K)``. Raises
        DistilledSetError if the kind yields videos whose shape disagrees with the manifest spec.
        """
        where = _where(self.path)
        try:
            fn = MATERIALIZERS.get(self.manifest.kind)
        except UnknownNameError as err:
            raise DistilledSetError(f"{where}{err}") from None
        tensors = {name: t.to(device) for name, t in self.tensors.items()}
        try:
            videos = fn(tensors, self.manifest)
        except DistilledSetError as err:
            raise DistilledSetError(f"{where}{err}") from None
        expected = (self.num_videos, len(self.manifest.mean), *self.manifest.spec.shape)
        if videos.dim() != 5 or tuple(videos.shape) != expected:
            raise DistilledSetError(
                f"{where}kind {self.manifest.kind!r} materialized videos of shape {tuple(videos.shape)}, "
                f"expected (N, C, T, H, W) = {expected} from the labels, normalization and clip spec"
            )
        labels = self.labels if self.labels.is_floating_point() else self.labels.long()
        return Materialized(videos=videos.float(), labels=labels.to(device))

    # -- files -------------------------------------------------------------------------------
    def save(self, path: str | os.PathLike[str]) -> Path:
        """Validate, fill ``manifest.storage_bytes`` and write one ``.safetensors`` file atomically."""
        target = Path(path)
        old_path, self.path = self.path, target
        try:
            self.validate()
        except DistilledSetError:
            self.path = old_path
            raise
        self.manifest.storage_bytes = self.storage_bytes()
        self.manifest.library_version = __version__
        try:
            meta = self.manifest.dumps()
        except DistilledSetError as err:
            raise DistilledSetError(f"{target}: {err}") from None
        payload: dict[str, torch.Tensor] = {}
        seen: set[tuple[int, int]] = set()
        for name, t in [*self.tensors.items(), (LABELS_KEY, self.labels)]:
            t = t.detach().to("cpu").contiguous()
            key = (t.untyped_storage().data_ptr(), t.untyped_storage().nbytes())
            if t.numel() and key in seen:  # older safetensors refuse tensors sharing memory
                t = t.clone()
            seen.add(key)
            payload[name] = t
        try:
            with atomic_path(target) as tmp:
                save_file(payload, str(tmp), metadata={METADATA_KEY: meta})
        except (OSError, SafetensorError, RuntimeError, ValueError) as err:
            raise DistilledSetError(f"{target}: could not write the distilled set ({err})") from None
        return target

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> DistilledSet:
        """Read a distilled set written by :meth:`save` (safetensors only; never executes code)."""
        path = Path(path)
        if not path.exists():
            raise DistilledSetError(f"{path}: no such file")
        if not path.is_file():
            raise DistilledSetError(f"{path}: not a file")
        try:
            with safe_open(str(path), framework="pt") as fh:
                metadata = fh.metadata() or {}
                tensors = {name: fh.get_tensor(name) for name in fh.keys()}  # noqa: SIM118
        except (SafetensorError, OSError, ValueError, RuntimeError, TypeError, OverflowError) as err:
            raise DistilledSetError(f"{path}: truncated or not a safetensors file ({err})") from None
        if METADATA_KEY not in metadata:
            raise DistilledSetError(
                f"{path}: not a videodd distilled set "
                f"(no {METADATA_KEY!r} manifest in the safetensors metadata)"
            )
        try:
            data = json.loads(metadata[METADATA_KEY])
        except (json.JSONDecodeError, TypeError) as err:
            raise DistilledSetError(f"{path}: the manifest is not valid JSON ({err})") from None
        manifest = DistilledManifest.from_json(data, path)
        if LABELS_KEY not in tensors:
            raise DistilledSetError(
                f"{path}: no {LABELS_KEY!r} tensor; tensors in the file: {sorted(tensors)}"
            )
        labels = tensors.pop(LABELS_KEY)
        dset = cls(tensors=tensors, labels=labels, manifest=manifest, path=path)
        actual = dset.storage_bytes()
        recorded = dict(manifest.storage_bytes)
        if recorded != actual:
            diffs = [
                f"{name}: manifest {recorded.get(name)} vs tensors {actual.get(name)}"
                for name in sorted(set(recorded) | set(actual))
                if recorded.get(name) != actual.get(name)
            ]
            raise DistilledSetError(
                f"{path}: manifest storage_bytes disagree with the stored tensors ({'; '.join(diffs)}); "
                "the file was edited or is corrupt"
            )
        dset.validate()
        return dset

    # -- text --------------------------------------------------------------------------------
    def describe(self, full_train_bytes: int | None = None) -> str:
        """Readable multi-line summary (``videodd info FILE``).

        Args:
            full_train_bytes: bytes of the full training set for the compression ratio; defaults to
                ``manifest.extra["full_train_bytes"]`` when present.
        """
        m = self.manifest
        lines = [f"videodd distilled set{f' {self.path}' if self.path is not None else ''}"]

        def row(key: str, value: str) -> None:
            lines.append(f"  {key:<14}{value}")

        row("method", f"{m.method}  (kind: {m.kind})")
        row("dataset", f"{m.dataset}  (fingerprint {m.dataset_fingerprint or '-'})")
        shown = ", ".join(m.classes[:5]) + (", ..." if len(m.classes) > 5 else "")
        row("classes", f"{len(m.classes)}: {shown}")
        row("IPC", f"{m.ipc}  ({self.num_videos} videos)")
        s = m.spec
        row(
            "clip spec",
            f"T={s.frames} frames, {s.size}x{s.size} px, stride {s.stride}, {len(m.mean)} channels "
            f"(videos (N, C, T, H, W) = ({self.num_videos}, {len(m.mean)}, {s.frames}, {s.size}, {s.size}))",
        )
        label_dtype = str(self.labels.dtype).removeprefix("torch.")
        row("labels", f"{'soft' if self.soft_labels else 'hard'} ({label_dtype}, {tuple(self.labels.shape)})")
        if m.learned_lr is not None:
            row("learned lr", f"{m.learned_lr:g}")
        row("seed", str(m.seed))

        sizes = self.storage_bytes()
        entries = [(name, t) for name, t in self.tensors.items()] + [(LABELS_KEY, self.labels)]
        table = [("tensor", "dtype", "shape", "size", "bytes")]
        for name, t in entries:
            dtype = str(t.dtype).removeprefix("torch.")
            table.append((name, dtype, str(tuple(t.shape)), human_bytes(sizes[name]), str(sizes[name])))
        table.append(("total", "", "", human_bytes(sizes["total"]), str(sizes["total"])))
        widths = [max(len(r[i]) for r in table) for i in range(5)]
        lines.append("  storage")
        for i, r in enumerate(table):
            cells = [r[j].ljust(widths[j]) if j < 3 else r[j].rjust(widths[j]) for j in range(5)]
            lines.append("    " + "  ".join(cells).rstrip())
            if i == 0 or i == len(table) - 2:
                lines.append("    " + "  ".join("-" * w for w in widths))

        summary = _KIND_SUMMARIES.get(m.kind)
        if summary is not None:
            for key, value in summary(self.tensors, m):
                row(key, value)
        full = full_train_bytes if full_train_bytes is not None else m.extra.get("full_train_bytes")
        if isinstance(full, (int, float)) and not isinstance(full, bool) and full > 0 and sizes["total"] > 0:
            ratio = float(full) / sizes["total"]
            row(
                "compression",
                f"{ratio:,.1f}x smaller than the full training set ({human_bytes(int(full))}; "
                f"{100.0 * sizes['total'] / float(full):.4g}% of it)",
            )
        row("format", f"v{m.format_version}, written by videodd {m.library_version}, created {m.created}")
        return "\n".join(lines)
