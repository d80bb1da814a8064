"""Differentiable video augmentation with shared ("siamese") parameters.

This is DSA (Differentiable Siamese Augmentation, Zhao & Bilen 2021) for videos. One parameter
draw (:class:`AugmentParams`) is made with an explicit ``torch.Generator`` and applied to every
sample of every batch it is given; distribution matching applies one draw per class to both the
real and the synthetic batch of that class. Every frame of a clip gets the same colour and
spatial transform, so motion is preserved. Everything is differentiable w.r.t. the input pixels
(not w.r.t. the parameters, which are plain Python numbers).

Float videos are ``(N, C, T, H, W)``. Ops and their DSA magnitudes (:class:`AugmentConfig`):

==========  ========================================================================================
``color``   brightness ``x + (u - 0.5) * brightness``; saturation ``(x - m) * (u * saturation) + m``
            with ``m`` the channel mean of each pixel; contrast ``(x - m) * (u + contrast) + m`` with
            ``m`` the mean of each clip over all its channels, frames and pixels (one value per clip).
``crop``    translation by a whole number of pixels, up to ``crop`` of the frame size each way,
            zero fill (DSA's pad-and-crop).
``cutout``  zeroes one ``cutout * H`` by ``cutout * W`` box (clipped at the border) in every frame.
``scale``   independent x and y scale factors in ``[1 / scale, scale]`` (> 1 shrinks the content).
``rotate``  rotation by an angle in ``[-rotate, rotate]`` degrees (positive: counter-clockwise on
            screen), about the frame centre, aspect-correct on non-square frames.
``flip``    (opt-in) horizontal mirror with probability ``flip``; it changes left/right motion.
``reverse`` (opt-in) reverses time with probability ``reverse``; it turns e.g. "grow" into "shrink".
==========  ========================================================================================

``mode="single"`` (the default, DSA's ``aug_mode='S'`` used by the published DC/DSA/DM/MTT and
video distillation code) applies ONE op per draw, chosen uniformly from ``ops``; ``mode="all"``
applies every op in ``ops`` at once. Ops are always applied in this order, whatever the order in
``ops``: color -> geometry (crop, flip, scale and rotate fused into ONE affine ``grid_sample``,
composed in DSA's order) -> cutout -> reverse.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from videodd.config import ConfigError
from videodd.registry import Registry

__all__ = [
    "DEFAULT_OPS",
    "EVAL_AUGMENTS",
    "MODES",
    "VALID_OPS",
    "AugmentConfig",
    "AugmentParams",
    "EvalAugment",
    "VideoAugment",
    "apply_augment",
    "apply_augment_grouped",
    "resolve_eval_augment",
    "sample_params",
]

#: Every op, in the canonical order used for sampling and application.
VALID_OPS: tuple[str, ...] = ("color", "crop", "cutout", "scale", "rotate", "flip", "reverse")
#: DSA's strategy minus ``flip`` (it mirrors left/right motion); ``reverse`` is opt-in too.
DEFAULT_OPS: tuple[str, ...] = ("color", "crop", "cutout", "scale", "rotate")
#: ``single``: one op per draw, chosen uniformly (DSA ``aug_mode='S'``); ``all``: every op at once.
MODES: tuple[str, ...] = ("single", "all")


@dataclass(frozen=True)
class AugmentConfig:
    """Which ops to use and their magnitudes (DSA defaults). Validated on construction."""

    ops: tuple[str, ...] = DEFAULT_OPS
    mode: str = "single"
    brightness: float = 1.0  # additive shift uniform in [-0.5, 0.5] * brightness
    saturation: float = 2.0  # factor uniform in [0, saturation]
    contrast: float = 0.5  # factor uniform in [contrast, 1 + contrast]
    crop: float = 0.125  # max translation, fraction of the frame size
    cutout: float = 0.5  # box side, fraction of the frame size
    scale: float = 1.2  # factors uniform in [1 / scale, scale]
    rotate: float = 15.0  # max angle in degrees
    flip: float = 0.5  # probability of a horizontal mirror
    reverse: float = 0.5  # probability of a time reversal

    def __post_init__(self) -> None:
        if isinstance(self.ops, str):
            raise ValueError(f"ops must be a list of op names, not the string {self.ops!r}")
        object.__setattr__(self, "ops", tuple(self.ops))
        unknown = [op for op in self.ops if op not in VALID_OPS]
        if unknown:
            raise ValueError(f"unknown augmentation op(s) {unknown}; valid ops: {', '.join(VALID_OPS)}")
        dupes = sorted({op for op in self.ops if self.ops.count(op) > 1})
        if dupes:
            raise ValueError(f"augmentation op(s) listed twice: {dupes}")
        if self.mode not in MODES:
            raise ValueError(f"unknown augmentation mode {self.mode!r}; valid modes: {', '.join(MODES)}")
        for name in ("brightness", "saturation", "contrast", "crop", "rotate"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
        if not 0 < self.cutout <= 1:
            raise ValueError(f"cutout must be in (0, 1], got {self.cutout!r}")
        if not (math.isfinite(self.scale) and self.scale >= 1):
            raise ValueError(f"scale must be >= 1, got {self.scale!r}")
        for name in ("flip", "reverse"):
            value = getattr(self, name)
            if not 0 <= value <= 1:
                raise ValueError(f"{name} is a probability and must be in [0, 1], got {value!r}")


@dataclass(frozen=True)
class AugmentParams:
    """One draw of augmentation parameters; ``None`` for an op that this draw does not apply.

    Resolution-independent (fractions of the frame size), so one draw fits any batch.
    """

    brightness: float | None = None  # additive shift
    saturation: float | None = None  # factor around each pixel's channel mean
    contrast: float | None = None  # factor around each clip's mean
    translate: tuple[float, float] | None = None  # (dx, dy), fractions of (W, H); + moves content right/down
    cutout: tuple[float, float, float] | None = None  # (cx, cy) in [0, 1) and box side fraction
    scale: tuple[float, float] | None = None  # (sx, sy); sampling-grid factors, > 1 shrinks the content
    rotate: float | None = None  # degrees, positive: counter-clockwise on screen
    flip: bool | None = None  # mirror the W axis
    reverse: bool | None = None  # reverse the T axis

    def active(self) -> tuple[str, ...]:
        """Names of the fields that are set."""
        return tuple(f.name for f in fields(self) if getattr(self, f.name) is not None)


def _uniform(generator: torch.Generator, n: int) -> list[float]:
    """``n`` floats uniform in [0, 1) from ``generator`` (never the global RNG)."""
    return torch.rand(n, generator=generator, dtype=torch.float64, device=generator.device).tolist()


def _draw_op(op: str, cfg: AugmentConfig, generator: torch.Generator) -> dict:
    if op == "color":
        b, s, c = _uniform(generator, 3)
        return {"brightness": (b - 0.5) * cfg.brightness, "saturation": s * cfg.saturation,
                "contrast": c + cfg.contrast}
    if op == "crop":
        dx, dy = _uniform(generator, 2)
        return {"translate": ((2 * dx - 1) * cfg.crop, (2 * dy - 1) * cfg.crop)}
    if op == "cutout":
        cx, cy = _uniform(generator, 2)
        return {"cutout": (cx, cy, cfg.cutout)}
    if op == "scale":
        sx, sy = _uniform(generator, 2)
        lo = 1.0 / cfg.scale
        return {"scale": (lo + sx * (cfg.scale - lo), lo + sy * (cfg.scale - lo))}
    if op == "rotate":
        (a,) = _uniform(generator, 1)
        return {"rotate": (2 * a - 1) * cfg.rotate}
    if op == "flip":
        return {"flip": _uniform(generator, 1)[0] < cfg.flip}
    if op == "reverse":
        return {"reverse": _uniform(generator, 1)[0] < cfg.reverse}
    raise AssertionError(op)  # unreachable: AugmentConfig validates op names


def sample_params(cfg: AugmentConfig, generator: torch.Generator) -> AugmentParams:
    """Draw one set of parameters with ``generator`` only; the same state gives the same draw.

    ``mode="single"`` picks one op of ``cfg.ops`` uniformly and draws its values; ``mode="all"``
    draws every op of ``cfg.ops`` (in the canonical order, so the order in ``ops`` does not matter).
    """
    ops = [op for op in VALID_OPS if op in cfg.ops]
    if not ops:
        return AugmentParams()
    if cfg.mode == "single":
        pick = int(torch.randint(len(ops), (1,), generator=generator, device=generator.device).item())
        ops = [ops[pick]]
    values: dict = {}
    for op in ops:
        values.update(_draw_op(op, cfg, generator))
    return AugmentParams(**values)


# ----------------------------------------------------------------------------------------------
# application


def _check_video(x: Tensor) -> None:
    if not isinstance(x, Tensor) or x.dim() != 5:
        shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
        raise ValueError(f"expected a float video batch (N, C, T, H, W), got {shape}")
    if not x.is_floating_point():
        raise ValueError(f"expected a floating-point video batch, got dtype {x.dtype}")


def _theta(p: AugmentParams, height: int, width: int) -> list[list[float]] | None:
    """The (2, 3) ``affine_grid`` matrix of ``p``'s geometric ops, or None for the identity.

    In pixel units about the frame centre, DSA's sequence crop -> flip -> scale -> rotate samples
    ``out(q) = in(F S R q - t)``; conjugating with ``D = diag(W/2, H/2)`` gives normalised coords
    (align_corners=False): ``theta = [D^-1 F S R D | -D^-1 t]``.
    """
    if p.translate is None and p.flip is None and p.scale is None and p.rotate is None:
        return None
    a, b, c, d = 1.0, 0.0, 0.0, 1.0  # A = [[a, b], [c, d]] in pixel units
    if p.rotate is not None and p.rotate != 0:
        rad = math.radians(p.rotate)
        cos, sin = math.cos(rad), math.sin(rad)
        a, b, c, d = cos, -sin, sin, cos
    if p.scale is not None:
        sx, sy = p.scale
        a, b, c, d = sx * a, sx * b, sy * c, sy * d
    if p.flip:
        a, b = -a, -b
    tx = ty = 0.0
    if p.translate is not None:  # whole pixels, as DSA's crop
        tx = float(math.floor(p.translate[0] * width + 0.5))
        ty = float(math.floor(p.translate[1] * height + 0.5))
    theta = [[a, b * height / width, -2.0 * tx / width], [c * width / height, d, -2.0 * ty / height]]
    if theta == [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]:
        return None
    return theta


def _cutout_box(p: AugmentParams, height: int, width: int) -> tuple[int, int, int, int] | None:
    """``(top, bottom, left, right)`` half-open, clipped to the frame; DSA's centre and size rule."""
    if p.cutout is None:
        return None
    cx, cy, frac = p.cutout
    sh, sw = max(1, int(height * frac + 0.5)), max(1, int(width * frac + 0.5))
    # centre in [0, H] for even sizes, [0, H - 1] for odd ones (as DSA's randint range)
    ch = min(int(cy * (height + 1 - sh % 2)), height - sh % 2)
    cw = min(int(cx * (width + 1 - sw % 2)), width - sw % 2)
    top, left = ch - sh // 2, cw - sw // 2
    return max(top, 0), min(top + sh, height), max(left, 0), min(left + sw, width)


def _per_sample(values: list[float], index: Tensor | None, like: Tensor) -> Tensor:
    """Per-draw scalars -> a tensor broadcastable against ``like`` (N, C, T, H, W)."""
    v = torch.tensor(values, dtype=like.dtype, device=like.device)  # (P,)
    if index is not None:
        v = v[index]  # (N,)
    return v.view(-1, 1, 1, 1, 1)  # (N or 1, 1, 1, 1, 1)


def _apply(x: Tensor, plist: Sequence[AugmentParams], index: Tensor | None) -> Tensor:
    """Apply ``plist[index[i]]`` to sample ``i`` (or ``plist[0]`` to all when ``index`` is None)."""
    n, ch, t, h, w = x.shape

    # colour: per pixel, identical for every frame
    if any(p.brightness is not None and p.brightness != 0 for p in plist):
        x = x + _per_sample([p.brightness or 0.0 for p in plist], index, x)
    if any(p.saturation is not None and p.saturation != 1 for p in plist):
        factor = _per_sample([1.0 if p.saturation is None else p.saturation for p in plist], index, x)
        mean = x.mean(dim=1, keepdim=True)  # (N, 1, T, H, W): channel mean of each pixel
        x = (x - mean) * factor + mean
    if any(p.contrast is not None and p.contrast != 1 for p in plist):
        factor = _per_sample([1.0 if p.contrast is None else p.contrast for p in plist], index, x)
        mean = x.mean(dim=(1, 2, 3, 4), keepdim=True)  # (N, 1, 1, 1, 1): one value per clip
        x = (x - mean) * factor + mean

    # geometry: one affine warp, the same grid for every frame of a sample
    thetas = [_theta(p, h, w) for p in plist]
    if any(th is not None for th in thetas):
        work = torch.float32 if x.dtype in (torch.float16, torch.bfloat16) else x.dtype
        identity = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]
        theta = torch.tensor([identity if th is None else th for th in thetas], dtype=work, device=x.device)
        grid = F.affine_grid(theta, [len(plist), 1, h, w], align_corners=False)  # (P, H, W, 2)
        grid = grid.expand(n, h, w, 2) if index is None else grid[index]  # (N, H, W, 2)
        # grid_sample warps every channel of a sample with that sample's grid, so folding T into
        # channels applies one transform to all frames with views only (same result as
        # (N*T, C, H, W) with a repeated grid, without two transposing copies).
        frames = x.to(work).reshape(n, ch * t, h, w)  # (N, C*T, H, W)
        frames = F.grid_sample(frames, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        x = frames.reshape(n, ch, t, h, w).to(x.dtype)  # (N, C, T, H, W)

    # cutout: the same box in every frame
    boxes = [_cutout_box(p, h, w) for p in plist]
    if any(box is not None for box in boxes):
        rows = torch.arange(h, device=x.device)
        cols = torch.arange(w, device=x.device)
        no_box = (0, 0, 0, 0)
        lims = torch.tensor([no_box if b is None else b for b in boxes], device=x.device)  # (P, 4)
        inside_r = (rows >= lims[:, 0:1]) & (rows < lims[:, 1:2])  # (P, H)
        inside_c = (cols >= lims[:, 2:3]) & (cols < lims[:, 3:4])  # (P, W)
        mask = inside_r[:, :, None] & inside_c[:, None, :]  # (P, H, W)
        if index is not None:
            mask = mask[index]  # (N, H, W)
        x = x.masked_fill(mask[:, None, None], 0.0)  # mask (N or 1, 1, 1, H, W)

    # time reversal
    rev = [bool(p.reverse) for p in plist]
    if all(rev):
        x = x.flip(2)
    elif any(rev):
        flags = torch.tensor(rev, device=x.device)[index]  # (N,); index is set when draws differ
        steps = torch.arange(t, device=x.device)
        order = torch.where(flags[:, None], t - 1 - steps, steps)  # (N, T) source frame of each frame
        x = x.gather(2, order.view(n, 1, t, 1, 1).expand(n, ch, t, h, w))  # (N, C, T, H, W)
    return x


def apply_augment(x: Tensor, params: AugmentParams) -> Tensor:
    """Apply one draw to every sample and frame of ``x`` (N, C, T, H, W); differentiable w.r.t. ``x``.

    Returns a tensor of the same shape and dtype (``x`` itself when the draw changes nothing).
    """
    _check_video(x)
    if not isinstance(params, AugmentParams):
        raise TypeError(f"params must be AugmentParams, got {type(params).__name__}")
    return _apply(x, [params], None)


def apply_augment_grouped(x: Tensor, params: Sequence[AugmentParams], index: Tensor) -> Tensor:
    """Apply ``params[index[i]]`` to sample ``i`` of ``x`` (N, C, T, H, W), in one vectorised pass.

    For distribution matching with one draw per class: ``index`` is the (N,) class label of each
    clip and ``params[c]`` the class's draw; same result as applying each draw to its group.
    """
    _check_video(x)
    if index.shape != (x.shape[0],):
        raise ValueError(f"index must have shape ({x.shape[0]},), got {tuple(index.shape)}")
    if len(params) == 0:
        raise ValueError("params must hold at least one AugmentParams")
    if index.numel() and (int(index.min()) < 0 or int(index.max()) >= len(params)):
        raise ValueError(f"index values must be in [0, {len(params)})")
    return _apply(x, list(params), index.to(device=x.device, dtype=torch.long))


class VideoAugment(torch.nn.Module):
    """Siamese video augmentation: ``sample`` a draw, apply it with ``forward`` (or use ``pair``)."""

    def __init__(self, config: AugmentConfig | None = None) -> None:
        super().__init__()
        self.config = config if config is not None else AugmentConfig()

    def sample(self, generator: torch.Generator) -> AugmentParams:
        """One draw from ``generator`` (see :func:`sample_params`)."""
        return sample_params(self.config, generator)

    def forward(self, x: Tensor, params: AugmentParams) -> Tensor:
        """``x`` (N, C, T, H, W) augmented with ``params``."""
        return apply_augment(x, params)

    def pair(self, real: Tensor, syn: Tensor, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """Draw once and apply the same draw to both batches (same C, H, W required)."""
        _check_video(real)
        _check_video(syn)
        if (real.shape[1], *real.shape[3:]) != (syn.shape[1], *syn.shape[3:]):
            raise ValueError(f"real {tuple(real.shape)} and syn {tuple(syn.shape)} differ in C, H or W")
        params = self.sample(generator)
        return apply_augment(real, params), apply_augment(syn, params)

    def extra_repr(self) -> str:
        return f"ops={self.config.ops}, mode={self.config.mode!r}"



# -- augmentation a method owns at evaluation (named, versioned, carried in the set's manifest) ---------------
@dataclass(frozen=True)
class EvalAugment:
    """An augmentation applied to the distilled videos while the evaluation model trains, owned by a method
    (TSGF-A). A set names it in ``manifest.eval_augment`` (``{"name", "version", "options"}``); evaluation then
    reports the protocol's row without it and a second row with it, never only the latter.

    Attributes:
        name: registry name (as written in the manifest).
        version: bumped whenever the augmentation changes what it does; a set asking for another version is
            refused, so a figure always says which augmentation made it.
        build: ``options -> f(videos (B, C, T, H, W), generator) -> videos``.
    """

    name: str
    version: int
    build: Callable[[dict[str, Any]], Callable[[Tensor, torch.Generator], Tensor]]


EVAL_AUGMENTS: Registry[EvalAugment] = Registry("evaluation augmentation")


def resolve_eval_augment(entry: dict[str, Any]) -> tuple[str, Callable[[Tensor, torch.Generator], Tensor]]:
    """The augmentation ``manifest.eval_augment`` names: ``(row name, f)``; ConfigError for an unknown name or
    another version."""
    aug = EVAL_AUGMENTS.get(str(entry.get("name")))
    if int(entry.get("version", -1)) != aug.version:
        raise ConfigError(f"the set asks for evaluation augmentation {aug.name!r} version {entry.get('version')}, "
                          f"this videodd has version {aug.version}")
    return f"+{aug.name}", aug.build(dict(entry.get("options") or {}))
