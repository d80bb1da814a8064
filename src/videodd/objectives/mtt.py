"""Matching training trajectories (MTT, Cazenavette et al. CVPR 2022), as used for video by
Wang et al. CVPR 2024 ("Dancing with Still Images").

Each iteration takes an expert ``e`` and draws a start epoch ``t`` (uniform in
``[min_start_epoch, max_start_epoch)``, exclusive as ``np.random.randint`` in the published code), starts a student at
the expert's parameters ``θ_t`` and takes ``syn_steps`` SGD steps on mini-batches of the synthetic
set with a LEARNABLE step size ``syn_lr``::

    θ_{i+1} = θ_i - syn_lr * ∇_θ CE(f(x_i; θ_i), y_i)
    loss    = ||θ_N - θ*_{t+M}||² / ||θ_t - θ*_{t+M}||²          (M = expert_epochs)

The student is ``torch.func.functional_call`` on one flat parameter vector (the layout of the
expert files); the gradient of the loss reaches the synthetic pixels and ``syn_lr`` through the
whole unroll (``create_graph=True``). ``syn_lr`` is optimised with the set (``param_groups``: lr
``lr_lr``, momentum 0.5, as published), clipped at ``min_lr`` as in the video code, saved in
checkpoints (``state_dict``) and exported as the DistilledSet's ``learned_lr``, which evaluation
uses as its training lr.

Memory (``unroll``):

- ``plain``: the published unroll; autograd keeps every step's activations and the graph of
  every inner gradient, so memory grows linearly with ``syn_steps`` (activations dominate).
- ``checkpoint``: the unroll runs once without a graph, keeping only the N parameter vectors
  θ_0..θ_{N-1} (N x P floats, 14.6 MB each for ConvNet3D at MiniUCF); the backward pass walks the
  steps in reverse, recomputes ONE step with its double-backward graph, and pulls the incoming
  gradient through it (a vector-Jacobian product). Activation memory is that of a single step,
  whatever ``syn_steps``; the price is one more forward + inner backward per step (1.35-1.75x the
  time). Same gradients as ``plain`` to float rounding: each step's dropout mask is seeded from
  the generator, and the recomputation uses the same seed. Measured on CPU (convnet3d-s, 10
  classes, IPC 5, 8x32x32, whole set per step; ``benchmarks/tables/mtt_memory.py``): peak increase
  197 / 336 / 600 / 1131 MiB (plain) vs 161 / 158 / 162 / 181 MiB (checkpoint) at 5 / 10 / 20 / 40 steps.

Experts (``expert_order``, ``expert_group``): the published code (``distill_baseline.py`` lines 122-135 and
203-211; ``distill_s2d_ms.py`` lines 124-129 and 209-218 alike) shuffles its list of ``replay_buffer_N.pt``
files, loads the first, shuffles the experts in it and takes them in that order, one per iteration; when
the file is used up it reshuffles it and starts again. It advances ``file_idx`` and prints "loading file"
there, but never loads another file: a run only ever uses the experts of ONE file, the ``save_interval`` = 10
consecutive experts buffer.py saved together (lines 96-104; experts 0-9, 10-19, 20-29 of the published 30).
``expert_order="cycle"`` with ``expert_group=10`` is that: a group of 10 consecutive experts drawn from the
run's generator (the shuffled file list's first file), each expert used once per cycle, the order drawn
anew per cycle; ``expert_group=None`` cycles over every expert of the folder (what the print suggests was
meant, and what the image MTT code does by loading the next file). ``expert_order="replacement"`` draws
each iteration's expert uniformly with replacement (videodd before issue 27; the synth-actions recipes
keep it, their figures were measured with it). The group and the cycle position are in ``state_dict``, so
a resumed run takes the experts an uninterrupted one takes.

Inputs: the experts saw clips flipped, renormalized and z-scored per batch (``ExpertConfig``); the published
student sees the synthetic clips as they are, NOT z-scored (``distill_baseline.py`` line 247,
``student_net(x, flat_param=...)`` on ``image_syn``), in the loaders' ImageNet normalization, where
``image_syn`` lives (it is initialised from ``dst_train`` reads). A videodd set lives in its store's own
normalization, so with ``student_renormalize`` (default) the student sees the synthetic batch mapped to the
normalization the experts were trained in (their ``renormalize``, e.g. ImageNet) - the official student's
input - and never z-scored. The evaluation protocol ``published`` maps a set the same way before it
z-scores it.

Networks: the student replays the expert from its parameters alone, so networks with batch norm
(running statistics, batch statistics of a handful of synthetic clips) are refused; the published
MTT uses no-norm / instance-norm nets (ConvNet3D has no normalization). Dropout stays on, as in
the experts' training and the published student (``student_net.train()``).

Augmentation: the published image MTT applies DSA to each synthetic mini-batch (not siamese:
there is no real batch to pair with); the published video code applies none. ``DistillConfig.augment``
decides (the ``mtt`` recipe sets ``[]``); when given, each synthetic clip gets its own draw per step.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch.func import functional_call

from videodd.augment import AugmentParams, apply_augment_grouped, sample_params
from videodd.data.clips import ClipSource
from videodd.methods import MethodSpec, register_method
from videodd.objectives.base import Objective, ObjectiveExport, ObjectiveOutput, ObjectiveSetup, register_objective
from videodd.seeding import draw_seed, make_generator
from videodd.synthesis.base import Parametrization
from videodd.teachers.experts import ExpertBuffer, ExpertError, check_no_batchnorm, param_layout
from videodd.train import Renormalize, loss_fn


@dataclass(frozen=True)
class MTTOptions:
    """Options of the ``mtt`` objective (``--set objective.KEY=VALUE``).

    Attributes:
        experts: folder written by ``videodd experts`` (required).
        syn_steps: student SGD steps per iteration, N (published video: 10; 5 for static-dynamic IPC 5).
        expert_epochs: target epoch offset M (published video: 1; image MTT: 2).
        max_start_epoch: start epochs are drawn from [min_start_epoch, max_start_epoch) (published 10).
        min_start_epoch: lower bound of the start epoch (published 0).
        lr_init: initial student lr (published lr_teacher 0.01, the experts' lr).
        lr_lr: lr of the learnable student lr (published 1e-5).
        lr_momentum: momentum of the learnable student lr (published 0.5).
        min_lr: the student lr is clipped from below at this value (published video code: 0.001).
        learn_lr: learn the student lr (published video: on, ``--train_lr``).
        batch_syn: synthetic clips per student step; None = the whole set (published default).
        unroll: ``plain`` (published) or ``checkpoint`` (recompute: activation memory of one step).
        check_store: refuse experts trained on a store with another fingerprint.
        expert_order: ``cycle`` (published: a shuffled buffer taken in order, reshuffled when used up, see
            the module docstring) or ``replacement`` (uniform draws with replacement).
        expert_group: with ``cycle``, the run uses one group of this many consecutive experts (published
            10: the one ``replay_buffer`` file of buffer.py's ``save_interval`` that distill_baseline.py
            loads); None = every expert. Experts after the last full group are never used (buffer.py
            never saves a partial file); a folder with fewer experts than one group uses them all.
        student_renormalize: map the synthetic batch to the experts' ``renormalize`` normalization before
            the student (published: the student's input is ``image_syn`` in the ImageNet normalization);
            never z-scored. No effect for experts trained in the store's own normalization.
    """

    experts: str = ""
    syn_steps: int = 10
    expert_epochs: int = 1
    max_start_epoch: int = 10
    min_start_epoch: int = 0
    lr_init: float = 0.01
    lr_lr: float = 1e-5
    lr_momentum: float = 0.5
    min_lr: float = 0.001
    learn_lr: bool = True
    batch_syn: int | None = None
    unroll: Literal["plain", "checkpoint"] = "plain"
    check_store: bool = True
    expert_order: Literal["cycle", "replacement"] = "cycle"
    expert_group: int | None = 10
    student_renormalize: bool = True

    def __post_init__(self) -> None:
        if not self.experts:
            raise ValueError("experts: the folder of expert trajectories is required (train it with "
                             "`videodd experts --data DATA --out DIR ...`, then --set objective.experts=DIR)")
        if self.syn_steps < 1 or self.expert_epochs < 1:
            raise ValueError("syn_steps and expert_epochs must be >= 1")
        if not 0 <= self.min_start_epoch < self.max_start_epoch:
            raise ValueError(f"need 0 <= min_start_epoch < max_start_epoch, got {self.min_start_epoch}, "
                             f"{self.max_start_epoch}")
        if not self.lr_init > 0 or self.lr_lr < 0 or self.min_lr < 0:
            raise ValueError("lr_init must be > 0, lr_lr and min_lr >= 0")
        if self.batch_syn is not None and self.batch_syn < 1:
            raise ValueError(f"batch_syn must be >= 1 or null, got {self.batch_syn}")
        if self.expert_order not in ("cycle", "replacement"):
            raise ValueError(f"expert_order must be 'cycle' or 'replacement', got {self.expert_order!r}")
        if self.expert_group is not None and self.expert_group < 1:
            raise ValueError(f"expert_group must be >= 1 or null, got {self.expert_group}")

    @property
    def last_epoch_needed(self) -> int:
        """The latest expert epoch an iteration can read."""
        return self.max_start_epoch - 1 + self.expert_epochs


@dataclass
class StudentStep:
    """What one student step uses, drawn before the unroll so a recomputation repeats it exactly."""

    indices: torch.Tensor  # (b,) rows of the synthetic set
    seed: int  # seeds the step's dropout
    augment: list[AugmentParams] | None  # one draw per clip, or None


class Student:
    """The student network as a function of one flat parameter vector (the expert file layout)."""

    def __init__(self, net: torch.nn.Module, device: torch.device) -> None:
        self.net = net
        names, shapes = param_layout(net)
        self.names = names
        self.shapes = [torch.Size(s) for s in shapes]
        self.numels = [s.numel() for s in self.shapes]
        self.rng_devices = [device] if device.type == "cuda" else []

    def params(self, theta: torch.Tensor) -> dict[str, torch.Tensor]:
        """Views of ``theta (P,)`` as the network's named parameters."""
        return {n: t.view(s) for n, t, s in zip(self.names, theta.split(self.numels), self.shapes, strict=True)}

    def step(self, theta: torch.Tensor, videos: torch.Tensor, labels: torch.Tensor, lr: torch.Tensor,
             plan: StudentStep, create_graph: bool) -> torch.Tensor:
        """One SGD step ``θ - lr * ∇θ CE`` on the mini-batch ``plan.indices`` of ``videos``.

        ``theta`` must require grad. With ``create_graph`` the result is differentiable w.r.t.
        ``theta``, ``videos``, ``labels`` and ``lr`` (second-order terms included).
        """
        x = videos[plan.indices]  # (b, C, T, H, W)
        y = labels[plan.indices]
        if plan.augment is not None:
            x = apply_augment_grouped(x, plan.augment, torch.arange(len(x), device=x.device))
        # dropout draws from the global RNG: a per-step seed makes a recomputation draw the same mask
        with torch.random.fork_rng(devices=self.rng_devices):
            torch.manual_seed(plan.seed)
            logits = functional_call(self.net, self.params(theta), (x,))
        ce = loss_fn(logits, y)
        (grad,) = torch.autograd.grad(ce, theta, create_graph=create_graph)
        return theta - lr * grad


def unroll_plain(student: Student, theta0: torch.Tensor, videos: torch.Tensor, labels: torch.Tensor,
                 lr: torch.Tensor, plan: list[StudentStep]) -> torch.Tensor:
    """The published unroll: one autograd graph through every step (memory grows with the steps)."""
    theta = theta0.detach().clone().requires_grad_(True)
    for step in plan:
        theta = student.step(theta, videos, labels, lr, step, create_graph=True)
    return theta


class _RecomputedUnroll(torch.autograd.Function):
    """The unroll with activation memory of one step: forward keeps only θ_0..θ_{N-1}; backward
    recomputes step i's graph (forward + inner gradient) and takes its vector-Jacobian product,
    from the last step to the first."""

    @staticmethod
    def forward(ctx, theta0, videos, labels, lr, student, plan):  # type: ignore[override]
        thetas = [theta0.detach()]
        with torch.enable_grad():  # the inner gradient needs autograd; no graph outlives a step
            for step in plan:
                theta = thetas[-1].detach().requires_grad_(True)
                nxt = student.step(theta, videos.detach(), labels.detach(), lr.detach(), step, create_graph=False)
                thetas.append(nxt.detach())
        ctx.student, ctx.plan, ctx.thetas = student, plan, thetas[:-1]
        ctx.save_for_backward(videos, labels, lr)
        return thetas[-1]

    @staticmethod
    def backward(ctx, grad_theta):  # type: ignore[override]
        videos, labels, lr = ctx.saved_tensors
        wants = ctx.needs_input_grad[1:4]  # videos, labels, lr
        totals = [torch.zeros_like(t) if w else None for t, w in zip((videos, labels, lr), wants, strict=True)]
        g = grad_theta
        for i in reversed(range(len(ctx.plan))):
            with torch.enable_grad():
                theta = ctx.thetas[i].detach().requires_grad_(True)
                inputs = [t.detach().requires_grad_(w) for t, w in zip((videos, labels, lr), wants, strict=True)]
                nxt = ctx.student.step(theta, *inputs, ctx.plan[i], create_graph=True)
                targets = [theta] + [t for t, w in zip(inputs, wants, strict=True) if w]
                grads = list(torch.autograd.grad(nxt, targets, grad_outputs=g, allow_unused=True))
            g = grads.pop(0)
            for k, w in enumerate(wants):
                if w:
                    part = grads.pop(0)
                    if part is not None:
                        totals[k] += part
        ctx.thetas = None  # free the stored parameter vectors
        return (g if ctx.needs_input_grad[0] else None), *totals, None, None


def unroll_checkpoint(student: Student, theta0: torch.Tensor, videos: torch.Tensor, labels: torch.Tensor,
                      lr: torch.Tensor, plan: list[StudentStep]) -> torch.Tensor:
    """Same result and gradients as ``unroll_plain``, with the activation memory of one step."""
    return _RecomputedUnroll.apply(theta0, videos, labels, lr, student, plan)


UNROLLS = {"plain": unroll_plain, "checkpoint": unroll_checkpoint}


def trajectory_loss(theta: torch.Tensor, start: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``||θ - target||² / ||start - target||²`` (the published per-parameter means cancel)."""
    dist = (start - target).pow(2).sum()
    if not dist > 0:
        raise ExpertError("the expert did not move between the start and target epochs; its trajectory is unusable")
    return (theta - target).pow(2).sum() / dist


@register_objective("mtt")
class TrajectoryMatching(Objective):
    """MTT objective over expert trajectories. Setup used: ``model``, ``augment``; options: :class:`MTTOptions`."""

    Options = MTTOptions
    options: MTTOptions
    shard = "replicas"  # each rank follows its own expert segment; the set's gradient is their mean

    def __init__(self, store: ClipSource, setup: ObjectiveSetup, options: MTTOptions | None = None) -> None:
        super().__init__(store, setup, options)
        self.buffer = ExpertBuffer(self.options.experts)
        self.buffer.check_store(store, fingerprint=self.options.check_store)
        net = self.new_network(make_generator(0))  # a skeleton: its own weights are never used
        check_no_batchnorm(net, setup.model)
        self.buffer.check_model(net, setup.model)
        need = self.options.last_epoch_needed
        if need > self.buffer.last_epoch:
            raise ExpertError(
                f"max_start_epoch {self.options.max_start_epoch} and expert_epochs {self.options.expert_epochs} read "
                f"expert epochs up to {need}, but {self.buffer.root} keeps epochs 0..{self.buffer.last_epoch}; "
                f"train experts with --keep-epochs {need} or more, or lower max_start_epoch")
        net.train()  # dropout on, as when the experts trained
        net.requires_grad_(False)
        self.student = Student(net, self.device)
        self.unroll = UNROLLS[self.options.unroll]
        self.syn_lr = torch.tensor(self.options.lr_init, device=self.device, requires_grad=self.options.learn_lr)
        self.renorm = self._student_renorm(store)
        # the cycle over the experts (expert_order="cycle"): the group in use, this cycle's order, the position
        self._pool: list[int] | None = None
        self._order: list[int] = []
        self._pos = 0

    def _student_renorm(self, store: ClipSource) -> Renormalize | None:
        """The map from the store's normalization to the experts' (None when they are the same)."""
        target = self.buffer.pipeline["renormalize"]
        if not (self.options.student_renormalize and target):
            return None
        meta = getattr(store, "meta", store)  # a ClipStore's meta, or InMemoryClips' own mean/std
        mean, std = getattr(meta, "mean", None), getattr(meta, "std", None)
        if mean is None or std is None:
            raise ExpertError(f"experts {self.buffer.root} were trained in the {target} normalization, but the "
                              "clips' own normalization is unknown; set objective.student_renormalize=false")
        return Renormalize.to(target, mean, std)

    # -- which expert each iteration follows -------------------------------------------------
    def expert_pool(self, generator: torch.Generator) -> list[int]:
        """The experts a cycling run uses: one group of ``expert_group`` consecutive experts, drawn uniformly
        (``random.shuffle(expert_files)`` then file 0, distill_baseline.py lines 131-134), or all of them."""
        n, g = len(self.buffer), self.options.expert_group
        if g is None or n <= g:
            return list(range(n))
        k = int(torch.randint(n // g, (1,), generator=generator))
        return list(range(k * g, (k + 1) * g))

    def next_experts(self, count: int, generator: torch.Generator) -> list[int]:
        """The next ``count`` experts of the cycle: each expert of the pool once per cycle, in an order drawn
        anew when the cycle is used up (``random.shuffle(buffer)``, distill_baseline.py lines 135 and 211)."""
        if self._pool is None:
            self._pool = self.expert_pool(generator)
        out = []
        for _ in range(count):
            if self._pos == len(self._order):
                perm = torch.randperm(len(self._pool), generator=generator).tolist()
                self._order, self._pos = [self._pool[i] for i in perm], 0
            out.append(self._order[self._pos])
            self._pos += 1
        return out

    # -- hooks of the distill loop ------------------------------------------------------------
    def param_groups(self) -> list[dict[str, Any]]:
        if not self.options.learn_lr:
            return []
        return [{"params": [self.syn_lr], "lr": self.options.lr_lr, "momentum": self.options.lr_momentum}]

    def state_dict(self) -> dict[str, Any]:
        return {"syn_lr": self.syn_lr.detach().cpu().clone(), "expert_pool": self._pool,
                "expert_order": list(self._order), "expert_pos": self._pos}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        with torch.no_grad():
            self.syn_lr.copy_(state["syn_lr"].to(self.device))
        pool = state.get("expert_pool")  # absent in checkpoints from before the cycle: a new one is drawn
        self._pool = None if pool is None else [int(i) for i in pool]
        self._order = [int(i) for i in state.get("expert_order", [])]
        self._pos = int(state.get("expert_pos", 0))

    def export(self, param: Parametrization) -> ObjectiveExport:
        """The student lr becomes the set's ``learned_lr`` (evaluation trains with it, as published,
        also with ``learn_lr`` off). A learned lr that ended at its floor ``min_lr`` (the student stopped
        moving) or is not positive (``min_lr`` 0) is kept aside in ``info`` instead, with a warning, so
        that evaluation falls back to its protocol's lr."""
        lr = self.current_lr()
        info: dict[str, Any] = {"mtt_experts": str(self.buffer.root), "mtt_experts_pipeline": self.buffer.pipeline,
                                "mtt_expert_order": self.options.expert_order, "mtt_expert_pool": self._pool,
                                "mtt_student_input": "store" if self.renorm is None else
                                f"{self.buffer.pipeline['renormalize']} normalization, not z-scored"}
        if not (math.isfinite(lr) and lr > 0):
            return ObjectiveExport(info={**info, "mtt_unusable_student_lr": lr},
                                   warnings=(f"the learned student lr {lr:g} is not usable: evaluation trains with "
                                             "the protocol's lr",))
        if self.at_floor():
            return ObjectiveExport(info={**info, "mtt_student_lr_at_floor": lr},
                                   warnings=(f"the learned student lr ended at its floor min_lr={lr:g}: evaluation "
                                             "trains with the protocol's lr instead",))
        return ObjectiveExport(learned_lr=lr, info=info)

    def at_floor(self) -> bool:
        """The learned student lr sits at its floor ``min_lr`` (clipped there at the next step)."""
        return self.options.learn_lr and float(self.syn_lr.detach()) <= self.options.min_lr

    def health(self) -> list[tuple[str, str]]:
        if not self.at_floor():
            return []
        return [("lr-floor", f"the learned student lr sits at its floor min_lr={self.options.min_lr:g}: the student "
                             "barely moves along the expert trajectory, so the matching signal is weak and the "
                             "set's evaluation will fall back to the protocol's lr. Lower the pixel --lr, or raise "
                             "objective.lr_init / objective.min_lr")]

    def current_lr(self) -> float:
        """The student lr as the next iteration (and evaluation) uses it: clipped at ``min_lr``."""
        return max(float(self.syn_lr.detach()), self.options.min_lr)

    # -- the objective ------------------------------------------------------------------------
    def plan(self, num_videos: int, generator: torch.Generator) -> list[StudentStep]:
        """Mini-batches (the published chunking: a fresh permutation when the chunks run out, popped
        from the end), dropout seeds and augmentation draws of every student step."""
        batch = self.options.batch_syn or num_videos
        chunks: list[torch.Tensor] = []
        steps = []
        for _ in range(self.options.syn_steps):
            if not chunks:
                chunks = list(torch.randperm(num_videos, generator=generator).split(batch))
            idx = chunks.pop()
            draws = ([sample_params(self.aug_cfg, generator) for _ in range(len(idx))]
                     if self.aug_cfg.ops else None)
            steps.append(StudentStep(idx.to(self.device), draw_seed(generator), draws))
        return steps

    def loss(self, param: Parametrization, generator: torch.Generator) -> ObjectiveOutput:
        with torch.no_grad():  # the published code clips after each lr step; clipping before use is the same
            self.syn_lr.clamp_(min=self.options.min_lr)
        # one (expert, start) per rank, taken alike on every rank; this rank follows its own
        if self.options.expert_order == "replacement":
            experts = torch.randint(len(self.buffer), (self.world,), generator=generator).tolist()
        else:
            experts = self.next_experts(self.world, generator)
        starts = torch.randint(self.options.min_start_epoch, self.options.max_start_epoch, (self.world,),
                               generator=generator)
        expert, start_epoch = int(experts[self.rank]), int(starts[self.rank])
        rows = self.buffer.snapshots(expert, [start_epoch, start_epoch + self.options.expert_epochs])
        start, target = rows.to(self.device).unbind(0)  # (P,) each
        syn = param()
        plan = self.plan(len(syn.videos), generator)
        # the student's input: the set in the experts' normalization, never z-scored (distill_baseline.py l. 247)
        videos = syn.videos if self.renorm is None else self.renorm(syn.videos)
        theta = self.unroll(self.student, start, videos, syn.labels, self.syn_lr, plan)
        loss = trajectory_loss(theta, start, target)
        metrics = {"loss": float(loss.detach()), "syn_lr": float(self.syn_lr.detach()),
                   "start_epoch": start_epoch, "expert": expert}
        return ObjectiveOutput(loss, metrics)


register_method(
    MethodSpec(
        "mtt",
        "matching training trajectories: student steps on the pixels follow expert trajectories, student lr learnt",
        parametrization="pixels",
        objective="mtt",
        # Published video MTT (Wang et al. 2024, sh/baseline/MTT.sh): SGD momentum 0.5 on the pixels, no
        # augmentation; its pixel lr (lr_img) is 1e5 for MiniUCF IPC 1 (1e3-1e5 across datasets, configs/).
        # The default lr here is the CPU-scale choice for synth-actions (benchmarks/tuning/tune_mtt_synth.py).
        # Experts: `videodd experts`, then --set objective.experts=DIR (required).
        defaults={"lr": 1000.0, "momentum": 0.5, "augment": []},
        smoke={"iterations": 4, "objective": {"experts": "${experts}", "syn_steps": 2, "max_start_epoch": 1}},
    )
)
