"""Static-dynamic disentanglement ("Dancing with Still Images", Wang et al. CVPR 2024; docs/ARCHITECTURE.md section 10).

A synthetic video of class ``c`` is ``H(static, dynamic)``: a frozen still frame of ``c`` (the
*static memory*, distilled beforehand by ``vdsd-static`` or taken from random real frames),
repeated over the ``T`` frames, combined with a learnable one-channel map over ``T`` frames of ``c``
(the *dynamic memory*) by one small 3D-conv *hallucinator* ``H`` shared by all classes:

- ``concat``: ``video = static + H([static, dynamic])``, ``H``: ``C + 1 -> C`` channels;
- ``add``: ``video = static + H(dynamic)``, ``H``: ``1 -> C`` channels.

(Both modes are residual on the static frame, so an untrained ``H`` already yields the stills.)
With ``spc`` statics and ``dpc`` dynamics per class, each of the ``ipc`` videos of a class pairs
one static and one dynamic entry of the class: ``pairing="random"`` re-draws the pairs at every
``forward()`` (the published combination sampling); ``"fixed"`` (and the exported DistilledSet)
uses video ``j`` -> static ``j % spc``, dynamic ``(j // spc) % dpc``, which enumerates every
combination once when ``ipc = spc * dpc``.

Storage = statics + dynamics + H's weights, all stored in the DistilledSet (kind
``static_dynamic``: tensors ``statics`` ``(K*spc, C, 1, H, W)``, ``dynamics``
``(K*dpc, 1, T, H, W)`` and ``h.*``), which rebuilds ``H`` and materializes the fixed pairing.

Ablations of the paper's component study (its "statics only" and "without H training" rows):

- ``train_h=False``: ``H`` stays at its (seeded) initialisation: its weights are not trained (no
  gradient, in no optimizer group) but still stored; only the dynamics learn.
- ``dynamics=False``: no dynamic memory and no ``H``: each video is its static frame repeated
  over ``T`` (nothing to learn, so distil with ``iterations: 0``; the set stores only ``statics``),
  e.g. ``videodd distill --method vdsd-dm --iterations 0 --set parametrization.statics=STAGE1
  --set parametrization.dynamics=false``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from videodd.data.clips import ClipSource
from videodd.data.frames import FrameStore
from videodd.data.store import ClipStore
from videodd.distilled import DistilledManifest, DistilledSet, Kind, KindStorage, human_bytes, register_kind
from videodd.methods import MethodSpec, register_method
from videodd.seeding import draw_seed, seeded
from videodd.selection import select_random
from videodd.synthesis.base import Parametrization, Synthetic, register_parametrization

MODES = ("concat", "add")
PAIRINGS = ("random", "fixed")
H_PREFIX = "h."
LAYOUT_KEY = "static_dynamic"


@dataclass(frozen=True)
class StaticDynamicOptions:
    """Settings of the ``static_dynamic`` parametrization (``--set parametrization.KEY=VALUE``).

    Attributes:
        statics: path to a stage-1 DistilledSet of stills (``videodd distill --method vdsd-static``:
            ``(N, C, 1, H, W)``, same classes and frame size), or ``"init"``: ``spc`` random real
            frames per class (one random frame of a random clip), drawn from the run's seed.
        spc: statics per class; ``None``: all of the file's (per class), or 1 with ``"init"``.
            Fewer than the file holds keeps the first ``spc`` of each class.
        dpc: dynamic maps per class.
        mode: ``concat`` or ``add`` (see the module docstring).
        width: hidden channels of the hallucinator (two 3x3x3 convolutions).
        h_lr: SGD learning rate of the hallucinator (its own optimizer group; the dynamics use ``lr``).
        h_momentum: SGD momentum of the hallucinator; ``None``: the run's ``momentum``.
        pairing: ``random`` (re-drawn at each forward) or ``fixed`` (deterministic, as exported).
        train_h: train the hallucinator; ``False`` freezes it at its initialisation (ablation).
        dynamics: ``False`` drops the dynamic memory and ``H``: videos are the statics repeated over
            time (the "statics only" ablation; ``dpc``, ``mode``, ``width`` and ``h_*`` are then unused).
    """

    statics: str = "init"
    spc: int | None = None
    dpc: int = 1
    mode: str = "concat"
    width: int = 16
    h_lr: float = 0.01
    h_momentum: float | None = None
    pairing: str = "random"
    train_h: bool = True
    dynamics: bool = True

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode {self.mode!r} is not one of {list(MODES)}")
        if self.pairing not in PAIRINGS:
            raise ValueError(f"pairing {self.pairing!r} is not one of {list(PAIRINGS)}")
        if (self.spc is not None and self.spc < 1) or self.dpc < 1 or self.width < 1:
            raise ValueError(f"spc, dpc and width must be >= 1, got {self.spc}, {self.dpc}, {self.width}")
        if not self.h_lr > 0:
            raise ValueError(f"h_lr must be > 0, got {self.h_lr}")
        if self.h_momentum is not None and not 0 <= self.h_momentum < 1:
            raise ValueError(f"h_momentum must be in [0, 1), got {self.h_momentum}")


class Hallucinator(nn.Module):
    """``H``: (static repeated over T, dynamic map) -> video, two 3x3x3 convolutions, residual on the static."""

    def __init__(self, channels: int, mode: str = "concat", width: int = 16) -> None:
        super().__init__()
        if mode not in MODES:
            raise ValueError(f"mode {mode!r} is not one of {list(MODES)}")
        self.mode = mode
        self.conv1 = nn.Conv3d(channels + 1 if mode == "concat" else 1, width, 3, padding=1)
        self.conv2 = nn.Conv3d(width, channels, 3, padding=1)

    def forward(self, statics: torch.Tensor, dynamics: torch.Tensor) -> torch.Tensor:
        """``statics`` ``(N, C, T, H, W)`` (repeated frames), ``dynamics`` ``(N, 1, T, H, W)`` -> ``(N, C, T, H, W)``"""
        x = torch.cat([statics, dynamics], dim=1) if self.mode == "concat" else dynamics  # (N, C+1 or 1, T, H, W)
        return statics + self.conv2(torch.relu(self.conv1(x)))


def fixed_pairs(num_classes: int, ipc: int, spc: int, dpc: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows of statics / dynamics for each video: video ``j`` of class ``c`` -> ``(j % spc, j // spc % dpc)``."""
    j = torch.arange(ipc)
    base = torch.arange(num_classes).repeat_interleave(ipc)  # (K*ipc,) class of each video
    return base * spc + (j % spc).repeat(num_classes), base * dpc + (j // spc % dpc).repeat(num_classes)


def random_pairs(num_classes: int, ipc: int, spc: int, dpc: int,
                 generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Each video draws a static and a dynamic entry of its own class uniformly."""
    base = torch.arange(num_classes).repeat_interleave(ipc)  # (K*ipc,)
    s = torch.randint(spc, (num_classes * ipc,), generator=generator)
    d = torch.randint(dpc, (num_classes * ipc,), generator=generator)
    return base * spc + s, base * dpc + d


def compose(statics: torch.Tensor, dynamics: torch.Tensor, h: Hallucinator, s_idx: torch.Tensor,
            d_idx: torch.Tensor) -> torch.Tensor:
    """Videos ``(N, C, T, H, W)`` from the paired statics ``(., C, 1, H, W)`` and dynamics ``(., 1, T, H, W)``."""
    frames = dynamics.shape[2]
    still = statics[s_idx.to(statics.device)].expand(-1, -1, frames, -1, -1)  # (N, C, T, H, W), a view
    return h(still, dynamics[d_idx.to(dynamics.device)])


def repeat_statics(statics: torch.Tensor, s_idx: torch.Tensor, frames: int) -> torch.Tensor:
    """Videos ``(N, C, T, H, W)``: the indexed statics ``(., C, 1, H, W)`` repeated over ``frames`` (a view)."""
    return statics[s_idx.to(statics.device)].expand(-1, -1, frames, -1, -1)


def load_statics(path: str, store: ClipStore, spc: int | None) -> torch.Tensor:
    """The stills of a stage-1 DistilledSet, grouped by class: ``(K*spc, C, 1, H, W)``."""
    dset = DistilledSet.load(path)
    if list(dset.manifest.classes) != list(store.classes):
        raise ValueError(f"statics {path}: classes {dset.manifest.classes[:5]} differ from the store's "
                         f"{store.classes[:5]}")
    mat = dset.materialize()
    c, _, h, w = store.video_shape
    if tuple(mat.videos.shape[1:]) != (c, 1, h, w):
        raise ValueError(f"statics {path}: stills must be (N, C, 1, H, W) with (C, H, W) = {(c, h, w)}, got "
                         f"{tuple(mat.videos.shape)}; distil them with --method vdsd-static on this store")
    labels = mat.labels if mat.labels.ndim == 1 else mat.labels.argmax(1)
    counts = torch.bincount(labels, minlength=store.num_classes)
    have = int(counts.min())
    want = have if spc is None else spc
    if want > have:
        raise ValueError(f"statics {path}: spc={want} but a class has only {have} stills")
    order = torch.argsort(labels, stable=True)  # group by class, keeping the file's order within a class
    grouped = mat.videos[order]
    starts = torch.cumsum(counts, 0) - counts  # (K,) first row of each class in the grouped order
    rows = (starts[:, None] + torch.arange(want)[None, :]).reshape(-1)  # (K*spc,) first spc of each class
    return grouped[rows].contiguous()


@register_parametrization("static_dynamic")
class StaticDynamic(Parametrization):
    """Frozen statics, learnable per-class dynamic maps and a shared hallucinator (see the module docstring).

    Args:
        store: the training ClipStore (classes, clip shape, real frames for ``statics="init"``).
        ipc: synthetic videos per class (the pairs materialized at each forward).
        generator: draws the initial statics (``init``), dynamics, H's weights and the pairing seed.
        init: ``real`` only: the statics come from ``options.statics`` (real frames or a stage-1 set),
            the dynamics start as Gaussian noise, as released.
        options: :class:`StaticDynamicOptions`.
    """

    kind = "static_dynamic"
    Options = StaticDynamicOptions
    inits = ("real",)

    def __init__(self, store: ClipSource, ipc: int, generator: torch.Generator, init: str = "real",
                 options: StaticDynamicOptions | None = None) -> None:
        super().__init__()
        self.options = opts = options if options is not None else StaticDynamicOptions()
        k = store.num_classes
        c, t, h, w = store.video_shape
        if opts.statics == "init":
            spc = opts.spc or 1
            statics = FrameStore(store, generator).batch(select_random(store, spc, generator))  # (K*spc, C, 1, H, W)
        else:
            statics = load_statics(opts.statics, store, opts.spc)
            spc = statics.shape[0] // k
        self.num_classes, self.ipc, self.spc, self.dpc, self.frames = k, ipc, spc, opts.dpc, t
        self.register_buffer("statics", statics)  # frozen: a buffer, never in the optimizer
        self.dynamics: nn.Parameter | None = None
        self.h: Hallucinator | None = None
        if opts.dynamics:  # (without: videos are the statics repeated, nothing is drawn for dynamics / H)
            self.dynamics = nn.Parameter(torch.randn((k * opts.dpc, 1, t, h, w), generator=generator))
            with seeded(generator):
                self.h = Hallucinator(c, opts.mode, opts.width)
            if not opts.train_h:  # ablation: H frozen at its initialisation, in no optimizer group
                self.h.requires_grad_(False)
        self._pairing = torch.Generator().manual_seed(draw_seed(generator))
        self.register_buffer("_labels", torch.arange(k).repeat_interleave(ipc))

    def pairs(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Static and dynamic row of each video: fresh random pairs, or the fixed ones."""
        if self.options.pairing == "fixed":
            return fixed_pairs(self.num_classes, self.ipc, self.spc, self.dpc)
        return random_pairs(self.num_classes, self.ipc, self.spc, self.dpc, self._pairing)

    def forward(self) -> Synthetic:
        s_idx, d_idx = self.pairs()
        if self.dynamics is None or self.h is None:
            return Synthetic(repeat_statics(self.statics, s_idx, self.frames), self._labels)
        return Synthetic(compose(self.statics, self.dynamics, self.h, s_idx, d_idx), self._labels)

    def labels(self) -> torch.Tensor:
        return self._labels

    def param_groups(self) -> list[dict]:
        """The hallucinator's weights in their own optimizer group (lr ``h_lr``); none when H is frozen or absent."""
        if self.h is None or not self.options.train_h:
            return []
        group: dict = {"params": list(self.h.parameters()), "lr": self.options.h_lr, "option": "parametrization.h_lr"}
        if self.options.h_momentum is not None:
            group["momentum"] = self.options.h_momentum
        return [group]

    def stored_tensors(self) -> dict[str, torch.Tensor]:
        tensors = {"statics": self.statics}
        if self.dynamics is not None and self.h is not None:
            tensors["dynamics"] = self.dynamics
            tensors.update({H_PREFIX + name: p for name, p in self.h.state_dict().items()})
        return {name: t.detach().cpu().contiguous() for name, t in tensors.items()}

    def layout(self) -> dict[str, Any]:
        """What the materializer needs besides the tensors."""
        meta = {"spc": self.spc, "dpc": self.dpc, "mode": self.options.mode, "width": self.options.width,
                "statics": self.options.statics, "train_h": self.options.train_h}
        if not self.options.dynamics:
            meta["dynamics"] = False  # statics only (absent: with dynamics, as files before this option)
        return {LAYOUT_KEY: meta}

    # the pairing generator is part of the state, so a resumed run draws the same pairs
    def get_extra_state(self) -> dict[str, torch.Tensor]:
        return {"pairing": self._pairing.get_state()}

    def set_extra_state(self, state: dict[str, torch.Tensor]) -> None:
        self._pairing.set_state(state["pairing"])


# -- the DistilledSet kind ------------------------------------------------------------------------
def _layout(tensors: dict[str, torch.Tensor], manifest: Any) -> dict[str, Any]:
    meta = manifest.layout.get(LAYOUT_KEY)
    if not isinstance(meta, dict) or not {"spc", "dpc", "mode", "width"} <= set(meta):
        raise ValueError(f"a static_dynamic set needs manifest.layout[{LAYOUT_KEY!r}] with spc, dpc, mode and width")
    return meta


def _has_dynamics(meta: dict[str, Any]) -> bool:
    return meta.get("dynamics", True) is not False


def check_static_dynamic(tensors: dict[str, torch.Tensor], manifest: Any, num_videos: int) -> None:
    """Shapes of statics / dynamics against the manifest; H's weights against mode and width (no forward)."""
    meta = _layout(tensors, manifest)
    k, c = len(manifest.classes), len(manifest.mean)
    t, h, w = manifest.spec.shape
    want = {"statics": (k * meta["spc"], c, 1, h, w)}
    if not _has_dynamics(meta):  # statics only: nothing else may be stored
        other = sorted(name for name in tensors if name != "statics")
        if other:
            raise ValueError(f"a statics-only static_dynamic set stores only 'statics', got also {other}")
    else:
        want["dynamics"] = (k * meta["dpc"], 1, t, h, w)
    for name, shape in want.items():
        if name not in tensors:
            raise ValueError(f"a static_dynamic set needs a tensor {name!r}; it has {sorted(tensors)}")
        if tuple(tensors[name].shape) != shape or not tensors[name].is_floating_point():
            raise ValueError(f"tensor {name!r} must be float {shape}, got {tensors[name].dtype} "
                             f"{tuple(tensors[name].shape)}")
    if num_videos != k * manifest.ipc:
        raise ValueError(f"{num_videos} videos, expected ipc x classes = {manifest.ipc} x {k}")
    if not _has_dynamics(meta):
        return
    ref = Hallucinator(c, meta["mode"], int(meta["width"])).state_dict()
    got = {name[len(H_PREFIX):]: t for name, t in tensors.items() if name.startswith(H_PREFIX)}
    if set(got) != set(ref) or any(tuple(got[n].shape) != tuple(ref[n].shape) for n in ref):
        raise ValueError(f"hallucinator weights {sorted(got)} do not match mode {meta['mode']!r}, "
                         f"width {meta['width']}")


def materialize_static_dynamic(tensors: dict[str, torch.Tensor], manifest: Any) -> torch.Tensor:
    """Rebuild H from ``h.*`` and the manifest, and compose the fixed pairing: ``(K*ipc, C, T, H, W)``."""
    meta = _layout(tensors, manifest)
    k = len(manifest.classes)
    s_idx, d_idx = fixed_pairs(k, int(manifest.ipc), int(meta["spc"]), int(meta["dpc"]))
    if not _has_dynamics(meta):  # statics only: each still repeated over the clip's frames
        return repeat_statics(tensors["statics"].float(), s_idx, int(manifest.spec.frames)).contiguous()
    statics, dynamics = tensors["statics"].float(), tensors["dynamics"].float()
    h = Hallucinator(len(manifest.mean), meta["mode"], int(meta["width"]))
    h.load_state_dict({name[len(H_PREFIX):]: t for name, t in tensors.items() if name.startswith(H_PREFIX)})
    h.to(statics.device)
    with torch.no_grad():
        return compose(statics, dynamics, h, s_idx, d_idx)


def static_dynamic_storage(tensors: dict[str, torch.Tensor], manifest: Any) -> KindStorage:
    """Bytes of the statics, the dynamics and the hallucinator (their sum is the set without labels)."""
    size = {name: int(t.numel() * t.element_size()) for name, t in tensors.items()}
    return KindStorage(parts={"statics": size.get("statics", 0), "dynamics": size.get("dynamics", 0),
                              "hallucinator": sum(v for n, v in size.items() if n.startswith(H_PREFIX))})


def describe_static_dynamic(tensors: dict[str, torch.Tensor], manifest: DistilledManifest) -> list[tuple[str, str]]:
    """``videodd info`` rows: the layout and the bytes of each part."""
    part = static_dynamic_storage(tensors, manifest).parts
    m = manifest.layout.get(LAYOUT_KEY) or {}
    if m.get("dynamics", True) is False:
        layout = f"statics only: spc {m.get('spc')} per class repeated over time (no dynamics, no H), "
    else:
        frozen = " (frozen at init, not trained)" if m.get("train_h", True) is False else ""
        layout = (f"spc {m.get('spc')} x dpc {m.get('dpc')} per class, H {m.get('mode')} width {m.get('width')}"
                  f"{frozen}, ")
    return [
        ("layout", layout + f"statics from {m.get('statics')}"),
        ("statics", f"{human_bytes(part['statics'])} ({part['statics']:,})"),
        ("dynamics", f"{human_bytes(part['dynamics'])} ({part['dynamics']:,})"),
        ("hallucinator", f"{human_bytes(part['hallucinator'])} ({part['hallucinator']:,})"),
    ]


register_kind(Kind("static_dynamic", materialize=materialize_static_dynamic, check=check_static_dynamic,
                   storage=static_dynamic_storage, describe=describe_static_dynamic))


# -- recipes: stage 1 (stills) and stage 2 (dynamics + H under an objective) ------------------------------
# Stage 1 distils stills (gradient matching with a 2D ConvNet, as published); stage 2 learns the dynamic
# memory and the hallucinator H under DM / MTT / KRR with the stills frozen (--set parametrization.statics=FILE).
register_method(
    MethodSpec(
        "vdsd-static",
        "static memory (stage 1 of static-dynamic): still frames, one random frame per clip, gradient matching",
        parametrization="pixels",
        objective="dc",
        frames=True,
        # dc's validated step (not tuned for stills); DC's ConvNet uses instance norm, which convnet2d has
        defaults={"lr": 0.01, "momentum": 0.5, "model": "convnet2d"},
        smoke={"iterations": 4, "batch_real": 4, "objective": {"outer_loop": 2, "inner_loop": 1}},
    )
)
register_method(
    MethodSpec(
        "vdsd-dm",
        "static-dynamic: frozen stills + per-class dynamic maps + shared hallucinator, distribution matching",
        parametrization="static_dynamic",
        objective="dm",
        defaults={"lr": 1.0, "momentum": 0.5},
        smoke={"iterations": 4, "batch_real": 4, "parametrization": {"width": 4}},
    )
)
register_method(
    MethodSpec(
        "vdsd-mtt",
        "static-dynamic: frozen stills + per-class dynamic maps + shared hallucinator, trajectory matching",
        parametrization="static_dynamic",
        objective="mtt",
        # as the mtt recipe (no augmentation) at a tenth of its pixel lr: 1000 made the dynamics and H NaN on
        # synth-actions (configs/synth-actions/vdsd-mtt-ipc1.yaml); experts: --set objective.experts=DIR
        defaults={"lr": 100.0, "momentum": 0.5, "augment": [], "parametrization": {"h_lr": 0.001}},
        smoke={"iterations": 4, "parametrization": {"width": 4},
                 "objective": {"experts": "${experts}", "syn_steps": 2, "max_start_epoch": 1}},
    )
)
register_method(
    MethodSpec(
        "vdsd-krr",
        "static-dynamic: frozen stills + per-class dynamic maps + shared hallucinator, kernel ridge regression",
        parametrization="static_dynamic",
        objective="krr",
        # FRePo's scale (frepo recipe) without label learning: the static_dynamic set has hard labels
        defaults={"lr": 50.0, "momentum": 0.5, "augment": []},
        smoke={"iterations": 4, "batch_real": 4, "parametrization": {"width": 4}, "objective": {"num_models": 2}},
    )
)
