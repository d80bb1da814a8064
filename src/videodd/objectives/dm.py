"""Distribution matching (DM, Zhao & Bilen 2023) for videos.

Each iteration draws a freshly initialised network; for every class the mean embedding of a
real batch and of the class's synthetic videos are pulled together (squared L2, summed over
classes). One siamese augmentation draw per class is applied to both batches. All classes'
real clips go through the network in ONE forward pass (and all synthetic videos in another),
not a Python loop of tiny batches.
"""

from __future__ import annotations

import contextlib

import numpy as np
import torch
import torch.nn.functional as F

from videodd.augment import AugmentConfig, AugmentParams, apply_augment, sample_params
from videodd.data.store import ClipStore
from videodd.models import create_model
from videodd.objectives import OBJECTIVES, ObjectiveOutput
from videodd.seeding import seeded
from videodd.synthesis import Parametrization


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


@OBJECTIVES.register("dm")
class DistributionMatching:
    """DM objective over a ClipStore. Config fields used: ``model``, ``batch_real``, ``augment``, ``amp``."""

    def __init__(self, store: ClipStore, cfg, device: torch.device) -> None:
        self.store = store
        self.cfg = cfg
        self.device = device
        self.num_classes = store.num_classes
        self.members = [store.class_indices(c) for c in range(store.num_classes)]
        self.aug_cfg = AugmentConfig(ops=tuple(cfg.augment))

    def sample_real(self, generator: torch.Generator) -> tuple[np.ndarray, torch.Tensor]:
        """``batch_real`` random clips of every class (all of a class if it has fewer)."""
        idx, lab = [], []
        for c, members in enumerate(self.members):
            take = torch.randperm(len(members), generator=generator)[: self.cfg.batch_real].numpy()
            idx.append(members[take])
            lab.append(np.full(len(take), c))
        return np.concatenate(idx), torch.from_numpy(np.concatenate(lab)).to(self.device)

    def loss(self, param: Parametrization, generator: torch.Generator) -> ObjectiveOutput:
        with seeded(generator):
            net = create_model(self.cfg.model, self.num_classes, self.store.video_shape)
        net.to(self.device).train()
        net.requires_grad_(False)
        real_idx, real_lab = self.sample_real(generator)
        real = self.store.batch(real_idx, self.device)  # (K*B, C, T, H, W)
        syn = param()
        syn_lab = syn.labels if syn.labels.ndim == 1 else syn.labels.argmax(1)
        params = [sample_params(self.aug_cfg, generator) for _ in range(self.num_classes)]
        # One draw per class, shared by the class's real and synthetic clips (siamese).
        real = augment_by_class(real, real_lab, params)
        syn_videos = augment_by_class(syn.videos, syn_lab, params)
        autocast = (torch.autocast("cuda", dtype=torch.bfloat16) if self.cfg.amp and self.device.type == "cuda"
                    else contextlib.nullcontext())
        with autocast:
            with torch.no_grad():
                real_feat = net.embed(real).float()  # (K*B, F)
            syn_feat = net.embed(syn_videos).float()  # (K*ipc, F)
        loss = dm_loss(real_feat, real_lab, syn_feat, syn_lab, self.num_classes)
        return ObjectiveOutput(loss, {"loss": float(loss.detach())})
