"""Distribution matching (DM, Zhao & Bilen 2023) for videos.

Each iteration draws a freshly initialised network; for every class the mean embedding of a
real batch and of the class's synthetic videos are pulled together (squared L2, summed over
classes). One siamese augmentation draw per class is applied to both batches. All classes'
real clips go through the network in ONE forward pass (and all synthetic videos in another),
not a Python loop of tiny batches.

``objective.pool_size > 0`` swaps the fresh network for IDM's "enriched model sampling" (Zhao et
al., "Improved Distribution Matching for Dataset Condensation", CVPR 2023): a pool of networks
that are trained on the real data between uses, each replaced by a fresh one after
``pool_max_steps`` steps, so the matching happens in features of every stage of training, not only
at initialisation. The default (0) is DM as published (docs/ARCHITECTURE.md section 10).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from videodd.augment import AugmentParams, apply_augment, sample_params
from videodd.data.clips import ClipSource
from videodd.errors import ConfigError
from videodd.methods import MethodSpec, register_method
from videodd.objectives.base import NetworkPool, Objective, ObjectiveOutput, ObjectiveSetup, register_objective
from videodd.seeding import seeded
from videodd.synthesis.base import Parametrization


def class_means(features: torch.Tensor, labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Per-class mean of ``features (N, F)`` -> ``(K, F)``; works for unequal class counts."""
    onehot = F.one_hot(labels, num_classes).to(features.dtype)  # (N, K)
    counts = onehot.sum(0).clamp_min(1)  # (K,)
    return (onehot.T @ features) / counts[:, None]  # (K, F); a matmul is far faster than index_add on CPU


def dm_loss(real_feat: torch.Tensor, real_lab: torch.Tensor, syn_feat: torch.Tensor, syn_lab: torch.Tensor,
            num_classes: int) -> torch.Tensor:
    """Sum over classes of ``||mean(real_c) - mean(syn_c)||^2``."""
    diff = class_means(real_feat, real_lab, num_classes) - class_means(syn_feat, syn_lab, num_classes)
    return diff.pow(2).sum()


def augment_by_class(x: torch.Tensor, labels: torch.Tensor, params: list[AugmentParams]) -> torch.Tensor:
    """Apply ``params[c]`` to the clips of class ``c``; ``x`` must be grouped by class (sorted labels).

    A loop over class slices: each slice pays only for its own draw's op, where the vectorised
    grouped form would run every op over the whole batch (about 5x the work in DSA's one-op mode).
    """
    if not params or all(not p.active() for p in params):
        return x
    counts = torch.bincount(labels, minlength=len(params)).tolist()
    if not torch.equal(labels, labels.sort().values):
        raise ValueError("augment_by_class needs clips grouped by class")
    parts = [apply_augment(part, params[c]) for c, part in enumerate(x.split(counts)) if len(part)]
    return torch.cat(parts)


@dataclass(frozen=True)
class DMOptions:
    """Settings of the ``dm`` objective (``--set objective.KEY=VALUE``).

    Attributes:
        pool_size: 0: a freshly initialised network every iteration (DM as published). P > 0: a
            pool of P networks (IDM's enriched model sampling); each iteration picks one at
            random, trains it one SGD step on real clips, then matches in its features.
        pool_max_steps: a pool network trained this many steps is replaced by a fresh one; the
            counters start staggered (``(pool_max_steps // P) * i``) so that resets are spread out.
        pool_lr: SGD (momentum 0.9) learning rate of the pool networks.
        pool_batch: real clips per pool step, drawn from the iteration's real batch (before its
            augmentation).
    """

    pool_size: int = 0
    pool_max_steps: int = 50
    pool_lr: float = 0.01
    pool_batch: int = 128

    def __post_init__(self) -> None:
        if self.pool_size < 0 or self.pool_max_steps < 1 or self.pool_batch < 1:
            raise ValueError("pool_size must be >= 0, pool_max_steps and pool_batch >= 1")
        if not self.pool_lr > 0:
            raise ValueError(f"pool_lr must be > 0, got {self.pool_lr}")


@register_objective("dm")
class DistributionMatching(Objective):
    """DM objective. Setup used: ``model``, ``batch_real``, ``augment``, ``amp``; options: :class:`DMOptions`."""

    Options = DMOptions
    options: DMOptions
    shard = "classes"  # the loss is a sum over classes, each independent given the network and the draws

    def __init__(self, store: ClipSource, setup: ObjectiveSetup, options: DMOptions | None = None) -> None:
        super().__init__(store, setup, options)
        # the pool (pool_size > 0) is drawn from the run's generator on the first call
        o = self.options
        self.pool = NetworkPool(self._new_net, o.pool_size, o.pool_max_steps)

    def set_shard(self, rank: int, world: int) -> None:
        if world > 1 and self.options.pool_size > 0:
            raise ConfigError("objective.pool_size > 0 (IDM's network pool) runs in one process: each rank "
                              "would train its pool on other clips; start it without torchrun")
        super().set_shard(rank, world)

    # -- the network pool (pool_size > 0) ----------------------------------------------------------
    def _new_net(self, generator: torch.Generator) -> tuple[nn.Module, torch.optim.Optimizer]:
        net = self.new_network(generator)
        return net, torch.optim.SGD(net.parameters(), lr=self.options.pool_lr, momentum=0.9)

    def train_pool_net(self, i: int, idx: np.ndarray, real: torch.Tensor | None, labels: torch.Tensor,
                       generator: torch.Generator) -> float:
        """One SGD step of pool network ``i`` on ``pool_batch`` of the real clips (store indices ``idx``, and
        the clips themselves when they were read already); reset it when it is old.

        Taken before the network is used for matching: stepping it after would modify weights that
        the matching loss's graph still holds.
        """
        if self.pool.steps[i] >= self.options.pool_max_steps:
            self.pool.replace(i, generator)
        net, opt = self.pool.models[i], self.pool.optimizers[i]
        take = torch.randperm(len(idx), generator=generator)[: self.options.pool_batch]
        clips = real[take.to(real.device)] if real is not None else self.store.batch(idx[take.numpy()], self.device)
        net.train()
        net.requires_grad_(True)
        with seeded(generator):  # dropout draws from the global RNG: seed it from ours
            loss = F.cross_entropy(net(clips), labels[take.to(labels.device)])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        self.pool.steps[i] += 1
        return float(loss.detach())

    def _pool_network(self, idx: np.ndarray, real: torch.Tensor | None, labels: torch.Tensor,
                      generator: torch.Generator) -> tuple[nn.Module, dict[str, float]]:
        """A random pool network, one SGD step further on the real clips."""
        if not self.pool:
            self.pool.build(generator)
        i = int(torch.randint(len(self.pool), (1,), generator=generator).item())
        net_loss = self.train_pool_net(i, idx, real, labels, generator)
        return self.pool.models[i], {"net": float(i), "net_loss": net_loss}

    def loss(self, param: Parametrization, generator: torch.Generator) -> ObjectiveOutput:
        pooled = self.options.pool_size > 0
        # without a pool the network is drawn before the real batch (the order of the generator's draws)
        net = None if pooled else self.new_network(generator)
        metrics: dict[str, float] = {}
        # K*B store indices grouped by class (this rank's classes under torchrun)
        real_idx, real_lab = self.sample_indices(generator, owned=True)
        chunks = self.class_chunks(real_lab)
        # one chunk: the whole real batch is read now (the pool trains on it); several: each as it is embedded
        real = self.store.batch(real_idx, self.device) if len(chunks) == 1 else None  # (K*B, C, T, H, W)
        if net is None:
            net, metrics = self._pool_network(real_idx, real, real_lab, generator)
        net.train()
        net.requires_grad_(False)
        syn = param()
        syn_lab = syn.labels if syn.labels.ndim == 1 else syn.labels.argmax(1)
        params = [sample_params(self.aug_cfg, generator) for _ in range(self.num_classes)]
        syn_videos = syn.videos
        if self.world > 1:  # this rank's classes only: the others' terms are another rank's
            keep = self.owns(syn_lab)
            syn_videos, syn_lab = syn_videos[keep], syn_lab[keep]
        # One draw per class, shared by the class's real and synthetic clips (siamese).
        syn_videos = augment_by_class(syn_videos, syn_lab, params)
        with self.autocast():
            with torch.no_grad():
                parts = []
                for chunk in chunks:  # whole classes, at most max_batch clips: bounded memory
                    clips = real if real is not None else self.store.batch(real_idx[chunk.cpu().numpy()], self.device)
                    parts.append(net.embed(augment_by_class(clips, real_lab[chunk], params)).float())
                real_feat = torch.cat(parts)  # (K*B, F)
            syn_feat = net.embed(syn_videos).float()  # (K*ipc, F)
        loss = dm_loss(real_feat, real_lab, syn_feat, syn_lab, self.num_classes)
        return ObjectiveOutput(loss, {"loss": float(loss.detach()), **metrics})

    # -- checkpoints -----------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """The pool's weights, SGD states and step counters (empty without a pool)."""
        return self.pool.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.pool.load_state_dict(state)


register_method(
    MethodSpec(
        "dm",
        "distribution matching: pixels pulled to the real class-mean embedding of fresh random networks",
        parametrization="pixels",
        objective="dm",
        defaults={"lr": 1.0, "momentum": 0.5},
        smoke={"iterations": 4, "batch_real": 4},
    )
)
