"""Evaluation protocols and the runs they make: ``run_protocol(train_data, test_store, protocol, ...)``.

An :class:`EvalProtocol` is named and versioned (``published``, ``default``, ``cpu``, ``fast``; ``vdsd`` is
another name of ``published``): the network, the training schedule, the test, the runs, the arithmetic.
:func:`run_protocol` trains one fresh model per seed and tests each final model (never a model chosen by test
accuracy) -> :class:`Summary` of :class:`RunResult`; :func:`predict_test_set` is the test.
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
    Predictions,
    Renormalize,
    StoreData,
    TrainConfig,
    VideoData,
    fit,
    fit_runs,
    precision,
    predict,
    random_flip,
    zscore_batch,
)

TEST_STARTS = ("stored", "random")
"""How test clips start: ``stored`` (the store's own test clips: ``batch``), ``random`` (a random-start view per
pass, :func:`predict_test_set`)."""


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
        test_passes: passes over the test set, their accuracies averaged (every clip counted once per pass).
        test_flip: probability that a test clip is flipped left-right in a pass (one draw per clip per pass,
            from a generator seeded by the run's seed and the pass: reproducible, the same under torchrun).
        test_starts: ``stored`` (the store's test clips as they are) or ``random`` (pass ``p`` reads the store's
            random-start view ``p % K`` of every test video, ``ClipStore.view_batch``; the store's own clips
            when it holds no views, ``K = 0``, and the report says so).
        test_zscore: z-score each test batch by its own scalar mean and std (as ``TrainConfig.batch_zscore``).
        The test renormalizes its batches as the training did (``train.renormalize``).
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
    test_passes: int = 1
    test_flip: float = 0.0
    test_starts: str = "stored"
    test_zscore: bool = False

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision {self.precision!r} is not one of {list(PRECISIONS)}")
        if self.test_passes < 1 or not 0.0 <= self.test_flip <= 1.0 or self.test_starts not in TEST_STARTS:
            raise ValueError(f"EvalProtocol {self.name}: test_passes >= 1, test_flip in [0, 1] and test_starts in "
                             f"{list(TEST_STARTS)}")
        if self.train.renormalize != self.reference_train.renormalize:
            raise ValueError(f"EvalProtocol {self.name}: train and reference_train must renormalize alike (the test "
                             "does as they do)")

    def model_for(self, video_shape: tuple[int, ...]) -> str:
        """The evaluation model for videos ``(C, T, H, W)`` (resolves ``auto``)."""
        return resolve_model(self.model, video_shape)

    def with_model(self, model: str) -> EvalProtocol:
        return dataclasses.replace(self, model=model)

    def with_runs(self, runs: int) -> EvalProtocol:
        return dataclasses.replace(self, runs=runs)

    def with_epochs(self, epochs: int) -> EvalProtocol:
        """The protocol with ``train.epochs`` changed (lr milestones stay fractions of it; absolute milestones
        ``lr_milestone_epochs`` are scaled by ``epochs / train.epochs``, at least 1), renamed ``NAME+epochs=E``
        so that reports, and the cached references, never pass it off as the original; the full-data schedule
        ``reference_train`` is unchanged."""
        if epochs == self.train.epochs:
            return self
        scale = epochs / self.train.epochs
        absolute = tuple(sorted({max(1, round(m * scale)) for m in self.train.lr_milestone_epochs}))
        return dataclasses.replace(self, name=f"{self.name}+epochs={epochs}",
                                   train=dataclasses.replace(self.train, epochs=epochs, lr_milestone_epochs=absolute))


PROTOCOLS: Registry[EvalProtocol] = Registry("evaluation protocol")
#: the published optimiser and schedule, MultiStepLR at half and momentum kept (``default``, ``fast``)
_SCHEDULE = TrainConfig(epochs=500, batch_size=256, lr=0.01, momentum=0.9, weight_decay=5e-4, lr_milestones=(0.5,))


def published_schedule(epoch_eval_train: int = 500) -> TrainConfig:
    """The official ``utils.py`` ``evaluate_synset`` (lines 848-877) with ``--epoch_eval_train E``: ``E + 1``
    epochs (``range(Epoch + 1)``), the lr x0.1 after epoch index ``E // 2 + 1`` (so after ``E // 2 + 2``
    epochs) with a new SGD (momentum buffers reset); SGD momentum 0.9, weight decay 5e-4, batch 256
    (``--batch_train``), lr 0.01 (``--lr_net`` of DM.sh; a set's learned lr replaces it); every batch in the
    ImageNet normalization, z-scored (``epoch``, line 770); no flips (``TensorDataset``, line 856)."""
    return TrainConfig(epochs=epoch_eval_train + 1, batch_size=256, lr=0.01, momentum=0.9, weight_decay=5e-4,
                       lr_milestones=(), lr_milestone_epochs=(epoch_eval_train // 2 + 2,), optimizer_reset=True,
                       batch_zscore=True, renormalize="imagenet")


PUBLISHED = EvalProtocol(
    name="published",
    version=1,
    model="auto",
    runs=5,
    train=published_schedule(500),
    reference_train=TrainConfig(epochs=50, batch_size=64, lr=0.01, lr_milestones=(0.5,), flip=0.5, batch_zscore=True,
                                renormalize="imagenet"),
    eval_batch_size=64,
    description="the official evaluation (yuz1wan/video_distillation utils.evaluate_synset): 501 epochs, new SGD "
                "at x0.1 after 252, ImageNet normalization and per-batch z-score, test: 3 passes with random "
                "starts and flips, batch 64; final models, 5 runs",
    precision="tf32",
    test_passes=3,
    test_flip=0.5,
    test_starts="random",
    test_zscore=True,
)
"""The evaluation of the official code of "Dancing with Still Images" (``yuz1wan/video_distillation`` at commit
5871dc5), choice by choice:

- a fresh network per run (``distill_baseline.py`` line 155, ``get_network``), ``model="auto"`` (the published
  ``convnet3d`` at 64 px and more);
- ``runs=5``: ``--num_eval 5`` of ``sh/baseline/DM.sh`` and the default of ``distill_baseline.py`` line 381
  (``sh/baseline/MTT.sh`` passes 3; ``--runs 3`` gives that);
- training: :func:`published_schedule` (``utils.py`` ``evaluate_synset`` lines 848-877 and ``epoch`` lines
  764-770): 501 epochs, 252 at the lr then 249 at lr/10 with the optimizer built anew (momentum reset), SGD
  0.9 / 5e-4, batch 256, shuffled; a distilled set's learned lr replaces 0.01 (``args.lr_net = syn_lr``,
  line 157); sets train without flips, as the ``TensorDataset`` (line 856) reads them;
- inputs: the ImageNet normalization of the official loaders (``utils.py`` ``get_dataset`` lines 214-215 for
  miniUCF101, ``transforms.Normalize``), taken from the store's own normalization
  (``TrainConfig.renormalize="imagenet"``), then every batch z-scored by its scalar mean and unbiased std
  (``utils.py`` lines 770 and 799); frame-wise ('Video') models crop their input inside the model;
- the test (``utils.py`` ``epoch`` lines 793-820 and ``get_dataset`` line 459): model.eval(), batches of 64 in
  order, each z-scored; the test set passed 3 times and the accuracy averaged over the passes; each clip read
  with a random start (``distill_utils/dataset.py`` lines 432-433: a new start at every test read) and a
  random left-right flip (line 400: ``random.random() > 0.5``); here both are drawn from generators seeded by
  the run and the pass, so the test is reproducible and the same under torchrun;
- the final model's test accuracy (``evaluate_synset`` returns the ``acc_test`` of its last test; DM calls it
  with ``test_freq=100``, line 304, so the last test is at the final epoch. MTT calls it with
  ``test_freq=200``, line 158: its last test is after epoch index 400, 100 epochs before the end; this
  protocol tests the final model for every method);
- the full-data reference (the official evaluation has none): videodd's 50-epoch schedule with the published
  input pipeline, flips of p 0.5 at every read as the official loaders flip every real clip they read;
- precision ``tf32``: PyTorch's default for convolutions on GPUs, under which the published code ran.

The number the papers report is the best mean over the distillation checkpoints, chosen by test accuracy
(``distill_baseline.py`` lines 170-171 and 313-314, ``best_acc``): ``videodd evaluate RUN --test-selected``
gives it, labelled as such, beside the final set's; this protocol alone reports the final set.
"""
PROTOCOLS.register("published", doc=PUBLISHED.description)(PUBLISHED)
PROTOCOLS.alias("vdsd", "published")  # the name of version 1 before it was made to match the official code
PROTOCOLS.register("default")(
    EvalProtocol(
        name="default",
        version=1,
        model="auto",
        runs=3,
        train=_SCHEDULE,
        reference_train=TrainConfig(epochs=50, batch_size=64, lr=0.01, lr_milestones=(0.5,)),
        description="published schedule, deterministic centre test clips, final model, 3 runs",
        precision="tf32",
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
    """The protocol registered as ``name`` (or an alias of it: ``vdsd`` is ``published``)."""
    return PROTOCOLS.get(name)


# -- the test ---------------------------------------------------------------------------------------
def store_test_views(store: ClipStore) -> int:
    """How many random-start views of each test video ``store`` holds (0: none, its own clips only)."""
    views = getattr(store, "test_views", 0)
    return int((views() if callable(views) else views) or 0)


def describe_test(protocol: EvalProtocol, store: ClipStore) -> str:
    """The test clips of ``protocol`` on ``store``, in words (for reports)."""
    if protocol.test_starts == "stored" and protocol.test_passes == 1 and not protocol.test_flip:
        return "the store's test clips, one pass" + (", each batch z-scored" if protocol.test_zscore else "")
    views = store_test_views(store)
    starts = (f"random starts (view pass % {views} of the store's {views} random-start views)" if views and
              protocol.test_starts == "random" else "the store's test clips" if protocol.test_starts == "stored"
              else "centre (the store holds no random-start views)")
    return (f"{protocol.test_passes} passes averaged; starts: {starts}; flips: p {protocol.test_flip:g} per clip per "
            f"pass (seeded by run and pass); batch {protocol.eval_batch_size}"
            + (", each batch z-scored" if protocol.test_zscore else ""))


@dataclass
class ViewData:
    """The test videos of ``store`` read at random-start view ``view`` (``ClipStore.view_batch``)."""

    store: ClipStore
    view: int

    def __len__(self) -> int:
        return len(self.store)

    def get(self, indices: np.ndarray, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        return self.store.view_batch(indices, self.view, device), self.store.labels_tensor(indices).to(device)


def pass_generator(run_seed: int, pass_index: int) -> torch.Generator:
    """The generator of a test pass's flips: from the run's seed and the pass alone (never the rank)."""
    state = np.random.SeedSequence([int(run_seed), int(pass_index), 0x7E57]).generate_state(1, dtype=np.uint64)
    return make_generator(int(state[0] >> np.uint64(1)))


def predict_test_set(model: torch.nn.Module, store: ClipStore, protocol: EvalProtocol, *, run_seed: int,
                     device: str | torch.device = "cpu", renormalize: str | None = None) -> Predictions:
    """The protocol's test of ``model`` on ``store``: ``protocol.test_passes`` passes, their logits and labels
    concatenated (so top-k and per-class accuracy are the means over the passes, every pass counted alike).

    A pass reads the clips in order in batches of ``protocol.eval_batch_size``; a clip starts at the store's view
    ``pass % K`` under ``test_starts="random"`` (the stored clip when ``K == 0``), is renormalized
    (``renormalize``: the training's ``TrainConfig.renormalize``), flipped with probability ``test_flip`` (from
    :func:`pass_generator`), and its batch z-scored when ``test_zscore``. With one pass and nothing of the
    kind it is :func:`~videodd.train.predict` on the stored clips (the ``default`` protocol's test).
    """
    plain = StoreData(store)
    renorm = None if renormalize is None else Renormalize.to(renormalize, store.meta.mean, store.meta.std)
    views = store_test_views(store) if protocol.test_starts == "random" else 0
    plain_test = renorm is None and not protocol.test_flip and not protocol.test_zscore  # default's test
    outs = []
    for p in range(protocol.test_passes):
        gen = pass_generator(run_seed, p)

        def transform(x: torch.Tensor, gen: torch.Generator = gen) -> torch.Tensor:
            x = x if renorm is None else renorm(x)
            x = random_flip(x, protocol.test_flip, gen)
            return zscore_batch(x) if protocol.test_zscore else x

        data = ViewData(store, p % views) if views else plain
        outs.append(predict(model, data, batch_size=protocol.eval_batch_size, device=device,
                            transform=None if plain_test else transform))
    if len(outs) == 1:
        return outs[0]
    return Predictions(torch.cat([o.logits for o in outs]), torch.cat([o.labels for o in outs]))


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
    # every evaluation's data lives in the test store's normalization (a set is checked against it; prepare
    # writes the training store's into the test store): the renormalization starts from it
    normalization = (list(test_store.meta.mean), list(test_store.meta.std))
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
                          label_loss=label_loss, precision_kind=protocol.precision, normalization=normalization)
    else:
        fitted = [fit(model, data, train_cfg, generator=gen, device=device, progress=progress,
                      desc=f"{desc} run {i + 1}/{len(seeds)}", label_loss=label_loss,
                      precision_kind=protocol.precision, augment=augment, normalization=normalization)
                  for i, model, data, gen in zip(share, models, mine, gens, strict=True)]
    runs: dict[int, dict[str, Any]] = {}
    for i, model, fit_result in zip(share, models, fitted, strict=True):
        with precision(protocol.precision, torch.device(device)):
            pred = predict_test_set(model, test_store, protocol, run_seed=seeds[i], device=device,
                                    renormalize=train_cfg.renormalize)
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
