"""The fixed evaluation protocol: train fresh models on a distilled set, test on a ClipStore.

``evaluate(distilled, test_store, protocol) -> EvalReport``. Nothing here ever looks at test
accuracy to choose anything: every run reports its final model.
"""

from __future__ import annotations

import dataclasses
import json
import resource
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

import videodd.distributed as distributed
from videodd._version import __version__
from videodd.config import ConfigError, to_dict
from videodd.data.clips import resident
from videodd.data.store import ClipStore
from videodd.distilled import DistilledSet
from videodd.guards import VideoddWarning, collapsed
from videodd.io import write_json
from videodd.models import create_model, resolve_model
from videodd.registry import Registry
from videodd.seeding import make_generator, seeded
from videodd.selection import select_random
from videodd.train import (
    PRECISIONS,
    StoreData,
    TensorData,
    TrainConfig,
    VideoData,
    fit,
    fit_runs,
    precision,
    predict,
)


@dataclass(frozen=True)
class EvalProtocol:
    """A named, versioned evaluation protocol (saved inside every report).

    Attributes:
        name, version: identity; a changed protocol gets a new version.
        model: registry name of the evaluation network (a fresh one per run); ``auto`` is
            :func:`videodd.models.auto_model`: the published ``convnet3d`` for frames of 64 px and
            more, ``convnet3d-s-bn`` below.
        runs: independent runs (fresh init, fresh shuffling); mean ± std is reported.
        train: the schedule used to train on a distilled set.
        reference_train: the schedule for the full-training-set reference.
        use_learned_lr: use the lr stored in a distilled set (MTT) instead of ``train.lr``.
        eval_batch_size: batch size at test time.
        description: one line for reports.
        precision: arithmetic of training and testing on a GPU: ``fp32``, ``tf32`` (TF32 matmuls and
            convolutions: PyTorch's default for convolutions, under which the published code ran) or
            ``bf16`` (bfloat16 autocast). On a CPU ``fp32`` and ``tf32`` are float32 and ``bf16`` is CPU
            bfloat16 autocast.
        parallel_runs: train the runs at once (``torch.func.vmap`` over their stacked parameters), each with
            its own initialisation and shuffling; dropout masks then come from vmap's randomness rather
            than each run's seed. For GPUs, where one small run leaves the device idle; a CPU trains the runs
            one after the other all the same (vmap there was 1.5x slower than sequential runs:
            benchmarks/RESULTS.md section 12).
    """

    name: str
    version: int
    model: str
    runs: int
    train: TrainConfig
    reference_train: TrainConfig
    use_learned_lr: bool = True
    eval_batch_size: int = 256
    description: str = ""
    precision: str = "fp32"
    parallel_runs: bool = False

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision {self.precision!r} is not one of {list(PRECISIONS)}")

    def model_for(self, video_shape: tuple[int, ...]) -> str:
        """The evaluation model for videos ``(C, T, H, W)`` (resolves ``auto``)."""
        return resolve_model(self.model, video_shape)

    def with_model(self, model: str) -> EvalProtocol:
        return dataclasses.replace(self, model=model)

    def with_runs(self, runs: int) -> EvalProtocol:
        return dataclasses.replace(self, runs=runs)

    def with_epochs(self, epochs: int) -> EvalProtocol:
        """The protocol with ``train.epochs`` changed (lr milestones stay fractions of it), renamed
        ``NAME+epochs=E`` so that reports, and the cached references, never pass it off as the
        original; the full-data schedule ``reference_train`` is unchanged."""
        if epochs == self.train.epochs:
            return self
        return dataclasses.replace(self, name=f"{self.name}+epochs={epochs}",
                                   train=dataclasses.replace(self.train, epochs=epochs))


PROTOCOLS: Registry[EvalProtocol] = Registry("evaluation protocol")
_PUBLISHED = TrainConfig(epochs=500, batch_size=256, lr=0.01, momentum=0.9, weight_decay=5e-4, lr_milestones=(0.5,))
PROTOCOLS.register("vdsd")(
    EvalProtocol(
        name="vdsd",
        version=1,
        model="auto",
        runs=5,
        train=_PUBLISHED,
        reference_train=TrainConfig(epochs=50, batch_size=64, lr=0.01, lr_milestones=(0.5,)),
        description="published schedule (SGD 0.9, wd 5e-4, lr 0.01, 500 epochs, x0.1 at half, batch 256), 5 runs",
        precision="tf32",
    )
)
PROTOCOLS.register("default")(
    dataclasses.replace(
        PROTOCOLS.get("vdsd"),
        name="default",
        runs=3,
        description="published schedule, deterministic centre test clips, final model, 3 runs",
    )
)
PROTOCOLS.register("cpu")(
    EvalProtocol(
        name="cpu",
        version=1,
        model="auto",
        runs=3,
        train=TrainConfig(epochs=300, batch_size=256, lr=0.01, momentum=0.9, weight_decay=5e-4, lr_milestones=(0.5,)),
        reference_train=TrainConfig(epochs=30, batch_size=64, lr=0.01, lr_milestones=(0.5,)),
        description="CPU-scale: 300 epochs (x0.1 at half), deterministic test clips, final model, 3 runs",
    )
)
PROTOCOLS.register("fast")(
    dataclasses.replace(
        PROTOCOLS.get("default"),
        name="fast",
        precision="bf16",
        parallel_runs=True,
        description="the default protocol in bfloat16 autocast with its runs trained at once, for GPUs",
    )
)


def get_protocol(name: str) -> EvalProtocol:
    return PROTOCOLS.get(name)


REFERENCES = ("random", "full")
"""The references an evaluation can add: random real clips at the set's IPC, and the full training set."""


def check_references(references: tuple[str, ...] | list[str]) -> None:
    """ConfigError naming any reference that is not one of :data:`REFERENCES`."""
    unknown = [r for r in references if r not in REFERENCES]
    if unknown:
        raise ConfigError(f"unknown reference(s) {unknown}; valid: {', '.join(REFERENCES)}")


@dataclass
class RunResult:
    """One evaluation run: a fresh model trained with ``seed``, tested once."""

    seed: int
    top1: float
    top5: float
    per_class: list[float]
    final_train_loss: float
    train_seconds: float
    diverged_at_epoch: int | None = None
    collapsed: bool = False  # the model predicted one class for every test clip


@dataclass
class Summary:
    """Runs of one configuration with mean ± std (std over runs, ddof 0 as the papers report)."""

    runs: list[RunResult]
    top1_mean: float = 0.0
    top1_std: float = 0.0
    top5_mean: float = 0.0
    top5_std: float = 0.0

    def __post_init__(self) -> None:
        if self.runs:
            t1 = np.array([r.top1 for r in self.runs])
            t5 = np.array([r.top5 for r in self.runs])
            self.top1_mean, self.top1_std = float(t1.mean()), float(t1.std())
            self.top5_mean, self.top5_std = float(t5.mean()), float(t5.std())

    @property
    def per_class_mean(self) -> list[float]:
        return np.nanmean(np.array([r.per_class for r in self.runs]), axis=0).tolist()

    @property
    def diverged(self) -> int:
        """Runs whose training loss became NaN/Inf (their accuracy is that of the broken model)."""
        return sum(r.diverged_at_epoch is not None for r in self.runs)

    @property
    def collapsed(self) -> int:
        """Runs whose model predicted one class for every test clip (their accuracy is a class's share)."""
        return sum(r.collapsed for r in self.runs)

    def fmt(self) -> str:
        notes = [f"{n} {what}" for n, what in ((self.diverged, "diverged"), (self.collapsed, "collapsed")) if n]
        note = f" ({', '.join(notes)})" if notes else ""
        return f"{100 * self.top1_mean:.1f} ± {100 * self.top1_std:.1f}{note}"


@dataclass
class EvalReport:
    """Everything an evaluation measured; ``to_markdown()`` for people, ``save()`` for machines."""

    method: str
    ipc: int
    dataset: str
    dataset_fingerprint: str
    model: str
    protocol: dict[str, Any]
    result: Summary
    classes: list[str]
    storage_bytes: int
    storage_by_tensor: dict[str, int]
    full_train_bytes: int
    wall_seconds: float
    peak_memory_bytes: int
    peak_memory_kind: str
    references: dict[str, Summary] = field(default_factory=dict)
    library_version: str = __version__
    # DistilledSet.storage_detail().to_json(): pixel-equivalent IPC, the kind's parts and notes
    storage_detail: dict[str, Any] = field(default_factory=dict)
    label_loss: str = "ce"  # "mse" when the set's labels are regression targets (FRePo's learned labels)
    equal_storage_ipc: int | None = None  # the pixel IPC whose bytes the set was built to fit
    learned_lr_used: float | None = None  # the set's learned lr, when evaluation trained with it
    set_warnings: list[str] = field(default_factory=list)  # what the distillation run warned about
    tuning: dict[str, Any] | None = None  # how --tune chose the set's settings (the manifest's info["tuning"])

    @property
    def compression_ratio(self) -> float:
        """Full training set bytes (uint8 clips) over the bytes the method keeps."""
        return self.full_train_bytes / max(self.storage_bytes, 1)

    def to_json(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["compression_ratio"] = self.compression_ratio
        data["per_class_mean"] = dict(zip(self.classes, self.result.per_class_mean, strict=True))
        return data

    def save(self, path: str | Path) -> None:
        write_json(path, self.to_json())

    def to_markdown(self) -> str:
        lines = [
            f"### {self.method} on {self.dataset} (IPC {self.ipc}, model {self.model}, protocol "
            f"{self.protocol['name']} v{self.protocol['version']}, precision {self.protocol.get('precision', 'fp32')})",
            "",
            "| set | top-1 (%) | top-5 (%) | runs |",
            "|---|---|---|---|",
            _row(self.method, self.result),
        ]
        for name, summary in self.references.items():
            lines.append(_row(name, summary))
        lines += [
            "",
            f"storage: {self.storage_bytes:,} bytes (compression x{self.compression_ratio:,.1f} vs the "
            f"{self.full_train_bytes:,}-byte training set); wall time {self.wall_seconds:.1f} s; "
            f"peak memory {self.peak_memory_bytes / 2**20:,.0f} MiB ({self.peak_memory_kind})",
        ]
        lines += list(self.storage_detail.get("notes", []))
        if self.label_loss != "ce":
            lines.append(f"trained on the set's learned labels with the {self.label_loss} label loss")
        lr = self.protocol["train"]["lr"]
        lines.append(f"trained with the set's learned lr {self.learned_lr_used:g}" if self.learned_lr_used is not None
                     else f"trained with the protocol's lr {lr:g}")
        for name, summary in [(self.method, self.result), *self.references.items()]:
            if summary.collapsed:
                lines.append(f"**{name}: {summary.collapsed} of {len(summary.runs)} runs collapsed** (the model "
                             "predicted one class for every test clip; those runs are in the mean above)")
        lines += [f"warning from distillation: {w}" for w in self.set_warnings]
        if self.tuning:
            t = self.tuning
            tried = "; ".join(f"{r['key'] or '(as given)'}: {100 * r['val_top1_mean']:.1f} %" for r in t["rows"])
            lines.append(f"settings chosen on a validation split of the training store ({t['split']['fit_clips']} "
                         f"clips to fit, {t['split']['val_clips']} to validate; protocol {t['protocol']}): "
                         f"**{t['chosen'] or '(as given)'}**, among {tried}")
        return "\n".join(lines)


def _row(name: str, s: Summary) -> str:
    return f"| {name} | {s.fmt()} | {100 * s.top5_mean:.1f} ± {100 * s.top5_std:.1f} | {len(s.runs)} |"


def _peak_memory(device: torch.device) -> tuple[int, str]:
    if device.type == "cuda":
        return int(torch.cuda.max_memory_allocated(device)), "cuda max allocated"
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024, "process peak RSS"


def run_protocol(
    train_data: VideoData | list[VideoData],
    test_store: ClipStore,
    protocol: EvalProtocol,
    train_cfg: TrainConfig,
    *,
    seeds: list[int],
    device: str | torch.device = "cpu",
    progress: bool = False,
    desc: str = "eval",
    label_loss: str = "ce",
) -> Summary:
    """Train one fresh ``protocol.model`` per seed on ``train_data`` (or on ``train_data[i]`` for seed ``i``)
    and test each final model; all at once when ``protocol.parallel_runs`` (:func:`~videodd.train.fit_runs`).

    ``label_loss``: ``ce``, or ``mse`` for labels that are regression targets (FRePo's learned labels).
    """
    datas = train_data if isinstance(train_data, list) else [train_data] * len(seeds)
    # under torchrun each rank trains every world_size-th run; the results are gathered in seed order
    share = distributed.mine(range(len(seeds)))
    gens = [make_generator(seeds[i]) for i in share]
    models = []
    for gen in gens:
        with seeded(gen):
            models.append(create_model(protocol.model_for(test_store.video_shape), test_store.num_classes,
                                       test_store.video_shape))
    mine = [datas[i] for i in share]
    at_once = protocol.parallel_runs and torch.device(device).type == "cuda"  # a CPU: one after the other
    if at_once and len(models) > 1 and train_cfg.optimizer == "sgd":
        fitted = fit_runs(models, mine, train_cfg, generators=gens, device=device, progress=progress, desc=desc,
                          label_loss=label_loss, precision_kind=protocol.precision)
    else:
        fitted = [fit(model, data, train_cfg, generator=gen, device=device, progress=progress,
                      desc=f"{desc} run {i + 1}/{len(seeds)}", label_loss=label_loss,
                      precision_kind=protocol.precision)
                  for i, model, data, gen in zip(share, models, mine, gens, strict=True)]
    runs: dict[int, dict[str, Any]] = {}
    for i, model, fit_result in zip(share, models, fitted, strict=True):
        with precision(protocol.precision, torch.device(device)):
            pred = predict(model, StoreData(test_store), batch_size=protocol.eval_batch_size, device=device)
        if collapsed(pred.logits):
            warnings.warn(f"{desc} run {i + 1}: the model predicts one class for every test clip (collapsed)",
                          VideoddWarning, stacklevel=2)
        runs[i] = dataclasses.asdict(RunResult(
            seed=seeds[i],
            top1=pred.topk(1),
            top5=pred.topk(5),
            per_class=pred.per_class(test_store.num_classes),
            final_train_loss=fit_result.epoch_losses[-1],
            train_seconds=fit_result.seconds,
            diverged_at_epoch=fit_result.diverged_at_epoch,
            collapsed=collapsed(pred.logits),
        ))
    for part in distributed.gather_json({str(i): r for i, r in runs.items()}):  # every rank's runs, own included
        runs.update({int(i): r for i, r in part.items()})
    return Summary([RunResult(**runs[i]) for i in range(len(seeds))])


def _cached(cache_dir: str | Path | None, key: str, compute: Callable[[], Summary]) -> Summary:
    """Reference results are the same for every method: compute once per key, keep as JSON."""
    cache = Path(cache_dir) / f"{key}.json" if cache_dir is not None else None
    if cache is not None and cache.is_file():
        data = json.loads(cache.read_text(encoding="utf-8"))
        runs = [{**r, "per_class": [float("nan") if v is None else v for v in r["per_class"]],
                 "final_train_loss": float("nan") if r["final_train_loss"] is None else r["final_train_loss"]}
                for r in data["runs"]]
        return Summary([RunResult(**r) for r in runs])
    summary = compute()
    if cache is not None and distributed.is_main():
        write_json(cache, {"key": key, "runs": [dataclasses.asdict(r) for r in summary.runs]})
    return summary


def _reference_key(kind: str, train_store: ClipStore, test_store: ClipStore, protocol: EvalProtocol, seed: int) -> str:
    model = protocol.model_for(test_store.video_shape)
    return (f"{kind}-{protocol.name}-v{protocol.version}-{model}-r{protocol.runs}-s{seed}-"
            f"{train_store.fingerprint}-{test_store.fingerprint}")


def random_real_reference(
    train_store: ClipStore,
    test_store: ClipStore,
    protocol: EvalProtocol,
    ipc: int,
    *,
    seed: int = 0,
    device: str | torch.device = "cpu",
    progress: bool = False,
    cache_dir: str | Path | None = None,
) -> Summary:
    """Random real clips at ``ipc``: a new random selection for every run (cached by key)."""
    key = _reference_key(f"random-ipc{ipc}", train_store, test_store, protocol, seed)
    return _cached(cache_dir, key, lambda: _random_real(train_store, test_store, protocol, ipc, seed, device, progress))


def _random_real(train_store: ClipStore, test_store: ClipStore, protocol: EvalProtocol, ipc: int, seed: int,
                 device: str | torch.device, progress: bool) -> Summary:
    """Run ``r`` trains on its own random selection, from seed ``seed * 1000 + r``."""
    runs = range(protocol.runs)
    datas: list[VideoData] = [
        StoreData(train_store, select_random(train_store, ipc, make_generator(10_000 + seed * 101 + r))) for r in runs]
    return run_protocol(datas, test_store, protocol, protocol.train, seeds=[seed * 1000 + r for r in runs],
                        device=device, progress=progress, desc=f"random IPC {ipc}")


def full_data_reference(
    train_store: ClipStore,
    test_store: ClipStore,
    protocol: EvalProtocol,
    *,
    seed: int = 0,
    device: str | torch.device = "cpu",
    progress: bool = False,
    cache_dir: str | Path | None = None,
) -> Summary:
    """The full training set under ``protocol.reference_train`` (cached by key)."""
    key = _reference_key("full", train_store, test_store, protocol, seed)
    return _cached(cache_dir, key, lambda: run_protocol(
        StoreData(train_store), test_store, protocol, protocol.reference_train,
        seeds=[seed * 1000 + r for r in range(protocol.runs)], device=device, progress=progress, desc="full data"))


def evaluate(
    distilled: DistilledSet,
    test_store: ClipStore,
    protocol: EvalProtocol | str = "default",
    *,
    train_store: ClipStore | None = None,
    references: tuple[str, ...] = ("random", "full"),
    seed: int = 0,
    device: str | torch.device = "cpu",
    progress: bool = False,
    cache_dir: str | Path | None = None,
) -> EvalReport:
    """Evaluate ``distilled`` under ``protocol`` on ``test_store``.

    Args:
        train_store: needed for the references (random real clips at the same IPC, full data)
            and the compression ratio.
        references: which references to compute: ``"random"`` and/or ``"full"``.
        cache_dir: where reference results are cached between calls (they do not depend on the method).
    """
    protocol = get_protocol(protocol) if isinstance(protocol, str) else protocol
    check_references(references)
    distilled.check_compatible(test_store)
    fewest = int(test_store.class_counts().min())
    if fewest < 5:
        warnings.warn(f"{test_store.root}: a class has only {fewest} test clip(s): one clip moves its accuracy by "
                      f"{100 / fewest:.0f} points", VideoddWarning, stacklevel=2)
    if test_store.num_classes <= 5:
        warnings.warn(f"{test_store.root}: {test_store.num_classes} classes: top-5 accuracy is 100 % by construction",
                      VideoddWarning, stacklevel=2)
    device = torch.device(device)
    start = time.perf_counter()
    mat = distilled.materialize(device=device)  # the set lives on the device: no copy per step
    test_store = resident(test_store, device)  # on a GPU: gathered there, not read and copied per batch
    train_store = resident(train_store, device) if train_store is not None else None
    train_cfg = protocol.train
    learned_lr = distilled.manifest.learned_lr if protocol.use_learned_lr else None
    if learned_lr is not None:
        train_cfg = dataclasses.replace(train_cfg, lr=float(learned_lr))
    # a set whose labels are regression targets (FRePo's learned labels) says so in its manifest;
    # it trains with those labels under the mse label loss, as published
    label_loss = distilled.manifest.label_loss
    result = run_protocol(TensorData(mat.videos, mat.labels), test_store, protocol, train_cfg,
                          seeds=[seed * 1000 + r for r in range(protocol.runs)], device=device,
                          progress=progress, desc=distilled.manifest.method, label_loss=label_loss)
    refs: dict[str, Summary] = {}
    if train_store is not None:
        distilled.check_compatible(train_store)
        if "random" in references:
            refs[f"random real IPC {distilled.ipc}"] = random_real_reference(
                train_store, test_store, protocol, distilled.ipc, seed=seed, device=device, progress=progress,
                cache_dir=cache_dir,
            )
            # a set made to fit the bytes of pixel IPC K (latent sets: --match-ipc K) is also compared
            # with random real clips at IPC K: the same storage budget
            match = distilled.manifest.equal_storage_ipc
            if match is not None and match != distilled.ipc:
                refs[f"random real IPC {match} (same storage)"] = random_real_reference(
                    train_store, test_store, protocol, match, seed=seed, device=device, progress=progress,
                    cache_dir=cache_dir,
                )
        if "full" in references:
            refs["full training set"] = full_data_reference(
                train_store, test_store, protocol, seed=seed, device=device, progress=progress, cache_dir=cache_dir
            )
    storage = distilled.storage_bytes()
    peak, kind = _peak_memory(device)
    return EvalReport(
        method=distilled.manifest.method,
        ipc=distilled.ipc,
        dataset=distilled.manifest.dataset,
        dataset_fingerprint=distilled.manifest.dataset_fingerprint,
        model=protocol.model_for(test_store.video_shape),
        protocol=to_dict(protocol),
        result=result,
        classes=list(test_store.classes),
        storage_bytes=storage["total"],
        storage_by_tensor={k: v for k, v in storage.items() if k != "total"},
        full_train_bytes=train_store.nbytes if train_store is not None else 0,
        wall_seconds=time.perf_counter() - start,
        peak_memory_bytes=peak,
        peak_memory_kind=kind,
        references=refs,
        storage_detail=distilled.storage_detail().to_json(),
        label_loss=label_loss,
        equal_storage_ipc=distilled.manifest.equal_storage_ipc,
        learned_lr_used=learned_lr,
        set_warnings=list(distilled.manifest.warnings),
        tuning=distilled.manifest.info.get("tuning"),
    )
