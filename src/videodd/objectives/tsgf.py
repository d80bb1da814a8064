"""TSGF: temporal saliency-guided distillation, uni-level against a frozen teacher (2025).

The scalable alternative to bi-level matching: once a teacher is trained, a distillation step costs
one forward and backward pass of the teacher over the synthetic set, whatever the size of the
training set (no real clip is read while distilling).

1. **Teacher**: a classifier trained once on the real training split (``videodd teacher``), saved,
   fingerprinted and reused. It must have batch norm: its running statistics are the target.
2. **Uni-level synthesis**: ``CE(teacher(x), y) + alpha * sum_l (||mu_l(x) - mu_l^run||_2 +
   ||var_l(x) - var_l^run||_2)`` over every batch-norm layer ``l``: the synthetic batch's per-channel
   statistics at the layer's input against the teacher's running statistics (SRe2L's recipe, for
   videos). The teacher runs in eval mode (it normalises with its running statistics) and is never
   updated. All classes' videos go through in one batch: memory depends on the set, not on how many
   training videos exist.
3. **Temporal saliency** of a video: ``s_t = |x_t - x_{t-1}|`` averaged over channels (``s_0 = s_1``),
   smoothed over a temporal window of ``window`` frames with weights ``alpha_k`` (``triangular``:
   ``k+1`` rising to the centre; ``uniform``), then normalised per video to ``[eps, 1]``.
4. **TSGF-O**: the gradient reaching each synthetic video is multiplied, per frame and pixel, by its
   saliency computed without gradient: motion-bearing parts keep changing, redundant frames are damped.
5. **TSGF-A** (``eval_augment``): while the evaluation model trains, crops and temporal segments are
   drawn with probability following saliency (registered as the ``tsgf-a`` evaluation augmentation; a set
   carries it in its manifest, and reports show the protocol's row and the ``+tsgf-a`` row).

Labels: the slot's hard class, or (``labels: soft``) the teacher's softmax at ``soft_temperature`` on the
final videos, stored in the set (counted in its storage) and fitted by soft-target cross-entropy.

The seed leaves ``window``, ``alpha_k`` and ``eps`` unreported: the defaults were chosen on synth-actions'
validation split (benchmarks/RESULTS.md section 15).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from videodd.augment import EVAL_AUGMENTS, EvalAugment
from videodd.data.clips import ClipSource
from videodd.methods import MethodSpec, register_method
from videodd.objectives.base import Objective, ObjectiveExport, ObjectiveOutput, ObjectiveSetup, register_objective
from videodd.synthesis.base import Parametrization
from videodd.teachers.base import TeacherError
from videodd.teachers.classifier import load_classifier

WEIGHTINGS = ("triangular", "uniform")
LABELS = ("hard", "soft")
_BN = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


@dataclass(frozen=True)
class TSGFOptions:
    """Settings of the ``tsgf`` objective (``--set objective.KEY=VALUE``).

    Attributes:
        teacher: a classifier teacher file with batch norm (``videodd teacher --model convnet3d-s-bn``); required.
        alpha: weight of the batch-norm statistics term (0: cross-entropy only).
        labels: ``hard`` (the slot's class) or ``soft`` (the teacher's softmax on the final videos, stored).
        soft_temperature: temperature of the soft labels' softmax.
        saliency_grad: TSGF-O, the saliency-weighted gradient.
        window: frames ``k`` of the temporal smoothing window (odd).
        weighting: the window's weights ``alpha_k``: ``triangular`` or ``uniform``.
        eps: the smallest normalised saliency (so no pixel stops learning entirely), in [0, 1).
        eval_augment: TSGF-A: the set carries the saliency-guided evaluation augmentation.
        aug_crop: share of each side a TSGF-A crop keeps, in (0, 1].
        aug_segment: share of the frames a TSGF-A temporal segment keeps, in (0, 1].
        check_store: refuse a teacher trained on another store (fingerprint).
    """

    teacher: str = ""
    alpha: float = 0.01
    labels: str = "hard"
    soft_temperature: float = 1.0
    saliency_grad: bool = True
    window: int = 3
    weighting: str = "triangular"
    eps: float = 0.1
    eval_augment: bool = True
    aug_crop: float = 0.75
    aug_segment: float = 0.75
    check_store: bool = True

    def __post_init__(self) -> None:
        if not self.teacher:
            raise ValueError("teacher: a classifier teacher with batch norm is required (train one with "
                             "`videodd teacher --data DATA --model convnet3d-s-bn --out FILE`, then "
                             "--set objective.teacher=FILE)")
        if self.alpha < 0 or not self.soft_temperature > 0:
            raise ValueError("alpha >= 0 and soft_temperature > 0 are required")
        if self.labels not in LABELS:
            raise ValueError(f"labels must be one of {list(LABELS)}, got {self.labels!r}")
        check_saliency(self.window, self.weighting, self.eps)
        if not (0 < self.aug_crop <= 1 and 0 < self.aug_segment <= 1):
            raise ValueError("aug_crop and aug_segment must be in (0, 1]")


def check_saliency(window: int, weighting: str, eps: float) -> None:
    if window < 1 or window % 2 == 0:
        raise ValueError(f"window must be an odd number of frames >= 1, got {window}")
    if weighting not in WEIGHTINGS:
        raise ValueError(f"weighting must be one of {list(WEIGHTINGS)}, got {weighting!r}")
    if not 0 <= eps < 1:
        raise ValueError(f"eps must be in [0, 1), got {eps}")


# -- saliency -------------------------------------------------------------------------------------------
def window_weights(window: int, weighting: str) -> torch.Tensor:
    """``alpha_k`` of the smoothing window, summing to 1: ``triangular`` 1, 2, .., top, .., 2, 1; ``uniform``."""
    half = window // 2
    w = torch.ones(window) if weighting == "uniform" else (half + 1 - torch.arange(-half, half + 1).abs()).float()
    return w / w.sum()


def temporal_saliency(videos: torch.Tensor, window: int = 3, weighting: str = "triangular",
                      eps: float = 0.1) -> torch.Tensor:
    """Saliency ``(N, 1, T, H, W)`` in ``[eps, 1]`` of videos ``(N, C, T, H, W)`` (see the module docstring)."""
    x = videos.detach()
    if x.shape[2] == 1:
        return torch.ones_like(x[:, :1])
    diff = (x[:, :, 1:] - x[:, :, :-1]).abs().mean(1, keepdim=True)  # (N, 1, T-1, H, W)
    s = torch.cat([diff[:, :, :1], diff], dim=2)  # (N, 1, T, H, W): the first frame takes the second's
    n, _, t, h, w = s.shape
    if window > 1:
        k = window_weights(window, weighting).to(s)
        seq = s.permute(0, 3, 4, 1, 2).reshape(n * h * w, 1, t)  # (N*H*W, 1, T): one series per pixel
        seq = F.conv1d(F.pad(seq, (window // 2, window // 2), mode="replicate"), k.view(1, 1, -1))
        s = seq.view(n, h, w, 1, t).permute(0, 3, 4, 1, 2)  # back to (N, 1, T, H, W)
    flat = s.reshape(n, -1)
    low, high = flat.min(1).values.view(n, 1, 1, 1, 1), flat.max(1).values.view(n, 1, 1, 1, 1)
    return eps + (1 - eps) * (s - low) / (high - low).clamp_min(1e-12)


# -- the teacher's batch-norm statistics ----------------------------------------------------------------------
class BNStatistics:
    """Forward hooks on every batch-norm layer of ``net``: the input's per-channel mean and (biased) variance
    over the batch and every spatial/temporal position, collected during a forward pass."""

    def __init__(self, net: nn.Module) -> None:
        self.layers = [m for m in net.modules() if isinstance(m, _BN)]
        self.stats: list[tuple[torch.Tensor, torch.Tensor]] = []
        self.handles = [m.register_forward_hook(self._hook) for m in self.layers]

    def _hook(self, module: nn.Module, inputs: tuple[torch.Tensor, ...], _output: torch.Tensor) -> None:
        x = inputs[0]
        dims = [0, *range(2, x.ndim)]  # every axis but the channels
        self.stats.append((x.mean(dims), x.var(dims, unbiased=False)))

    def loss(self) -> torch.Tensor:
        """``sum_l ||mu_l - running_mean_l||_2 + ||var_l - running_var_l||_2`` of the last forward pass."""
        terms = [torch.linalg.vector_norm(mu - m.running_mean) + torch.linalg.vector_norm(var - m.running_var)
                 for (mu, var), m in zip(self.stats, self.layers, strict=True)]
        self.stats = []
        return torch.stack(terms).sum()


def has_batchnorm(net: nn.Module) -> bool:
    return any(isinstance(m, _BN) for m in net.modules())


# -- the objective ----------------------------------------------------------------------------------------------
@register_objective("tsgf")
class TemporalSaliencyGuided(Objective):
    """TSGF against a frozen batch-norm teacher. Setup used: ``device``; options: :class:`TSGFOptions`."""

    Options = TSGFOptions
    options: TSGFOptions

    def __init__(self, store: ClipSource, setup: ObjectiveSetup, options: TSGFOptions | None = None) -> None:
        super().__init__(store, setup, options)
        o = self.options
        teacher, manifest = load_classifier(o.teacher, store, check_store=o.check_store)
        if not has_batchnorm(teacher):
            raise TeacherError(f"teacher {o.teacher}: {manifest['model']} has no batch norm, and TSGF matches the "
                               "running statistics of batch-norm layers; train one with "
                               "`videodd teacher --model convnet3d-s-bn` (or any model with batch norm)")
        bad = [n for n, t in teacher.state_dict().items() if t.is_floating_point() and not torch.isfinite(t).all()]
        if bad:
            raise TeacherError(f"teacher {o.teacher}: NaN/Inf in {bad[:3]}: its training diverged; train it again "
                               "with a lower lr")
        self.teacher = teacher.to(self.device).eval().requires_grad_(False)
        self.teacher_model = manifest["model"]
        self.bn = BNStatistics(self.teacher)

    def loss(self, param: Parametrization, generator: torch.Generator) -> ObjectiveOutput:
        o = self.options
        syn = param()
        # (K*ipc, C, T, H, W), every class in one batch; a view, so that the hook below lives on this
        # iteration's graph only (a hook on the parametrization's leaf tensor would pile up every iteration)
        videos = syn.videos.view_as(syn.videos)
        if o.saliency_grad and videos.requires_grad:
            saliency = temporal_saliency(videos, o.window, o.weighting, o.eps)  # (N, 1, T, H, W), no gradient
            videos.register_hook(lambda grad: grad * saliency)  # TSGF-O: per frame and pixel
        labels = syn.labels if syn.labels.ndim == 1 else syn.labels.argmax(1)
        with self.autocast():
            logits = self.teacher(videos).float()
        ce = F.cross_entropy(logits, labels)
        bn = self.bn.loss()
        loss = ce + o.alpha * bn
        accuracy = float((logits.argmax(1) == labels).float().mean())
        return ObjectiveOutput(loss, {"loss": float(loss.detach()), "ce": float(ce.detach()),
                                      "bn": float(bn.detach()), "teacher_accuracy": accuracy})

    def export(self, param: Parametrization) -> ObjectiveExport:
        """The teacher's soft labels (``labels: soft``) and TSGF-A (``eval_augment``)."""
        o = self.options
        labels = None
        if o.labels == "soft":
            param.eval()
            with torch.no_grad():
                logits = self.teacher(param().videos).float()
                self.bn.stats = []
            param.train()
            labels = torch.softmax(logits / o.soft_temperature, dim=1)  # (N, K) soft targets
        augment = None
        if o.eval_augment:
            augment = {"name": "tsgf-a", "version": TSGF_A_VERSION,
                       "options": {"window": o.window, "weighting": o.weighting, "eps": o.eps, "crop": o.aug_crop,
                                   "segment": o.aug_segment}}
        return ObjectiveExport(labels=labels, eval_augment=augment,
                               info={"teacher": o.teacher, "teacher_model": self.teacher_model})


# -- TSGF-A: saliency-guided augmentation while the evaluation model trains ------------------------------
TSGF_A_VERSION = 1


def resample_frames(x: torch.Tensor, frames: int) -> torch.Tensor:
    """``(C, S, H, W)`` -> ``(C, frames, H, W)`` by linear interpolation in time."""
    return F.interpolate(x.unsqueeze(0), size=(frames, *x.shape[2:]), mode="trilinear", align_corners=True)[0]


def saliency_guided(videos: torch.Tensor, generator: torch.Generator, *, window: int, weighting: str, eps: float,
                    crop: float, segment: float) -> torch.Tensor:
    """Per clip of ``(B, C, T, H, W)``: a temporal segment of ``segment * T`` frames whose start is drawn with
    probability proportional to the saliency inside it, resampled back to ``T`` frames; then a crop of
    ``crop`` of each side whose position is drawn the same way on the clip's spatial saliency, resized back."""
    b, c, t, h, w = videos.shape
    sal = temporal_saliency(videos, window, weighting, eps)[:, 0]  # (B, T, H, W)
    keep_t, ch, cw = max(1, round(segment * t)), max(1, round(crop * h)), max(1, round(crop * w))
    out = []
    for i in range(b):
        x, s = videos[i], sal[i]
        per_frame = s.sum((1, 2))  # (T,)
        mass = per_frame.unfold(0, keep_t, 1).sum(1)  # (T - keep_t + 1,) saliency of each window
        start = int(torch.multinomial(mass.cpu() / mass.sum().cpu(), 1, generator=generator))
        x = resample_frames(x[:, start : start + keep_t], t)  # (C, T, H, W)
        spatial = s[start : start + keep_t].sum(0)  # (H, W)
        boxes = F.avg_pool2d(spatial[None, None], (ch, cw), stride=1)[0, 0]  # (H-ch+1, W-cw+1) mass per crop
        pick = int(torch.multinomial(boxes.flatten().cpu() / boxes.sum().cpu(), 1, generator=generator))
        top, left = divmod(pick, boxes.shape[1])
        x = x[:, :, top : top + ch, left : left + cw]
        out.append(F.interpolate(x, size=(h, w), mode="bilinear", align_corners=False))  # frames as a batch
    return torch.stack(out)


def _build_tsgf_a(options: dict[str, Any]) -> Callable[[torch.Tensor, torch.Generator], torch.Tensor]:
    window, weighting, eps = int(options.get("window", 3)), str(options.get("weighting", "triangular")), \
        float(options.get("eps", 0.1))
    check_saliency(window, weighting, eps)
    crop, segment = float(options.get("crop", 0.75)), float(options.get("segment", 0.75))
    if not (0 < crop <= 1 and 0 < segment <= 1) or math.isnan(crop + segment):
        raise ValueError("tsgf-a: crop and segment must be in (0, 1]")
    return lambda x, gen: saliency_guided(x, gen, window=window, weighting=weighting, eps=eps, crop=crop,
                                          segment=segment)


EVAL_AUGMENTS.register("tsgf-a")(EvalAugment("tsgf-a", TSGF_A_VERSION, _build_tsgf_a))


register_method(
    MethodSpec(
        "tsgf",
        "TSGF: pixels against a frozen batch-norm teacher (CE + BN statistics), saliency-weighted gradients, "
        "saliency-guided evaluation augmentation",
        parametrization="pixels",
        objective="tsgf",
        # SRe2L-style synthesis steps pixels with Adam; not tuned here yet (configs/synth-actions/tsgf-ipc1.yaml)
        defaults={"optimizer": "adam", "lr": 0.05, "augment": []},
        smoke={"iterations": 4, "objective": {"teacher": "${teacher}"}},
    )
)
