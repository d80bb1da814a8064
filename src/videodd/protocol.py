"""Evaluation protocols and the runs they make: ``run_protocol(train_data, test_store, protocol, ...)``.

An :class:`EvalProtocol` is named and versioned (``vdsd``, ``default``, ``cpu``, ``fast``): the network, the
training schedule, the runs, the arithmetic. :func:`run_protocol` trains one fresh model per seed and tests
each final model once (never a model chosen by test accuracy) -> :class:`Summary` of :class:`RunResult`.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

import videodd.distributed as distributed
from videodd.data.store import ClipStore
from videodd.guards import VideoddWarning, collapsed
from videodd.models import create_model, resolve_model
from videodd.registry import Registry
from videodd.seeding import make_generator, seeded
from videodd.train import (
    PRECISIONS,
    StoreData,
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
    info: dict[str, Any] = dataclasses.field(default_factory=dict)  # what the runs trained on (references)

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

    def paired_difference(self, other: Summary) -> tuple[float, float] | None:
        """Mean and std over runs of ``top1(self run r) - top1(other run r)`` (runs paired by position: the same
        model seeds); None when the run counts differ."""
        if len(self.runs) != len(other.runs) or not self.runs:
            return None
        diffs = np.array([a.top1 - b.top1 for a, b in zip(self.runs, other.runs, strict=True)])
        return float(diffs.mean()), float(diffs.std())

    def fmt(self) -> str:
        notes = [f"{n} {what}" for n, what in ((self.diverged, "diverged"), (self.collapsed, "collapsed")) if n]
        note = f" ({', '.join(notes)})" if notes else ""
        return f"{100 * self.top1_mean:.1f} ± {100 * self.top1_std:.1f}{note}"


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
    augment: Callable[[torch.Tensor, torch.Generator], torch.Tensor] | None = None,
) -> Summary:
    """Train one fresh ``protocol.model`` per seed on ``train_data`` (or on ``train_data[i]`` for seed ``i``)
    and test each final model; all at once when ``protocol.parallel_runs`` (:func:`~videodd.train.fit_runs`).

    ``label_loss``: ``ce``, or ``mse`` for labels that are regression targets (FRePo's learned labels).
    ``augment``: ``f(videos, generator)`` applied to every training batch (a method's own evaluation
    augmentation, ``manifest.eval_augment``); its runs train one after the other.
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
    if at_once and len(models) > 1 and train_cfg.optimizer == "sgd" and augment is None:
        fitted = fit_runs(models, mine, train_cfg, generators=gens, device=device, progress=progress, desc=desc,
                          label_loss=label_loss, precision_kind=protocol.precision)
    else:
        fitted = [fit(model, data, train_cfg, generator=gen, device=device, progress=progress,
                      desc=f"{desc} run {i + 1}/{len(seeds)}", label_loss=label_loss,
                      precision_kind=protocol.precision, augment=augment)
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




def summary_from_json(data: dict[str, Any]) -> Summary:
    """A :class:`Summary` from ``dataclasses.asdict`` output (JSON's null back to NaN where a float was)."""
    runs = [RunResult(**{**r, "per_class": [float("nan") if v is None else v for v in r["per_class"]],
                         "final_train_loss": float("nan") if r["final_train_loss"] is None else r["final_train_loss"]})
            for r in data["runs"]]
    return Summary(runs, info=data.get("info", {}))
