"""IDTD: information diversification and temporal densification (video set distillation, 2025).

A video set has redundancy between the videos of a class and between the frames of a video. IDTD
builds every synthetic video of class ``c`` from a pool shared by the class:

- **Feature pool** (information diversification): ``P`` learnable segments of ``L`` frames per class,
  ``pool (K*P, C, L, H, W)``, shared by all of the class's instances.
- **Feature selectors**: each instance has ``S`` selectors, ``logits (K*ipc, S, P)``; selector ``s``
  softly picks one segment of its class's pool, ``softmax(logits / temperature) @ pool`` (with
  ``hard``: the straight-through one-hot of the argmax, soft gradients).
- **Temporal fusor** (temporal densification): the ``S`` selected segments, concatenated in time
  (``S*L`` frames), are resampled to the clip's ``T`` frames and refined by a small 3D convolution
  network with a residual path, ``x + f(x)``, its last layer zero-initialised so training starts from
  the plain concatenation. One fusor per class (grouped convolutions) or one for all
  (``fusor_scope``); ``fusor: concat`` keeps the resampled concatenation alone (the ablation).
- **Stochastic temporal augmentation** (STA), while distilling only: per instance, the order of its
  segments is shuffled (probability ``sta_order``), the concatenated sequence is played at a random
  speed in ``[1/sta_speed, sta_speed]`` and a random temporal crop keeps at least ``sta_crop`` of it,
  all before the fusor. Draws come from a generator seeded from the run's (checkpointed), so a
  resumed run draws the same. A materialized set has no STA: it is the deterministic composition.
- **Diversity loss** (``penalty()``): ``diversity`` times the mean pairwise cosine similarity of
  selection distributions, (a) between the ``S`` selectors of one instance and (b) between the
  instances of a class (each instance's mean distribution). Why the distributions and not
  embeddings: a parametrization has no network under the component contract (the objective owns
  it), the distributions are what decides which pool entries an instance uses, and pushing them
  apart is what makes the segments of an instance, and the instances of a class, draw on different
  information. Nothing is computed twice and it costs no forward pass.

Storage: the pool, the selector logits and the fusor weights (+ the labels), all counted
(``videodd info`` shows the split). The seed paper gives no sizes (``pool``, ``segments``,
``segment_frames``, fusor width, ``diversity``): the defaults here and in the recipes were chosen on
synth-actions' validation split (benchmarks/RESULTS.md), not published.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from videodd.config import ConfigError
from videodd.data.clips import ClipSource
from videodd.distilled import DistilledManifest, Kind, KindStorage, human_bytes, register_kind, require
from videodd.methods import MethodSpec, register_method
from videodd.seeding import draw_seed, seeded
from videodd.selection import select_random
from videodd.synthesis.base import Parametrization, Synthetic, register_parametrization

LAYOUT_KEY = "idtd"
FUSOR_PREFIX = "fusor."
FUSORS = ("conv", "concat")
SCOPES = ("class", "global")


@dataclass(frozen=True)
class IDTDOptions:
    """Settings of the ``idtd`` parametrization (``--set parametrization.KEY=VALUE``).

    Attributes:
        pool: segments ``P`` in each class's pool; None: ``2 * ipc``.
        segments: selectors ``S`` per instance (segments fused into one video); ``S <= P``.
        segment_frames: frames ``L`` of a pool segment, ``1 <= L <= T``; None: ``ceil(T / S)``.
        temperature: of the selectors' softmax (> 0).
        hard: straight-through: the forward pass uses the argmax segment, the gradient the softmax.
        fusor: ``conv`` (resample to T frames + residual 3D-conv refinement) or ``concat`` (resample only).
        fusor_scope: ``class`` (one fusor per class) or ``global`` (one for all classes).
        fusor_width: hidden channels of the conv fusor (per class with ``fusor_scope: class``).
        sta: stochastic temporal augmentation while distilling.
        sta_order: probability of shuffling an instance's segments.
        sta_speed: largest speed factor (and 1/sta_speed the smallest), >= 1.
        sta_crop: smallest share of the sequence a temporal crop keeps, in (0, 1].
        diversity: weight of the diversity loss (0: none).
        selector_lr: SGD lr of the selector logits (their own optimizer group); None: the run's lr.
        fusor_lr: SGD lr of the fusor weights (their own group).
    """

    pool: int | None = None
    segments: int = 2
    segment_frames: int | None = None
    temperature: float = 1.0
    hard: bool = False
    fusor: str = "conv"
    fusor_scope: str = "class"
    fusor_width: int = 8
    sta: bool = True
    sta_order: float = 0.5
    sta_speed: float = 1.25
    sta_crop: float = 0.8
    diversity: float = 0.1
    selector_lr: float | None = 0.1
    fusor_lr: float = 0.01

    def __post_init__(self) -> None:
        if self.pool is not None and self.pool < 1:
            raise ValueError(f"pool must be >= 1, got {self.pool}")
        if self.segments < 1:
            raise ValueError(f"segments must be >= 1, got {self.segments}")
        if self.pool is not None and self.segments > self.pool:
            raise ValueError(f"segments ({self.segments}) cannot exceed pool ({self.pool}): a selector picks one "
                             "of the class's pool entries and the segments should differ")
        if not self.temperature > 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}")
        if self.fusor not in FUSORS:
            raise ValueError(f"unknown fusor {self.fusor!r}; valid: {', '.join(FUSORS)}")
        if self.fusor_scope not in SCOPES:
            raise ValueError(f"unknown fusor_scope {self.fusor_scope!r}; valid: {', '.join(SCOPES)}")
        if self.fusor_width < 1 or not 0 <= self.sta_order <= 1 or self.sta_speed < 1 or not 0 < self.sta_crop <= 1:
            raise ValueError("fusor_width >= 1, sta_order in [0, 1], sta_speed >= 1 and sta_crop in (0, 1] required")
        if self.diversity < 0:
            raise ValueError(f"diversity must be >= 0, got {self.diversity}")


# -- pieces ---------------------------------------------------------------------------------------------
def resample(x: torch.Tensor, frames: int) -> torch.Tensor:
    """Linear resampling in time: ``(N, C, S, H, W)`` -> ``(N, C, frames, H, W)`` (first and last frames kept)."""
    if x.shape[2] == frames:
        return x
    n, c, s, h, w = x.shape
    if s == 1:
        return x.expand(n, c, frames, h, w)
    pos = torch.linspace(0, s - 1, frames, device=x.device, dtype=x.dtype)  # (frames,) source positions
    lo = pos.floor().long().clamp(max=s - 2)
    frac = (pos - lo.to(x.dtype)).view(1, 1, frames, 1, 1)
    return x[:, :, lo] * (1 - frac) + x[:, :, lo + 1] * frac


class Fusor(nn.Module):
    """``x + f(x)`` with ``f`` two 3D convolutions; ``groups`` separate fusors side by side in the channels
    (one per class: input ``(n, groups*C, T, H, W)``). The last convolution starts at zero."""

    def __init__(self, channels: int, width: int, groups: int = 1) -> None:
        super().__init__()
        self.inner = nn.Conv3d(groups * channels, groups * width, 3, padding=1, groups=groups)
        self.outer = nn.Conv3d(groups * width, groups * channels, 3, padding=1, groups=groups)
        nn.init.zeros_(self.outer.weight)
        nn.init.zeros_(self.outer.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.outer(F.gelu(self.inner(x)))


def make_fusor(meta: dict[str, Any], channels: int, num_classes: int) -> Fusor | None:
    """The fusor a layout describes (None for ``concat``)."""
    if meta["fusor"] == "concat":
        return None
    groups = num_classes if meta["fusor_scope"] == "class" else 1
    return Fusor(channels, int(meta["fusor_width"]), groups)


def select_segments(pool: torch.Tensor, logits: torch.Tensor, ipc: int, temperature: float, hard: bool
                    ) -> torch.Tensor:
    """Each instance's ``S`` segments from its class's pool: ``(K*P, C, L, H, W)`` pool and ``(K*ipc, S, P)``
    logits -> ``(K*ipc, S, C, L, H, W)``."""
    n, s, p = logits.shape
    k = n // ipc
    weights = torch.softmax(logits / temperature, dim=-1)  # (K*ipc, S, P)
    if hard:  # straight-through: the argmax forward, the softmax's gradient
        onehot = F.one_hot(weights.argmax(-1), p).to(weights.dtype)
        weights = onehot + (weights - weights.detach())  # exactly the one-hot forward
    pools = pool.view(k, p, -1)  # (K, P, C*L*H*W)
    picked = torch.einsum("kisp,kpd->kisd", weights.view(k, ipc, s, p), pools)  # (K, ipc, S, C*L*H*W)
    return picked.reshape(n, s, *pool.shape[1:])


def fuse(segments: torch.Tensor, fusor: Fusor | None, frames: int, num_classes: int) -> torch.Tensor:
    """``(N, S, C, L, H, W)`` segments -> videos ``(N, C, T, H, W)``: concatenated in time, resampled to ``T``
    frames, refined by the fusor (instances grouped by class, class order)."""
    n, s, c, length, h, w = segments.shape
    seq = segments.permute(0, 2, 1, 3, 4, 5).reshape(n, c, s * length, h, w)  # (N, C, S*L, H, W)
    return apply_fusor(resample(seq, frames), fusor, num_classes)


def apply_fusor(x: torch.Tensor, fusor: Fusor | None, num_classes: int) -> torch.Tensor:
    """The fusor on ``(N, C, T, H, W)`` videos grouped by class; a per-class fusor sees class ``c``'s videos
    in its channel group ``c``."""
    if fusor is None:
        return x
    n, c, t, h, w = x.shape
    groups = fusor.inner.groups
    if groups == 1:
        return fusor(x)
    ipc = n // num_classes
    stacked = x.view(num_classes, ipc, c, t, h, w).transpose(0, 1).reshape(ipc, num_classes * c, t, h, w)
    out = fusor(stacked)  # (ipc, K*C, T, H, W)
    return out.view(ipc, num_classes, c, t, h, w).transpose(0, 1).reshape(n, c, t, h, w)


def sta(segments: torch.Tensor, opts: IDTDOptions, generator: torch.Generator) -> list[torch.Tensor]:
    """Stochastic temporal augmentation of ``(N, S, C, L, H, W)`` segments -> N sequences ``(1, C, S'_i, H, W)``:
    per instance, segment order shuffled (probability ``sta_order``), then a random speed and temporal crop."""
    n, s, c, length, h, w = segments.shape
    out = []
    for i in range(n):
        segs = segments[i]
        if s > 1 and float(torch.rand((), generator=generator)) < opts.sta_order:
            segs = segs[torch.randperm(s, generator=generator).to(segs.device)]
        seq = segs.permute(1, 0, 2, 3, 4).reshape(1, c, s * length, h, w)  # (1, C, S*L, H, W)
        speed = opts.sta_speed ** (2 * float(torch.rand((), generator=generator)) - 1)  # in [1/v, v]
        seq = resample(seq, max(1, round(s * length / speed)))
        total = seq.shape[2]
        share = opts.sta_crop + (1 - opts.sta_crop) * float(torch.rand((), generator=generator))
        keep = max(1, round(total * share))
        start = int(torch.randint(total - keep + 1, (), generator=generator))
        out.append(seq[:, :, start : start + keep])
    return out  # ragged: each instance's sequence has its own length


def selection_diversity(logits: torch.Tensor, ipc: int, temperature: float) -> torch.Tensor:
    """Mean pairwise cosine similarity of selection distributions ``softmax(logits / temperature)``:
    between the ``S`` selectors of each instance, plus between the instances of each class (their mean
    distributions). 0 when every pair is disjoint; lower is more diverse."""
    n, s, p = logits.shape
    dist = F.normalize(torch.softmax(logits / temperature, dim=-1), dim=-1)  # (N, S, P) unit rows
    terms = []
    if s > 1:
        sim = dist @ dist.transpose(1, 2)  # (N, S, S)
        off = ~torch.eye(s, dtype=torch.bool, device=logits.device)
        terms.append(sim[:, off].mean())
    if ipc > 1:
        inst = F.normalize(dist.mean(1), dim=-1).view(n // ipc, ipc, p)  # (K, ipc, P)
        sim = inst @ inst.transpose(1, 2)  # (K, ipc, ipc)
        off = ~torch.eye(ipc, dtype=torch.bool, device=logits.device)
        terms.append(sim[:, off].mean())
    return torch.stack(terms).sum() if terms else logits.new_zeros(())


# -- the parametrization --------------------------------------------------------------------------------
@register_parametrization("idtd")
class IDTD(Parametrization):
    """Per-class segment pools, per-instance selectors and a temporal fusor (see the module docstring).

    Args:
        store: the training clips (classes, clip shape, real segments for ``init="real"``).
        ipc: synthetic videos per class.
        generator: draws the initial pool, the selector logits, the fusor's weights and the STA seed.
        init: ``real`` (each pool entry ``L`` consecutive frames of a random real clip of its class, from a
            random start) or ``noise`` (Gaussian).
        options: :class:`IDTDOptions`.
    """

    kind = "idtd"
    Options = IDTDOptions
    inits = ("real", "noise")

    def __init__(self, store: ClipSource, ipc: int, generator: torch.Generator, init: str = "real",
                 options: IDTDOptions | None = None) -> None:
        super().__init__()
        self.options = opts = options if options is not None else IDTDOptions()
        k = store.num_classes
        c, t, h, w = store.video_shape
        p = opts.pool if opts.pool is not None else 2 * ipc
        length = opts.segment_frames if opts.segment_frames is not None else -(-t // opts.segments)
        if opts.segments > p:
            raise ConfigError(f"parametrization.segments ({opts.segments}) exceeds the pool ({p} per class)")
        if not 1 <= length <= t:
            raise ConfigError(f"parametrization.segment_frames must be in [1, T] = [1, {t}], got {length}")
        self.num_classes, self.ipc, self.pool_size, self.length, self.frames = k, ipc, p, length, t
        if init == "real":
            clips = store.batch(select_random(store, p, generator))  # (K*P, C, T, H, W); fewer when a class is small
            if clips.shape[0] != k * p:
                raise ConfigError(f"init real: pool {p} needs {p} clips in every class; use init noise or a smaller "
                                  "pool")
            starts = torch.randint(t - length + 1, (k * p,), generator=generator)
            pool = torch.stack([clip[:, s : s + length] for clip, s in zip(clips, starts.tolist(), strict=True)])
        elif init == "noise":
            pool = torch.randn((k * p, c, length, h, w), generator=generator)
        else:
            raise ValueError(f"unknown init {init!r}; valid: {', '.join(self.inits)}")
        self.pool = nn.Parameter(pool.contiguous())  # (K*P, C, L, H, W)
        # standard normal logits: each selector starts with a preference, so that selectors differ (uniform ones
        # would be a stationary point of the diversity loss)
        self.logits = nn.Parameter(torch.randn((k * ipc, opts.segments, p), generator=generator))
        with seeded(generator):
            self.fusor = make_fusor(self.meta(), c, k)
        self._sta = torch.Generator().manual_seed(draw_seed(generator))
        self.register_buffer("_labels", torch.arange(k).repeat_interleave(ipc))

    def meta(self) -> dict[str, Any]:
        """The layout the kind needs to rebuild the videos (``manifest.layout["idtd"]``)."""
        o = self.options
        return {"pool": self.pool_size, "segments": o.segments, "segment_frames": self.length,
                "temperature": o.temperature, "hard": o.hard, "fusor": o.fusor, "fusor_scope": o.fusor_scope,
                "fusor_width": o.fusor_width}

    def forward(self) -> Synthetic:
        opts = self.options
        segments = select_segments(self.pool, self.logits, self.ipc, opts.temperature, opts.hard)  # (N, S, C, L, H, W)
        if not (self.training and opts.sta):
            return Synthetic(fuse(segments, self.fusor, self.frames, self.num_classes), self._labels)
        seqs = sta(segments, opts, self._sta)  # N sequences (1, C, S', H, W) of their own lengths
        videos = torch.cat([resample(seq, self.frames) for seq in seqs])  # (N, C, T, H, W)
        return Synthetic(apply_fusor(videos, self.fusor, self.num_classes), self._labels)

    def labels(self) -> torch.Tensor:
        return self._labels

    def penalty(self) -> torch.Tensor | None:
        if self.options.diversity == 0:
            return None
        return self.options.diversity * selection_diversity(self.logits, self.ipc, self.options.temperature)

    def param_groups(self) -> list[dict[str, Any]]:
        """The selector logits (``selector_lr``) and the fusor (``fusor_lr``) in their own optimizer groups."""
        groups: list[dict[str, Any]] = []
        if self.options.selector_lr is not None:
            groups.append({"params": [self.logits], "lr": self.options.selector_lr,
                           "option": "parametrization.selector_lr"})
        if self.fusor is not None:
            groups.append({"params": list(self.fusor.parameters()), "lr": self.options.fusor_lr,
                           "option": "parametrization.fusor_lr"})
        return groups

    @torch.no_grad()
    def clamp_(self, low: torch.Tensor, high: torch.Tensor) -> None:
        """Clip the pool's pixels to ``[low_c, high_c]`` of their channel."""
        shape = (1, -1, 1, 1, 1)
        self.pool.copy_(torch.maximum(torch.minimum(self.pool, high.view(shape)), low.view(shape)))

    def stored_tensors(self) -> dict[str, torch.Tensor]:
        tensors = {"pool": self.pool, "logits": self.logits}
        if self.fusor is not None:
            tensors.update({FUSOR_PREFIX + name: p for name, p in self.fusor.state_dict().items()})
        return {name: t.detach().cpu().contiguous() for name, t in tensors.items()}

    def layout(self) -> dict[str, Any]:
        return {LAYOUT_KEY: self.meta()}

    # the STA generator is part of the state: a resumed run draws the same augmentations
    def get_extra_state(self) -> dict[str, torch.Tensor]:
        return {"sta": self._sta.get_state()}

    def set_extra_state(self, state: dict[str, torch.Tensor]) -> None:
        self._sta.set_state(state["sta"])


# -- the DistilledSet kind ------------------------------------------------------------------------------
def _meta(manifest: DistilledManifest) -> dict[str, Any]:
    meta = manifest.layout.get(LAYOUT_KEY)
    need = {"pool", "segments", "segment_frames", "temperature", "hard", "fusor", "fusor_scope", "fusor_width"}
    if not isinstance(meta, dict) or not need <= set(meta):
        raise ValueError(f"an idtd set needs manifest.layout[{LAYOUT_KEY!r}] with {sorted(need)}")
    return meta


def check_idtd(tensors: dict[str, torch.Tensor], manifest: DistilledManifest, num_videos: int) -> None:
    """Shapes of the pool, the logits and the fusor weights against the layout (no forward)."""
    meta = _meta(manifest)
    k, c = len(manifest.classes), len(manifest.mean)
    _, h, w = manifest.spec.shape
    p, s, length = int(meta["pool"]), int(meta["segments"]), int(meta["segment_frames"])
    for name, shape in (("pool", (k * p, c, length, h, w)), ("logits", (k * manifest.ipc, s, p))):
        t = require(tensors, name, manifest)
        if tuple(t.shape) != shape or not t.is_floating_point():
            raise ValueError(f"tensor {name!r} must be float {shape}, got {t.dtype} {tuple(t.shape)}")
    if num_videos != k * manifest.ipc:
        raise ValueError(f"{num_videos} videos, expected ipc x classes = {manifest.ipc} x {k}")
    fusor = make_fusor(meta, c, k)
    ref = fusor.state_dict() if fusor is not None else {}
    got = {n[len(FUSOR_PREFIX):]: t for n, t in tensors.items() if n.startswith(FUSOR_PREFIX)}
    if set(got) != set(ref) or any(tuple(got[n].shape) != tuple(ref[n].shape) for n in ref):
        raise ValueError(f"fusor weights {sorted(got)} do not match fusor {meta['fusor']!r}, scope "
                         f"{meta['fusor_scope']!r}, width {meta['fusor_width']}")


def materialize_idtd(tensors: dict[str, torch.Tensor], manifest: DistilledManifest) -> torch.Tensor:
    """The deterministic composition (no STA): selected segments, concatenated, resampled, fused."""
    meta = _meta(manifest)
    k, c = len(manifest.classes), len(manifest.mean)
    pool, logits = tensors["pool"].float(), tensors["logits"].float()
    fusor = make_fusor(meta, c, k)
    if fusor is not None:
        fusor.load_state_dict({n[len(FUSOR_PREFIX):]: t for n, t in tensors.items() if n.startswith(FUSOR_PREFIX)})
        fusor.to(pool.device)
    with torch.no_grad():
        segments = select_segments(pool, logits, int(manifest.ipc), float(meta["temperature"]), bool(meta["hard"]))
        return fuse(segments, fusor, int(manifest.spec.frames), k)


def selector_weights(tensors: dict[str, torch.Tensor], manifest: DistilledManifest) -> torch.Tensor:
    """A saved set's selector distributions over its class's pool, ``softmax(logits / temperature)``:
    ``(K*ipc, S, P)`` (soft even for a ``hard`` set, whose forward takes their argmax)."""
    temperature = float(_meta(manifest)["temperature"])
    return torch.softmax(require(tensors, "logits", manifest).float() / temperature, dim=-1)


def idtd_storage(tensors: dict[str, torch.Tensor], manifest: DistilledManifest) -> KindStorage:
    """Bytes of the pool, the selector logits and the fusor (their sum is the set without labels)."""
    size = {name: int(t.numel() * t.element_size()) for name, t in tensors.items()}
    return KindStorage(parts={"pool": size.get("pool", 0), "selectors": size.get("logits", 0),
                              "fusor": sum(v for n, v in size.items() if n.startswith(FUSOR_PREFIX))})


def describe_idtd(tensors: dict[str, torch.Tensor], manifest: DistilledManifest) -> list[tuple[str, str]]:
    """``videodd info`` rows: the layout and the bytes of each part."""
    m, part = _meta(manifest), idtd_storage(tensors, manifest).parts
    fusor = "plain concatenation" if m["fusor"] == "concat" else \
        f"conv, width {m['fusor_width']}, one {'per class' if m['fusor_scope'] == 'class' else 'for all classes'}"
    return [
        ("layout", f"pool {m['pool']} segments of {m['segment_frames']} frames per class; {m['segments']} "
                   f"selectors per video (temperature {m['temperature']}{', hard' if m['hard'] else ''}); fusor "
                   f"{fusor}"),
        *((name, f"{human_bytes(b)} ({b:,})") for name, b in part.items()),
    ]


register_kind(Kind("idtd", materialize=materialize_idtd, check=check_idtd, storage=idtd_storage,
                   describe=describe_idtd))


# -- recipes ----------------------------------------------------------------------------------------------
register_method(
    MethodSpec(
        "idtd-dm",
        "IDTD: per-class segment pools, selectors and a temporal fusor, with STA and a diversity loss; "
        "distribution matching",
        parametrization="idtd",
        objective="dm",
        defaults={"lr": 1.0, "momentum": 0.5},
        smoke={"iterations": 4, "batch_real": 4, "parametrization": {"fusor_width": 2}},
    )
)
register_method(
    MethodSpec(
        "idtd-mtt",
        "IDTD: per-class segment pools, selectors and a temporal fusor, with STA and a diversity loss; "
        "trajectory matching",
        parametrization="idtd",
        objective="mtt",
        defaults={"lr": 100.0, "momentum": 0.5, "augment": []},
        smoke={"iterations": 4, "parametrization": {"fusor_width": 2},
               "objective": {"experts": "${experts}", "syn_steps": 2, "max_start_epoch": 1}},
    )
)
