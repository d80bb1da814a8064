"""Latent video distillation (training-free): encode, select diverse latents, recompress, decode at evaluation.

1. **Encode** every training clip with a video codec (``builder.codec``: ``builtin:DIR`` from
   ``videodd train-codec``, ``diffusers:DIR`` for a pretrained VAE, or ``auto``: the built-in
   codec trained once on the training split and kept in ``DATA/codec``). Latents are cached next
   to the data in ``DATA/latents/<codec sha256[:16]>/<split>/`` (streamed, resumable: an
   interrupted encoding continues where it stopped).
2. **Select** ``IPC`` latents per class (``builder.select``): ``dpp`` (exact k-DPP, RBF kernel
   with the median-heuristic bandwidth, or ``cosine``), ``kmeans`` (member nearest each centre)
   or ``random``; on the flattened latents.
3. **Recompress** the kept latents without training (``builder.compress``, e.g. ``tucker:0.5``,
   ``pca:16,fp16``, ``int8``; :mod:`videodd.codecs.compress`).
4. Store a ``latent`` DistilledSet: compressed tensors, labels and the codec reference
   (path + sha256) or, with ``builder.embed_codec``, the decoder weights. ``materialize()``
   decodes (:mod:`videodd.codecs.latent_set`).

**Equal storage.** ``builder.match_ipc=K`` picks the largest latent IPC whose stored latent bytes
fit the bytes of pixel IPC ``K`` (``K x classes`` float32 videos, the published convention: one
3x16x112x112 video is 2.41 MB); ``builder.budget_bytes=B`` does the same for a byte budget.
Either one overrides ``--ipc``; without them ``--ipc`` is the latent IPC. The budget counts the
stored latent tensors; labels (8 bytes a video) and the decoder are reported separately (the
decoder is shared by every set made with the codec, as in the published comparison).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from videodd.builders.base import Builder, BuiltSet, register_builder
from videodd.codecs.autoencoder import CodecTrainConfig, train_codec
from videodd.codecs.base import Codec, CodecError, load_codec
from videodd.codecs.compress import CompressionSpec, compress, stored_bytes
from videodd.codecs.encode import LatentStore, encode_store
from videodd.codecs.latent_set import (
    LATENT_PREFIX,
    decoder_weight_bytes,
    embedded_state,
    pixel_bytes_per_video,
)
from videodd.config import ConfigError
from videodd.data.store import ClipStore
from videodd.methods import MethodSpec, register_method
from videodd.selection import check_ipc
from videodd.selection.dpp import kdpp_sample
from videodd.selection.kmeans import kmeans_select

AUTO_CODEC = "auto"


@dataclass(frozen=True)
class LatentOptions:
    """Settings of the ``latent`` method (``--set builder.KEY=VALUE``).

    Attributes:
        codec: ``builtin:DIR`` (``videodd train-codec``), ``diffusers:DIR`` (a local pretrained VAE),
            a bare codec folder, or ``auto``: the built-in codec trained on the training split with
            default settings, once, in ``DATA/codec`` (minutes on a CPU at 8x32x32).
        select: ``dpp`` (exact k-DPP), ``kmeans`` (member nearest each centre) or ``random``.
        kernel: k-DPP kernel, ``rbf`` (median-heuristic bandwidth) or ``cosine``.
        bandwidth: fixed RBF ``sigma^2`` instead of the median heuristic (degenerates in high dimension).
        compress: recompression pipeline: ``none``, ``tucker[:F]``, ``pca:R``, ``fp16``, ``int8`` or a
            structure stage and a quantization joined by ``,`` or ``+`` (``tucker:0.5,int8``).
        match_ipc: choose the latent IPC whose bytes fit pixel IPC ``K`` at float32 (overrides ``--ipc``).
        budget_bytes: choose the largest latent IPC whose bytes fit this budget (overrides ``--ipc``).
        embed_codec: store the decoder weights in the set (a self-contained file; built-in codec only).
        cache_dir: where encoded latents are kept (default ``DATA/latents``; a codec's latents go to
            ``CACHE/<codec sha256[:16]>/<split>``).
        encode_batch: clips per encoding batch.
        kmeans_iters: Lloyd iterations of ``select=kmeans`` at most.
    """

    codec: str = AUTO_CODEC
    select: Literal["dpp", "kmeans", "random"] = "dpp"
    kernel: Literal["rbf", "cosine"] = "rbf"
    bandwidth: float | None = None
    compress: str = "none"
    match_ipc: int | None = None
    budget_bytes: int | None = None
    embed_codec: bool = False
    cache_dir: str | None = None
    encode_batch: int = 64
    kmeans_iters: int = 100

    def __post_init__(self) -> None:
        CompressionSpec.parse(self.compress)  # a bad spec fails before anything is encoded
        if self.match_ipc is not None and self.budget_bytes is not None:
            raise ConfigError("set match_ipc or budget_bytes, not both")
        if self.match_ipc is not None and self.match_ipc < 1:
            raise ConfigError(f"match_ipc must be >= 1, got {self.match_ipc}")
        if self.budget_bytes is not None and self.budget_bytes < 1:
            raise ConfigError(f"budget_bytes must be >= 1, got {self.budget_bytes}")
        if self.bandwidth is not None and not self.bandwidth > 0:
            raise ConfigError(f"bandwidth must be > 0, got {self.bandwidth}")
        if self.encode_batch < 1 or self.kmeans_iters < 1:
            raise ConfigError("encode_batch >= 1 and kmeans_iters >= 1 are required")
        if not self.codec:
            raise ConfigError("codec is empty: use builtin:DIR, diffusers:DIR or auto")


# -- codec and latents ----------------------------------------------------------------------------
def auto_codec(store: ClipStore, *, device: str | torch.device = "cpu", progress: bool = False) -> Codec:
    """The built-in codec of ``store`` in ``DATA/codec``: loaded when it was trained on this store, else trained."""
    folder = store.root.parent / "codec"
    if (folder / "codec.json").is_file():
        try:
            codec = load_codec(f"builtin:{folder}", device=device)
        except CodecError:
            codec = None  # unreadable or tampered: train it again below
        if codec is not None and getattr(codec, "info", {}).get("fingerprint") == store.fingerprint:
            return codec
    result = train_codec(store, folder, CodecTrainConfig(), device=device, progress=progress)
    return load_codec(f"builtin:{result.path}", device=device)


def resolve_codec(store: ClipStore, spec: str, *, device: str | torch.device = "cpu", progress: bool = False) -> Codec:
    """``spec`` (``builtin:DIR``, ``diffusers:DIR``, a folder, or ``auto``) loaded on ``device``."""
    if spec == AUTO_CODEC:
        return auto_codec(store, device=device, progress=progress)
    return load_codec(spec, device=device)


def latent_cache_dir(store: ClipStore, codec: Codec, cache_dir: str | Path | None = None) -> Path:
    """``CACHE/<codec sha256[:16]>/<split folder>`` with CACHE = ``cache_dir`` or ``DATA/latents``."""
    sha = codec.describe().get("sha256")
    if not sha:
        raise CodecError(f"{codec.name} codec: no sha256 (save or load it from a folder before encoding a store)")
    root = Path(cache_dir) if cache_dir else store.root.parent / "latents"
    return root / str(sha)[:16] / store.root.name


def encoded_latents(
    store: ClipStore,
    codec: Codec,
    *,
    cache_dir: str | Path | None = None,
    batch_size: int = 64,
    device: str | torch.device = "cpu",
    progress: bool = False,
) -> LatentStore:
    """The latents of ``store`` under ``codec``: the cached encoding, finished if interrupted, or a new one."""
    folder = latent_cache_dir(store, codec, cache_dir)
    try:
        return encode_store(store, codec, folder, batch_size=batch_size, resume=True, progress=progress, device=device)
    except CodecError:
        # the cache holds another encoding (the store was prepared again in place): encode afresh;
        # a real problem (a clip shape the codec refuses) raises again here
        return encode_store(store, codec, folder, batch_size=batch_size, resume=False, progress=progress,
                            device=device)


# -- equal storage --------------------------------------------------------------------------------
def latent_ipc_for_budget(
    budget_bytes: int, compression: CompressionSpec | str, latent_shape: tuple[int, ...], num_classes: int,
    max_ipc: int,
) -> int:
    """The largest latent IPC ``<= max_ipc`` whose stored latent bytes fit ``budget_bytes`` (0 if none does)."""
    best = 0
    for ipc in range(1, max_ipc + 1):  # stored bytes grow with the number of latents
        if stored_bytes(compression, (ipc * num_classes, *latent_shape)) > budget_bytes:
            break
        best = ipc
    return best


def pixel_budget(store: ClipStore, ipc: int) -> int:
    """Bytes of pixel IPC ``ipc`` for ``store``: ``ipc x classes`` float32 videos ``(C, T, H, W)``."""
    return ipc * store.num_classes * pixel_bytes_per_video(store.video_shape)


def choose_latent_ipc(
    store: ClipStore, cfg_ipc: int, options: LatentOptions, latent_shape: tuple[int, ...]
) -> tuple[int, int | None]:
    """``(latent IPC, budget bytes or None)``: ``--ipc`` unless ``match_ipc`` / ``budget_bytes`` sets a budget."""
    if options.match_ipc is None and options.budget_bytes is None:
        return cfg_ipc, None
    budget = pixel_budget(store, options.match_ipc) if options.match_ipc is not None else int(options.budget_bytes)
    max_ipc = int(store.class_counts().min())
    ipc = latent_ipc_for_budget(budget, options.compress, latent_shape, store.num_classes, max_ipc)
    if ipc == 0:
        need = stored_bytes(options.compress, (store.num_classes, *latent_shape))
        raise ConfigError(f"latent IPC 1 needs {need:,} bytes with compression {options.compress!r}, over the budget "
                          f"of {budget:,} bytes; raise the budget or compress more")
    return ipc, budget


# -- selection ------------------------------------------------------------------------------------
def select_latents(feats: torch.Tensor, k: int, generator: torch.Generator, options: LatentOptions) -> np.ndarray:
    """Rows (sorted) of the class's flattened latents ``feats (n, ...)`` to keep."""
    if options.select == "dpp":
        idx = kdpp_sample(feats, k, generator, kernel=options.kernel, bandwidth=options.bandwidth)
    elif options.select == "kmeans":
        idx = kmeans_select(feats, k, generator, max_iter=options.kmeans_iters)
    else:
        idx = torch.sort(torch.randperm(feats.shape[0], generator=generator)[:k]).values
    return idx.numpy()


@register_builder("latent")
class LatentBuilder(Builder):
    """Encode ``store``, keep IPC diverse latents per class, recompress them: a ``latent`` set."""

    Options = LatentOptions
    options: LatentOptions

    def build(self, store: ClipStore, ipc: int, generator: torch.Generator, *, device: str | torch.device = "cpu",
              progress: bool = False) -> BuiltSet:
        options = self.options
        codec = resolve_codec(store, options.codec, device=device, progress=progress)
        latents = encoded_latents(store, codec, cache_dir=options.cache_dir, batch_size=options.encode_batch,
                                  device=device, progress=progress)
        latent_shape = tuple(int(s) for s in latents.latent_shape)
        ipc, budget = choose_latent_ipc(store, int(ipc), options, latent_shape)
        check_ipc(store, ipc)
        picks = []
        for c in range(store.num_classes):
            members = latents.class_indices(c)
            feats = latents.batch(members).reshape(len(members), -1)  # (n, c, t, h, w) -> (n, c*t*h*w)
            picks.append(members[select_latents(feats, ipc, generator, options)])
        idx = np.concatenate(picks).astype(np.int64)
        packed = compress(latents.batch(idx), options.compress)  # (N, c, t, h, w), class order
        tensors = {LATENT_PREFIX + k: v for k, v in packed.tensors.items()}
        if options.embed_codec:
            tensors.update(embedded_state(codec))
        layout = {
            "codec": codec.describe(),
            "codec_embedded": bool(options.embed_codec),
            "compression": str(packed.spec),
            "latent_shape": list(latent_shape),
            "num_latents": len(idx),
            "decoder_bytes": decoder_weight_bytes(codec),
            "budget_bytes": budget,
        }
        info = {
            "reconstruction_error": packed.errors,
            "selection": {k: v for k, v in dataclasses.asdict(options).items()
                          if k in ("select", "kernel", "bandwidth")},
            "latent_store": str(latents.root),
            "source_ids": [store.source_id(int(i)) for i in idx],
        }
        return BuiltSet(kind="latent", tensors=tensors, labels=store.labels_tensor(idx), ipc=ipc, layout=layout,
                        info=info, equal_storage_ipc=options.match_ipc)


register_method(
    MethodSpec(
        "latent",
        "latent distillation: codec latents picked by k-DPP / k-means, recompressed (Tucker, PCA, int8), training-free",
        builder="latent",
        smoke={"builder": {"codec": "${codec}"}},
    )
)
