"""DistilledSet: the output of every method, stored as ONE ``.safetensors`` file.

The file holds the tensors a method keeps (pixels, real clips, statics + dynamics + weights,
latent cores, ...), the labels (tensor ``"labels"``: int64 ``(N,)`` hard labels or float
``(N, K)`` soft labels) and a JSON :class:`DistilledManifest` in the safetensors metadata under
the key ``"videodd"``. Loading never executes code (no pickle). The manifest's ``kind`` names a
:class:`~videodd.distilled.kinds.Kind` that turns the tensors into normalized float32 videos
``(N, C, T, H, W)`` (the layout ``Conv3d`` takes, used everywhere in the library).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from videodd._version import __version__
from videodd.data.store import ClipStore, StoreError
from videodd.distilled.describe import describe_set
from videodd.distilled.kinds import KINDS, Kind, KindStorage, tensor_bytes
from videodd.distilled.manifest import (
    LABELS_KEY,
    DistilledManifest,
    DistilledSetError,
    IncompatibleStoreError,
    where,
)
from videodd.errors import UnknownNameError
from videodd.io import atomic_path

METADATA_KEY = "videodd"
"""The safetensors metadata key that holds the manifest JSON."""

# what a kind's hook may raise for a broken set; the container adds the file name
_HOOK_ERRORS = (ValueError, KeyError, RuntimeError, TypeError)


def _rounded(values: list[float]) -> list[float]:
    return [round(float(v), 4) for v in values]


@dataclass
class Materialized:
    """Videos and labels ready for training.

    Attributes:
        videos: normalized float32 ``(N, C, T, H, W)``.
        labels: int64 ``(N,)`` hard labels or float ``(N, K)`` soft labels.
    """

    videos: torch.Tensor
    labels: torch.Tensor

    def __iter__(self) -> Iterator[torch.Tensor]:
        """``videos, labels = dset.materialize()`` unpacks it."""
        return iter((self.videos, self.labels))


@dataclass(frozen=True)
class StorageDetail:
    """Storage figures of a set, for reports.

    Attributes:
        total_bytes: every stored tensor, labels included.
        label_bytes: the labels.
        pixel_bytes_per_ipc: one IPC of float32 videos ``(K, C, T, H, W)``, the published convention.
        pixel_equivalent_ipc: stored bytes without the labels over ``pixel_bytes_per_ipc``.
        parts: bytes by the kind's own parts (empty for kinds without parts).
        equivalent_ipc: the kind's pixel-equivalent IPC of its content, for kinds whose IPC is not an
            IPC of pixels (latent sets); ``None`` otherwise.
        external_bytes: bytes needed to use the set that are not in the file (a referenced decoder).
        notes: the kind's lines for reports.
    """

    total_bytes: int
    label_bytes: int
    pixel_bytes_per_ipc: int
    pixel_equivalent_ipc: float
    parts: dict[str, int]
    equivalent_ipc: float | None = None
    external_bytes: int = 0
    notes: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "notes": list(self.notes)}


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
        at = f", path={str(self.path)!r}" if self.path is not None else ""
        return (
            f"DistilledSet(method={self.manifest.method!r}, kind={self.manifest.kind!r}, "
            f"videos={self.num_videos}, classes={self.num_classes}, ipc={self.ipc}, "
            f"tensors={{{shapes}}}{at})"
        )

    def kind(self) -> Kind:
        """The registered :class:`Kind` of this set (DistilledSetError listing the known kinds if none)."""
        try:
            return KINDS.get(self.manifest.kind)
        except UnknownNameError as err:
            raise DistilledSetError(f"{where(self.path)}{err}") from None

    def _hook(self, name: str, *args: Any, tensors: dict[str, torch.Tensor] | None = None) -> Any:
        """Call the kind's hook ``name`` on ``tensors`` (default: the stored ones) and the manifest;
        None when the kind has no such hook. Errors name the file."""
        fn = getattr(self.kind(), name)
        if fn is None:
            return None
        try:
            return fn(self.tensors if tensors is None else tensors, self.manifest, *args)
        except DistilledSetError as err:
            raise DistilledSetError(f"{where(self.path)}{err}") from None
        except _HOOK_ERRORS as err:
            raise DistilledSetError(f"{where(self.path)}{err}") from None

    # -- storage -----------------------------------------------------------------------------
    def storage_bytes(self) -> dict[str, int]:
        """Bytes of each tensor as stored (``numel * element_size``), ``"labels"`` and ``"total"``."""
        sizes = {name: tensor_bytes(t) for name, t in self.tensors.items()}
        sizes[LABELS_KEY] = tensor_bytes(self.labels)
        sizes["total"] = sum(sizes.values())
        return sizes

    def storage_detail(self) -> StorageDetail:
        """Storage figures for reports (:class:`StorageDetail`), with the kind's own parts."""
        sizes = self.storage_bytes()
        m = self.manifest
        per_ipc = 4 * len(m.classes) * len(m.mean) * math.prod(m.spec.shape)
        own: KindStorage = self._hook("storage") or KindStorage()
        return StorageDetail(
            total_bytes=sizes["total"], label_bytes=sizes[LABELS_KEY], pixel_bytes_per_ipc=per_ipc,
            pixel_equivalent_ipc=(sizes["total"] - sizes[LABELS_KEY]) / per_ipc if per_ipc else float("nan"),
            parts=dict(own.parts), equivalent_ipc=own.equivalent_ipc, external_bytes=own.external_bytes,
            notes=tuple(own.notes))

    # -- checks ------------------------------------------------------------------------------
    def content_digest(self) -> str:
        """sha256 over every tensor (name, dtype, shape, bytes, in name order) and the labels."""
        h = hashlib.sha256()
        for name, t in sorted([*self.tensors.items(), (LABELS_KEY, self.labels)]):
            t = t.detach().to("cpu").contiguous()
            h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
            h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
        return h.hexdigest()

    def verify(self) -> None:
        """Recompute the content checksum: a DistilledSetError when a stored byte changed since ``save``."""
        if not self.manifest.content_sha256:
            raise DistilledSetError(f"{where(self.path)}written before sets carried a checksum: nothing to verify "
                                    "against (save it again to add one)")
        actual = self.content_digest()
        if actual != self.manifest.content_sha256:
            raise DistilledSetError(f"{where(self.path)}content checksum {actual[:16]} does not match the manifest's "
                                    f"{self.manifest.content_sha256[:16]}: the tensors changed after the set was "
                                    "written (a damaged file)")

    def validate(self) -> None:
        """Raise DistilledSetError unless the set is consistent and finite.

        Checks: the kind is registered; the manifest's classes, normalization and ipc are sane;
        labels are ``(N,)`` integers in ``[0, K)`` or ``(N, K)`` floats; the kind's own tensor check;
        every floating tensor (labels included) is finite.
        """
        at = where(self.path)
        m = self.manifest
        self.kind()
        k = len(m.classes)
        if k == 0:
            raise DistilledSetError(f"{at}the manifest lists no classes")
        if len(set(m.classes)) != k:
            dupes = sorted({c for c in m.classes if m.classes.count(c) > 1})
            raise DistilledSetError(f"{at}duplicate class names {dupes[:5]}")
        if not m.mean or len(m.mean) != len(m.std):
            raise DistilledSetError(
                f"{at}mean ({len(m.mean)} values) and std ({len(m.std)} values) must be one per channel"
            )
        if any(not math.isfinite(s) or s <= 0 for s in m.std) or any(not math.isfinite(x) for x in m.mean):
            raise DistilledSetError(f"{at}invalid normalization mean={m.mean} std={m.std}")
        if m.ipc < 0:
            raise DistilledSetError(f"{at}ipc must be >= 0, got {m.ipc}")
        if m.learned_lr is not None and not (math.isfinite(m.learned_lr) and m.learned_lr > 0):
            raise DistilledSetError(f"{at}learned_lr must be a positive finite number, got {m.learned_lr}")
        if m.equal_storage_ipc is not None and m.equal_storage_ipc < 1:
            raise DistilledSetError(f"{at}equal_storage_ipc must be >= 1, got {m.equal_storage_ipc}")

        if not isinstance(self.labels, torch.Tensor):
            raise DistilledSetError(f"{at}labels must be a tensor, got {type(self.labels).__name__}")
        for name, t in self.tensors.items():
            if not isinstance(t, torch.Tensor):
                raise DistilledSetError(f"{at}tensor {name!r} is a {type(t).__name__}, not a torch.Tensor")
        if LABELS_KEY in self.tensors:
            raise DistilledSetError(f"{at}a method tensor may not be named {LABELS_KEY!r} (reserved for the labels)")

        labels = self.labels
        if labels.is_floating_point():
            if labels.dim() != 2 or labels.shape[1] != k:
                raise DistilledSetError(
                    f"{at}soft labels must be float (N, K) with K = {k} classes, got {tuple(labels.shape)}"
                )
        elif labels.dtype in (torch.bool, torch.complex64, torch.complex128):
            raise DistilledSetError(f"{at}labels must be int64 (N,) or float (N, K), got {labels.dtype}")
        else:
            if labels.dim() != 1:
                raise DistilledSetError(f"{at}hard labels must be integer (N,), got shape {tuple(labels.shape)}")
            if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= k):
                raise DistilledSetError(
                    f"{at}hard labels must be in [0, {k}) for {k} classes, "
                    f"got [{int(labels.min())}, {int(labels.max())}]"
                )
        if m.label_loss == "mse" and not labels.is_floating_point():
            raise DistilledSetError(f"{at}label_loss 'mse' needs float (N, K) labels, got hard labels")
        # what the manifest says about the videos must be what the tensors hold
        if self.num_videos != m.ipc * k:
            raise DistilledSetError(f"{at}the manifest says ipc {m.ipc} for {k} classes ({m.ipc * k} videos) but the "
                                    f"set holds {self.num_videos}; the file was edited or is corrupt")
        if not labels.is_floating_point() and labels.numel():
            counts = torch.bincount(labels.long(), minlength=k).tolist()
            if counts != [m.ipc] * k:
                short = [f"{m.classes[c]} ({n})" for c, n in enumerate(counts) if n != m.ipc]
                raise DistilledSetError(f"{at}the manifest says ipc {m.ipc} but classes hold other counts: "
                                        f"{', '.join(short[:5])}; the file was edited or is corrupt")

        self._hook("check", self.num_videos)

        for name, t in [*self.tensors.items(), (LABELS_KEY, labels)]:
            if t.is_floating_point() or t.is_complex():
                finite = torch.isfinite(t)
                if not bool(finite.all()):
                    n_nan = int(torch.isnan(t).sum())
                    n_inf = int((~finite).sum()) - n_nan
                    raise DistilledSetError(
                        f"{at}tensor {name!r} has {n_nan + n_inf} non-finite value(s) "
                        f"({n_nan} NaN, {n_inf} Inf) of {t.numel()}; refusing a broken distilled set"
                    )

    def check_compatible(self, store: ClipStore, *, check_normalization: bool = True) -> None:
        """Refuse a ClipStore with other classes, another clip shape or (optionally) other normalization.

        Raises :class:`IncompatibleStoreError` (both a DistilledSetError and a StoreError) whose
        message says what differs.
        """
        at = self.path if self.path is not None else f"({self.manifest.method})"
        what = f"distilled set {at}"
        m = self.manifest
        if store.meta.dataset != m.dataset:
            raise IncompatibleStoreError(
                f"{what} was distilled from dataset {m.dataset!r} (training store fingerprint "
                f"{m.dataset_fingerprint}); {store.root} is dataset {store.meta.dataset!r}: evaluate the set on the "
                f"test split of the data it was distilled from")
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
                    f"{what} does not match store {store.root}: the set lives in the normalization of its training "
                    f"store (mean {_rounded(m.mean)}, std {_rounded(m.std)}, fingerprint {m.dataset_fingerprint}) "
                    f"but {store.root} was normalized with mean {_rounded(store.meta.mean)}, std "
                    f"{_rounded(store.meta.std)}: it was not prepared with the set's training data. Use the test "
                    "split that `videodd prepare` wrote next to that training store"
                )

    # -- use ---------------------------------------------------------------------------------
    def materialize(self, device: str | torch.device = "cpu") -> Materialized:
        """Videos as normalized float32 ``(N, C, T, H, W)`` on ``device``, and the labels.

        Hard labels come back as int64 ``(N,)``, soft labels as stored ``(N, K)``. Raises
        DistilledSetError if the kind yields videos whose shape disagrees with the manifest spec.
        """
        tensors = {name: t.to(device) for name, t in self.tensors.items()}
        videos = self._hook("materialize", tensors=tensors)
        expected = (self.num_videos, len(self.manifest.mean), *self.manifest.spec.shape)
        if videos.dim() != 5 or tuple(videos.shape) != expected:
            raise DistilledSetError(
                f"{where(self.path)}kind {self.manifest.kind!r} materialized videos of shape {tuple(videos.shape)}, "
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
        self.manifest.content_sha256 = self.content_digest()
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
                f"{path}: not a videodd distilled set (no {METADATA_KEY!r} manifest in the safetensors metadata)"
            )
        try:
            data = json.loads(metadata[METADATA_KEY])
        except (json.JSONDecodeError, TypeError) as err:
            raise DistilledSetError(f"{path}: the manifest is not valid JSON ({err})") from None
        manifest = DistilledManifest.from_json(data, path)
        if LABELS_KEY not in tensors:
            raise DistilledSetError(f"{path}: no {LABELS_KEY!r} tensor; tensors in the file: {sorted(tensors)}")
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
        """Readable multi-line summary (``videodd info FILE``); see :func:`describe_set`."""
        return describe_set(self, full_train_bytes)
