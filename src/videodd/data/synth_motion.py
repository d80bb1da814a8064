"""``synth-motion``: a second embedded benchmark, built differently from ``synth-actions``, for checking.

It is kept for *checking* methods, never for tuning them: recipes are chosen on synth-actions'
validation split, and this benchmark says whether those choices carry over to data they were not
tuned on.

What is different from synth-actions:
- **No class has an appearance.** Every clip shows the same cast: two objects (disks or squares)
  and one bar, each with a colour, shape and size drawn per clip from the same distributions for
  every class. A class is only what one of them *does*.
- **Classes come in pairs that a single frame cannot tell apart** (every motion has a random
  direction or phase, and is parameterised around the middle frame); three pairs are each other's
  time reversal, so not even the set of frames without their order tells them apart:
  - ``spin-cw`` / ``spin-ccw``: the bar turns about its centre;
  - ``speed-up`` / ``slow-down``: an object moves in a straight line while accelerating or braking;
  - ``zoom-in`` / ``zoom-out``: the camera zooms, so the whole scene grows or shrinks about a point;
  - ``wobble`` / ``glide``: an object crosses the frame at constant speed, swaying sideways or not.
- **Different nuisances.**
  - The cast members that do not act drift slowly in random directions.
  - The background is a sum of coloured gratings that drift, with a random camera shake each frame.
  - Each clip has its own contrast and brightness, and pixel noise.

Determinism: clip ``i`` of a split depends only on the config, the split and ``i``: its draws come from
``numpy.random.default_rng([seed, 7919, split_id, i])``. Labels are interleaved (clip ``i`` has label
``i % num_classes``).

>>> train, test = prepare_synth_motion("data/motion", SynthMotionConfig())   # 8 classes, 8x32x32
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from videodd.data.spec import ClipSpec
from videodd.data.store import ClipStore, StoreError, write_store

DATASET_NAME = "synth-motion"
CLASSES: tuple[str, ...] = ("spin-cw", "spin-ccw", "speed-up", "slow-down", "zoom-in", "zoom-out", "wobble",
                            "glide")
SPLIT_IDS = {"train": 0, "test": 1}
_STREAM = 7919  # separates these draws from synth-actions' (which use [seed, split_id, i])


@dataclass(frozen=True)
class SynthMotionConfig:
    """Size and nuisance knobs of ``synth-motion`` (sizes are fractions of the frame).

    Attributes:
        num_classes: the first ``num_classes`` of :data:`CLASSES` (2 .. 8; keep it even so that every
            class has its twin).
        frames: frames per clip T (>= 4).
        size: frame height = width in pixels (16 .. 256).
        train_per_class: training clips per class.
        test_per_class: test clips per class.
        seed: generator seed; train and test use different streams derived from it.
        noise_std: std of the Gaussian pixel noise, in [0, 1] intensity units.
        background_contrast: amplitude of the drifting coloured gratings of the background.
        background_drift: how far the gratings drift over a clip (in grating periods).
        camera_shake: std of the per-frame offset of the whole scene.
        idle_drift: largest drift of the cast members that do not act, over a clip.
    """

    num_classes: int = 8
    frames: int = 8
    size: int = 32
    train_per_class: int = 100
    test_per_class: int = 30
    seed: int = 0
    noise_std: float = 0.05
    background_contrast: float = 0.2
    background_drift: float = 0.5
    camera_shake: float = 0.015
    idle_drift: float = 0.12

    def __post_init__(self) -> None:
        checks = {
            "num_classes": 2 <= self.num_classes <= len(CLASSES), "frames": self.frames >= 4,
            "size": 16 <= self.size <= 256, "train_per_class": self.train_per_class >= 1,
            "test_per_class": self.test_per_class >= 1, "seed": self.seed >= 0,
            "noise_std": 0 <= self.noise_std <= 1, "background_contrast": 0 <= self.background_contrast <= 0.5,
            "background_drift": 0 <= self.background_drift <= 4, "camera_shake": 0 <= self.camera_shake <= 0.1,
            "idle_drift": 0 <= self.idle_drift <= 0.5,
        }
        bad = [name for name, ok in checks.items() if not ok]
        if bad:
            raise ValueError(f"SynthMotionConfig: invalid {', '.join(f'{b}={getattr(self, b)!r}' for b in bad)}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @property
    def classes(self) -> list[str]:
        return list(CLASSES[: self.num_classes])


def _hsv(rng: np.random.Generator) -> np.ndarray:
    """A saturated colour: RGB ``(3,)`` in [0, 1] from a uniform hue."""
    h = rng.uniform(0, 6)
    s, v = rng.uniform(0.6, 1.0), rng.uniform(0.7, 1.0)
    x = v * s * (1 - abs(h % 2 - 1))
    c = v * s
    rgb = [(c, x, 0), (x, c, 0), (0, c, x), (0, x, c), (x, 0, c), (c, 0, x)][int(h) % 6]
    return np.asarray(rgb) + (v - c)


def _coverage(sdf: np.ndarray, px: float | np.ndarray) -> np.ndarray:
    """Anti-aliased coverage of a signed distance (negative inside), one pixel of soft edge."""
    return np.clip(0.5 - sdf / px, 0.0, 1.0)


def _blob_sdf(yy: np.ndarray, xx: np.ndarray, centre: np.ndarray, radius: float, square: bool) -> np.ndarray:
    """Signed distance to a disk or an axis-aligned square: coordinates ``(T, H, W)``, ``centre`` ``(T, 2)``."""
    dy = yy - centre[:, 0, None, None]  # (T, H, W)
    dx = xx - centre[:, 1, None, None]
    if square:
        return np.maximum(np.abs(dy), np.abs(dx)) - radius * 0.886  # the square of the disk's area
    return np.hypot(dy, dx) - radius


def _bar_sdf(yy: np.ndarray, xx: np.ndarray, centre: np.ndarray, angle: np.ndarray, length: float,
             width: float) -> np.ndarray:
    """Signed distance to a bar (rectangle) turned by ``angle`` ``(T,)`` about ``centre`` ``(T, 2)``."""
    dy = yy - centre[:, 0, None, None]  # (T, H, W)
    dx = xx - centre[:, 1, None, None]
    c, s = np.cos(angle)[:, None, None], np.sin(angle)[:, None, None]
    along, across = dx * c + dy * s, -dx * s + dy * c
    return np.maximum(np.abs(along) - length / 2, np.abs(across) - width / 2)


def _idle(rng: np.random.Generator, start: np.ndarray, u: np.ndarray, amount: float) -> np.ndarray:
    """A slow drift through ``start`` at the middle frame, in a random direction: positions ``(T, 2)``."""
    angle, dist = rng.uniform(0, 2 * np.pi), rng.uniform(0, amount)
    return start[None] + (u - 0.5)[:, None] * dist * np.array([np.sin(angle), np.cos(angle)])[None]


def render_clip(cfg: SynthMotionConfig, label: int, rng: np.random.Generator) -> np.ndarray:
    """One clip of class ``CLASSES[label]``: uint8 ``(T, H, W, 3)``."""
    t, n = cfg.frames, cfg.size
    u = np.linspace(0.0, 1.0, t)  # (T,) time in [0, 1]
    name = CLASSES[label]
    # scene coordinates of every pixel and frame: the camera shakes, and zooms in the zoom classes
    grid = (np.arange(n) + 0.5) / n
    yy = np.broadcast_to(grid[None, :, None], (t, n, n)) + rng.normal(0, cfg.camera_shake, (t, 1, 1))  # (T, H, W)
    xx = np.broadcast_to(grid[None, None, :], (t, n, n)) + rng.normal(0, cfg.camera_shake, (t, 1, 1))
    scale = np.ones(t)  # apparent size of the scene
    if name in ("zoom-in", "zoom-out"):
        zoom = rng.uniform(1.3, 1.5)
        scale = zoom ** ((u - 0.5) * (2 if name == "zoom-in" else -2))  # 1/zoom -> zoom around the middle frame
        focus = rng.uniform(0.35, 0.65, 2)
        yy = focus[0] + (yy - focus[0]) / scale[:, None, None]
        xx = focus[1] + (xx - focus[1]) / scale[:, None, None]
    px = (1.0 / n) / scale[:, None, None]  # one pixel in scene units, per frame

    # background: a grey level plus three drifting coloured gratings
    frame = np.full((t, n, n, 3), rng.uniform(0.25, 0.6))
    for _ in range(3):
        freq, orient, phase = rng.uniform(1.5, 4.0), rng.uniform(0, np.pi), rng.uniform(0, 2 * np.pi)
        drift = rng.uniform(-1, 1) * cfg.background_drift * 2 * np.pi
        wave = np.sin(2 * np.pi * freq * (yy * np.sin(orient) + xx * np.cos(orient)) + phase + drift * u[:, None, None])
        frame += cfg.background_contrast * wave[..., None] * (_hsv(rng) - 0.5)[None, None, None] * 2 / 3

    # the cast: two objects and a bar that drift idly; the class decides what one of them does
    r = rng.uniform(0.09, 0.13, 2)  # object radii
    squares = rng.random(2) < 0.5
    length, width = rng.uniform(0.4, 0.55), rng.uniform(0.08, 0.11)
    a = _idle(rng, rng.uniform(0.25, 0.75, 2), u, cfg.idle_drift)  # (T, 2) object A
    b = _idle(rng, rng.uniform(0.25, 0.75, 2), u, cfg.idle_drift)  # (T, 2) object B
    bar_pos = _idle(rng, rng.uniform(0.3, 0.7, 2), u, cfg.idle_drift)  # (T, 2)
    bar_angle = np.full(t, rng.uniform(0, np.pi))
    direction = rng.uniform(0, 2 * np.pi)
    axis, across = np.array([np.sin(direction), np.cos(direction)]), np.array([np.cos(direction), -np.sin(direction)])
    centre = rng.uniform(0.4, 0.6, 2)
    if name in ("spin-cw", "spin-ccw"):
        sweep = rng.uniform(0.45, 0.7) * np.pi  # y points down: a growing angle turns clockwise on screen
        bar_angle = bar_angle + (sweep if name == "spin-cw" else -sweep) * (u - 0.5)
    elif name in ("speed-up", "slow-down"):  # along a straight path, through the centre at a random time
        dist = rng.uniform(0.5, 0.65)
        progress = u**2 if name == "speed-up" else 1 - (1 - u) ** 2  # (T,) in [0, 1]
        a = (centre - axis * dist / 2)[None] + (progress * dist)[:, None] * axis[None]
    elif name in ("wobble", "glide"):  # constant speed across the frame, swaying sideways or not
        dist = rng.uniform(0.4, 0.55)
        sway = rng.uniform(0.07, 0.1) * np.sin(2 * np.pi * rng.uniform(1.2, 1.8) * u + rng.uniform(0, 2 * np.pi)) \
            if name == "wobble" else np.zeros(t)
        a = centre[None] + ((u - 0.5) * dist)[:, None] * axis[None] + sway[:, None] * across[None]

    layers = [(_blob_sdf(yy, xx, a, r[0], bool(squares[0])), _hsv(rng)),
              (_blob_sdf(yy, xx, b, r[1], bool(squares[1])), _hsv(rng)),
              (_bar_sdf(yy, xx, bar_pos, bar_angle, length, width), _hsv(rng))]
    for i in rng.permutation(3):  # a random depth order: nothing about the class is in the layering
        sdf, colour = layers[i]
        alpha = _coverage(sdf, px)[..., None]  # (T, H, W, 1)
        frame = frame * (1 - alpha) + alpha * colour[None, None, None]

    gain, offset = rng.uniform(0.75, 1.15), rng.uniform(-0.08, 0.08)  # per-clip contrast and brightness
    frame = frame * gain + offset + rng.normal(0, cfg.noise_std, frame.shape)
    return np.clip(np.rint(frame * 255), 0, 255).astype(np.uint8)


def generate_synth_motion(cfg: SynthMotionConfig, split: Literal["train", "test"]
                          ) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Clips uint8 ``(N, T, H, W, 3)``, labels int64 ``(N,)`` and source ids of one split."""
    per_class = cfg.train_per_class if split == "train" else cfg.test_per_class
    count = per_class * cfg.num_classes
    labels = np.arange(count) % cfg.num_classes
    clips = np.empty((count, cfg.frames, cfg.size, cfg.size, 3), dtype=np.uint8)
    for i in range(count):
        clips[i] = render_clip(cfg, int(labels[i]), np.random.default_rng([cfg.seed, _STREAM, SPLIT_IDS[split], i]))
    return clips, labels.astype(np.int64), [f"{split}/{i:06d}" for i in range(count)]


def prepare_synth_motion(out_dir: str | Path, cfg: SynthMotionConfig | None = None) -> tuple[ClipStore, ClipStore]:
    """Generate the benchmark and write ``out_dir/train`` and ``out_dir/test`` (test normalized with the
    training store's mean/std; both manifests carry the generator config as ``extra["generator"]``)."""
    cfg = cfg or SynthMotionConfig()
    spec = ClipSpec(frames=cfg.frames, size=cfg.size, stride=1, train_sampling="center")
    stores: list[ClipStore] = []
    for split in ("train", "test"):
        clips, labels, ids = generate_synth_motion(cfg, split)  # type: ignore[arg-type]
        mean = stores[0].meta.mean if stores else None
        std = stores[0].meta.std if stores else None
        stores.append(write_store(Path(out_dir) / split, clips, labels, dataset=DATASET_NAME, split=split,
                                  classes=cfg.classes, spec=spec, mean=mean, std=std, source_ids=ids,
                                  extra={"generator": cfg.to_dict()}))
    return stores[0], stores[1]


def synth_motion_stores(data: str | Path, cfg: SynthMotionConfig | None = None) -> tuple[ClipStore, ClipStore]:
    """``DATA/train`` and ``DATA/test`` when they hold exactly this benchmark, else generated there."""
    cfg = cfg or SynthMotionConfig()
    try:
        train, test = ClipStore(Path(data) / "train"), ClipStore(Path(data) / "test")
        if train.meta.dataset == DATASET_NAME and train.meta.extra.get("generator") == cfg.to_dict():
            return train, test
    except StoreError:
        pass
    return prepare_synth_motion(data, cfg)
