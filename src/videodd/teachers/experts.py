"""Expert trajectories for trajectory matching (MTT, Cazenavette et al. 2022).

``train_experts(store, out_dir, cfg)`` trains ``cfg.num_experts`` networks on the real data
through the one training loop (``videodd.train.fit``) and keeps each network's parameters at
epoch 0 (the initialisation) and after every epoch up to ``cfg.save_epochs_up_to``. Training
stops there: later epochs could never be used by a recipe that needs only those snapshots.

On disk (``out_dir``)::

    expert_0000.safetensors   one tensor "trajectory" (S, P) float32: row s = the flattened
                              parameters after epoch s (row 0 = the initialisation), in
                              ``model.named_parameters()`` order; its metadata (JSON) names the
                              model, parameter names/shapes, store fingerprint, seed and config
    expert_0001.safetensors   ...
    experts.json              manifest: model, store fingerprint, classes, spec, epochs kept,
                              parameter layout, per-expert bytes and training losses, total bytes

One (S, P) tensor per expert (not one tensor per epoch): MTT needs two rows (the start and the
target epoch) per iteration, and a safetensors slice reads exactly those rows from disk without
loading the whole trajectory (about 175 MB per expert for ConvNet3D at MiniUCF, 12 snapshots).

Every expert is written atomically and seeded from ``(seed, index)`` alone, so an interrupted
run resumed with ``resume=True`` (finished experts are skipped) gives the same files as an
uninterrupted one, and raising ``num_experts`` later adds experts without touching the others.

Published settings (Wang et al. CVPR 2024, ``buffer.py`` / ``sh/baseline/buffer.sh`` of
yuz1wan/video_distillation at 5871dc5): ConvNet3D, 30 experts (``--num_experts 30``), 50 epochs
(``--train_epochs`` default), SGD lr 0.01 (``--lr_teacher 0.01``), momentum 0 (``--mom``), weight
decay 0 (``--l2``), batch 256, constant lr (no ``--decay``), no DSA for videos (image MTT trains
its experts with DSA; the video code dropped it). The published input pipeline is this module's
default (``ExpertConfig.flip``, ``zscore``, ``renormalize``): buffer.sh passes no ``--preload``, so
the experts read ``dst_train`` through a DataLoader (buffer.py line 63) and every read flips the
clip left-right with probability 0.5 (``distill_utils/dataset.py`` ``read_images``, e.g. lines
398-411); the loaders normalize with the ImageNet mean/std (``utils.py`` ``get_dataset``, lines
214-226 for miniUCF101); ``utils.py`` ``epoch('train')`` (line 770) z-scores every batch by its own
scalar mean and std. MTT with ``max_start_epoch`` 10 and ``expert_epochs`` 1 reads epochs 0..10
only, so ``save_epochs_up_to=10`` is all a published recipe needs.

Folders of format version 1 (before ``flip``/``zscore``/``renormalize`` existed) were trained
without flips, z-score or renormalization: reading or resuming them fills those settings in as
such (:data:`LEGACY_PIPELINE`), so they stay usable and are recognisably not the published buffer.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

import videodd.distributed as distributed
from videodd._version import __version__
from videodd.augment import AugmentConfig, apply_augment_grouped, sample_params
from videodd.config import to_dict
from videodd.data.spec import ClipSpec
from videodd.data.store import ClipStore
from videodd.io import atomic_path, write_json
from videodd.models import MODELS, create_model
from videodd.seeding import make_generator, seeded
from videodd.teachers.base import TeacherError, store_identity
from videodd.train import RENORMALIZATIONS, StoreData, TrainConfig, fit

FORMAT = "videodd-experts"
FORMAT_VERSION = 2  # 2: the input pipeline (flip, zscore, renormalize) is part of the config
#: the input pipeline of experts written before it was recorded (format version 1): none of it
LEGACY_PIPELINE: dict[str, Any] = {"flip": 0.0, "zscore": False, "renormalize": None}
MANIFEST = "experts.json"
TENSOR = "trajectory"
META_KEY = "videodd_expert"


class ExpertError(TeacherError):
    """Expert trajectories are missing, incompatible with the run, or cannot be trained."""


@dataclass(frozen=True)
class ExpertConfig:
    """How expert networks are trained (defaults: the published video MTT buffers).

    Attributes:
        model: registry name of the network (it must have no batch norm: see ``check_no_batchnorm``).
        epochs: training epochs of one expert (published 50; training stops at ``save_epochs_up_to``).
        lr: SGD learning rate, constant (published ``lr_teacher`` 0.01).
        momentum: SGD momentum (published 0).
        weight_decay: L2 weight decay (published 0).
        batch_size: mini-batch size (published 256).
        augment: DSA ops applied to each real batch, one draw per clip ([] = none, the published
            video setting; image MTT uses DSA here).
        flip: probability that a clip is flipped left-right each time it is read (published 0.5: the
            official loaders' ``read_images``, ``distill_utils/dataset.py`` lines 398-411, read by
            buffer.py's DataLoader at every epoch). 0 never flips (videodd before issue 27).
        zscore: z-score every training batch by its own scalar mean and unbiased std (published: on,
            ``utils.py`` ``epoch`` line 770). The MTT student does NOT z-score the synthetic batches
            (``distill_baseline.py`` line 247 calls ``student_net(x)`` on them directly).
        renormalize: map each batch from the store's own per-channel normalization to a named one
            before the z-score (``TrainConfig.renormalize``; published ``"imagenet"``: the official
            loaders' ``transforms.Normalize``, ``utils.py`` lines 214-226). None leaves the store's.
        num_experts: how many experts (published 30 for video, 100 for images).
        save_epochs_up_to: keep snapshots 0..K and stop training after epoch K; None keeps every
            epoch. A recipe with ``max_start_epoch`` S and ``expert_epochs`` M needs K >= S + M - 1.
    """

    model: str = "convnet3d-s"
    epochs: int = 50
    lr: float = 0.01
    momentum: float = 0.0
    weight_decay: float = 0.0
    batch_size: int = 256
    augment: tuple[str, ...] = ()
    flip: float = 0.5
    zscore: bool = True
    renormalize: str | None = "imagenet"
    num_experts: int = 30
    save_epochs_up_to: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "augment", tuple(self.augment))
        if self.epochs < 1 or self.batch_size < 1 or self.num_experts < 1:
            raise ValueError("epochs, batch_size and num_experts must be >= 1")
        if not self.lr > 0 or self.momentum < 0 or self.weight_decay < 0:
            raise ValueError("lr must be > 0, momentum and weight_decay >= 0")
        if self.save_epochs_up_to is not None and not 1 <= self.save_epochs_up_to <= self.epochs:
            raise ValueError(f"save_epochs_up_to must be in [1, epochs={self.epochs}], got {self.save_epochs_up_to}")
        if not 0.0 <= self.flip <= 1.0:
            raise ValueError(f"flip is a probability in [0, 1], got {self.flip}")
        if self.renormalize is not None and self.renormalize not in RENORMALIZATIONS:
            raise ValueError(f"renormalize must be null or one of {list(RENORMALIZATIONS)}, got {self.renormalize!r}")
        MODELS.get(self.model)  # unknown names fail here, listing the valid ones
        if self.augment:
            AugmentConfig(ops=self.augment)  # unknown ops fail here

    @property
    def last_epoch(self) -> int:
        """The last epoch trained and kept."""
        return self.epochs if self.save_epochs_up_to is None else self.save_epochs_up_to

    def identity(self) -> dict[str, Any]:
        """The settings every expert of a folder must share (everything but ``num_experts``)."""
        data = to_dict(self)
        data.pop("num_experts")
        return data

    def train_config(self) -> TrainConfig:
        """The ``fit`` schedule of one expert: constant lr (buffer.py without ``--decay``) and this input pipeline."""
        return TrainConfig(epochs=self.last_epoch, batch_size=self.batch_size, lr=self.lr, momentum=self.momentum,
                           weight_decay=self.weight_decay, lr_milestones=(), flip=self.flip,
                           batch_zscore=self.zscore, renormalize=self.renormalize)

    @property
    def published_pipeline(self) -> bool:
        """Flips of 0.5, per-batch z-score and the ImageNet normalization: the official experts' input."""
        return self.flip == 0.5 and self.zscore and self.renormalize == "imagenet"


def pipeline_of(config: dict[str, Any]) -> dict[str, Any]:
    """The input pipeline (``flip``, ``zscore``, ``renormalize``) of an expert folder's recorded ``config``;
    a version-1 config (which has none of them) gets :data:`LEGACY_PIPELINE`, how it was trained."""
    return {k: config.get(k, v) for k, v in LEGACY_PIPELINE.items()}


def _upgrade(record: dict[str, Any]) -> dict[str, Any]:
    """A manifest or expert metadata with its config's pipeline filled in (version-1 folders)."""
    if "config" not in record:
        return record
    return {**record, "config": {**record["config"], **pipeline_of(record["config"])}}


@dataclass
class ExpertsResult:
    """What ``train_experts`` returns."""

    out_dir: Path
    manifest: dict[str, Any]
    trained: list[int] = field(default_factory=list)  # indices trained by this call
    skipped: list[int] = field(default_factory=list)  # indices found finished on disk
    seconds: float = 0.0

    @property
    def total_bytes(self) -> int:
        """Disk used by all expert files of the folder."""
        return int(self.manifest["total_bytes"])


# -- helpers ---------------------------------------------------------------------------------
def expert_seed(seed: int, index: int) -> int:
    """A 63-bit seed for expert ``index`` that depends on ``(seed, index)`` only."""
    digest = hashlib.sha256(f"videodd-expert:{seed}:{index}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def expert_path(out_dir: str | Path, index: int) -> Path:
    return Path(out_dir) / f"expert_{index:04d}.safetensors"


def check_no_batchnorm(net: nn.Module, model: str) -> None:
    """Refuse networks with batch norm (or any buffer): trajectory matching replays the student
    from parameters alone, and batch statistics of a few synthetic clips would differ from the
    expert's running statistics. The published MTT uses no-norm / instance-norm networks."""
    bn = [name for name, m in net.named_modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    buffers = [name for name, _ in net.named_buffers()]
    if bn or buffers:
        what = f"batch norm layers {bn[:3]}" if bn else f"buffers {buffers[:3]}"
        examples = [n for n in ("convnet3d", "convnet3d-in", "convnet3d-s", "convnet3d-s-in") if n in MODELS]
        raise ExpertError(
            f"model {model!r} has {what}: expert trajectories and MTT need a network whose state is its parameters "
            f"(published MTT uses no-norm or instance-norm nets), e.g. {', '.join(examples)}"
        )


def param_layout(net: nn.Module) -> tuple[list[str], list[list[int]]]:
    """Names and shapes of ``net``'s parameters, in the order of the flattened vector."""
    names, shapes = [], []
    for name, p in net.named_parameters():
        names.append(name)
        shapes.append(list(p.shape))
    return names, shapes


def flatten_params(net: nn.Module) -> torch.Tensor:
    """All parameters as one float32 CPU vector (P,), in ``named_parameters()`` order."""
    return torch.cat([p.detach().reshape(-1).float().cpu() for p in net.parameters()])


def _augment_fn(ops: Sequence[str]):
    """``f(videos, generator)`` for ``fit``: one DSA draw per clip (DSA gives each sample its own magnitudes)."""
    if not ops:
        return None
    aug_cfg = AugmentConfig(ops=tuple(ops))

    def augment(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        draws = [sample_params(aug_cfg, generator) for _ in range(len(x))]
        return apply_augment_grouped(x, draws, torch.arange(len(x), device=x.device))

    return augment


def read_expert_meta(path: str | Path) -> dict[str, Any]:
    """The JSON metadata of one expert file (ExpertError if unreadable)."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as fh:
            meta = fh.metadata() or {}
        return _upgrade(json.loads(meta[META_KEY]))
    except Exception as err:  # safetensors raises several types for a damaged file
        raise ExpertError(f"{path}: not a readable expert trajectory ({err})") from None


# -- training --------------------------------------------------------------------------------
def train_one_expert(
    store: ClipStore,
    cfg: ExpertConfig,
    index: int,
    *,
    seed: int = 0,
    device: str | torch.device = "cpu",
    progress: bool = False,
) -> tuple[torch.Tensor, dict[str, Any]]:
    """Train expert ``index``; returns its trajectory ``(S, P)`` (S = last_epoch + 1) and a summary."""
    generator = make_generator(expert_seed(seed, index))
    with seeded(generator):
        net = create_model(cfg.model, store.num_classes, store.video_shape)
    check_no_batchnorm(net, cfg.model)
    snapshots = [flatten_params(net)]  # epoch 0: the initialisation

    def snapshot(epoch: int, model: nn.Module) -> None:
        snapshots.append(flatten_params(model))

    train_cfg = cfg.train_config()
    start = time.perf_counter()
    result = fit(net, StoreData(store), train_cfg, generator=generator, device=device, augment=_augment_fn(cfg.augment),
                 on_epoch_end=snapshot, progress=progress, desc=f"expert {index}")
    if result.diverged_at_epoch is not None:
        raise ExpertError(f"expert {index}: the training loss became NaN/Inf at epoch {result.diverged_at_epoch}; "
                          f"lower the expert lr (now {cfg.lr})")
    trajectory = torch.stack(snapshots)  # (S, P)
    summary = {"epoch_losses": [float(x) for x in result.epoch_losses], "seconds": time.perf_counter() - start}
    return trajectory, summary


def _write_expert(path: Path, trajectory: torch.Tensor, meta: dict[str, Any]) -> None:
    from safetensors.torch import save_file

    with atomic_path(path) as tmp:
        save_file({TENSOR: trajectory.contiguous()}, str(tmp), metadata={META_KEY: json.dumps(meta)})


def train_experts(
    store: ClipStore,
    out_dir: str | Path,
    cfg: ExpertConfig | None = None,
    *,
    seed: int = 0,
    resume: bool = True,
    device: str | torch.device = "cpu",
    progress: bool = False,
) -> ExpertsResult:
    """Train ``cfg.num_experts`` experts on ``store`` into ``out_dir`` (see the module docstring).

    Args:
        seed: expert ``i`` is seeded from ``(seed, i)``: model init, shuffling, augmentation.
        resume: skip experts already in ``out_dir`` (their settings must match); with False, a
            folder that already holds experts is refused.
        progress: tqdm bars (one per expert, one over experts).

    Returns an ``ExpertsResult`` whose ``manifest`` is ``experts.json`` and ``total_bytes`` the
    disk used by the expert files.
    """
    cfg = cfg or ExpertConfig()
    out = Path(out_dir)
    start = time.perf_counter()
    with seeded(make_generator(0)):  # a throwaway net for the layout; no effect on any RNG
        probe = create_model(cfg.model, store.num_classes, store.video_shape)
    check_no_batchnorm(probe, cfg.model)
    names, shapes = param_layout(probe)
    identity = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "model": cfg.model,
        "num_classes": store.num_classes,
        **store_identity(store),
        "seed": seed,
        "config": cfg.identity(),
        "param_names": names,
        "param_shapes": shapes,
        "num_params": int(sum(p.numel() for p in probe.parameters())),
        "epochs_kept": list(range(cfg.last_epoch + 1)),
    }
    manifest_path = out / MANIFEST
    existing = sorted(out.glob("expert_*.safetensors")) if out.is_dir() else []
    if (existing or manifest_path.exists()) and not resume:
        raise ExpertError(f"{out} already holds expert trajectories; resume them (--resume) or choose another folder")
    if manifest_path.exists():
        _check_same_run(_upgrade(json.loads(manifest_path.read_text(encoding="utf-8"))), identity, out)
    distributed.barrier()  # every rank has checked the folder before rank 0 writes to it
    out.mkdir(parents=True, exist_ok=True)

    records: dict[int, dict[str, Any]] = {}
    if manifest_path.exists():
        for rec in json.loads(manifest_path.read_text(encoding="utf-8")).get("experts", []):
            if (out / rec["file"]).is_file():  # a deleted expert is trained again below (or dropped)
                records[int(rec["index"])] = rec
    result = ExpertsResult(out_dir=out, manifest={})
    bar = tqdm(range(cfg.num_experts), desc="experts", disable=not progress)
    for index in bar:
        if index % distributed.world_size() != distributed.rank():
            continue  # under torchrun, expert i is rank (i % world)'s: each writes its own files
        path = expert_path(out, index)
        if path.exists():
            try:
                meta = read_expert_meta(path)
            except ExpertError:
                meta = None  # unreadable (atomic writes make this rare): train it again
            if meta is not None:
                _check_same_run(meta, {**identity, "index": index}, path)
                records[index] = {"index": index, "file": path.name, "bytes": path.stat().st_size,
                                  **{k: meta[k] for k in ("epoch_losses", "seconds") if k in meta}}
                result.skipped.append(index)
                continue
        trajectory, summary = train_one_expert(store, cfg, index, seed=seed, device=device, progress=progress)
        _write_expert(path, trajectory, {**identity, "index": index, **summary})
        records[index] = {"index": index, "file": path.name, "bytes": path.stat().st_size, **summary}
        result.trained.append(index)
        if distributed.is_main():
            result.manifest = _write_manifest(manifest_path, identity, records)
    parts = distributed.gather_json({"records": {str(i): r for i, r in records.items()},
                                     "trained": result.trained, "skipped": result.skipped})
    for r, part in enumerate(parts):
        if r == distributed.rank():
            continue
        records.update({int(i): rec for i, rec in part["records"].items()})
        result.trained += part["trained"]
        result.skipped += part["skipped"]
    result.trained.sort()
    result.skipped.sort()
    result.manifest = _write_manifest(manifest_path, identity, records, write=distributed.is_main())
    distributed.barrier()  # the manifest is complete before any rank returns
    result.seconds = time.perf_counter() - start
    return result


def _write_manifest(path: Path, identity: dict[str, Any], records: dict[int, dict[str, Any]], *, write: bool = True
                    ) -> dict[str, Any]:
    experts = [records[i] for i in sorted(records)]
    manifest = {**identity, "experts": experts, "num_experts": len(experts),
                "total_bytes": int(sum(r["bytes"] for r in experts)), "library_version": __version__}
    if write:
        write_json(path, manifest)
    return manifest


_IDENTITY_KEYS = ("model", "store_fingerprint", "classes", "input_shape", "seed", "config", "param_names",
                  "param_shapes", "epochs_kept")


def _check_same_run(found: dict[str, Any], wanted: dict[str, Any], where: Path) -> None:
    """Refuse to mix experts trained with other settings, on another store or with another seed."""
    diffs = [k for k in _IDENTITY_KEYS if found.get(k) != wanted.get(k)]
    if "index" in wanted and found.get("index") != wanted["index"]:
        diffs.append("index")
    if diffs:
        detail = "; ".join(f"{k}: {_short(found.get(k))} on disk vs {_short(wanted.get(k))} now" for k in diffs)
        raise ExpertError(f"{where} was written with other settings ({detail}); use the same settings to resume, "
                          "or another output folder")


def _short(value: Any) -> str:
    text = json.dumps(value)
    return text if len(text) <= 80 else text[:77] + "..."


# -- reading ---------------------------------------------------------------------------------
class ExpertBuffer:
    """Read access to a folder written by ``train_experts``.

    Rows are read lazily (``snapshots(i, epochs)`` loads only the requested epochs of expert
    ``i`` from disk), so a buffer of many large experts costs no memory up front.
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        path = self.root / MANIFEST
        if not path.is_file():
            raise ExpertError(f"{self.root}: no {MANIFEST} here; train experts first "
                              f"(videodd experts --data DATA --out {self.root} ...)")
        self.manifest: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        if self.manifest.get("format") != FORMAT:
            raise ExpertError(f"{path} is not a videodd expert manifest")
        self.manifest = _upgrade(self.manifest)  # a version-1 folder: its pipeline written out (none)
        if not self.manifest.get("experts"):
            raise ExpertError(f"{self.root}: the manifest lists no finished expert")
        self.files = [self.root / rec["file"] for rec in self.manifest["experts"]]
        self.epochs_kept: list[int] = list(self.manifest["epochs_kept"])
        self.num_params = int(self.manifest["num_params"])

    def __len__(self) -> int:
        return len(self.files)

    @property
    def model(self) -> str:
        return str(self.manifest["model"])

    @property
    def last_epoch(self) -> int:
        return self.epochs_kept[-1]

    @property
    def pipeline(self) -> dict[str, Any]:
        """How the experts saw their clips: ``flip``, ``zscore``, ``renormalize`` (see :class:`ExpertConfig`)."""
        return pipeline_of(self.manifest["config"])

    def check_store(self, store: ClipStore, *, fingerprint: bool = True) -> None:
        """Refuse a store with other classes or clip shape (and, by default, other clips)."""
        try:
            store.check_compatible(classes=self.manifest["classes"], spec=ClipSpec.from_dict(self.manifest["spec"]),
                                   what=f"experts {self.root}")
        except ValueError as err:
            raise ExpertError(str(err)) from None
        if fingerprint and self.manifest["store_fingerprint"] != store.fingerprint:
            raise ExpertError(
                f"experts {self.root} were trained on a store with fingerprint {self.manifest['store_fingerprint']}, "
                f"not {store.root} ({store.fingerprint}); train experts on this store, or set "
                "objective.check_store=false to use them anyway")

    def check_model(self, net: nn.Module, model: str) -> None:
        """Refuse a network whose parameter names/shapes differ from the experts'."""
        names, shapes = param_layout(net)
        if names != self.manifest["param_names"] or shapes != self.manifest["param_shapes"]:
            theirs = sum(int(torch.Size(s).numel()) for s in self.manifest["param_shapes"])
            mine = sum(int(torch.Size(s).numel()) for s in shapes)
            raise ExpertError(
                f"experts {self.root} were trained with model {self.model!r} ({theirs:,} parameters) but this run "
                f"uses {model!r} ({mine:,} parameters, other layers or shapes); pass --model {self.model} or "
                "train experts with this model")

    def snapshots(self, index: int, epochs: Sequence[int]) -> torch.Tensor:
        """Flattened parameters of expert ``index`` after each of ``epochs`` -> ``(len(epochs), P)``."""
        from safetensors import safe_open

        missing = [e for e in epochs if e not in self.epochs_kept]
        if missing:
            raise ExpertError(f"experts {self.root} keep epochs 0..{self.last_epoch}; asked for epoch(s) {missing}")
        rows = []
        path = self.files[index]
        try:
            with safe_open(str(path), framework="pt") as fh:
                traj = fh.get_slice(TENSOR)
                shape = traj.get_shape()
                if list(shape) != [len(self.epochs_kept), self.num_params]:
                    raise ExpertError(f"{path}: trajectory shape {shape} does not match the manifest")
                for e in epochs:
                    row = self.epochs_kept.index(e)
                    rows.append(traj[row : row + 1])  # (1, P): reads one row from disk
        except ExpertError:
            raise
        except Exception as err:
            raise ExpertError(f"{path}: unreadable expert trajectory ({err})") from None
        return torch.cat(rows)  # (len(epochs), P)
