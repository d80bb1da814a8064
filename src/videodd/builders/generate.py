"""Generate-then-select (2025): a pool of generated candidates per class, then IPC of them kept by a selector.

1. **Generator** (``builder.generator``): ``auto`` (the built-in class-conditional video diffusion model,
   trained once on the training split in ``DATA/generator``; :mod:`videodd.generate.diffusion`), a
   generator folder from ``videodd train-generator`` (one trained on another store or clip shape is
   refused), or ``diffusers:DIR``, a local pretrained text-to-video pipeline prompted with the class
   names (:mod:`videodd.generate.pipeline`; never downloaded).
2. **Candidates**: ``M = pool x IPC`` per class (or ``per_class``), sampled with ``sampler`` / ``steps`` /
   ``guidance`` from ``seed`` into a candidate store (``DATA/candidates/<generator sha256[:16]>-...``,
   resumable batch by batch, reused when the generator and plan match).
3. **Selection** (``builder.select``): any registered selector over the candidate store, with
   ``builder.selector`` as its options: ``tacdt`` (the paper's training-free TAC-DT), ``vstunet`` (the
   trained selector, scored against the real training clips), ``random``, ``herding``, ...

The set (kind ``generated-clips``) stores the kept uint8 videos; the generator's weights are not in it
and are reported on their own line, and in the all-in bytes, as a latent set's decoder is.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from videodd.builders.base import Builder, BuiltSet, register_builder
from videodd.config import ConfigError, component_options
from videodd.data.store import ClipStore
from videodd.distilled import DistilledManifest, Kind, KindStorage, human_bytes, register_kind
from videodd.generate.candidates import GenerationPlan, generate_candidates
from videodd.generate.diffusion import AUTO, SAMPLERS, VideoGenerator
from videodd.generate.load import open_generator
from videodd.methods import MethodSpec, register_method
from videodd.selection.base import SELECTORS, check_clips, materialize_clips

GENERATED = "generated-clips"


@dataclass(frozen=True)
class GenerateOptions:
    """Settings of generate-then-select (``--set builder.KEY=VALUE``).

    Attributes:
        generator: ``auto`` (trained on the training split once, in ``DATA/generator``), a generator folder, or
            ``diffusers:DIR``: a local pretrained diffusers text-to-video pipeline, prompted with class names.
        prompt: the prompt template of a ``diffusers:`` pipeline (``{}`` is the class name in words).
        pool: candidates per class as a multiple of IPC (``M = pool x IPC``).
        per_class: ``M`` itself (overrides ``pool``); must be >= IPC.
        sampler: ``ddim`` (deterministic), ``dpm`` (DPM-Solver++) or ``ddpm`` (ancestral).
        steps: sampling steps.
        guidance: classifier-free guidance scale.
        batch: videos per sampling batch (a killed generation loses at most one).
        select: the selector that keeps IPC candidates per class.
        selector: the selector's options (``vstunet`` gets ``reference`` = the training store).
        cache_dir: where candidate pools are kept (default ``DATA/candidates``).
    """

    generator: str = AUTO
    prompt: str = "{}"
    pool: int = 10
    per_class: int | None = None
    sampler: str = "ddim"
    steps: int = 25
    guidance: float = 2.0
    batch: int = 50
    select: str = "tacdt"
    selector: dict[str, Any] = field(default_factory=dict)
    cache_dir: str | None = None

    def __post_init__(self) -> None:
        if self.pool < 1 or (self.per_class is not None and self.per_class < 1):
            raise ValueError("pool and per_class must be >= 1")
        if self.sampler not in SAMPLERS:
            raise ValueError(f"sampler must be one of {list(SAMPLERS)}, got {self.sampler!r}")
        if self.steps < 1 or self.batch < 1 or self.guidance < 0:
            raise ValueError("steps >= 1, batch >= 1 and guidance >= 0 are required")
        SELECTORS.get(self.select)  # an unknown selector lists the valid ones


def candidates_dir(store: ClipStore, sha256: str, plan: GenerationPlan, cache_dir: str | None) -> Path:
    """``CACHE/<generator sha256[:16]>-m<M>-<sampler><steps>-g<guidance>-s<seed>`` (CACHE: ``DATA/candidates``)."""
    root = Path(cache_dir) if cache_dir else store.root.parent / "candidates"
    return root / f"{sha256[:16]}-m{plan.per_class}-{plan.sampler}{plan.steps}-g{plan.guidance:g}-s{plan.seed}"


@register_builder("generate")
class GenerateBuilder(Builder):
    """Generate ``M`` candidates per class with a video diffusion model, keep IPC with a selector."""

    Options = GenerateOptions
    options: GenerateOptions

    def build(self, store: ClipStore, ipc: int, generator: torch.Generator, *, device: str | torch.device = "cpu",
              progress: bool = False) -> BuiltSet:
        o = self.options
        per_class = o.per_class if o.per_class is not None else o.pool * int(ipc)
        if per_class < ipc:
            raise ConfigError(f"generate: {per_class} candidates per class cannot give IPC {ipc}; raise "
                              "builder.per_class (or builder.pool)")
        model = open_generator(store, o.generator, prompt=o.prompt, device=device, progress=progress)
        seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator))  # the pool's seed, from the run's
        plan = GenerationPlan(per_class=per_class, steps=o.steps, guidance=o.guidance, sampler=o.sampler, seed=seed,
                              batch=o.batch)
        pool = generate_candidates(model, store, candidates_dir(store, str(model.info["sha256"]), plan, o.cache_dir),
                                   plan, device=device, progress=progress)
        cls = SELECTORS.get(o.select)
        sel_options = dict(o.selector)
        if o.select == "vstunet":  # representativeness against the real training clips, with this generator's U-Net
            sel_options.setdefault("reference", str(store.root))
            if isinstance(model, VideoGenerator):  # its U-Net; a pretrained pipeline's is not one (auto: built-in)
                sel_options.setdefault("generator", str(model.path))
        selector = cls(component_options(cls, sel_options, f"builder.selector ({o.select})"))
        idx = selector.select(pool, int(ipc), generator, device=device)
        record = pool.meta.extra["generation"]
        layout = {"generator": model.describe(), "generator_bytes": model.weight_bytes,
                  "candidates": {k: record[k] for k in ("per_class", "steps", "guidance", "sampler", "seed")},
                  "select": o.select}
        info = {"candidate_store": str(pool.root), "source_ids": [pool.source_id(int(i)) for i in idx],
                "selection": {"select": o.select, **sel_options},
                "generation_seconds_per_candidate": record.get("seconds_per_candidate"),
                "generator_train_seconds": model.info.get("seconds"),
                "options": {k: v for k, v in dataclasses.asdict(o).items() if k != "selector"}}
        return BuiltSet(kind=GENERATED, tensors={"clips": pool.raw(idx)}, labels=pool.labels_tensor(idx),
                        ipc=int(ipc), layout=layout, info=info)


# -- the DistilledSet kind ----------------------------------------------------------------------------
def _storage(tensors: dict[str, torch.Tensor], manifest: DistilledManifest) -> KindStorage:
    videos = int(sum(t.numel() * t.element_size() for t in tensors.values()))
    gen = int(manifest.layout.get("generator_bytes", 0))
    return KindStorage(parts={"videos": videos, "generator": gen}, external_bytes=gen,
                       notes=(f"generated clips: {videos:,} bytes of uint8 videos; the generator's {gen:,} bytes "
                              "are not in the set (counted in the all-in bytes)",))


def _describe(tensors: dict[str, torch.Tensor], manifest: DistilledManifest) -> list[tuple[str, str]]:
    g = manifest.layout.get("generator", {})
    c = manifest.layout.get("candidates", {})
    return [
        ("generator", f"{g.get('path')} (sha256 {str(g.get('sha256'))[:16]}, "
                      f"{human_bytes(int(manifest.layout.get('generator_bytes', 0)))}, not in this file)"),
        ("candidates", f"{c.get('per_class')} per class, {c.get('sampler')} {c.get('steps')} steps, guidance "
                       f"{c.get('guidance')}, seed {c.get('seed')}"),
        ("selected by", str(manifest.layout.get("select"))),
    ]


register_kind(Kind(GENERATED, materialize=materialize_clips, check=check_clips, storage=_storage,
                   describe=_describe))


def _register(select: str, description: str, smoke_selector: dict[str, Any]) -> None:
    register_method(MethodSpec(
        f"diffusion-{select}", description, builder="generate", defaults={"builder": {"select": select}},
        smoke={"builder": {"generator": "${generator}", "pool": 2, "steps": 2, "batch": 4,
                           "selector": smoke_selector}},
    ))


_register("tacdt", "generate-then-select: video diffusion candidates (M = pool x IPC per class), TAC-DT keeps IPC",
          {"n_init": 1})
_register("vstunet", "generate-then-select: video diffusion candidates, the VST-UNet selector keeps IPC", {})
_register("random", "generate-then-select: video diffusion candidates, IPC kept at random (the ablation)", {})

