"""The Objective contract: score a parametrization, ``objective.loss(param, generator) -> ObjectiveOutput``.

An objective is built once per run as ``cls(store, setup, options)``:

- ``store``: the training clips (a :class:`~videodd.data.clips.ClipSource`);
- ``setup``: :class:`ObjectiveSetup`, the part of the run's config an objective may read (its
  network, the IPC, real clips per class, augmentation, mixed precision, device);
- ``options``: an instance of its ``Options`` dataclass, validated from ``DistillConfig.objective``.

Hooks, all with no-op defaults: ``state_dict()`` / ``load_state_dict()`` (state carried across
iterations: network pools, ...; saved in every checkpoint so a resumed run matches an
uninterrupted one), ``param_groups()`` (extra learnable tensors optimised with the set, e.g. MTT's
student lr), ``export(param)`` (:class:`ObjectiveExport`: what the set's manifest records, given the
final parametrization) and ``health()`` (problems worth a warning, e.g. a learned lr stuck at its floor).

Several processes (torchrun): ``shard`` says how an objective splits an iteration over the ranks.
``"classes"``: each rank computes the loss terms of its own classes (``owns``; the loss is a sum over
classes) and the loop sums the set's gradients. ``"replicas"``: each rank computes the whole loss on
its own draw (``rank`` picks among draws every rank makes alike) and the loop averages the gradients.
``None``: the objective runs in one process. Either way every rank draws the same random numbers in
the same order, so the run's one generator stays in step on every rank.

Shared helpers: :meth:`Objective.sample_real` (``per_class`` random clips of every class),
:meth:`Objective.new_network` (a freshly initialised network drawn from the run's generator),
:meth:`Objective.autocast` and :class:`NetworkPool` (online-trained networks). See
docs/ARCHITECTURE.md.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from videodd.augment import AugmentConfig
from videodd.data.clips import ClipSource
from videodd.errors import ConfigError
from videodd.models import create_model
from videodd.registry import Registry
from videodd.seeding import make_generator, seeded
from videodd.synthesis.base import Parametrization


@dataclass
class ObjectiveOutput:
    """The loss to minimise and scalar metrics to log."""

    loss: torch.Tensor
    metrics: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class ObjectiveSetup:
    """What an objective may read of the run (``DistillConfig`` fields of the same names).

    Attributes:
        model: registry name of the network the objective uses.
        ipc: synthetic videos per class.
        batch_real: real clips per class drawn per iteration.
        augment: siamese augmentation ops (empty for none).
        amp: bfloat16 autocast for network passes on CUDA.
        device: where the objective's networks and batches live.
        max_batch: the most real clips one network pass takes (None: all of an iteration's at once).
            Passes without gradients are cut into chunks of whole classes, which bounds memory with the
            same result to float rounding for networks without batch norm.
    """

    model: str
    ipc: int
    batch_real: int
    augment: tuple[str, ...] = ()
    amp: bool = True
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    max_batch: int | None = None


@dataclass(frozen=True)
class ObjectiveExport:
    """What an objective records in the DistilledSet's manifest.

    Attributes:
        learned_lr: a learning rate learned with the set; evaluation trains with it (MTT).
        label_loss: how evaluation fits the set's labels: ``ce``, or ``mse`` for labels that are
            regression targets (FRePo's learned labels).
        info: informative entries (``manifest.info``); nothing reads them back.
        warnings: problems of the result worth showing in every report of the set.
        labels: labels the objective gives the final videos, replacing the parametrization's (TSGF's teacher
            soft labels, ``(N, K)``); None keeps the parametrization's.
        eval_augment: an evaluation augmentation the method owns (``manifest.eval_augment``).
    """

    learned_lr: float | None = None
    label_loss: str = "ce"
    info: dict[str, Any] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()
    labels: torch.Tensor | None = None
    eval_augment: dict[str, Any] | None = None


class Objective:
    """Base class of every objective (see the module docstring for the contract)."""

    Options: ClassVar[type | None] = None
    #: how an iteration is split over torchrun's processes: "classes", "replicas" or None (module docstring)
    shard: ClassVar[str | None] = None

    def __init__(self, store: ClipSource, setup: ObjectiveSetup, options: Any = None) -> None:
        self.store = store
        self.setup = setup
        self.device = torch.device(setup.device)
        self.options = options if options is not None else (self.Options() if self.Options is not None else None)
        self.num_classes = store.num_classes
        self.members = [np.asarray(store.class_indices(c)) for c in range(store.num_classes)]
        self.aug_cfg = AugmentConfig(ops=tuple(setup.augment))
        self.rank, self.world = 0, 1  # set_shard: this process's share of a distributed run

    def set_shard(self, rank: int, world: int) -> None:
        """Compute rank ``rank``'s share of each iteration out of ``world`` (the loop calls this under torchrun)."""
        if world > 1 and self.shard is None:
            raise ConfigError(f"objective {type(self).__name__} runs in one process: start it without torchrun")
        if self.shard == "classes" and world > self.num_classes:
            raise ConfigError(f"torchrun started {world} processes for {self.num_classes} classes: this objective "
                              f"shards classes, so use --nproc_per_node <= {self.num_classes}")
        self.rank, self.world = rank, world

    def owns(self, labels: torch.Tensor) -> torch.Tensor:
        """Which of ``labels`` (class ids) this rank computes: class ``c`` belongs to rank ``c % world``."""
        return labels % self.world == self.rank

    # -- the contract ------------------------------------------------------------------------------
    def loss(self, param: Parametrization, generator: torch.Generator) -> ObjectiveOutput:  # pragma: no cover
        raise NotImplementedError

    def state_dict(self) -> dict[str, Any]:
        """State carried across iterations (checkpointed); none by default."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`; an objective without state accepts only an empty one."""
        if state:
            raise ValueError(f"{type(self).__name__} keeps no state, got {sorted(state)}")

    def param_groups(self) -> list[dict[str, Any]]:
        """Extra learnable tensors as optimizer groups with their own lr/momentum; none by default."""
        return []

    def export(self, param: Parametrization) -> ObjectiveExport:
        """What the set's manifest records; nothing by default."""
        return ObjectiveExport()

    def health(self) -> list[tuple[str, str]]:
        """Problems of the objective's own state worth a warning now, as ``(code, message)`` (the run's
        guard raises each code once); none by default."""
        return []

    # -- shared helpers ----------------------------------------------------------------------------
    def sample_indices(self, generator: torch.Generator, per_class: int | None = None, *, owned: bool = False
                       ) -> tuple[np.ndarray, torch.Tensor]:
        """``per_class`` (default ``setup.batch_real``) random clips of every class (all of a class that
        has fewer), grouped by class: store indices and int64 labels on the device. ``owned``: only the
        clips of this rank's classes (every class is drawn all the same, to keep the generator in step)."""
        per_class = self.setup.batch_real if per_class is None else per_class
        idx, lab = [], []
        for c, members in enumerate(self.members):
            take = torch.randperm(len(members), generator=generator)[:per_class].numpy()
            idx.append(members[take])
            lab.append(np.full(len(take), c))
        indices, labels = np.concatenate(idx), torch.from_numpy(np.concatenate(lab))
        if owned and self.world > 1:
            keep = self.owns(labels)
            indices, labels = indices[keep.numpy()], labels[keep]
        return indices, labels.to(self.device)

    def sample_real(self, generator: torch.Generator, per_class: int | None = None, *, owned: bool = False
                    ) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`sample_indices` read from the store: videos ``(K*B, C, T, H, W)`` and labels ``(K*B,)``."""
        idx, labels = self.sample_indices(generator, per_class, owned=owned)
        return self.store.batch(idx, self.device), labels

    def class_chunks(self, labels: torch.Tensor) -> list[torch.Tensor]:
        """Positions of ``labels`` (grouped by class) cut into chunks of whole classes holding at most
        ``setup.max_batch`` items (one class per chunk when a class alone is larger); one chunk when
        ``max_batch`` is None."""
        positions = torch.arange(len(labels), device=labels.device)
        if self.setup.max_batch is None or len(labels) <= self.setup.max_batch:
            return [positions]
        counts = torch.bincount(labels, minlength=self.num_classes).tolist()
        chunks: list[torch.Tensor] = []
        start = size = 0
        for n in counts:
            if size and size + n > self.setup.max_batch:
                chunks.append(positions[start : start + size])
                start, size = start + size, 0
            size += n
        if size:
            chunks.append(positions[start : start + size])
        return chunks

    def new_network(self, generator: torch.Generator, model: str | None = None) -> nn.Module:
        """A freshly initialised ``setup.model`` (or ``model``) on the device, drawn from ``generator``."""
        with seeded(generator):
            net = create_model(model or self.setup.model, self.num_classes, tuple(self.store.video_shape))
        return net.to(self.device)

    def autocast(self) -> contextlib.AbstractContextManager:
        """bfloat16 autocast for network passes on CUDA when ``setup.amp``; nothing otherwise."""
        if self.setup.amp and self.device.type == "cuda":
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()


OBJECTIVES: Registry[type[Objective]] = Registry("objective")


def register_objective(name: str) -> Callable[[type[Objective]], type[Objective]]:
    """Class decorator: register an :class:`Objective` subclass under ``name``."""
    return OBJECTIVES.register(name)


class NetworkPool:
    """A pool of networks trained online between uses (FRePo's model pool, IDM's in DM).

    Every network's weights, optimizer state and step counter travel in the run's checkpoint
    (:meth:`state_dict`), so a resumed run continues with the same networks. The step counters
    start staggered as ``(max_steps // size) * i``, so that resets are spread out and the pool holds
    networks of every age.

    Args:
        make: ``make(generator) -> (network, optimizer)``, a fresh network drawn from ``generator``.
        size: networks in the pool.
        max_steps: the step count at which the owner replaces a network (:meth:`replace`).
    """

    def __init__(self, make: Callable[[torch.Generator], tuple[nn.Module, torch.optim.Optimizer]], size: int,
                 max_steps: int) -> None:
        self.make, self.size, self.max_steps = make, size, max_steps
        self.models: list[nn.Module] = []
        self.optimizers: list[torch.optim.Optimizer] = []
        self.steps: list[int] = []

    def __len__(self) -> int:
        return len(self.models)

    def build(self, generator: torch.Generator) -> None:
        """Draw the ``size`` networks from ``generator``, with staggered step counters."""
        made = [self.make(generator) for _ in range(self.size)]
        self.models, self.optimizers = [m for m, _ in made], [o for _, o in made]
        self.steps = [(self.max_steps // self.size) * i for i in range(self.size)]

    def replace(self, i: int, generator: torch.Generator) -> None:
        """Network ``i`` becomes a fresh one (step counter 0)."""
        self.models[i], self.optimizers[i] = self.make(generator)
        self.steps[i] = 0

    def state_dict(self) -> dict[str, Any]:
        """The pool as plain tensors and lists (CPU copies of the weights); empty before :meth:`build`."""
        if not self.models:
            return {}
        return {
            "models": [{k: v.detach().cpu().clone() for k, v in m.state_dict().items()} for m in self.models],
            "optimizers": [opt.state_dict() for opt in self.optimizers],
            "steps": list(self.steps),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` (an empty state: no pool yet)."""
        if not state:
            self.models, self.optimizers, self.steps = [], [], []
            return
        # any initialisation will do (the weights are overwritten); a throwaway generator keeps the
        # run's generator and the global RNG untouched
        self.build(make_generator(0))
        for model, opt, weights, opt_state in zip(self.models, self.optimizers, state["models"],
                                                  state["optimizers"], strict=True):
            model.load_state_dict(weights)
            opt.load_state_dict(opt_state)
        self.steps = [int(s) for s in state["steps"]]
