"""The DistilledSet format, and only the format: manifest, container, kinds, description.

One ``.safetensors`` file per set: the tensors a method keeps, the labels, and a JSON manifest.
How the tensors become videos is the set's *kind* (:data:`KINDS`); each kind is registered next to
the code that writes it (``synthesis.pixels``, ``synthesis.static_dynamic``, ``selection.base``
for real clips, ``codecs.latent_set``), never here. See docs/ARCHITECTURE.md.
"""

from videodd.distilled.container import METADATA_KEY, DistilledSet, Materialized, StorageDetail
from videodd.distilled.describe import describe_set
from videodd.distilled.kinds import (
    KINDS,
    Kind,
    KindStorage,
    check_shape,
    human_bytes,
    layout_entry,
    register_kind,
    require,
    tensor_bytes,
)
from videodd.distilled.manifest import (
    FORMAT_VERSION,
    LABEL_LOSSES,
    LABELS_KEY,
    DistilledManifest,
    DistilledSetError,
    IncompatibleStoreError,
)

__all__ = [
    "FORMAT_VERSION",
    "KINDS",
    "LABELS_KEY",
    "LABEL_LOSSES",
    "METADATA_KEY",
    "DistilledManifest",
    "DistilledSet",
    "DistilledSetError",
    "IncompatibleStoreError",
    "Kind",
    "KindStorage",
    "Materialized",
    "StorageDetail",
    "check_shape",
    "describe_set",
    "human_bytes",
    "layout_entry",
    "register_kind",
    "require",
    "tensor_bytes",
]
