"""Candidate pools: ``M`` generated videos per class, written as a ClipStore that any selector reads.

The pool is generated in batches; each finished batch is a file in ``OUT.parts/`` (written atomically),
so a killed generation loses at most one batch and continues where it stopped. Batch ``b`` draws its
noise from a generator seeded by ``(seed, b)``: the same plan and generator give the same candidates,
however often the generation was interrupted. The finished store (``OUT/``, atomic) records in
``meta.json["extra"]["generation"]`` the generator (path, sha256, training store), the sampler, steps,
guidance, seed and ``M``; a pool is reused only when all of them match.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from tqdm.auto import tqdm

from videodd.data.store import ClipStore, StoreError, write_store
from videodd.generate.diffusion import SAMPLERS, GeneratorError
from videodd.io import atomic_path, write_json
from videodd.seeding import make_generator

SPLIT = "generated"


class CandidateGenerator(Protocol):
    """What a pool needs of a generator (:class:`~videodd.generate.diffusion.CandidateGenerator`, a
    :class:`~videodd.generate.pipeline.PipelineGenerator`)."""

    info: dict[str, Any]

    def describe(self) -> dict[str, Any]: ...

    def check_store(self, store: Any) -> None: ...

    def sample(self, labels: torch.Tensor, generator: torch.Generator, *, steps: int, guidance: float, sampler: str,
               device: str | torch.device) -> torch.Tensor: ...


@dataclass(frozen=True)
class GenerationPlan:
    """What identifies a candidate pool (with the generator's sha256).

    Attributes:
        per_class: candidates per class ``M``.
        steps: sampler steps.
        guidance: classifier-free guidance scale (1: conditional model alone).
        sampler: ``ddim``, ``dpm`` or ``ddpm``.
        seed: the pool's seed.
        batch: videos per sampling batch (the unit of resumption).
    """

    per_class: int
    steps: int = 25
    guidance: float = 2.0
    sampler: str = "ddim"
    seed: int = 0
    batch: int = 50

    def __post_init__(self) -> None:
        if self.per_class < 1 or self.steps < 1 or self.batch < 1:
            raise ValueError("per_class, steps and batch must be >= 1")
        if self.sampler not in SAMPLERS:
            raise ValueError(f"sampler must be one of {list(SAMPLERS)}, got {self.sampler!r}")


def batch_generator(seed: int, batch: int) -> torch.Generator:
    """The noise generator of batch ``batch`` of a pool with ``seed`` (independent of earlier batches)."""
    return make_generator(int(np.random.SeedSequence([int(seed), int(batch)]).generate_state(1, np.uint64)[0] >> 1))


def _record(generator: CandidateGenerator, plan: GenerationPlan) -> dict[str, Any]:
    return {**asdict(plan), "generator": generator.describe()}


def _same_pool(a: dict[str, Any], b: dict[str, Any]) -> bool:
    keys = ("per_class", "steps", "guidance", "sampler", "seed", "batch")  # batch b draws from (seed, b)
    return all(a.get(k) == b.get(k) for k in keys) and a.get("generator", {}).get("sha256") == b.get(
        "generator", {}).get("sha256")


def open_candidates(root: str | Path, generator: CandidateGenerator | None = None,
                    plan: GenerationPlan | None = None) -> ClipStore:
    """A finished candidate store; with ``generator`` and ``plan``, refused unless it was made by them."""
    store = ClipStore(root)  # a missing or corrupt file raises a StoreError naming it
    record = store.meta.extra.get("generation")
    if store.meta.split != SPLIT or not isinstance(record, dict):
        raise StoreError(f"{root}: not a candidate store (its meta.json has no generation record)")
    if generator is not None and plan is not None and not _same_pool(record, _record(generator, plan)):
        sha = str(record.get("generator", {}).get("sha256", "?"))[:16]
        raise GeneratorError(f"{root}: holds candidates of another generator or plan ({sha}, "
                             f"{record.get('per_class')} per class, {record.get('steps')} "
                             f"steps, guidance {record.get('guidance')}, seed {record.get('seed')}); remove it or use "
                             "another folder")
    return store


def generate_candidates(generator: CandidateGenerator, train_store: ClipStore, out: str | Path, plan: GenerationPlan, *,
                        device: str | torch.device = "cpu", progress: bool = False) -> ClipStore:
    """``plan.per_class`` candidates per class of ``train_store``'s classes, as a ClipStore at ``out``.

    Reuses a finished pool made by the same generator and plan; resumes an interrupted one.
    The store keeps ``train_store``'s normalization, so selectors and evaluation see the same scale.
    """
    generator.check_store(train_store)
    out = Path(out)
    if (out / "meta.json").exists():
        return open_candidates(out, generator, plan)
    parts = out.with_name(out.name + ".parts")
    record = _record(generator, plan)
    plan_file = parts / "plan.json"
    if plan_file.exists() and not _same_pool(json.loads(plan_file.read_text(encoding="utf-8")), record):
        shutil.rmtree(parts)  # batches of another plan: not ours to continue
    parts.mkdir(parents=True, exist_ok=True)
    write_json(plan_file, record)
    k = train_store.num_classes
    labels = np.repeat(np.arange(k, dtype=np.int64), plan.per_class)  # (K*M,) class order
    n_batches = -(-len(labels) // plan.batch)
    start = time.perf_counter()
    for b in tqdm(range(n_batches), desc="generate", disable=not progress, leave=False):
        part = parts / f"part-{b:05d}.npy"
        if part.exists():
            continue
        y = torch.from_numpy(labels[b * plan.batch : (b + 1) * plan.batch])
        clips = generator.sample(y, batch_generator(plan.seed, b), steps=plan.steps, guidance=plan.guidance,
                                 sampler=plan.sampler, device=device)  # (n, T, H, W, C) uint8
        with atomic_path(part) as tmp, open(tmp, "wb") as fh:
            np.save(fh, clips.numpy())
    clips = np.concatenate([np.load(parts / f"part-{b:05d}.npy") for b in range(n_batches)])
    if clips.shape != (len(labels), *train_store.spec.shape, train_store.channels):
        raise StoreError(f"{parts}: generated batches hold {clips.shape}, expected "
                         f"{(len(labels), *train_store.spec.shape, train_store.channels)}; remove the folder")
    per = np.arange(len(labels)) - np.searchsorted(labels, labels)  # index within the class
    ids = [f"generated/{train_store.classes[c]}/{i:05d}" for c, i in zip(labels, per, strict=True)]
    record["seconds"] = time.perf_counter() - start  # of the last process (a resumed pool counts its part)
    record["seconds_per_candidate"] = record["seconds"] / max(len(labels), 1)
    store = write_store(out, clips, labels, dataset=train_store.meta.dataset, split=SPLIT,
                        classes=list(train_store.classes), spec=train_store.spec, mean=list(train_store.meta.mean),
                        std=list(train_store.meta.std), source_ids=ids, extra={"generation": record})
    shutil.rmtree(parts)
    return store
