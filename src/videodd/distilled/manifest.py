"""The DistilledSet manifest: everything needed to interpret the stored tensors, as JSON.

Format version 2 (this library) replaced version 1's free-form ``extra`` mapping by typed fields
for everything evaluation reads back (``learned_lr``, ``label_loss``, ``equal_storage_ipc``,
``full_train_bytes``), a ``layout`` that only the set's kind reads, and an ``info`` mapping
that nothing reads back. Version 1 files are read and converted on load.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from videodd._version import __version__
from videodd.config import ConfigError, from_dict
from videodd.data.spec import ClipSpec
from videodd.data.store import StoreError
from videodd.errors import VideoddError

FORMAT_VERSION = 2
"""The newest DistilledSet format this library writes and reads (it also reads version 1)."""

LABEL_LOSSES = ("ce", "mse")

LABELS_KEY = "labels"
"""The name of the labels tensor in the file (no method tensor may take it)."""


class DistilledSetError(VideoddError, ValueError):
    """A distilled set cannot be loaded, saved or used; the message names the file and the problem."""


class IncompatibleStoreError(DistilledSetError, StoreError):
    """A distilled set does not match a ClipStore (classes, clip shape or normalization).

    Both a :class:`DistilledSetError` and a :class:`~videodd.data.store.StoreError`.
    """


def where(path: str | os.PathLike[str] | None) -> str:
    """``"PATH: "`` for messages, or nothing."""
    return f"{path}: " if path is not None else ""


def _utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@dataclass(kw_only=True)
class DistilledManifest:
    """Everything needed to interpret a distilled set, stored as JSON in the file's metadata.

    Attributes:
        kind: how the tensors become videos (a name in :data:`videodd.distilled.KINDS`).
        method: the recipe that produced the set (e.g. ``"dm"``).
        config: the resolved method config (JSON-able).
        dataset: dataset name of the training store.
        dataset_fingerprint: fingerprint of the training store.
        classes: class names; label ``k`` means ``classes[k]``.
        spec: the ClipSpec of the videos: they are ``(N, C, T, H, W)`` with ``(T, H, W) = spec.shape``.
        mean, std: per-channel normalization of the training clips (the set lives in that space).
        seed: the seed of the distillation run.
        ipc: instances (videos) per class.
        learned_lr: a learning rate learned with the set (MTT's student lr); evaluation trains with it.
        label_loss: how evaluation fits the labels: ``ce`` (cross-entropy, hard or soft labels) or
            ``mse`` (the labels are regression targets, as FRePo's learned labels).
        equal_storage_ipc: the pixel IPC whose bytes this set was built to fit (latent sets with
            ``match_ipc``); evaluation then also trains on random real clips at that IPC.
        full_train_bytes: bytes of the training store's uint8 clips (the compression ratio).
        eval_augment: an augmentation the method owns at evaluation, ``{"name", "version", "options"}``
            (:data:`videodd.augment.EVAL_AUGMENTS`, e.g. TSGF-A); evaluation reports the protocol's row
            without it and another row with it. None for the protocol alone.
        storage_bytes: bytes of each stored tensor (``"labels"`` included) and ``"total"``;
            filled by :meth:`DistilledSet.save` and checked on load.
        layout: the kind's own settings, read only by the kind's hooks (stored frames of a
            temporally compressed pixel set, the static-dynamic pairing, a latent set's codec).
        info: informative entries (timings, source ids, ...); nothing reads them back to decide anything.
        warnings: problems the run detected (a guard's or the objective's), shown by ``info`` and reports.
        content_sha256: sha256 of every stored tensor (name, dtype, shape, bytes) and the labels, filled by
            :meth:`DistilledSet.save`; ``videodd verify`` recomputes it (a flipped byte).
        library_version: videodd version that wrote the file.
        created: UTC ISO-8601 creation time (metadata only; nothing depends on it).
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
    label_loss: str = "ce"
    equal_storage_ipc: int | None = None
    full_train_bytes: int | None = None
    eval_augment: dict[str, Any] | None = None
    storage_bytes: dict[str, int] = field(default_factory=dict)
    layout: dict[str, Any] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    content_sha256: str = ""
    library_version: str = __version__
    created: str = field(default_factory=_utc_now)
    format_version: int = FORMAT_VERSION

    def to_json(self) -> dict[str, Any]:
        """A JSON-able dict (the spec through ``ClipSpec.to_dict``)."""
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        data.update(
            config=dict(self.config), classes=list(self.classes), spec=self.spec.to_dict(),
            mean=[float(x) for x in self.mean], std=[float(x) for x in self.std],
            storage_bytes={k: int(v) for k, v in self.storage_bytes.items()},
            layout=dict(self.layout), info=dict(self.info), warnings=list(self.warnings),
            eval_augment=None if self.eval_augment is None else dict(self.eval_augment),
        )
        return data

    def dumps(self) -> str:
        """The manifest as a JSON string; raises DistilledSetError if a field is not JSON-able."""
        try:
            return json.dumps(self.to_json())
        except (TypeError, ValueError) as err:
            raise DistilledSetError(f"the manifest is not JSON-serializable ({err}); check config, layout and info") \
                from None

    @classmethod
    def from_json(cls, data: Any, path: str | os.PathLike[str] | None = None) -> DistilledManifest:
        """Build a manifest from its JSON dict; errors name the missing or malformed fields.

        Unknown keys are ignored (a newer library may add optional fields without a new format
        version); a ``format_version`` newer than :data:`FORMAT_VERSION` is refused; version 1 is
        converted (:func:`upgrade_v1`).
        """
        at = where(path)
        if not isinstance(data, dict):
            raise DistilledSetError(f"{at}manifest must be a JSON object, got {type(data).__name__}")
        version = data.get("format_version")
        if isinstance(version, bool) or not isinstance(version, int):
            raise DistilledSetError(f"{at}manifest has no valid 'format_version' (got {version!r})")
        if version > FORMAT_VERSION:
            raise DistilledSetError(
                f"{at}written in distilled-set format {version}, but this videodd ({__version__}) reads "
                f"formats up to {FORMAT_VERSION}; upgrade videodd to load it"
            )
        if version < 1:
            raise DistilledSetError(f"{at}invalid format_version {version}")
        if version == 1:
            data = upgrade_v1(data)
        fields = {f.name: f for f in dataclasses.fields(cls)}
        required = [name for name, f in fields.items()
                    if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
        missing = [name for name in required if name not in data]
        if missing:
            raise DistilledSetError(f"{at}manifest is missing field(s) {missing}")
        known = {k: v for k, v in data.items() if k in fields}
        try:
            known["spec"] = ClipSpec.from_dict(known["spec"])
        except (ConfigError, TypeError, ValueError, AttributeError) as err:
            raise DistilledSetError(f"{at}manifest field 'spec' is invalid ({err})") from None
        try:
            manifest = from_dict(cls, known, "manifest")
        except ConfigError as err:
            raise DistilledSetError(f"{at}invalid manifest ({err})") from None
        if manifest.eval_augment is not None and not {"name", "version"} <= set(manifest.eval_augment):
            raise DistilledSetError(f"{at}manifest eval_augment needs 'name' and 'version', got "
                                    f"{sorted(manifest.eval_augment)}")
        if manifest.label_loss not in LABEL_LOSSES:
            raise DistilledSetError(f"{at}manifest label_loss {manifest.label_loss!r} is not one of "
                                    f"{list(LABEL_LOSSES)}")
        return manifest


# version 1 kept everything in ``extra``; these keys were read back by evaluation and are typed now
_V1_TYPED = {"label_loss": "label_loss", "match_ipc": "equal_storage_ipc", "full_train_bytes": "full_train_bytes"}
# and these were informative only
_V1_INFO = ("seconds_per_iteration", "source_ids", "mtt_experts", "mtt_unusable_student_lr", "latent_store",
            "selection", "reconstruction_error", "pixel_bytes_per_ipc", "pixel_equivalent_ipc", "latent_bytes")


def upgrade_v1(data: dict[str, Any]) -> dict[str, Any]:
    """A version-1 manifest as version 2: typed fields lifted out of ``extra``, informative entries
    into ``info``, the rest (what the kind reads) into ``layout``."""
    out = {k: v for k, v in data.items() if k != "extra"}
    extra = dict(data.get("extra") or {})
    for old, new in _V1_TYPED.items():
        if old in extra:
            out[new] = extra.pop(old)
    out["info"] = {k: extra.pop(k) for k in _V1_INFO if k in extra}
    out["layout"] = extra
    out["format_version"] = FORMAT_VERSION
    return out
