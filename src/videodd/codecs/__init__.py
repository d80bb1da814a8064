"""Video codecs: encode videos into a latent space and decode them back (:mod:`.base`), the built-in
autoencoder, the diffusers adapter, training-free recompression, and the ``latent`` DistilledSet
kind. Importing the package registers the codecs and the kind."""

from videodd.codecs.base import (
    CODECS,
    Codec,
    CodecError,
    file_sha256,
    load_codec,
    module_bytes,
    normalize_unit,
    psnr,
    unit_videos,
    unnormalize,
)
from videodd.registry import import_submodules

__all__ = ["CODECS", "Codec", "CodecError", "file_sha256", "load_codec", "module_bytes", "normalize_unit", "psnr",
           "unit_videos", "unnormalize"]

import_submodules(__name__)  # every module registers its components: a new file needs no edit here
