"""Shared fixtures: tiny ClipStores made in the test (no downloads)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from videodd.data.spec import ClipSpec
from videodd.data.store import ClipStore, write_store

TINY_SPEC = ClipSpec(frames=4, size=32, stride=1, train_sampling="center")


def tiny_clips(
    num_classes: int, per_class: int, seed: int, spec: ClipSpec = TINY_SPEC
) -> tuple[np.ndarray, np.ndarray]:
    """uint8 (N, T, H, W, 3): class c is a bright square in colour channel c % 3 moving down
    (even c) or up (odd c), on noise, so both appearance and motion carry the label."""
    rng = np.random.default_rng(seed)
    t, s = spec.frames, spec.size
    n = num_classes * per_class
    clips = rng.integers(0, 60, size=(n, t, s, s, 3), dtype=np.uint8)
    labels = np.repeat(np.arange(num_classes), per_class)
    for i, c in enumerate(labels):
        x0 = rng.integers(0, s - 8)
        y0 = rng.integers(4, s - 8 - t)
        for f in range(t):
            y = y0 + (f if c % 2 == 0 else t - 1 - f)
            clips[i, f, y : y + 8, x0 : x0 + 8, c % 3] = 230
    return clips, labels


def make_tiny_stores(root: Path, num_classes: int = 3, train_per_class: int = 6, test_per_class: int = 4):
    classes = [f"class{c}" for c in range(num_classes)]
    clips, labels = tiny_clips(num_classes, train_per_class, seed=1)
    train = write_store(root / "train", clips, labels, dataset="tiny", split="train", classes=classes, spec=TINY_SPEC,
                        source_ids=[f"train/{i}" for i in range(len(clips))])
    clips, labels = tiny_clips(num_classes, test_per_class, seed=2)
    test = write_store(root / "test", clips, labels, dataset="tiny", split="test", classes=classes, spec=TINY_SPEC,
                       mean=train.meta.mean, std=train.meta.std)
    return train, test


@pytest.fixture()
def tiny_stores(tmp_path: Path) -> tuple[ClipStore, ClipStore]:
    return make_tiny_stores(tmp_path / "data")


@pytest.fixture()
def test_data_dir() -> Path:
    """``$VIDEODD_TEST_DATA`` (the shared real clips); skips when unset."""
    root = os.environ.get("VIDEODD_TEST_DATA")
    if not root:
        pytest.skip("VIDEODD_TEST_DATA is not set")
    return Path(root)


class Interrupted(Exception):
    """Raised by :func:`killed_then_resumed` to stop a run mid-way, as a kill would."""


def killed_then_resumed(store: ClipStore, cfg, run_dir: Path, kill_at: int):
    """``distill`` stopped at iteration ``kill_at`` (after that iteration, before any later
    checkpoint), then resumed in the same folder; returns the resumed run's result."""
    from videodd.distill import distill

    def kill(it, _param):
        if it == kill_at:
            raise Interrupted

    with pytest.raises(Interrupted):
        distill(store, cfg, run_dir, on_iteration=kill)
    return distill(store, cfg, run_dir, resume=True)


def assert_resume_matches(store: ClipStore, cfg, root: Path, kill_at: int):
    """Run ``cfg`` uninterrupted in ``root/full`` and killed at ``kill_at`` then resumed in
    ``root/resumed``; assert both produce the same synthetic videos and return ``(full, resumed)``."""
    from videodd.distill import distill

    full = distill(store, cfg, root / "full")
    resumed = killed_then_resumed(store, cfg, root / "resumed", kill_at)
    assert torch.equal(full.distilled.tensors["videos"], resumed.distilled.tensors["videos"])
    return full, resumed


# -- every registered method, run once on a tiny store (tests/test_methods.py, tests/test_kinds.py) ----------
class SmokeRuns:
    """Runs each registered recipe with its ``MethodSpec.smoke`` overrides on the tiny stores, once per
    session (memoized); provides the resources smoke recipes name (``${experts}``, ``${codec}``, ``${teacher}``,
    ``${generator}``)."""

    IPC = 2

    def __init__(self, root: Path) -> None:
        from videodd.codecs.autoencoder import AutoencoderConfig, VideoAutoencoder
        from videodd.seeding import make_generator, seeded
        from videodd.teachers.experts import ExpertConfig, train_experts

        self.root = root
        self.train, self.test = make_tiny_stores(root / "data")
        train_experts(self.train, root / "experts",
                      ExpertConfig(model="convnet3d-s", epochs=2, num_experts=1, batch_size=6), seed=0)
        with seeded(make_generator(0)):  # an untrained tiny codec: decoding needs no training
            codec = VideoAutoencoder(AutoencoderConfig(latent_channels=2, spatial_down=4, temporal_down=2, width=4,
                                                       blocks=0))
        codec.save(root / "codec")
        from videodd.teachers.classifier import ClassifierConfig, train_and_save

        train_and_save(self.train, root / "teacher.safetensors",  # a batch-norm teacher (TSGF)
                       ClassifierConfig(model="convnet3d-s-bn", epochs=1, batch_size=6))
        from videodd.generate.diffusion import GeneratorTrainConfig, train_generator

        train_generator(self.train, root / "generator",  # a tiny, barely trained video diffusion model
                        GeneratorTrainConfig(width=4, mults=(1, 2), embed_dim=16, epochs=1, batch_size=6))
        self.resources = {"experts": str(root / "experts"), "codec": f"builtin:{root / 'codec'}",
                          "teacher": str(root / "teacher.safetensors"), "generator": str(root / "generator")}
        self._runs: dict[str, object] = {}

    def config(self, name: str, **changes):
        """The recipe ``name`` with its smoke overrides (resources filled in), IPC 2, checkpoints every 2."""
        import json
        from string import Template

        from videodd.config import merge
        from videodd.distill import resolve_config
        from videodd.methods import get_method

        smoke = json.loads(Template(json.dumps(get_method(name).smoke)).substitute(self.resources))
        base = {"ipc": self.IPC, "seed": 0, "checkpoint_every": 2, "log_every": 1}
        return resolve_config(name, merge(merge(base, smoke), changes))

    def run(self, name: str):
        """The uninterrupted smoke run of ``name`` (a DistillResult), computed once."""
        from videodd.distill import distill

        if name not in self._runs:
            self._runs[name] = distill(self.train, self.config(name), self.root / "runs" / name)
        return self._runs[name]


@pytest.fixture(scope="session")
def smoke_runs(tmp_path_factory) -> SmokeRuns:
    return SmokeRuns(tmp_path_factory.mktemp("smoke"))
