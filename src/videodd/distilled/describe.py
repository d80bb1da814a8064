"""``videodd info FILE``: a readable summary of a DistilledSet."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import torch

from videodd.distilled.kinds import KINDS, human_bytes
from videodd.distilled.manifest import LABELS_KEY, DistilledManifest


class Described(Protocol):
    """What :func:`describe_set` reads of a :class:`~videodd.distilled.container.DistilledSet`."""

    tensors: dict[str, torch.Tensor]
    labels: torch.Tensor
    manifest: DistilledManifest
    path: Path | None

    @property
    def num_videos(self) -> int: ...

    @property
    def soft_labels(self) -> bool: ...

    def storage_bytes(self) -> dict[str, int]: ...


def describe_set(dset: Described, full_train_bytes: int | None = None) -> str:
    """Method, dataset, classes, IPC, clip shape, labels, a storage table by tensor, the kind's own
    rows and the compression ratio against the full training set.

    Args:
        full_train_bytes: bytes of the full training set for the compression ratio; defaults to
            ``manifest.full_train_bytes``.
    """
    m = dset.manifest
    lines = [f"videodd distilled set{f' {dset.path}' if dset.path is not None else ''}"]

    def row(key: str, value: str) -> None:
        lines.append(f"  {key:<14}{value}")

    row("method", f"{m.method}  (kind: {m.kind})")
    row("dataset", f"{m.dataset}  (fingerprint {m.dataset_fingerprint or '-'})")
    shown = ", ".join(m.classes[:5]) + (", ..." if len(m.classes) > 5 else "")
    row("classes", f"{len(m.classes)}: {shown}")
    row("IPC", f"{m.ipc}  ({dset.num_videos} videos)")
    s = m.spec
    row(
        "clip spec",
        f"T={s.frames} frames, {s.size}x{s.size} px, stride {s.stride}, {len(m.mean)} channels "
        f"(videos (N, C, T, H, W) = ({dset.num_videos}, {len(m.mean)}, {s.frames}, {s.size}, {s.size}))",
    )
    label_dtype = str(dset.labels.dtype).removeprefix("torch.")
    loss = f", fitted with the {m.label_loss} label loss" if m.label_loss != "ce" else ""
    row("labels", f"{'soft' if dset.soft_labels else 'hard'} ({label_dtype}, {tuple(dset.labels.shape)}){loss}")
    if m.learned_lr is not None:
        row("learned lr", f"{m.learned_lr:g}")
    row("seed", str(m.seed))

    sizes = dset.storage_bytes()
    entries = [*dset.tensors.items(), (LABELS_KEY, dset.labels)]
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

    kind = KINDS.get(m.kind) if m.kind in KINDS else None
    if kind is not None and kind.describe is not None:
        for key, value in kind.describe(dset.tensors, m):
            row(key, value)
    full = full_train_bytes if full_train_bytes is not None else m.full_train_bytes
    if full and full > 0 and sizes["total"] > 0:
        ratio = float(full) / sizes["total"]
        row(
            "compression",
            f"{ratio:,.1f}x smaller than the full training set ({human_bytes(int(full))}; "
            f"{100.0 * sizes['total'] / float(full):.4g}% of it)",
        )
    for warning in m.warnings:
        row("warning", warning)
    row("format", f"v{m.format_version}, written by videodd {m.library_version}, created {m.created}")
    return "\n".join(lines)
