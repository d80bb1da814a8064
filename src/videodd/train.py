"""The one training loop: evaluation models, teachers and experts all train through ``fit``.

Data comes from a ``VideoData`` (in-memory tensors or a ClipStore); videos are float
``(N, C, T, H, W)`` in normalized space; labels are int64 ``(N,)`` or soft ``(N, K)``.
"""

from __future__ import annotations

import contextlib
import copy
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, grad_and_value, stack_module_state, vmap
from tqdm.auto import tqdm

from videodd.checkpoint import load_state, save_state
from videodd.data.store import ClipStore
from videodd.seeding import draw_seed, seeded


@dataclass(frozen=True)
class TrainConfig:
    """SGD training schedule.

    Attributes:
        epochs: passes over the training data.
        batch_size: mini-batch size (the last, smaller batch of an epoch is kept).
        lr: initial learning rate.
        momentum: SGD momentum.
        weight_decay: L2 weight decay.
        lr_milestones: fractions of ``epochs`` at which the lr is multiplied by ``lr_gamma``.
        lr_gamma: the lr decay factor.
        optimizer: "sgd" (with ``momentum``) or "adam" (``momentum`` unused, ``weight_decay`` is L2),
            e.g. for the reconstruction training of a codec.
        flip: probability that a training clip is flipped left-right each time it is read (drawn from
            the run's generator). The official loaders (``distill_utils/dataset.py`` ``read_images``) flip
            every clip they read with probability 0.5; 0 (the default) never flips.
        batch_zscore: z-score every training batch by its own mean and std, one scalar each over the
            whole batch (``(x - x.mean()) / x.std()``, as the official ``utils.py`` ``epoch`` does to every
            train and test batch).
        lr_milestone_epochs: absolute milestones: after this many epochs the lr is multiplied by
            ``lr_gamma`` (e.g. ``(252,)`` in a 501-epoch run: 252 epochs at ``lr``, 249 at ``lr / 10``, as
            the official ``evaluate_synset``). Use either these or the fractions ``lr_milestones``, not both.
        optimizer_reset: at each milestone the optimizer's state is cleared (SGD's momentum buffers,
            Adam's moments), as a newly built optimizer at the decayed lr would start: the official
            ``evaluate_synset`` (``utils.py`` lines 874-877) builds a new SGD there. False keeps the state.
        renormalize: ``"imagenet"``: before anything else each batch is taken from the data's own per-channel
            normalization (its mean/std, given to :func:`fit`) to the ImageNet one (mean
            (0.485, 0.456, 0.406), std (0.229, 0.224, 0.225)), the space the official loaders produce
            (``utils.py`` ``get_dataset``) and z-score in; None (the default) leaves batches as they are.
    """

    epochs: int = 500
    batch_size: int = 256
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 5e-4
    lr_milestones: tuple[float, ...] = (0.5,)
    lr_gamma: float = 0.1
    optimizer: str = "sgd"
    flip: float = 0.0
    batch_zscore: bool = False
    lr_milestone_epochs: tuple[int, ...] = ()
    optimizer_reset: bool = False
    renormalize: str | None = None

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1 or self.lr <= 0:
            raise ValueError("TrainConfig needs epochs >= 1, batch_size >= 1 and lr > 0")
        if self.lr_milestone_epochs and self.lr_milestones:
            raise ValueError("TrainConfig: give lr_milestone_epochs (absolute) or lr_milestones (fractions), not both")
        if any(int(m) != m or m < 1 for m in self.lr_milestone_epochs):
            raise ValueError(f"TrainConfig.lr_milestone_epochs are epoch counts >= 1, got {self.lr_milestone_epochs}")
        if self.renormalize is not None and self.renormalize not in RENORMALIZATIONS:
            raise ValueError(f"TrainConfig.renormalize must be None or one of {list(RENORMALIZATIONS)}, "
                             f"got {self.renormalize!r}")
        if not 0.0 <= self.flip <= 1.0:
            raise ValueError(f"TrainConfig.flip is a probability in [0, 1], got {self.flip}")
        if self.optimizer not in ("sgd", "adam"):
            raise ValueError(f"TrainConfig.optimizer must be 'sgd' or 'adam', got {self.optimizer!r}")

    def milestones(self) -> list[int]:
        """The epochs after which the lr decays: ``lr_milestone_epochs``, or the fractions ``lr_milestones`` of
        ``epochs`` rounded (at least 1)."""
        if self.lr_milestone_epochs:
            return sorted({int(m) for m in self.lr_milestone_epochs})
        return sorted({max(1, round(m * self.epochs)) for m in self.lr_milestones if 0 < m < 1})


#: target normalizations of ``TrainConfig.renormalize``: name -> (per-channel mean, per-channel std)
RENORMALIZATIONS: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    "imagenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),  # official utils.py get_dataset, every video set
}


class VideoData(Protocol):
    """Random-access labelled videos."""

    def __len__(self) -> int: ...

    def get(self, indices: np.ndarray, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """Videos ``(n, C, T, H, W)`` and labels for ``indices``."""
        ...


@dataclass
class TensorData:
    """Videos already in memory (a materialized distilled set)."""

    videos: torch.Tensor  # (N, C, T, H, W)
    labels: torch.Tensor  # (N,) int64 or (N, K) float

    def __post_init__(self) -> None:
        if self.videos.ndim != 5:
            raise ValueError(f"videos must be (N, C, T, H, W), got {tuple(self.videos.shape)}")
        if len(self.labels) != len(self.videos):
            raise ValueError(f"{len(self.labels)} labels for {len(self.videos)} videos")

    def __len__(self) -> int:
        return len(self.videos)

    def get(self, indices: np.ndarray, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        idx = torch.as_tensor(indices, dtype=torch.long, device=self.videos.device)
        return self.videos[idx].to(device), self.labels[idx].to(device)


@dataclass
class StoreData:
    """Clips read from a ClipStore (optionally a subset of its indices)."""

    store: ClipStore
    indices: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.store) if self.indices is None else len(self.indices)

    def get(self, indices: np.ndarray, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        idx = np.asarray(indices) if self.indices is None else self.indices[np.asarray(indices)]
        return self.store.batch(idx, device), self.store.labels_tensor(idx).to(device)


def random_flip(x: torch.Tensor, p: float, generator: torch.Generator) -> torch.Tensor:
    """Flip each clip of ``x (N, C, T, H, W)`` left-right with probability ``p`` (one draw per clip)."""
    if p <= 0:
        return x
    flip = torch.rand(len(x), generator=generator) < p  # (N,) drawn on the CPU: the same on every device
    if not flip.any():
        return x
    return torch.where(flip.to(x.device)[:, None, None, None, None], x.flip(-1), x)


def zscore_batch(x: torch.Tensor) -> torch.Tensor:
    """``(x - x.mean()) / x.std()`` over the whole batch: one scalar mean and one unbiased std, as the
    official ``utils.py`` ``epoch`` normalizes each train and test batch (after the ImageNet normalization)."""
    return (x - x.mean()) / x.std()


@dataclass(frozen=True)
class Renormalize:
    """Per-channel affine map from one normalization to another: ``x`` normalized with ``(mean, std)`` (the
    pixels ``p = x * std + mean``) -> ``(p - target_mean) / target_std``, for ``(N, C, T, H, W)`` batches.

    Both normalizations are affine per channel, so this equals normalizing the same pixels with the target
    directly (to float rounding)."""

    mean: tuple[float, ...]
    std: tuple[float, ...]
    target_mean: tuple[float, ...]
    target_std: tuple[float, ...]

    @classmethod
    def to(cls, target: str, mean: Sequence[float], std: Sequence[float]) -> Renormalize:
        """From ``(mean, std)`` to the named target of :data:`RENORMALIZATIONS`."""
        t_mean, t_std = RENORMALIZATIONS[target]
        if len(mean) != len(t_mean) or len(std) != len(t_std):
            raise ValueError(f"renormalize={target!r} is for {len(t_mean)}-channel clips; the data has "
                             f"{len(mean)} channels")
        return cls(tuple(map(float, mean)), tuple(map(float, std)), t_mean, t_std)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        def channels(v: tuple[float, ...]) -> torch.Tensor:
            return torch.tensor(v, dtype=x.dtype, device=x.device).view(1, -1, 1, 1, 1)  # over (N, C, T, H, W)

        scale = channels(self.std) / channels(self.target_std)
        shift = (channels(self.mean) - channels(self.target_mean)) / channels(self.target_std)
        return x * scale + shift


def renormalizer(cfg: TrainConfig, data: VideoData | None,
                 normalization: tuple[Sequence[float], Sequence[float]] | None) -> Renormalize | None:
    """The :class:`Renormalize` of ``cfg.renormalize`` for ``data`` (None when it is None): from
    ``normalization`` (the data's per-channel mean and std), or from the store of a :class:`StoreData`."""
    if cfg.renormalize is None:
        return None
    if normalization is None and isinstance(data, StoreData):
        normalization = (data.store.meta.mean, data.store.meta.std)
    if normalization is None:
        raise ValueError(f"TrainConfig.renormalize={cfg.renormalize!r} needs the data's normalization (mean, std)")
    return Renormalize.to(cfg.renormalize, *normalization)


LABEL_LOSSES = ("ce", "mse")
PRECISIONS = ("fp32", "tf32", "bf16")


@contextlib.contextmanager
def precision(kind: str, device: torch.device, *, forward: bool = True) -> Iterator[None]:
    """Run a block in ``kind`` arithmetic on ``device``; ``forward=False`` sets the TF32 flags only, for a
    training loop that wraps its forward passes in :func:`autocast` itself.

    - ``fp32``: full float32, with TF32 off for matmuls and cuDNN convolutions;
    - ``tf32``: TF32 for matmuls and cuDNN convolutions on CUDA (PyTorch's default for convolutions,
      under which the published code ran);
    - ``bf16``: bfloat16 autocast (CUDA, and CPUs too: with AVX512-BF16/AMX it is faster than float32).

    On a CPU ``fp32`` and ``tf32`` are both float32: the block runs unchanged.
    """
    if kind not in PRECISIONS:
        raise ValueError(f"unknown precision {kind!r}; valid: {', '.join(PRECISIONS)}")
    if device.type != "cuda":
        with autocast(kind, device) if forward else contextlib.nullcontext():
            yield
        return
    saved = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = kind == "tf32"
    try:
        with autocast(kind, device) if forward else contextlib.nullcontext():
            yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def autocast(kind: str, device: torch.device) -> contextlib.AbstractContextManager:
    """bfloat16 autocast for ``kind == "bf16"`` (forward passes only: backward and the optimizer step run
    outside it, as PyTorch recommends), else nothing."""
    return torch.autocast(device.type, dtype=torch.bfloat16) if kind == "bf16" else contextlib.nullcontext()


def loss_fn(logits: torch.Tensor, labels: torch.Tensor, kind: str = "ce") -> torch.Tensor:
    """Cross-entropy with hard ``(N,)`` or soft ``(N, K)`` labels (``kind="ce"``), or regression of
    the logits onto float ``(N, K)`` label vectors (``kind="mse"``: FRePo's learned labels).

    ``mse`` is ``0.5 * sum over classes of (logit - label)^2``, averaged over the batch: its gradient
    w.r.t. the logits, ``logit - label``, has the scale of cross-entropy's ``p - label``, so the
    same SGD learning rate suits both.
    """
    if kind == "mse":
        if labels.ndim != 2:
            raise ValueError(f"the mse label loss needs float (N, K) labels, got shape {tuple(labels.shape)}")
        return 0.5 * (logits - labels).pow(2).sum(1).mean()
    if kind != "ce":
        raise ValueError(f"unknown label loss {kind!r}; valid: {', '.join(LABEL_LOSSES)}")
    if labels.ndim == 2:
        return torch.sum(-labels * F.log_softmax(logits, dim=1), dim=1).mean()
    return F.cross_entropy(logits, labels)


@dataclass
class FitResult:
    """What ``fit`` returns: the trained model and its per-epoch training loss."""

    model: nn.Module
    epoch_losses: list[float] = field(default_factory=list)
    steps: int = 0
    seconds: float = 0.0
    diverged_at_epoch: int | None = None  # the loss became NaN/Inf: training stopped there


def fit(
    model: nn.Module,
    data: VideoData,
    cfg: TrainConfig,
    *,
    generator: torch.Generator,
    device: str | torch.device = "cpu",
    augment: Callable[[torch.Tensor, torch.Generator], torch.Tensor] | None = None,
    on_epoch_end: Callable[[int, nn.Module], None] | None = None,
    progress: bool = False,
    desc: str = "train",
    label_loss: str = "ce",
    loss: Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
    precision_kind: str = "fp32",
    checkpoint: str | Path | None = None,
    checkpoint_every: int = 1,
    normalization: tuple[Sequence[float], Sequence[float]] | None = None,
) -> FitResult:
    """Train ``model`` on ``data`` with SGD (or Adam) and a step schedule.

    Args:
        generator: the only source of randomness (shuffling, augmentation).
        augment: optional ``f(videos, generator) -> videos`` applied to each batch.
        on_epoch_end: called as ``on_epoch_end(epoch, model)`` after every epoch (1-based),
            e.g. to snapshot expert trajectories or to evaluate on a validation split.
        label_loss: ``ce`` or ``mse`` (see :func:`loss_fn`).
        loss: optional ``f(model, videos, labels) -> scalar`` replacing the label loss
            ``loss_fn(model(videos), labels)``, e.g. a reconstruction loss for a codec.
        precision_kind: ``fp32``, ``tf32`` or ``bf16`` (see :func:`precision`; float32 on a CPU).
        checkpoint: a file that holds the model, optimizer and generator state every ``checkpoint_every``
            epochs (written atomically). When it exists, training continues from it: a killed run resumed
            gives the weights of an uninterrupted one (the generator and the global RNG that dropout draws
            from are saved with it). Used by long trainings (the diffusion generator).
        normalization: the data's per-channel ``(mean, std)``, for ``cfg.renormalize`` (a :class:`StoreData`
            gives its store's when this is None).

    Each batch is read, renormalized (``cfg.renormalize``), flipped (``cfg.flip``), augmented, then z-scored
    (``cfg.batch_zscore``): the official order (flips at read, ImageNet normalization in the loader, the
    z-score in ``utils.py`` ``epoch``).

    A NaN/Inf loss stops training and is reported in ``diverged_at_epoch``. On a CPU it is checked at
    every step, before the step (the model keeps its last finite weights); on a GPU the loss is summed on
    the device and checked once per epoch, so that no step waits for the host.
    """
    device = torch.device(device)
    model.to(device).train()
    if cfg.optimizer == "adam":
        opt: torch.optim.Optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    else:
        opt = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    milestones = cfg.milestones()
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=milestones, gamma=cfg.lr_gamma)
    renorm = renormalizer(cfg, data, normalization)
    result = FitResult(model=model)
    first, state = 1, None
    if checkpoint is not None and Path(checkpoint).is_file():
        state = load_state(checkpoint)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        result.epoch_losses, result.steps = list(state["epoch_losses"]), int(state["steps"])
        first = int(state["epoch"]) + 1
        sched.last_epoch = first - 1  # the loaded optimizer holds the lr; the schedule continues from there
    n = len(data)
    start = time.perf_counter()
    bar = tqdm(range(first, cfg.epochs + 1), desc=desc, disable=not progress, leave=False, initial=first - 1,
               total=cfg.epochs)
    # Dropout draws from the global RNG: seed it from our generator (restored afterwards).
    every_step = device.type != "cuda"  # a check per step costs a GPU a host sync; a CPU nothing
    with seeded(generator), precision(precision_kind, device, forward=False):
        if state is not None:  # after ``seeded`` has drawn its seed, as the uninterrupted run's state was saved
            generator.set_state(state["generator"])
            torch.set_rng_state(state["global_rng"])  # dropout's draws
            if device.type == "cuda" and "cuda_rng" in state:
                torch.cuda.set_rng_state(state["cuda_rng"], device)
        for epoch in bar:
            order = torch.randperm(n, generator=generator).numpy()
            total = torch.zeros((), dtype=torch.float64, device=device)  # summed on the device: no sync per step
            count = 0
            for s in range(0, n, cfg.batch_size):
                x, y = data.get(order[s : s + cfg.batch_size], device)
                if renorm is not None:
                    x = renorm(x)
                x = random_flip(x, cfg.flip, generator)  # at read, as the official loaders flip
                if augment is not None:
                    x = augment(x, generator)
                if cfg.batch_zscore:
                    x = zscore_batch(x)
                with autocast(precision_kind, device):
                    batch_loss = loss_fn(model(x), y, label_loss) if loss is None else loss(model, x, y)
                if every_step and not torch.isfinite(batch_loss):
                    total += float("nan")
                    break
                opt.zero_grad(set_to_none=True)
                batch_loss.backward()
                opt.step()
                total += batch_loss.detach().double() * len(x)
                count += len(x)
                result.steps += 1
            epoch_loss = float(total) / max(count, 1)  # one sync per epoch
            if not math.isfinite(epoch_loss):
                result.diverged_at_epoch = epoch
                result.epoch_losses.append(float("nan"))
                break  # a NaN model stays NaN; the caller reports the run as diverged
            sched.step()
            if cfg.optimizer_reset and epoch in milestones:
                opt.state.clear()  # a new optimizer at the decayed lr: no momentum carried over
            result.epoch_losses.append(epoch_loss)
            bar.set_postfix(loss=f"{result.epoch_losses[-1]:.3f}", refresh=False)
            if checkpoint is not None and (epoch % checkpoint_every == 0 or epoch == cfg.epochs):
                rng = {"global_rng": torch.get_rng_state(),
                       **({"cuda_rng": torch.cuda.get_rng_state(device)} if device.type == "cuda" else {})}
                save_state(checkpoint, {"epoch": epoch, "model": model.state_dict(), "optimizer": opt.state_dict(),
                                        "generator": generator.get_state(), "epoch_losses": result.epoch_losses,
                                        "steps": result.steps, **rng})
            if on_epoch_end is not None:
                on_epoch_end(epoch, model)
    result.seconds = time.perf_counter() - start
    model.eval()
    return result


def fit_runs(
    models: Sequence[nn.Module],
    data: VideoData | Sequence[VideoData],
    cfg: TrainConfig,
    *,
    generators: Sequence[torch.Generator],
    device: str | torch.device = "cpu",
    progress: bool = False,
    desc: str = "train",
    label_loss: str = "ce",
    precision_kind: str = "fp32",
    normalization: tuple[Sequence[float], Sequence[float]] | None = None,
) -> list[FitResult]:
    """Train R models of one architecture at once: their parameters are stacked and one ``vmap`` over them
    computes every run's step (``torch.func``), which fills a GPU that one small run leaves idle.

    Each run keeps what makes it a run: its initialisation (the model given), its own shuffling (drawn
    from its generator as :func:`fit` draws it) and its own data when ``data`` is a list (of equal lengths,
    e.g. random selections at one IPC). SGD's momentum and weight decay act element by element, so a
    run's update is the one :func:`fit` makes. Dropout masks come from ``vmap``'s own randomness, not from
    the run's generator: runs equal :func:`fit`'s exactly only for networks without dropout. A run whose
    loss becomes NaN/Inf is marked diverged at the end of that epoch; the others go on. ``normalization``:
    as in :func:`fit` (every run's data in one normalization).
    """
    if cfg.optimizer != "sgd":
        raise ValueError("fit_runs trains with SGD (the evaluation schedule); use fit for Adam")
    device = torch.device(device)
    datas = list(data) if isinstance(data, Sequence) else [data] * len(models)
    if not len(models) == len(generators) == len(datas) or len({len(d) for d in datas}) != 1:
        raise ValueError("fit_runs needs one generator and one dataset (all of one length) per model")
    for model in models:
        model.to(device).train()
    params, buffers = stack_module_state(list(models))  # name -> (R, ...)
    skeleton = copy.deepcopy(models[0]).to("meta")

    def run_loss(p: dict[str, torch.Tensor], b: dict[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor
                 ) -> torch.Tensor:
        return loss_fn(functional_call(skeleton, (p, b), (x,)), y, label_loss)

    step_fn = vmap(grad_and_value(run_loss), randomness="different")
    opt = torch.optim.SGD(list(params.values()), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    milestones = cfg.milestones()
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=milestones, gamma=cfg.lr_gamma)
    renorm = renormalizer(cfg, datas[0], normalization)
    results = [FitResult(model=m) for m in models]
    for gen in generators:
        draw_seed(gen)  # fit seeds the global RNG (dropout) from the generator first: keep the shuffles aligned
    n = len(datas[0])
    start = time.perf_counter()
    bar = tqdm(range(1, cfg.epochs + 1), desc=desc, disable=not progress, leave=False)
    with precision(precision_kind, device, forward=False):
        for epoch in bar:
            orders = [torch.randperm(n, generator=g).numpy() for g in generators]
            totals = torch.zeros(len(models), dtype=torch.float64, device=device)
            for s in range(0, n, cfg.batch_size):
                batches = [d.get(order[s : s + cfg.batch_size], device) for d, order in zip(datas, orders, strict=True)]
                # each run's flips from its own generator, each run's batch z-scored on its own (as fit does)
                videos = [b[0] if renorm is None else renorm(b[0]) for b in batches]
                videos = [random_flip(v, cfg.flip, g) for v, g in zip(videos, generators, strict=True)]
                if cfg.batch_zscore:
                    videos = [zscore_batch(v) for v in videos]
                x = torch.stack(videos)  # (R, B, C, T, H, W)
                y = torch.stack([b[1] for b in batches])  # (R, B) or (R, B, K)
                with autocast(precision_kind, device):  # the optimizer step outside it
                    grads, losses = step_fn(params, buffers, x, y)
                for name, p in params.items():
                    p.grad = grads[name]
                opt.step()
                totals += losses.detach().double() * x.shape[1]
                for r in results:
                    r.steps += 1
            epoch_losses = (totals / n).tolist()  # one sync per epoch
            sched.step()
            if cfg.optimizer_reset and epoch in milestones:
                opt.state.clear()  # as fit: a new optimizer at the decayed lr
            for r, loss in zip(results, epoch_losses, strict=True):
                if r.diverged_at_epoch is None:
                    r.epoch_losses.append(loss if math.isfinite(loss) else float("nan"))
                    if not math.isfinite(loss):
                        r.diverged_at_epoch = epoch
            if all(r.diverged_at_epoch is not None for r in results):
                break
    seconds = time.perf_counter() - start
    with torch.no_grad():
        for i, model in enumerate(models):  # each run's trained weights and statistics back in its model
            model.load_state_dict({**{k: v[i] for k, v in params.items()}, **{k: v[i] for k, v in buffers.items()}})
            model.eval()
    for r in results:
        r.seconds = seconds / len(models)
    return results


@dataclass
class Predictions:
    """Logits of a model on a labelled set."""

    logits: torch.Tensor  # (N, K)
    labels: torch.Tensor  # (N,)

    def topk(self, k: int) -> float:
        k = min(k, self.logits.shape[1])
        hit = self.logits.topk(k, dim=1).indices.eq(self.labels[:, None]).any(dim=1)
        return float(hit.float().mean())

    def per_class(self, num_classes: int) -> list[float]:
        pred = self.logits.argmax(1)
        out = []
        for c in range(num_classes):
            mask = self.labels == c
            out.append(float(pred[mask].eq(c).float().mean()) if mask.any() else float("nan"))
        return out


@torch.no_grad()
def predict(
    model: nn.Module, data: VideoData, *, batch_size: int = 256, device: str | torch.device = "cpu",
    transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> Predictions:
    """Logits for every clip of ``data``, in order, with the model in eval mode; ``transform(x)`` is applied to
    each batch first (the published test's renormalization, flips and per-batch z-score)."""
    device = torch.device(device)
    model.to(device).eval()
    logits, labels = [], []
    for s in range(0, len(data), batch_size):
        x, y = data.get(np.arange(s, min(s + batch_size, len(data))), device)
        if transform is not None:
            x = transform(x)
        logits.append(model(x).float().cpu())
        labels.append(y.cpu())
    return Predictions(torch.cat(logits), torch.cat(labels))
