"""``synth-actions``: the embedded, download-free action-recognition benchmark.

Every clip shows one main object (a shape in a colour family) doing one kind of motion on a
textured, slowly panning background, with small distractor blobs, an occasional occluding bar,
per-clip colour/brightness jitter and pixel noise. A class is the triple
``colour-shape-motion`` (e.g. ``"red-disk-up"``), so

* some class pairs differ ONLY in motion (``red-disk-up`` / ``red-disk-down``: same appearance
  distribution, and every motion is parameterized around the middle frame, so the middle frame
  has the same distribution in both and a single frame cannot tell them apart; the
  time-reversed clips of ``up`` are distributed exactly like the clips of ``down``), and
* others differ ONLY in appearance (``red-disk-up`` / ``blue-disk-up``: same motion
  distribution).

Motions are invariant to a horizontal flip (nothing depends on left vs right): ``up``,
``down``, ``grow``, ``shrink``, ``blink``, ``steady``, ``bounce`` (vertical oscillation),
``sway`` (horizontal oscillation), ``slide`` (horizontal, random direction) and ``pulse`` (size
oscillation). Shapes (disk, square, triangle, ring, cross) are mirror-symmetric and have about
the same area at the same radius.

The class list is built from blocks of 2 appearances x 2 motions (two motion-only pairs and two
appearance-only pairs per block) in a fixed order, so the first 10 classes already contain both
kinds of pairs and more classes only extend the list (up to 300).

Determinism: clip ``i`` of a split depends only on the config, the split and ``i``: its random
draws come from ``numpy.random.default_rng([seed, split_id, i])`` (train and test use different
streams), never from the clock or a global RNG, and not on how clips are batched for rendering.
The bytes are reproducible on a given platform and numpy version (float rounding in numpy's
vectorised math may differ between CPUs, which can move a rare pixel by one grey level).
Labels are interleaved (clip ``i`` has label ``i % num_classes``), so raising
``train_per_class`` only appends clips.

>>> cfg = SynthActionsConfig(num_classes=10)
>>> train = generate_synth_actions(cfg, "train")     # train.clips: uint8 (1000, 8, 32, 32, 3)
>>> train_store, test_store = prepare_synth_actions("data/synth", cfg)
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from videodd.data.spec import ClipSpec
from videodd.data.store import ClipStore, StoreError, write_store

__all__ = [
    "COLOURS",
    "DATASET_NAME",
    "MOTIONS",
    "MOTION_PAIRS",
    "SHAPES",
    "SynthActionsConfig",
    "SynthClass",
    "SynthClips",
    "class_table",
    "generate_synth_actions",
    "max_classes",
    "prepare_synth_actions",
]

DATASET_NAME = "synth-actions"
SPLIT_IDS: dict[str, int] = {"train": 0, "test": 1}

#: Colour families: name -> hue in degrees (HSV). Order matters for the class list.
COLOURS: dict[str, float] = {
    "red": 0.0, "blue": 240.0, "green": 120.0, "yellow": 60.0, "magenta": 300.0, "cyan": 180.0,
}
#: Object shapes, all mirror-symmetric about the vertical axis.
SHAPES: tuple[str, ...] = ("disk", "square", "triangle", "ring", "cross")
#: Motions in pairs; each pair is the motion axis of one block of the class list.
MOTION_PAIRS: tuple[tuple[str, str], ...] = (
    ("up", "down"),
    ("grow", "shrink"),
    ("blink", "steady"),
    ("bounce", "sway"),
    ("slide", "pulse"),
)
MOTIONS: tuple[str, ...] = tuple(m for pair in MOTION_PAIRS for m in pair)

_MAX_DISTRACTORS = 4


#: Valid ranges (inclusive) of the config fields; speeds and object sizes must also be > 0.
_RANGES: dict[str, tuple[float, float]] = {
    "num_classes": (2, len(COLOURS) * len(SHAPES) * len(MOTIONS)),
    "frames": (4, 1024),
    "size": (16, 256),
    "train_per_class": (1, 10**6),
    "test_per_class": (1, 10**6),
    "seed": (0, 2**63 - 1),
    "noise_std": (0.0, 1.0),
    "background_strength": (0.0, 1.0),
    "background_drift": (0.0, 1.0),
    "background_saturation": (0.0, 1.0),
    "distractors_min": (0, _MAX_DISTRACTORS),
    "distractors_max": (0, _MAX_DISTRACTORS),
    "distractor_alpha": (0.0, 1.0),
    "distractor_saturation": (0.0, 1.0),
    "speed_min": (1e-3, 3.0),
    "speed_max": (1e-3, 3.0),
    "object_size_min": (1e-3, 0.3),
    "object_size_max": (1e-3, 0.3),
    "hue_jitter": (0.0, 90.0),
    "position_jitter": (0.0, 0.1),
    "brightness_jitter": (0.0, 0.5),
    "occlusion_prob": (0.0, 1.0),
}


@dataclass(frozen=True)
class SynthActionsConfig:
    """Size and nuisance knobs of the ``synth-actions`` benchmark.

    Sizes in the fields below are fractions of the frame size and motion amounts are per clip,
    so a config means the same task at 8x32x32 and at 16x112x112.

    Attributes:
        num_classes: number of classes (2 .. 300); the first ``num_classes`` of a fixed list.
        frames: frames per clip T (>= 4).
        size: frame height = width in pixels (16 .. 256).
        train_per_class: training clips per class.
        test_per_class: test clips per class.
        seed: generator seed; train and test use different streams derived from it.
        noise_std: std of the i.i.d. Gaussian pixel noise, in [0, 1] intensity units.
        background_strength: contrast of the smooth random background texture (0 = flat).
        background_drift: largest camera pan of the background over a clip (fraction of frame).
        background_saturation: largest colour saturation of the background (0 = grey backgrounds).
        distractors_min: fewest distractor blobs per clip.
        distractors_max: most distractor blobs per clip (<= 4); the count is uniform in between.
        distractor_alpha: opacity of the distractor blobs (0 .. 1).
        distractor_saturation: largest colour saturation of the distractors (their hue is uniform;
            saturated distractors compete with the object's colour, grey ones only with its motion).
        speed_min: smallest motion strength (scales displacement, growth and oscillation amplitude).
        speed_max: largest motion strength; the strength is uniform in [speed_min, speed_max].
        object_size_min: smallest object radius (fraction of the frame size) at the middle frame.
        object_size_max: largest object radius (fraction of the frame size) at the middle frame.
        hue_jitter: half-width in degrees of the uniform hue spread inside a colour family
            (families are 60 degrees apart; > 30 makes neighbouring families overlap).
        position_jitter: std of the per-frame tremor of the object position (fraction of frame).
        brightness_jitter: per-clip brightness offset, contrast and channel-gain jitter amplitude.
        occlusion_prob: probability that a static bar occludes part of the frame.
    """

    num_classes: int = 10
    frames: int = 8
    size: int = 32
    train_per_class: int = 100
    test_per_class: int = 30
    seed: int = 0
    noise_std: float = 0.08
    background_strength: float = 0.25
    background_drift: float = 0.2
    background_saturation: float = 0.2
    distractors_min: int = 1
    distractors_max: int = 2
    distractor_alpha: float = 0.9
    distractor_saturation: float = 0.4
    speed_min: float = 0.5
    speed_max: float = 1.0
    object_size_min: float = 0.13
    object_size_max: float = 0.2
    hue_jitter: float = 25.0
    position_jitter: float = 0.01
    brightness_jitter: float = 0.15
    occlusion_prob: float = 0.3

    def __post_init__(self) -> None:
        def need(ok: bool, msg: str) -> None:
            if not ok:
                raise ValueError(f"SynthActionsConfig.{msg}")

        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            # plain Python numbers only, so the config stays JSON-able (np.float64 is a float)
            need(isinstance(value, (int, float)) and not isinstance(value, bool) and np.isfinite(value),
                 f"{f.name} must be a finite number, got {value!r}")
            if f.type in ("int", int):
                need(isinstance(value, int), f"{f.name} must be an integer, got {value!r}")
        for name, (lo, hi) in _RANGES.items():
            value = getattr(self, name)
            need(lo <= value <= hi, f"{name} must be in [{lo}, {hi}], got {value!r}")
        need(self.distractors_min <= self.distractors_max,
             f"distractors_min ({self.distractors_min}) > distractors_max ({self.distractors_max})")
        need(self.speed_min <= self.speed_max, f"speed_min ({self.speed_min}) > speed_max ({self.speed_max})")
        need(self.object_size_min <= self.object_size_max,
             f"object_size_min ({self.object_size_min}) > object_size_max ({self.object_size_max})")

    def to_dict(self) -> dict[str, Any]:
        """The config as a JSON-able dict (what ``prepare_synth_actions`` stores in the manifest)."""
        return dataclasses.asdict(self)

    @property
    def classes(self) -> list[str]:
        """Class names of this config, in label order."""
        return [c.name for c in class_table(self.num_classes)]


@dataclass(frozen=True)
class SynthClass:
    """One class: an appearance (colour family, shape) and a motion."""

    colour: str
    shape: str
    motion: str

    @property
    def name(self) -> str:
        return f"{self.colour}-{self.shape}-{self.motion}"


@dataclass
class SynthClips:
    """One generated split.

    Attributes:
        clips: uint8 ``(N, T, H, W, 3)``.
        labels: int64 ``(N,)``, clip ``i`` has label ``i % num_classes``.
        classes: class names in label order.
        source_ids: ``"train/000123"``-style ids, one per clip.
    """

    clips: np.ndarray
    labels: np.ndarray
    classes: list[str]
    source_ids: list[str]


# -- class list ----------------------------------------------------------------------------------
@functools.lru_cache(maxsize=1)
def _class_order() -> tuple[SynthClass, ...]:
    """Every (colour, shape, motion) combination in the benchmark's fixed order.

    Block ``b`` crosses motion pair ``MOTION_PAIRS[b % 5]`` with an appearance pair that differs
    only in colour (even ``b``: two new colours, one new shape) or only in shape (odd ``b``: one
    new colour, two new shapes); colours and shapes are taken round-robin, so consecutive blocks
    look different. Each block adds appearance 1 x motion 1, appearance 1 x motion 2,
    appearance 2 x motion 1, appearance 2 x motion 2 (combinations already used are skipped),
    i.e. two motion-only pairs and two appearance-only pairs. Whatever is left is appended in
    product order.
    """
    colours, shapes = list(COLOURS), SHAPES
    used: set[tuple[str, str, str]] = set()
    order: list[SynthClass] = []

    def add(colour: str, shape: str, motion: str) -> None:
        if (colour, shape, motion) not in used:
            used.add((colour, shape, motion))
            order.append(SynthClass(colour, shape, motion))

    ci = si = 0  # round-robin cursors over colours and shapes
    for b in range(4 * len(colours) * len(shapes)):
        if b % 2 == 0:  # colour-only appearance pair
            apps = [(colours[ci % len(colours)], shapes[si % len(shapes)]),
                    (colours[(ci + 1) % len(colours)], shapes[si % len(shapes)])]
            ci, si = ci + 2, si + 1
        else:  # shape-only appearance pair
            apps = [(colours[ci % len(colours)], shapes[si % len(shapes)]),
                    (colours[ci % len(colours)], shapes[(si + 1) % len(shapes)])]
            ci, si = ci + 1, si + 2
        m1, m2 = MOTION_PAIRS[b % len(MOTION_PAIRS)]
        for colour, shape in apps:
            for motion in (m1, m2):
                add(colour, shape, motion)
    for colour in colours:
        for shape in shapes:
            for motion in MOTIONS:
                add(colour, shape, motion)
    return tuple(order)


def max_classes() -> int:
    """How many distinct classes the benchmark can have."""
    return len(COLOURS) * len(SHAPES) * len(MOTIONS)


def class_table(num_classes: int) -> list[SynthClass]:
    """The first ``num_classes`` classes of the fixed class list."""
    order = _class_order()
    if not 1 <= num_classes <= len(order):
        raise ValueError(f"num_classes must be in [1, {len(order)}], got {num_classes}")
    return list(order[:num_classes])


# -- per-clip random draws -------------------------------------------------------------------------
# Each clip draws a fixed-size vector of uniforms (columns below), then T x 2 normals (tremor),
# then its pixel noise, all from its own generator, so a config change never shifts the streams.
_U_MAIN = 0  # 10 columns: hue, sat, val, x, y, radius, speed, freq, phase, direction
_U_DIST = 10  # 8 per distractor: hue, sat, val, x, y, angle, speed, radius
_U_COUNT = _U_DIST + 8 * _MAX_DISTRACTORS  # distractor count
_U_BG = _U_COUNT + 1  # 3 base colour + 3 tint + 2 pan + 3 gratings x 3 (freq, orientation, phase)
_N_GRATINGS = 3
_U_OCC = _U_BG + 8 + 3 * _N_GRATINGS  # present, orientation, position, width, grey level
_U_JIT = _U_OCC + 5  # brightness, contrast, 3 channel gains
_N_UNIFORMS = _U_JIT + 5


def _rng(seed: int, split_id: int, index: int) -> np.random.Generator:
    return np.random.default_rng([int(seed), int(split_id), int(index)])


def _hsv_to_rgb(h: np.ndarray, s: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Vectorised HSV (hue in degrees) -> RGB in [0, 1], shape ``h.shape + (3,)``."""
    h = np.mod(h, 360.0) / 60.0
    c = v * s
    x = c * (1 - np.abs(np.mod(h, 2) - 1))
    z = np.zeros_like(h)
    sector = np.floor(h).astype(int) % 6
    table = [(c, x, z), (x, c, z), (z, c, x), (z, x, c), (x, z, c), (c, z, x)]
    rgb = np.zeros((*h.shape, 3), dtype=np.float64)
    for k, (r, g, b) in enumerate(table):
        mask = sector == k
        rgb[mask] = np.stack([r[mask], g[mask], b[mask]], axis=-1)
    return rgb + (v - c)[..., None]


def _lerp(u: np.ndarray, lo: float, hi: float) -> np.ndarray:
    return lo + (hi - lo) * u


# -- rendering -----------------------------------------------------------------------------------
def _sdf(shape: str, dx: np.ndarray, dy: np.ndarray, r: np.ndarray) -> np.ndarray:
    """Approximate signed distance (pixels, < 0 inside) of a shape of radius ``r`` about (0, 0).

    Radii are scaled per shape so all shapes cover about the same area at the same ``r``.
    ``dx`` is ``(n, T, 1, W)``, ``dy`` ``(n, T, H, 1)``, ``r`` ``(n, T, 1, 1)``; image y points down.
    """
    if shape == "disk":
        return np.sqrt(dx * dx + dy * dy) - r
    if shape == "square":
        return np.maximum(np.abs(dx), np.abs(dy)) - 0.886 * r
    if shape == "triangle":  # apex up; max of the three edge half-planes (inradius 0.78 r)
        ax = 0.866 * np.abs(dx)
        return np.maximum(dy, ax - 0.5 * dy) - 0.78 * r
    if shape == "ring":  # outer radius 1.1 r, inner 0.45 r
        return np.abs(np.sqrt(dx * dx + dy * dy) - 0.775 * r) - 0.325 * r
    if shape == "cross":  # two bars, half-length 1.15 r, half-width 0.36 r
        adx, ady = np.abs(dx), np.abs(dy)
        w, length = 0.36 * r, 1.15 * r
        return np.minimum(np.maximum(adx - w, ady - length), np.maximum(ady - w, adx - length))
    raise ValueError(f"unknown shape {shape!r}")


def _composite(frame: np.ndarray, alpha: np.ndarray, colour: np.ndarray, scratch: np.ndarray) -> None:
    """In place: ``frame = frame * (1 - alpha) + colour * alpha`` (channels-first frames).

    ``frame`` and ``scratch`` ``(n, T, 3, H, W)``, ``alpha`` ``(n, T, H, W)`` or ``(n, 1, H, W)``,
    ``colour`` ``(n, 3)``.
    """
    np.subtract(colour[:, None, :, None, None], frame, out=scratch)
    scratch *= alpha[:, :, None]
    frame += scratch


def _render(cfg: SynthActionsConfig, classes: list[SynthClass], labels: np.ndarray, U: np.ndarray,
            tremor: np.ndarray, noise: np.ndarray | None) -> np.ndarray:
    """Render ``n`` clips from their uniforms ``U`` ``(n, P)``, tremor ``(n, T, 2)`` and noise
    ``(n, T, 3, H, W)`` (standard normal; scaled in place).

    Returns uint8 ``(n, T, H, W, 3)``. Frames are rendered channels-first, ``(n, T, 3, H, W)``,
    so that per-pixel opacities broadcast over whole rows.
    """
    n, T, S = len(labels), cfg.frames, cfg.size
    f32 = np.float32
    u_t = (np.arange(T) - (T - 1) / 2) / (T - 1)  # (T,) in [-0.5, 0.5], symmetric about the middle
    coords = (np.arange(S, dtype=f32) + 0.5) / S  # pixel centres, fraction of the frame

    # Background: K drifting gratings (a camera pan), as a batched matmul of y- and x-factors.
    bg_u = U[:, _U_BG : _U_BG + 8]
    gr = U[:, _U_BG + 8 : _U_BG + 8 + 3 * _N_GRATINGS].reshape(n, _N_GRATINGS, 3)
    freq = _lerp(gr[..., 0], 1.0, 3.5)  # cycles per frame
    theta = gr[..., 1] * np.pi  # orientation (a grating at theta + pi is the same grating)
    phase0 = gr[..., 2] * 2 * np.pi
    fx, fy = freq * np.cos(theta), freq * np.sin(theta)  # (n, K)
    pan_angle = bg_u[:, 6] * 2 * np.pi
    pan = cfg.background_drift * bg_u[:, 7]
    vx, vy = pan * np.cos(pan_angle), pan * np.sin(pan_angle)  # frames per clip
    # phase(t) = 2 pi (fx x + fy y) + phase0 - 2 pi (fx vx + fy vy) u_t
    ph_y = (2 * np.pi * fy[:, None, None, :] * coords[None, None, :, None] + phase0[:, None, None, :]
            - 2 * np.pi * (fx * vx[:, None] + fy * vy[:, None])[:, None, None, :] * u_t[None, :, None, None])
    ph_x = 2 * np.pi * fx[:, :, None] * coords[None, None, :]  # (n, K, W)
    ly = np.concatenate([np.cos(ph_y), -np.sin(ph_y)], axis=-1).astype(f32)  # (n, T, H, 2K)
    lx = np.concatenate([np.cos(ph_x), np.sin(ph_x)], axis=1).astype(f32)  # (n, 2K, W)
    lum = np.matmul(ly, lx[:, None]) * f32(np.sqrt(2.0 / _N_GRATINGS))  # (n, T, H, W), std ~ 1
    base = _hsv_to_rgb(bg_u[:, 0] * 360, _lerp(bg_u[:, 1], 0.0, cfg.background_saturation),
                       _lerp(bg_u[:, 2], 0.3, 0.7))
    tint = _lerp(bg_u[:, 3:6], 0.6, 1.4) * cfg.background_strength / 2
    frame = lum[:, :, None] * tint[:, None, :, None, None].astype(f32)
    frame += base[:, None, :, None, None].astype(f32)  # (n, T, 3, H, W)
    scratch = np.empty_like(frame)
    del lum

    ys = coords[None, None, :, None]  # (1, 1, H, 1)
    xs = coords[None, None, None, :]  # (1, 1, 1, W)
    r_lo, r_hi = cfg.object_size_min, cfg.object_size_max

    # Distractors: small soft blobs of any hue, drifting linearly in any direction, behind the object.
    count = cfg.distractors_min + np.floor(
        U[:, _U_COUNT] * (cfg.distractors_max - cfg.distractors_min + 1)).astype(int)
    for j in range(cfg.distractors_max):
        d = U[:, _U_DIST + 8 * j : _U_DIST + 8 * (j + 1)]
        present = j < count
        if not present.any():
            continue
        colour = _hsv_to_rgb(d[:, 0] * 360, _lerp(d[:, 1], 0.0, cfg.distractor_saturation),
                             _lerp(d[:, 2], 0.4, 1.0))
        speed = _lerp(d[:, 6], 0.0, 0.4 * cfg.speed_max)
        cx = _lerp(d[:, 3], 0.1, 0.9)[:, None] + (speed * np.cos(d[:, 5] * 2 * np.pi))[:, None] * u_t
        cy = _lerp(d[:, 4], 0.1, 0.9)[:, None] + (speed * np.sin(d[:, 5] * 2 * np.pi))[:, None] * u_t
        rad = _lerp(d[:, 7], 0.45, 0.8) * r_lo * S  # pixels
        dx2 = np.square((xs - cx[:, :, None, None].astype(f32)) * S)  # (n, T, 1, W) pixels^2
        dy2 = np.square((ys - cy[:, :, None, None].astype(f32)) * S)  # (n, T, H, 1)
        alpha = np.add(dx2, dy2)
        np.sqrt(alpha, out=alpha)
        # soft edge 1.5 px wide: alpha = clip(0.5 - (dist - rad) / 1.5, 0, 1) * opacity
        alpha *= f32(-1 / 1.5)
        alpha += (0.5 + rad / 1.5).astype(f32)[:, None, None, None]
        np.clip(alpha, 0, 1, out=alpha)
        alpha *= (cfg.distractor_alpha * present).astype(f32)[:, None, None, None]
        _composite(frame, alpha, colour.astype(f32), scratch)

    # Main object: colour family x shape x motion of its class.
    m = U[:, _U_MAIN : _U_MAIN + 10]
    hue = np.array([COLOURS[classes[c].colour] for c in labels]) + (2 * m[:, 0] - 1) * cfg.hue_jitter
    colour = _hsv_to_rgb(hue, _lerp(m[:, 1], 0.6, 1.0), _lerp(m[:, 2], 0.6, 1.0)).astype(f32)
    speed = _lerp(m[:, 6], cfg.speed_min, cfg.speed_max)[:, None]
    freq = _lerp(m[:, 7], 1.0, 1.75)[:, None]  # oscillations per clip
    wave = np.sin(2 * np.pi * freq * u_t + 2 * np.pi * m[:, 8:9])  # (n, T)
    sign = np.where(m[:, 9:10] < 0.5, -1.0, 1.0)
    motion = np.array([classes[c].motion for c in labels])[:, None]
    cx = np.broadcast_to(_lerp(m[:, 3], 0.25, 0.75)[:, None], (n, T)).copy()
    cy = np.broadcast_to(_lerp(m[:, 4], 0.25, 0.75)[:, None], (n, T)).copy()
    log_r = np.broadcast_to(np.log(_lerp(m[:, 5], r_lo, r_hi))[:, None], (n, T)).copy()
    vis = np.ones((n, T))
    shift, growth, osc = 0.4 * speed * u_t, 1.0 * speed * u_t, 0.12 * speed * wave
    cy += np.where(motion == "up", -shift, 0) + np.where(motion == "down", shift, 0)
    cx += np.where(motion == "slide", sign * shift, 0)
    log_r += np.where(motion == "grow", growth, 0) + np.where(motion == "shrink", -growth, 0)
    cy += np.where(motion == "bounce", osc, 0)
    cx += np.where(motion == "sway", osc, 0)
    log_r += np.where(motion == "pulse", 0.4 * speed * wave, 0)
    blink = np.clip(0.5 + 1.5 * np.cos(2 * np.pi * (freq + 0.75) * u_t + 2 * np.pi * m[:, 8:9]), 0, 1)
    vis = np.where(motion == "blink", blink, vis)
    cx += cfg.position_jitter * tremor[..., 0]
    cy += cfg.position_jitter * tremor[..., 1]
    dx = ((xs - cx[:, :, None, None].astype(f32)) * S).astype(f32)  # (n, T, 1, W) pixels
    dy = ((ys - cy[:, :, None, None].astype(f32)) * S).astype(f32)  # (n, T, H, 1)
    rad = (np.exp(log_r) * S)[:, :, None, None].astype(f32)
    alpha = np.empty((n, T, S, S), dtype=f32)
    shape_of = np.array([classes[c].shape for c in labels])
    for shape in SHAPES:
        idx = np.flatnonzero(shape_of == shape)
        if len(idx):
            alpha[idx] = np.clip(0.5 - _sdf(shape, dx[idx], dy[idx], rad[idx]), 0, 1)
    alpha *= vis[:, :, None, None].astype(f32)
    _composite(frame, alpha, colour, scratch)
    del alpha, dx, dy

    # Occluder: a static bar (horizontal or vertical) of a flat grey, in front of everything.
    o = U[:, _U_OCC : _U_OCC + 5]
    occ = o[:, 0] < cfg.occlusion_prob
    if occ.any():
        centre = _lerp(o[:, 2], 0.2, 0.8)[:, None, None]
        half = _lerp(o[:, 3], 0.04, 0.08)[:, None, None]
        vertical = (o[:, 1] < 0.5)[:, None, None]
        pos = np.where(vertical, coords[None, None, :], coords[None, :, None])  # (n, H, W)
        bar = np.clip((half - np.abs(pos - centre)) * S + 0.5, 0, 1) * occ[:, None, None]
        grey = np.repeat(_lerp(o[:, 4], 0.15, 0.85)[:, None], 3, axis=1).astype(f32)
        _composite(frame, bar[:, None].astype(f32), grey, scratch)

    # Per-clip brightness, contrast and white balance, then pixel noise.
    jt = U[:, _U_JIT : _U_JIT + 5]
    bj = cfg.brightness_jitter
    brightness = (2 * jt[:, 0] - 1) * bj
    contrast = 1 + (2 * jt[:, 1] - 1) * bj
    gains = 1 + (2 * jt[:, 2:5] - 1) * bj / 2
    scale = (contrast[:, None] * gains).astype(f32)[:, None, :, None, None]
    offset = ((0.5 + brightness - 0.5 * contrast)[:, None] * gains).astype(f32)[:, None, :, None, None]
    frame *= scale
    frame += offset
    if noise is not None and cfg.noise_std > 0:
        noise *= f32(cfg.noise_std)
        frame += noise
    # [0, 1] -> uint8 with rounding, back to channels-last (n, T, H, W, 3)
    frame *= 255
    frame += 0.5
    np.clip(frame, 0, 255, out=frame)
    out = np.empty((n, T, S, S, 3), dtype=np.uint8)
    out[...] = frame.transpose(0, 1, 3, 4, 2)
    return out


def generate_synth_actions(cfg: SynthActionsConfig, split: Literal["train", "test"]) -> SynthClips:
    """Generate one split of ``synth-actions`` in memory.

    Args:
        cfg: the benchmark config.
        split: ``"train"`` (``train_per_class`` clips per class) or ``"test"``.

    Returns:
        SynthClips with uint8 clips ``(N, T, H, W, 3)`` and int64 labels ``i % num_classes``.
    """
    if split not in SPLIT_IDS:
        raise ValueError(f"split must be one of {sorted(SPLIT_IDS)}, got {split!r}")
    classes = class_table(cfg.num_classes)
    per_class = cfg.train_per_class if split == "train" else cfg.test_per_class
    n, T, S = cfg.num_classes * per_class, cfg.frames, cfg.size
    labels = np.arange(n, dtype=np.int64) % cfg.num_classes
    clips = np.empty((n, T, S, S, 3), dtype=np.uint8)
    # Batch so that one float32 frame tensor is ~6M values; results do not depend on batching.
    chunk = max(1, (6 << 20) // (T * S * S * 3))
    for start in range(0, n, chunk):
        stop = min(n, start + chunk)
        m = stop - start
        U = np.empty((m, _N_UNIFORMS))
        tremor = np.empty((m, T, 2))
        noise = np.empty((m, T, 3, S, S), dtype=np.float32) if cfg.noise_std > 0 else None
        for k in range(m):
            rng = _rng(cfg.seed, SPLIT_IDS[split], start + k)
            U[k] = rng.random(_N_UNIFORMS)
            tremor[k] = rng.standard_normal((T, 2))
            if noise is not None:
                rng.standard_normal(dtype=np.float32, out=noise[k])
        clips[start:stop] = _render(cfg, classes, labels[start:stop], U, tremor, noise)
    return SynthClips(
        clips=clips,
        labels=labels,
        classes=[c.name for c in classes],
        source_ids=[f"{split}/{i:06d}" for i in range(n)],
    )


def prepare_synth_actions(
    out_dir: str | Path, cfg: SynthActionsConfig | None = None
) -> tuple[ClipStore, ClipStore]:
    """Generate the benchmark and write ``out_dir/train`` and ``out_dir/test`` ClipStores.

    The test store is normalized with the training store's mean/std; both manifests carry the
    generator config (``extra["generator"]``) and each class's colour, shape and motion.
    """
    cfg = cfg or SynthActionsConfig()
    out = Path(out_dir)
    spec = ClipSpec(frames=cfg.frames, size=cfg.size, stride=1, train_sampling="center")
    extra = {
        "generator": cfg.to_dict(),
        "class_attributes": [dataclasses.asdict(c) for c in class_table(cfg.num_classes)],
    }
    stores = []
    mean: list[float] | None = None
    std: list[float] | None = None
    for split in ("train", "test"):
        data = generate_synth_actions(cfg, split)  # type: ignore[arg-type]
        store = write_store(out / split, data.clips, data.labels, dataset=DATASET_NAME, split=split,
                            classes=data.classes, spec=spec, mean=mean, std=std,
                            source_ids=data.source_ids, extra=extra)
        if mean is None:
            mean, std = store.meta.mean, store.meta.std
        stores.append(store)
        del data
    return stores[0], stores[1]


def synth_actions_stores(data: str | Path, cfg: SynthActionsConfig | None = None) -> tuple[ClipStore, ClipStore]:
    """``DATA/train`` and ``DATA/test`` when they hold exactly this benchmark (same generator config),
    else generated there (the demo and the benchmarks share one copy)."""
    cfg = cfg or SynthActionsConfig()
    data = Path(data)
    try:
        train, test = ClipStore(data / "train"), ClipStore(data / "test")
        if train.meta.extra.get("generator") == cfg.to_dict():
            return train, test
    except StoreError:
        pass
    return prepare_synth_actions(data, cfg)
