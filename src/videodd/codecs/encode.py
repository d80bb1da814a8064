"""Encode a ClipStore into a LatentStore on disk: streaming, resumable, deterministic.

Layout of a latent store folder::

    latents.npy      float32 (N, c, t, h, w), written through a memmap batch by batch
    labels.npy       int64 (N,)
    meta.json        codec description (kind, path, sha256, config), the source store's fingerprint,
                     classes, ClipSpec, mean/std, video and latent shapes; written LAST, so a folder
                     without it is an unfinished encoding
    .progress.json   while encoding: rows done (atomically rewritten after every batch)

``encode_store(..., resume=True)`` continues an interrupted encoding at the first row not yet
recorded, with the batch size the encoding started with, so the bytes equal those of an
uninterrupted run. Encoding is the posterior mean unless ``sample=True``; samples are drawn from a
generator seeded per batch from ``seed`` and the batch's first row, so they resume exactly too.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from videodd._version import __version__
from videodd.codecs.base import Codec, CodecError, unit_videos
from videodd.data.store import ClipStore
from videodd.io import atomic_path, write_json
from videodd.seeding import make_generator

LATENT_FORMAT_VERSION = 1
PROGRESS_FILE = ".progress.json"


class LatentStore:
    """An encoded split: float32 latents memory-mapped from ``latents.npy``, labels and manifest."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        meta_path = self.root / "meta.json"
        if not meta_path.is_file():
            if (self.root / PROGRESS_FILE).is_file():
                raise CodecError(f"{self.root}: the encoding is unfinished; continue it with "
                                 "`videodd encode ... --resume` (encode_store(..., resume=True))")
            raise CodecError(f"{meta_path}: missing; {self.root} is not a latent store written by `videodd encode`")
        try:
            self.meta: dict[str, Any] = json.loads(meta_path.read_text(encoding="utf-8"))
            self.latents = np.load(self.root / "latents.npy", mmap_mode="r", allow_pickle=False)
            self.labels = np.load(self.root / "labels.npy", allow_pickle=False).astype(np.int64)
            expected = (int(self.meta["num_clips"]), *(int(v) for v in self.meta["latent_shape"]))
        except (OSError, ValueError, KeyError, TypeError) as err:  # JSONDecodeError is a ValueError
            raise CodecError(f"{self.root}: unreadable latent store ({err!r})") from None
        if self.latents.dtype != np.float32 or self.latents.shape != expected:
            raise CodecError(f"{self.root / 'latents.npy'}: {self.latents.dtype} {self.latents.shape} does not match "
                             f"the manifest's float32 {expected}")
        if self.labels.shape != (expected[0],):
            raise CodecError(f"{self.root / 'labels.npy'}: {self.labels.shape} labels for {expected[0]} latents")

    # -- description -----------------------------------------------------------------------------
    @property
    def classes(self) -> list[str]:
        return list(self.meta["classes"])

    @property
    def num_classes(self) -> int:
        return len(self.meta["classes"])

    @property
    def latent_shape(self) -> tuple[int, ...]:
        """``(c, t, h, w)`` of one latent."""
        return tuple(self.meta["latent_shape"])

    @property
    def video_shape(self) -> tuple[int, int, int, int]:
        """``(C, T, H, W)`` of one decoded video."""
        c, t, h, w = self.meta["video_shape"]
        return (c, t, h, w)

    @property
    def mean(self) -> list[float]:
        return list(self.meta["mean"])

    @property
    def std(self) -> list[float]:
        return list(self.meta["std"])

    @property
    def codec_info(self) -> dict[str, Any]:
        """The codec's ``describe()`` at encoding time (kind, path, sha256, config, weight_bytes)."""
        return dict(self.meta["codec"])

    @property
    def codec_spec(self) -> str:
        """``KIND:PATH`` for :func:`videodd.codecs.load_codec`."""
        return f"{self.meta['codec']['kind']}:{self.meta['codec']['path']}"

    def load_codec(self, device: str | torch.device = "cpu") -> Codec:
        """Load the codec that wrote these latents; refuse one whose weights changed since."""
        from videodd.codecs.base import load_codec

        codec = load_codec(self.codec_spec, device=device)
        want = self.meta["codec"].get("sha256")
        if want and codec.describe().get("sha256") != want:
            raise CodecError(f"{self.codec_spec}: the codec's sha256 differs from the one that encoded {self.root}")
        return codec

    @property
    def nbytes(self) -> int:
        """Bytes of the float32 latents."""
        return int(self.latents.nbytes)

    def __len__(self) -> int:
        return int(self.meta["num_clips"])

    def __repr__(self) -> str:
        return (f"LatentStore({str(self.root)!r}, codec={self.meta['codec']['kind']}, latents={len(self)}, "
                f"classes={self.num_classes}, latent_shape={self.latent_shape})")

    def class_indices(self, c: int) -> np.ndarray:
        """Indices of the latents of class ``c``."""
        return np.flatnonzero(self.labels == c)

    def batch(self, indices: np.ndarray | list[int], device: str | torch.device = "cpu") -> torch.Tensor:
        """float32 latents ``(n, c, t, h, w)`` for ``indices``."""
        idx = np.asarray(indices, dtype=np.int64)
        return torch.from_numpy(np.ascontiguousarray(self.latents[idx])).to(device)


def _identity(store: ClipStore, codec: Codec, latent_shape: tuple[int, ...], sample: bool, seed: int) -> dict:
    """What must not change between an interrupted encoding and its resumption."""
    info = codec.describe()
    ident = {
        "store_fingerprint": store.fingerprint,
        "num_clips": len(store),
        "codec_kind": info["kind"],
        "codec_sha256": info["sha256"],
        "codec_config": info["config"],
        "latent_shape": list(latent_shape),
        "sample": bool(sample),
        "seed": int(seed) if sample else None,
    }
    return json.loads(json.dumps(ident))  # as it reads back from JSON (tuples become lists)


def encode_store(
    store: ClipStore,
    codec: Codec,
    out_dir: str | os.PathLike[str],
    *,
    batch_size: int = 64,
    resume: bool = False,
    progress: bool = False,
    device: str | torch.device = "cpu",
    sample: bool = False,
    seed: int = 0,
    on_batch: Callable[[int, int], None] | None = None,
) -> LatentStore:
    """Encode every clip of ``store`` with ``codec`` into the latent store ``out_dir``.

    Clips are read in order, ``batch_size`` at a time, converted to unit videos and encoded on
    ``device``; the latents go straight into the ``latents.npy`` memmap, so memory stays at one batch.

    Args:
        resume: continue an unfinished encoding in ``out_dir`` (refused if the store, codec or
            sampling settings differ); a finished one is returned as is. Without it, ``out_dir`` is
            encoded from scratch.
        sample: draw latents from the posterior instead of taking its mean.
        seed: seeds the posterior samples when ``sample`` is set.
        on_batch: called as ``on_batch(rows_done, total)`` after each batch is safely recorded.
    """
    if batch_size < 1:
        raise CodecError(f"batch_size must be >= 1, got {batch_size}")
    out = Path(out_dir)
    codec = codec.to(device).eval()
    latent_shape = codec.latent_shape(store.video_shape)
    ident = _identity(store, codec, latent_shape, sample, seed)
    n = len(store)
    progress_path, meta_path = out / PROGRESS_FILE, out / "meta.json"

    done = 0
    if resume and meta_path.is_file() and not progress_path.is_file():
        existing = LatentStore(out)
        if existing.meta.get("identity") != ident:
            raise CodecError(f"{out}: already holds an encoding with another store, codec or settings; "
                             "choose another folder or encode without --resume to overwrite it")
        return existing
    if resume and progress_path.is_file():
        try:
            state = json.loads(progress_path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as err:
            raise CodecError(f"{progress_path}: unreadable ({err}); encode without --resume to start over") from None
        if state.get("identity") != ident:
            raise CodecError(f"{out}: the encoding being resumed used another store, codec or settings; resume "
                             "with the same ones or encode without --resume to start over")
        done, batch_size = int(state["rows_done"]), int(state["batch_size"])  # same batches: same bytes
        latents = np.lib.format.open_memmap(out / "latents.npy", mode="r+")
        if latents.shape != (n, *latent_shape) or latents.dtype != np.float32:
            raise CodecError(f"{out / 'latents.npy'}: does not match the encoding being resumed; start over")
    else:
        out.mkdir(parents=True, exist_ok=True)
        meta_path.unlink(missing_ok=True)  # from now on the folder is an unfinished encoding
        _write_progress(progress_path, ident, 0, batch_size)
        with atomic_path(out / "labels.npy") as tmp, open(tmp, "wb") as fh:
            np.save(fh, np.asarray(store.labels, dtype=np.int64))
        latents = np.lib.format.open_memmap(out / "latents.npy", mode="w+", dtype=np.float32, shape=(n, *latent_shape))

    bar = tqdm(total=n, initial=done, desc="encode", unit="clip", disable=not progress, leave=False)
    try:
        for start in range(done, n, batch_size):
            stop = min(start + batch_size, n)
            raw = torch.from_numpy(np.array(store.clips[start:stop]))  # a sequential read, copied off the memmap
            videos = unit_videos(raw).to(device)
            gen = _batch_generator(seed, start, device) if sample else None
            with torch.no_grad():
                z = codec.encode(videos, sample=sample, generator=gen)
            latents[start:stop] = z.float().cpu().numpy()
            latents.flush()  # the rows are on disk before the progress file says so
            _write_progress(progress_path, ident, stop, batch_size)
            bar.update(stop - start)
            if on_batch is not None:
                on_batch(stop, n)
    finally:
        bar.close()
    del latents  # close the memmap before the manifest declares the store complete

    info = codec.describe()
    write_json(meta_path, {
        "format_version": LATENT_FORMAT_VERSION,
        "kind": "latent_store",
        "codec": info,
        "codec_spec": f"{info['kind']}:{info['path']}",
        "source": {"root": str(store.root.resolve()), "dataset": store.meta.dataset, "split": store.meta.split,
                   "fingerprint": store.fingerprint},
        "dataset": store.meta.dataset,
        "split": store.meta.split,
        "classes": list(store.classes),
        "spec": store.spec.to_dict(),
        "mean": list(store.meta.mean),
        "std": list(store.meta.std),
        "video_shape": list(store.video_shape),
        "latent_shape": list(latent_shape),
        "num_clips": n,
        "dtype": "float32",
        "identity": ident,
        "library_version": __version__,
    })
    progress_path.unlink(missing_ok=True)
    return LatentStore(out)


def _write_progress(path: Path, ident: dict, rows_done: int, batch_size: int) -> None:
    write_json(path, {"identity": ident, "rows_done": rows_done, "batch_size": batch_size})


def _batch_generator(seed: int, first_row: int, device: str | torch.device) -> torch.Generator:
    """A generator for one batch's posterior samples, independent of where an encoding resumed."""
    if torch.device(device).type == "cpu":
        return make_generator(seed * 1_000_003 + first_row)
    gen = torch.Generator(device=device)
    gen.manual_seed(seed * 1_000_003 + first_row)
    return gen
