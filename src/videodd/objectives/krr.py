"""Neural feature regression with a model pool (FRePo, Zhou, Nezhadarya & Ba, NeurIPS 2022).

Each iteration picks one network of a pool of ``num_models`` online-trained networks, embeds a real
(target) batch and the whole synthetic set with it (``model.embed``), fits kernel ridge regression
from the synthetic features to the synthetic labels and scores its predictions on the real batch::

    K_ss = F_s F_s^T    K_ts = F_t F_s^T    lambda = reg * trace(K_ss) / n
    pred = K_ts (K_ss + lambda I)^-1 Y_s         loss = mean over the batch of ||pred - Y_t||^2

with ``Y_t`` the centered one-hot targets (one-hot - 1/K) and ``Y_s`` the synthetic labels
(learned with the set when the ``pixels`` parametrization has ``learn_labels``; then FRePo's label
margin term ``-min(top1 - top2, 1/K)`` keeps them from collapsing). The chosen network then takes
ONE Adam step on the synthetic set with its labels (MSE), and a network that has taken
``max_online_steps`` steps is replaced by a fresh one. Initial step counters are staggered
(``(max_online_steps // num_models) * i``), so the pool always holds networks of every age.

Published order: the synthetic set is updated first, then the chosen network trains on the
UPDATED set. The distillation loop steps the set after ``loss()`` returns, so that network step
is taken at the start of the next call (before anything else), on the set the step produced -
the same order; the step owed after the very last iteration is never taken (it changes nothing
that is kept). Reference: the PyTorch port used by the static-dynamic paper
(``yuz1wan/video_distillation``, ``FRePo/script/distill_s2d.py``) and FRePo's JAX code.

Differences, documented: the synthetic set is stepped by the loop's optimiser (``optimizer: adam``
as the port, constant lr; FRePo uses LAMB with a cosine decay); the networks use a constant Adam
learning rate (the port adds a 500-step linear warm-up and a cosine decay over
``max_online_steps``); the kernel algebra runs in float64 (the ridge system with ``reg`` 1e-6 is
ill-conditioned in float32). ``cfg.augment`` (empty in the recipes; FRePo uses none) applies one
siamese draw to the real batch and the synthetic set.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from videodd.augment import sample_params
from videodd.data.clips import ClipSource
from videodd.methods import MethodSpec, register_method
from videodd.objectives.base import (
    NetworkPool,
    Objective,
    ObjectiveExport,
    ObjectiveOutput,
    ObjectiveSetup,
    register_objective,
)
from videodd.objectives.gradient import augment_any
from videodd.seeding import seeded
from videodd.synthesis.base import Parametrization


def krr_predict(feat_syn: torch.Tensor, labels_syn: torch.Tensor, feat_target: torch.Tensor,
                reg: float = 1e-6) -> torch.Tensor:
    """Kernel ridge regression with the linear kernel on features, FRePo's regulariser.

    Args:
        feat_syn: ``(n, F)`` support (synthetic) features.
        labels_syn: ``(n, K)`` support labels.
        feat_target: ``(m, F)`` query (real) features.
        reg: ridge strength relative to the mean diagonal: ``lambda = reg * trace(K_ss) / n``.

    Returns:
        ``(m, K)`` predictions ``K_ts (K_ss + lambda I)^-1 Y_s``, in the inputs' dtype.
    """
    n = feat_syn.shape[0]
    if labels_syn.shape[0] != n or feat_target.shape[1] != feat_syn.shape[1]:
        raise ValueError(f"shapes do not fit: features {tuple(feat_syn.shape)}, labels {tuple(labels_syn.shape)}, "
                         f"targets {tuple(feat_target.shape)}")
    if reg < 0:
        raise ValueError(f"reg must be >= 0, got {reg}")
    k_ss = feat_syn @ feat_syn.T  # (n, n)
    k_ts = feat_target @ feat_syn.T  # (m, n)
    lam = reg * torch.trace(k_ss) / n
    eye = torch.eye(n, dtype=k_ss.dtype, device=k_ss.device)
    return k_ts @ torch.linalg.solve(k_ss + lam * eye, labels_syn)  # (m, K)


def label_margin(labels: torch.Tensor) -> torch.Tensor:
    """FRePo's label margin term, averaged: ``-min(top1 - top2, 1/K)`` per label row ``(N, K)``."""
    top = labels.topk(2, dim=1).values  # (N, 2)
    return -torch.clamp(top[:, 0] - top[:, 1], max=1.0 / labels.shape[1]).mean()


def centered_onehot(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """FRePo's regression targets: ``one_hot - 1/K`` as float ``(N, K)``."""
    return F.one_hot(labels, num_classes).float() - 1.0 / num_classes


@dataclass(frozen=True)
class KRROptions:
    """Settings of the ``krr`` objective (``--set objective.KEY=VALUE``).

    Attributes:
        num_models: networks in the pool (FRePo: 10).
        max_online_steps: steps after which a network is replaced by a fresh one (FRePo: 100).
        model_lr: Adam learning rate of the pool networks (FRePo: 3e-4; the video port: 1e-4).
        model_batch: synthetic videos per network step (all of them if fewer; FRePo: 500).
        reg: ridge strength relative to the mean kernel diagonal (FRePo: 1e-6).
        target_batch: real clips per iteration drawn uniformly from the whole training set
            (FRePo: 1024, the video port: 512); ``None``: ``batch_real`` clips of every class.
        margin: add FRePo's label margin term when the labels are learnt.
    """

    num_models: int = 10
    max_online_steps: int = 100
    model_lr: float = 3e-4
    model_batch: int = 500
    reg: float = 1e-6
    target_batch: int | None = None
    margin: bool = True

    def __post_init__(self) -> None:
        if self.num_models < 1 or self.max_online_steps < 1 or self.model_batch < 1:
            raise ValueError("num_models, max_online_steps and model_batch must be >= 1")
        if not self.model_lr > 0 or self.reg < 0:
            raise ValueError("model_lr > 0 and reg >= 0 are required")
        if self.target_batch is not None and self.target_batch < 1:
            raise ValueError(f"target_batch must be >= 1, got {self.target_batch}")


@register_objective("krr")
class KernelRidgeRegression(Objective):
    """FRePo: kernel ridge regression on the features of a pool of online-trained networks.

    Setup used: ``model`` (the pool's architecture), ``batch_real``, ``augment``, ``amp`` (bfloat16
    feature passes on CUDA); options: :class:`KRROptions`.
    """

    Options = KRROptions
    options: KRROptions
    shard = "classes"  # the target rows are split by class; the pool networks train alike on every rank

    def __init__(self, store: ClipSource, setup: ObjectiveSetup, options: KRROptions | None = None) -> None:
        super().__init__(store, setup, options)
        # the pool is drawn from the run's generator on the first call (the constructor has none)
        self.pool = NetworkPool(self._new_model, self.options.num_models, self.options.max_online_steps)
        self.pending: int | None = None  # the network that owes its step on the updated set
        self.learned_labels = False

    # -- the pool --------------------------------------------------------------------------------
    def _new_model(self, generator: torch.Generator) -> tuple[nn.Module, torch.optim.Optimizer]:
        model = self.new_network(generator)
        return model, torch.optim.Adam(model.parameters(), lr=self.options.model_lr)

    def train_model(self, i: int, param: Parametrization, generator: torch.Generator) -> float:
        """One Adam step of pool network ``i`` on (a batch of) the synthetic set; reset when it is old."""
        model, opt = self.pool.models[i], self.pool.optimizers[i]
        with torch.no_grad():
            syn = param()
        videos = syn.videos.detach()
        labels = syn.labels.detach()
        labels = centered_onehot(labels, self.num_classes) if labels.ndim == 1 else labels.float()
        if len(videos) > self.options.model_batch:
            take = torch.randperm(len(videos), generator=generator)[: self.options.model_batch].to(videos.device)
            videos, labels = videos[take], labels[take]
        model.train()
        model.requires_grad_(True)
        with seeded(generator):  # dropout draws from the global RNG: seed it from ours
            loss = F.mse_loss(model(videos), labels)  # FRePo: mean squared error on the labels
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        self.pool.steps[i] += 1
        if self.pool.steps[i] >= self.options.max_online_steps:
            self.pool.replace(i, generator)
        return float(loss.detach())

    # -- data ------------------------------------------------------------------------------------
    def target_batch(self, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, int]:
        """The target batch: ``target_batch`` clips uniformly, or ``batch_real`` of every class; under torchrun
        only the rows of this rank's classes are read. Returns videos, labels and the whole batch's size."""
        if self.options.target_batch is None:
            idx, labels = self.sample_indices(generator)
        else:
            n = sum(len(m) for m in self.members)
            idx = np.sort(torch.randperm(n, generator=generator)[: self.options.target_batch].numpy())
            labels = self.store.labels_tensor(idx).long()
        total = len(idx)
        if self.world > 1:
            keep = self.owns(labels.cpu())
            idx, labels = idx[keep.numpy()], labels[keep.to(labels.device)]
        return self.store.batch(idx, self.device), labels.to(self.device), total

    # -- the objective ---------------------------------------------------------------------------
    def loss(self, param: Parametrization, generator: torch.Generator) -> ObjectiveOutput:
        metrics: dict[str, float] = {}
        if not self.pool:
            self.pool.build(generator)
        if self.pending is not None:
            # the step owed by the network used last time, on the set the loop just updated
            metrics["model_loss"] = self.train_model(self.pending, param, generator)
            self.pending = None
        i = int(torch.randint(len(self.pool), (1,), generator=generator).item())
        model = self.pool.models[i]
        model.eval()  # features of the network as it is: dropout off, BatchNorm on running statistics
        model.requires_grad_(False)
        real, real_lab, total = self.target_batch(generator)
        syn = param()
        videos = syn.videos
        if self.aug_cfg.ops:
            draw = sample_params(self.aug_cfg, generator)  # one siamese draw for both sides
            real, videos = augment_any(real, draw), augment_any(videos, draw)
        self.learned_labels = syn.labels.ndim == 2
        y_syn = syn.labels.float() if self.learned_labels else centered_onehot(syn.labels, self.num_classes)
        y_target = centered_onehot(real_lab, self.num_classes)
        with self.autocast():
            with torch.no_grad():  # in chunks of at most max_batch clips (bounded memory)
                step = self.setup.max_batch or len(real)
                f_target = torch.cat([model.embed(real[s : s + step]) for s in range(0, len(real), step)])  # (B, F)
            f_syn = model.embed(videos)  # (N, F)
        pred = krr_predict(f_syn.double(), y_syn.double(), f_target.double(), self.options.reg)  # (B, K)
        err = (pred - y_target.double()).pow(2).sum(1)  # (B,) this rank's rows of the batch
        # the mean over the whole batch: this rank's share of it when the rows are split over ranks
        krr = (err.mean() if self.world == 1 else err.sum() / total).float()
        if self.world > 1:
            krr = krr + 0.0 * f_syn.sum()  # a rank without rows still takes part in the gradient
        loss = krr
        metrics.update({"krr": float(krr.detach()), "model": float(i)})
        if self.learned_labels and self.options.margin:
            margin = label_margin(y_syn)
            loss = loss + margin / self.world  # every rank computes it whole: a 1/world share each
            metrics["margin"] = float(margin.detach())
        metrics["loss"] = float(loss.detach())
        self.pending = i
        return ObjectiveOutput(loss, metrics)

    def export(self, param: Parametrization) -> ObjectiveExport:
        """Learned labels are regression targets: evaluation trains on them with the mse label loss."""
        return ObjectiveExport(label_loss="mse" if self.learned_labels else "ce")

    # -- checkpoints -----------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Every pool network's weights, its Adam state and step counter, and the pending step."""
        if not self.pool:
            return {}
        return {**self.pool.state_dict(), "pending": -1 if self.pending is None else self.pending,
                "learned_labels": self.learned_labels}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.pool.load_state_dict(state)
        self.pending = None if not state or int(state["pending"]) < 0 else int(state["pending"])
        self.learned_labels = bool(state.get("learned_labels", False))


register_method(
    MethodSpec(
        "frepo",
        "FRePo: kernel ridge regression on the features of a pool of online-trained networks, labels learnt too",
        parametrization="pixels",
        objective="krr",
        # FRePo steps pixels and labels with one adaptive optimiser (the video port: Adam); lr 0.01 is the step
        # chosen on synth-actions' validation split (benchmarks/RESULTS.md 3c). Labels are learnt, as published;
        # configs/synth-actions/frepo-ipc1.yaml turns that off (validation). No augmentation.
        defaults={"optimizer": "adam", "lr": 0.01, "augment": [],
                  "parametrization": {"learn_labels": True, "label_init": "scaled", "label_lr": 0.01}},
        smoke={"iterations": 4, "batch_real": 4, "objective": {"num_models": 2, "max_online_steps": 3}},
    )
)
