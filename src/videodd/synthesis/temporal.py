"""Temporal compression: ``t`` stored frames expanded to the clip's ``T`` by a ``(T, t)`` matrix.

The temporal-compression study of "Dancing with Still Images" (Wang et al. CVPR 2024; docs/ARCHITECTURE.md
section 10) keeps fewer synthetic frames than the clip has and expands them along time:

- ``nearest``: each output frame copies the stored frame nearest its position;
- ``linear``: each output frame blends the two stored frames around its position;
- ``learned``: a learnable ``(T, t)`` mixing matrix, shared by all videos, initialised to ``linear``.

Positions follow ``align_corners=True``: output frame ``i`` sits at ``i (t - 1) / (T - 1)`` in
stored-frame units, so the first and last output frames ARE the first and last stored frames,
and stored frame ``j`` is *anchored* at output position ``j (T - 1) / (t - 1)``. With ``t = 1``
every output frame is the one stored frame (the frame repeated over time). Ties of ``nearest``
go to the later frame (``floor(p + 1/2)``). The matrices are built with integer arithmetic, so
they are exact where the weights are (0, 1, 1/2, ...), and applied with one ``einsum``.

A ``pixels`` DistilledSet made with ``frames``/``interp`` stores the compact ``videos``
``(N, C, t, H, W)`` (and, for ``learned``, ``interp_matrix`` ``(T, t)``) with
``manifest.layout["temporal"] = {"frames": t, "interp": ...}``; materializing expands them
exactly as the parametrization's ``forward()`` does. Files without that entry are plain pixels.
"""

from __future__ import annotations

from typing import Any

import torch

INTERPS = ("nearest", "linear", "learned")
LAYOUT_KEY = "temporal"
MATRIX_KEY = "interp_matrix"


def interp_matrix(frames_out: int, frames_in: int, mode: str) -> torch.Tensor:
    """The float32 ``(T, t)`` matrix that expands ``t = frames_in`` frames to ``T = frames_out``.

    ``mode`` is ``nearest`` or ``linear`` (``learned`` starts from ``linear``). Row ``i`` holds the
    weights of the stored frames in output frame ``i``; every row sums to 1.
    """
    big, small = int(frames_out), int(frames_in)
    if not 1 <= small <= big:
        raise ValueError(f"need 1 <= stored frames <= output frames, got t={small}, T={big}")
    if mode not in INTERPS:
        raise ValueError(f"interp {mode!r} is not one of {list(INTERPS)}")
    m = torch.zeros(big, small, dtype=torch.float32)
    if small == 1:
        m[:, 0] = 1.0
        return m
    span = big - 1  # > 0 since big >= small >= 2
    for i in range(big):
        num = i * (small - 1)  # position i (t-1)/(T-1) = num / span, in stored-frame units
        if mode == "nearest":
            m[i, (2 * num + span) // (2 * span)] = 1.0
            continue
        lo, rem = divmod(num, span)
        if rem == 0:
            m[i, lo] = 1.0
        else:
            m[i, lo] = (span - rem) / span
            m[i, lo + 1] = rem / span
    return m


def anchor_frames(frames_out: int, frames_in: int) -> list[int]:
    """Which of ``T`` real frames initialise the ``t`` stored frames: the ones at their anchors.

    Stored frame ``j`` sits at output position ``j (T - 1) / (t - 1)`` (rounded half up to a real
    frame; exact when ``t - 1`` divides ``T - 1``); with ``t = 1``, the centre frame ``T // 2``.
    """
    big, small = int(frames_out), int(frames_in)
    if not 1 <= small <= big:
        raise ValueError(f"need 1 <= stored frames <= output frames, got t={small}, T={big}")
    if small == 1:
        return [big // 2]
    return [(2 * j * (big - 1) + (small - 1)) // (2 * (small - 1)) for j in range(small)]


def expand(videos: torch.Tensor, matrix: torch.Tensor) -> torch.Tensor:
    """``videos`` ``(N, C, t, H, W)`` and ``matrix`` ``(T, t)`` -> ``(N, C, T, H, W)``."""
    if videos.dim() != 5 or matrix.dim() != 2 or matrix.shape[1] != videos.shape[2]:
        raise ValueError(f"cannot expand videos {tuple(videos.shape)} (N, C, t, H, W) with a matrix "
                         f"{tuple(matrix.shape)} (T, t)")
    return torch.einsum("ts,ncshw->ncthw", matrix.to(videos.dtype), videos)


# -- the ``pixels`` DistilledSet kind with temporal compression ----------------------------------------
def temporal_meta(manifest: Any) -> dict[str, Any] | None:
    """``manifest.layout["temporal"]`` checked (``frames`` in ``[1, T]``, a known ``interp``), or None."""
    meta = manifest.layout.get(LAYOUT_KEY)
    if meta is None:
        return None
    big = int(manifest.spec.frames)
    if not isinstance(meta, dict) or meta.get("interp") not in INTERPS or not isinstance(meta.get("frames"), int) \
            or isinstance(meta.get("frames"), bool) or not 1 <= meta["frames"] <= big:
        raise ValueError(f"manifest.layout[{LAYOUT_KEY!r}] must be {{'frames': 1..{big}, 'interp': one of "
                         f"{list(INTERPS)}}}, got {meta!r}")
    return meta


def check_temporal(tensors: dict[str, torch.Tensor], manifest: Any, num_videos: int, meta: dict[str, Any]) -> None:
    """Shapes of the compact ``videos`` ``(N, C, t, H, W)`` and, for ``learned``, the ``(T, t)`` matrix."""
    big, h, w = manifest.spec.shape
    small = int(meta["frames"])
    want = {"videos": (num_videos, len(manifest.mean), small, h, w)}
    if meta["interp"] == "learned":
        want[MATRIX_KEY] = (big, small)
    elif MATRIX_KEY in tensors:
        raise ValueError(f"tensor {MATRIX_KEY!r} is only stored with interp 'learned', not {meta['interp']!r}")
    for name, shape in want.items():
        if name not in tensors:
            raise ValueError(f"a pixels set with {small} stored frames ({meta['interp']}) needs a tensor {name!r}; "
                             f"it has {sorted(tensors)}")
        t = tensors[name]
        if not t.is_floating_point() or tuple(t.shape) != shape:
            raise ValueError(f"tensor {name!r} must be float {shape}, got {t.dtype} {tuple(t.shape)}")


def materialize_temporal(tensors: dict[str, torch.Tensor], manifest: Any, meta: dict[str, Any]) -> torch.Tensor:
    """The compact videos expanded to ``T`` frames, exactly as ``Pixels.forward()`` does."""
    videos = tensors["videos"].float()
    if meta["interp"] == "learned":
        matrix = tensors[MATRIX_KEY].float()
    else:
        matrix = interp_matrix(manifest.spec.frames, int(meta["frames"]), meta["interp"]).to(videos.device)
    return expand(videos, matrix)
