"""videodd: video dataset distillation with an honest evaluation protocol.

Float video tensors are ``(N, C, T, H, W)`` everywhere in the library (what ``Conv3d``
takes); clips on disk are uint8 ``(N, T, H, W, C)``.

The package root is the top layer: it imports the public API, which registers every dataset,
model, component, DistilledSet kind and recipe, so ``import videodd`` (or any submodule) is enough
to load and use any set. The layers below never import it (docs/ARCHITECTURE.md section 10).

>>> from videodd.distill import distill, resolve_config
>>> from videodd.data import ClipStore
>>> result = distill(ClipStore("data/synth/train"), resolve_config("dm", {"ipc": 1}), "runs/dm")

(The functions ``distill`` and ``evaluate`` are not re-exported here: they would hide the modules
``videodd.distill`` and ``videodd.evaluate`` of the same names.)
"""

import os as _os

from videodd._version import __version__

# A decoding worker of `videodd prepare` (spawned with VIDEODD_DATA_WORKER=1) needs only the data layer;
# importing the whole API there would cost each worker about 1.3 s and 250 MB (torch and the models).
if _os.environ.get("VIDEODD_DATA_WORKER") != "1":
    from videodd.data import ClipSpec, ClipStore
    from videodd.distill import DistillConfig, DistillResult, resolve_config
    from videodd.distilled import DistilledSet
    from videodd.errors import VideoddError
    from videodd.evaluate import EvalProtocol, EvalReport, get_protocol
    from videodd.methods import METHODS
    from videodd.models import create_model

__all__ = [
    "METHODS",
    "ClipSpec",
    "ClipStore",
    "DistillConfig",
    "DistillResult",
    "DistilledSet",
    "EvalProtocol",
    "EvalReport",
    "VideoddError",
    "__version__",
    "create_model",
    "get_protocol",
    "resolve_config",
]
