"""The one distillation loop: a Parametrization optimised under an Objective, a Selector, or a set Builder.

The loop knows the components only through their contracts (``synthesis.base``, ``objectives.base``,
``selection.base``, ``builders.base``; docs/ARCHITECTURE.md section 10): a new method never edits this file.

``distill(train_store, cfg, run_dir)`` returns a DistilledSet and leaves in ``run_dir``:
``config.yaml`` (resolved), ``metrics.jsonl``, ``checkpoint.safetensors`` (while running) and
``distilled.safetensors``. ``resume=True`` continues a killed run from its last checkpoint to
the same result as an uninterrupted run with the same seed.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import yaml
from tqdm.auto import tqdm

import videodd.distributed as distributed
from videodd.augment import AugmentConfig
from videodd.builders import BUILDERS, BuiltSet
from videodd.checkpoint import load_state, save_state
from videodd.config import ConfigError, component_options, from_dict, to_dict
from videodd.data.clips import resident
from videodd.data.frames import FrameStore
from videodd.data.store import ClipStore
from videodd.distilled import DistilledManifest, DistilledSet
from videodd.errors import NonFiniteError, VideoddError
from videodd.guards import DistillGuard, data_range
from videodd.io import atomic_path, exclusive
from videodd.methods import MethodSpec, get_method
from videodd.models import MODELS
from videodd.objectives import OBJECTIVES, Objective, ObjectiveExport, ObjectiveSetup
from videodd.registry import Registry
from videodd.seeding import make_generator
from videodd.selection import REAL_CLIPS, SELECTORS
from videodd.synthesis import PARAMETRIZATIONS, Parametrization

DEFAULT_AUGMENT = ("color", "crop", "cutout", "scale", "rotate")


# The optimiser of the synthetic set: (groups, cfg) -> optimizer. Own groups may carry "momentum",
# which Adam keeps as an unused key.
SET_OPTIMIZERS: dict[str, Callable[[list[dict[str, Any]], Any], torch.optim.Optimizer]] = {
    "sgd": lambda groups, cfg: torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum),
    "adam": lambda groups, cfg: torch.optim.Adam(groups, lr=cfg.lr),
}


@dataclass(frozen=True)
class DistillConfig:
    """Settings of one distillation run (YAML recipe fields; CLI flags override them).

    Attributes:
        method: recipe name (``videodd methods`` lists them).
        ipc: synthetic or selected videos per class.
        seed: seeds every random draw of the run.
        iterations: optimisation steps of the synthetic set (synthesis methods).
        lr: learning rate of the synthetic tensors.
        momentum: SGD momentum of the synthetic tensors.
        optimizer: ``sgd`` (with ``momentum``; DM, DC, MTT as published) or ``adam`` (FRePo's
            optimiser; ``momentum`` unused, so a step moves each value by about ``lr``). It steps
            every learnable tensor, own groups (learned labels, MTT's lr) included.
        batch_real: real clips per class drawn each iteration.
        model: registry name of the network the objective uses.
        init: initialisation of the synthetic set; each parametrization lists the values it takes
            (``pixels``: ``real`` (random real clips), ``noise``, or ``herding`` / ``kcenter``, the
            clips that selector picks).
        augment: siamese augmentation ops applied to real and synthetic batches ([] for none).
        amp: bfloat16 autocast for network passes on CUDA.
        max_batch: the most real clips one network pass of the objective takes; a bound keeps memory in
            budget with the same result to float rounding for networks without batch norm (DM: chunks of
            whole classes). None: all of an iteration's at once on a CPU, 256 on a GPU (about 3 GiB of
            activations for convnet3d at 16x112x112).
        checkpoint_every: iterations between checkpoints (and the last one always).
        log_every: iterations between metric lines in metrics.jsonl (and the guards' checks).
        snapshots: iterations at which the set is also written to ``RUN/snapshots/iter-NNNNNN.safetensors``
            (0: the initial set), e.g. to plot accuracy against iterations.
        clamp_pixels: after every step, clip synthetic pixels to the data range (the normalized image of
            [0, 1]); parametrizations whose tensors are not pixels ignore it.
        guard_range: warn when synthetic pixels leave the data range by more than this many times its
            width (0: never).
        objective: options of the objective, validated against its ``Options`` dataclass
            (YAML mapping; CLI ``--set objective.KEY=VALUE``).
        parametrization: options of the parametrization (its ``Options`` dataclass).
        selector: options of the selector (its ``Options`` dataclass).
        builder: options of the set builder (its ``Options`` dataclass; the ``latent`` method).
    """

    method: str = "dm"
    ipc: int = 1
    seed: int = 0
    iterations: int = 200
    lr: float = 1.0
    momentum: float = 0.5
    optimizer: str = "sgd"
    batch_real: int = 64
    model: str = "convnet3d-s"
    init: str = "real"
    augment: tuple[str, ...] = DEFAULT_AUGMENT
    amp: bool = True
    max_batch: int | None = None
    checkpoint_every: int = 25
    log_every: int = 5
    snapshots: tuple[int, ...] = ()
    clamp_pixels: bool = False
    guard_range: float = 1.0
    objective: dict[str, Any] = field(default_factory=dict)
    parametrization: dict[str, Any] = field(default_factory=dict)
    selector: dict[str, Any] = field(default_factory=dict)
    builder: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.ipc < 1:
            raise ValueError(f"ipc must be >= 1, got {self.ipc}")
        if self.iterations < 0 or self.checkpoint_every < 1 or self.log_every < 1:
            raise ValueError("iterations >= 0, checkpoint_every >= 1 and log_every >= 1 are required")
        if self.optimizer not in SET_OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {sorted(SET_OPTIMIZERS)}, got {self.optimizer!r}")
        bad = [s for s in self.snapshots if not 0 <= s <= self.iterations]
        if bad:
            raise ValueError(f"snapshots must be iterations in [0, {self.iterations}], got {bad}")
        if self.guard_range < 0:
            raise ValueError(f"guard_range must be >= 0, got {self.guard_range}")
        if self.max_batch is not None and self.max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {self.max_batch}")


def resolve_config(method: str, overrides: dict[str, Any] | None = None) -> DistillConfig:
    """Method defaults, then ``overrides`` (from a YAML recipe and/or CLI flags).

    The component option mappings (``objective``, ``parametrization``, ``selector``) merge key by
    key, so a recipe default survives an override of another key.
    """
    spec = get_method(method)
    overrides = dict(overrides or {})
    data = {**spec.defaults, **overrides, "method": method}
    for part in COMPONENTS:
        data[part] = {**spec.defaults.get(part, {}), **(overrides.get(part) or {})}
    return from_dict(DistillConfig, data)


COMPONENTS = ("objective", "parametrization", "selector", "builder")
"""The ``DistillConfig`` fields that hold a component's options (``--set PART.KEY=VALUE``)."""


REGISTRIES: dict[str, Registry] = {"objective": OBJECTIVES, "parametrization": PARAMETRIZATIONS, "selector": SELECTORS,
                                   "builder": BUILDERS}
"""The registry of each component field."""


def validate_config(cfg: DistillConfig) -> None:
    """Check the names and options a config refers to before anything is written (errors list valid names)."""
    spec = get_method(cfg.method)
    MODELS.get(cfg.model)
    try:
        AugmentConfig(ops=tuple(cfg.augment))
    except ValueError as err:
        raise ConfigError(f"DistillConfig.augment: {err}") from None
    for part, registry in REGISTRIES.items():
        name = getattr(spec, part)
        options = getattr(cfg, part)
        if name is None:
            if options:
                raise ConfigError(f"DistillConfig.{part}: method {cfg.method!r} has no {part}, got {sorted(options)}")
            continue
        component_options(registry.get(name), options, f"DistillConfig.{part} ({name})")
    if spec.parametrization is not None:
        inits = PARAMETRIZATIONS.get(spec.parametrization).inits
        if cfg.init not in inits:
            raise ConfigError(f"DistillConfig.init: {cfg.init!r} is not one of {list(inits)} (the inits of the "
                              f"{spec.parametrization} parametrization)")


@dataclass
class DistillResult:
    """What ``distill`` returns."""

    distilled: DistilledSet
    run_dir: Path
    seconds: float
    seconds_per_iteration: float
    resumed_from: int


GPU_MAX_BATCH = 256  # real clips per network pass on a GPU when DistillConfig.max_batch is None


def make_objective(cls: type[Objective], store: Any, cfg: DistillConfig, device: str | torch.device = "cpu"
                   ) -> Objective:
    """The objective ``cls`` as the loop builds it: its setup and its ``cfg.objective`` options."""
    device = torch.device(device)
    # None: every real clip of an iteration in one pass on a CPU; on a GPU, passes of at most 256 clips
    max_batch = cfg.max_batch if cfg.max_batch is not None or device.type != "cuda" else GPU_MAX_BATCH
    setup = ObjectiveSetup(model=cfg.model, ipc=cfg.ipc, batch_real=cfg.batch_real, augment=tuple(cfg.augment),
                           amp=cfg.amp, device=device, max_batch=max_batch)
    return cls(store, setup, component_options(cls, cfg.objective, f"objective {cls.__name__}"))


def _manifest(spec: MethodSpec, cfg: DistillConfig, store: ClipStore, kind: str, **fields: Any) -> DistilledManifest:
    return DistilledManifest(
        kind=kind,
        method=spec.name,
        config=to_dict(cfg),
        dataset=store.meta.dataset,
        dataset_fingerprint=store.fingerprint,
        classes=list(store.classes),
        spec=store.spec,
        mean=list(store.meta.mean),
        std=list(store.meta.std),
        seed=cfg.seed,
        ipc=cfg.ipc,
        full_train_bytes=store.nbytes,
        **fields,
    )


def _build(spec: MethodSpec, cfg: DistillConfig, store: ClipStore, device: torch.device,
           progress: bool) -> DistilledSet:
    """A training-free set builder's DistilledSet (its own kind; ``manifest.ipc`` is the builder's)."""
    cls = BUILDERS.get(spec.builder)
    builder = cls(component_options(cls, cfg.builder, f"builder {spec.builder}"))
    built: BuiltSet = builder.build(store, cfg.ipc, make_generator(cfg.seed), device=device, progress=progress)
    manifest = _manifest(spec, cfg, store, built.kind, layout=built.layout, info=built.info,
                         equal_storage_ipc=built.equal_storage_ipc)
    manifest.ipc = int(built.ipc)
    return DistilledSet(tensors=built.tensors, labels=built.labels, manifest=manifest)


def _select(spec: MethodSpec, cfg: DistillConfig, store: ClipStore, device: torch.device) -> DistilledSet:
    cls = SELECTORS.get(spec.selector)
    selector = cls(component_options(cls, cfg.selector, f"selector {spec.selector}"))
    idx = selector.select(store, cfg.ipc, make_generator(cfg.seed), device=device)
    manifest = _manifest(spec, cfg, store, REAL_CLIPS, info={"source_ids": [store.source_id(int(i)) for i in idx]})
    return DistilledSet(tensors={"clips": store.raw(idx)}, labels=store.labels_tensor(idx), manifest=manifest)


def _append_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    with open(path, "a", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row) + "\n")


def _truncate_metrics(path: Path, iteration: int) -> None:
    """Drop metric lines written after the checkpoint we resume from."""
    if not path.exists():
        return
    keep = [ln for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()
            and json.loads(ln).get("iteration", 0) <= iteration]
    with atomic_path(path) as tmp:
        tmp.write_text("".join(ln + "\n" for ln in keep), encoding="utf-8")


RUN_FILES = ("config.yaml", "checkpoint.safetensors", "metrics.jsonl", "distilled.safetensors")
"""The files of a run folder."""


class RunFolderError(VideoddError, ValueError):
    """``--out`` holds a run that would be lost, or is not a folder."""


def describe_run(run_dir: Path) -> str | None:
    """What ``run_dir`` holds, for messages ("a finished run (dm, IPC 1, 200 iterations)"); None when it
    holds no run. A file in the way is a RunFolderError."""
    if run_dir.exists() and not run_dir.is_dir():
        raise RunFolderError(f"{run_dir}: --out is a file, not a run folder; choose another --out")
    present = [name for name in RUN_FILES if (run_dir / name).exists()]
    if present in ([], ["config.yaml"]):  # nothing, or a run that failed before it produced anything
        return None
    what = ""
    with contextlib.suppress(OSError, yaml.YAMLError, AttributeError, TypeError):
        d = yaml.safe_load((run_dir / "config.yaml").read_text(encoding="utf-8"))["distill"]
        what = f" ({d['method']}, IPC {d['ipc']}, {d['iterations']} iterations)"
    state = "a finished" if (run_dir / "distilled.safetensors").exists() else "an unfinished"
    return f"{state} run{what}: {', '.join(present)}"


def config_changes(previous: dict[str, Any], resolved: dict[str, Any], prefix: str = "") -> list[str]:
    """``"distill.lr: 1.0 -> 10.0"`` for every setting that differs between two resolved configs."""
    out = []
    for key in sorted(set(previous) | set(resolved)):
        old, new = previous.get(key), resolved.get(key)
        if isinstance(old, dict) and isinstance(new, dict):
            out += config_changes(old, new, f"{prefix}{key}.")
        elif old != new:
            out.append(f"{prefix}{key}: {old!r} -> {new!r}")
    return out


def _resume_allows(config_path: Path, resolved: dict[str, Any]) -> None:
    """Refuse to resume a run with other settings, naming each; more iterations extend a run."""
    previous = yaml.safe_load(config_path.read_text(encoding="utf-8")) or {}
    changes = config_changes(previous, resolved)
    extended = [c for c in changes if c.startswith(("distill.iterations:", "distill.snapshots:"))]
    grows = resolved["distill"]["iterations"] >= (previous.get("distill") or {}).get("iterations", 0)
    if changes and not (grows and extended == changes):
        raise RunFolderError(f"{config_path}: the run being resumed used other settings: {'; '.join(changes)}. Resume "
                             "with the same settings (only --iterations may grow, which extends the run), or start "
                             "another --out")


def distill(
    train_store: ClipStore,
    cfg: DistillConfig,
    run_dir: str | Path,
    *,
    resume: bool = False,
    overwrite: bool = False,
    device: str | torch.device = "cpu",
    progress: bool = False,
    on_iteration: Callable[[int, Parametrization], None] | None = None,
) -> DistillResult:
    """Run the method ``cfg.method`` on ``train_store`` and write its DistilledSet to ``run_dir``.

    A folder that already holds a run is refused unless ``resume`` or ``overwrite``; one process at a
    time writes a run folder (a lock file in it names the writer).

    Args:
        resume: continue from ``run_dir/checkpoint.safetensors`` (the settings must match; more
            iterations extend a finished run).
        overwrite: replace the run in ``run_dir``: the new run is made in a sibling folder and swapped in
            when it is complete, so the old one is kept until then. With ``resume`` too: resume when the
            settings match, replace when they do not.
        on_iteration: called after each completed iteration (1-based) - hooks, tests.
    """
    validate_config(cfg)
    run_dir = Path(run_dir)
    existing = describe_run(run_dir)
    if existing and not (resume or overwrite):
        raise RunFolderError(f"{run_dir} holds {existing}. Continue it with --resume, replace it with --force (the "
                             "old run is kept until the new one is complete), or choose another --out")
    resolved = {"distill": to_dict(cfg), "store": str(train_store.root), "fingerprint": train_store.fingerprint}
    config_path = run_dir / "config.yaml"
    replace_run = overwrite and existing is not None
    if resume and config_path.exists():
        try:
            _resume_allows(config_path, resolved)
            replace_run = False
        except RunFolderError:
            if not overwrite:
                raise
    # under torchrun every rank has read the folder before rank 0, the one writer, changes it
    distributed.barrier()
    with exclusive(run_dir, "run") if distributed.is_main() else contextlib.nullcontext():
        if not replace_run:
            return _run(train_store, cfg, run_dir, resolved, resume=resume, device=device, progress=progress,
                        on_iteration=on_iteration)
        fresh = run_dir.with_name(f".{run_dir.name}.new")
        if distributed.is_main():
            shutil.rmtree(fresh, ignore_errors=True)  # a replacement killed before its swap: start it again
        result = _run(train_store, cfg, fresh, resolved, resume=False, device=device, progress=progress,
                      on_iteration=on_iteration)
        if not distributed.is_main():
            return result
        old = run_dir.with_name(f".{run_dir.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(run_dir, old)  # the swap: the old run is gone only once the new one is complete
        os.replace(fresh, run_dir)
        shutil.rmtree(old, ignore_errors=True)
        result.run_dir = run_dir
        result.distilled.path = run_dir / "distilled.safetensors"
        return result


def _run(train_store: ClipStore, cfg: DistillConfig, run_dir: Path, resolved: dict[str, Any], *, resume: bool,
         device: str | torch.device, progress: bool,
         on_iteration: Callable[[int, Parametrization], None] | None) -> DistillResult:
    """The run in ``run_dir`` (locked by the caller): its config, then the method."""
    spec = get_method(cfg.method)
    if distributed.is_main():
        run_dir.mkdir(parents=True, exist_ok=True)
        with atomic_path(run_dir / "config.yaml") as tmp:
            tmp.write_text(yaml.safe_dump(resolved, sort_keys=False), encoding="utf-8")
    start = time.perf_counter()

    if spec.selector is not None or spec.builder is not None:
        if spec.builder is not None:
            distilled = _build(spec, cfg, train_store, torch.device(device), progress)
        else:
            distilled = _select(spec, cfg, train_store, torch.device(device))
        if distributed.is_main():  # selectors and builders are not split: every rank makes the same set
            distilled.save(run_dir / "distilled.safetensors")
        seconds = time.perf_counter() - start
        return DistillResult(distilled, run_dir, seconds, 0.0, 0)
    return _synthesize(spec, cfg, train_store, run_dir, start, resume=resume, device=torch.device(device),
                       progress=progress, on_iteration=on_iteration)


def _reduce_step(groups: list[dict[str, Any]], loss: torch.Tensor, *, mean: bool) -> torch.Tensor:
    """Under torchrun: every rank's gradients of the set (and the objective's tensors) summed, or averaged
    for replicas, so every rank takes the same optimizer step; returns the job's loss."""
    for group in groups:
        for p in group["params"]:
            if p.grad is None:  # untouched on this rank (another rank's classes): a zero share
                p.grad = torch.zeros_like(p)
            distributed.all_reduce_(p.grad, mean=mean)
    return distributed.all_reduce_(loss.detach().clone(), mean=mean)


def _steps_of(param: Parametrization, bad: list[str], step_option: dict[int, str]) -> str:
    """What to lower when the ``bad`` parameters (none: the loss) turned NaN: ``--lr`` for tensors on the run's
    step, ``--set OPTION`` for those in a group with its own (``Parametrization.param_groups``)."""
    tensors = dict(param.named_parameters())
    suspects = [tensors[n] for n in bad] or [t for t in tensors.values() if t.requires_grad]
    own = sorted({step_option[id(t)] for t in suspects if id(t) in step_option})
    default = not own or any(id(t) not in step_option for t in suspects)
    return " or ".join([*(["--lr"] if default else []), *(f"--set {o}" for o in own)])


def _synthesize(spec: MethodSpec, cfg: DistillConfig, train_store: ClipStore, run_dir: Path, start: float, *,
                resume: bool, device: torch.device, progress: bool,
                on_iteration: Callable[[int, Parametrization], None] | None) -> DistillResult:
    """A parametrization optimised under an objective: the iterations, checkpoints, guards and snapshots."""

    generator = make_generator(cfg.seed)
    train_store = resident(train_store, device)  # on a GPU the clips are gathered there, not copied per batch
    if spec.frames:
        # image distillation (static memory): one random frame of each clip per draw, from the run's
        # generator so that a resumed run draws the same frames; the set is stills of clip shape (1, H, W)
        train_store = FrameStore(train_store, generator)
    param_cls = PARAMETRIZATIONS.get(spec.parametrization)
    param_options = component_options(param_cls, cfg.parametrization, f"parametrization {spec.parametrization}")
    param: Parametrization = param_cls(train_store, cfg.ipc, generator, init=cfg.init, options=param_options).to(device)
    objective = make_objective(OBJECTIVES.get(spec.objective), train_store, cfg, device)
    if spec.frames and distributed.world_size() > 1:  # each rank would draw frames for other clips
        raise ConfigError(f"method {spec.name!r} distils still frames, which runs in one process: start it without "
                          "torchrun")
    objective.set_shard(distributed.rank(), distributed.world_size())
    writes = distributed.is_main()  # under torchrun rank 0 alone writes checkpoints, metrics and the set
    world = distributed.world_size()
    # parametrizations and objectives may carry their own learnable tensors with their own
    # lr/momentum (learned labels, MTT's student lr): ``param_groups()`` -> optimizer groups
    extra_groups = [g for part in (param, objective) for g in part.param_groups()]
    # the option that sets a tensor's step (a group's "option"), named when that tensor turns NaN
    options = [g.pop("option", None) for g in extra_groups]
    step_option = {id(p): o for g, o in zip(extra_groups, options, strict=True) if o for p in g["params"]}
    # a tensor in its own group (a parametrization's learned labels) leaves the default group
    claimed = {id(p) for g in extra_groups for p in g["params"]}
    # frozen tensors (requires_grad False, e.g. a hallucinator kept at its initialisation) join no group
    groups = [{"params": [p for p in param.parameters() if id(p) not in claimed and p.requires_grad]}, *extra_groups]
    if cfg.iterations > 0 and not any(g["params"] for g in groups):
        raise ConfigError(f"method {spec.name!r}: the parametrization has nothing to learn with these options "
                          f"{dict(cfg.parametrization)}; run it with iterations: 0 (it is exported as initialised)")
    optimizer = SET_OPTIMIZERS[cfg.optimizer](groups, cfg)
    guard = DistillGuard(train_store, cfg.iterations, cfg.guard_range)
    low, high = data_range(train_store)
    ckpt_path = run_dir / "checkpoint.safetensors"
    metrics_path = run_dir / "metrics.jsonl"
    first = 0
    if resume and ckpt_path.exists():
        state = load_state(ckpt_path)
        param.load_state_dict(state["param"])
        optimizer.load_state_dict(state["optimizer"])
        generator.set_state(state["generator"])
        objective.load_state_dict(state["objective"])
        guard.load_state_dict(state.get("guard", {}))
        first = int(state["iteration"])
        if writes:
            _truncate_metrics(metrics_path, first)
    elif metrics_path.exists() and writes:
        metrics_path.unlink()
    # rank 0 may write the checkpoint of iteration 0 only once every rank has read the one it resumes from
    distributed.barrier()

    def checkpoint(iteration: int) -> None:
        state = {
            "iteration": iteration,
            "param": param.state_dict(),
            "optimizer": optimizer.state_dict(),
            "generator": generator.get_state(),
            "objective": objective.state_dict(),
            "guard": guard.state_dict(),
        }
        if writes:
            save_state(ckpt_path, state)

    def export(seconds_per_iteration: float) -> DistilledSet:
        # what the objective learned alongside the set (MTT's student lr, how to fit the labels) and what
        # the set's kind needs (the parametrization's layout) travel in the manifest
        exported: ObjectiveExport = objective.export(param)
        manifest = _manifest(spec, cfg, train_store, param.kind, layout=param.layout(),
                             info={"seconds_per_iteration": seconds_per_iteration, **exported.info},
                             learned_lr=None if exported.learned_lr is None else float(exported.learned_lr),
                             label_loss=exported.label_loss, warnings=[*guard.lines(), *exported.warnings],
                             eval_augment=exported.eval_augment)
        labels = exported.labels if exported.labels is not None else param.labels()
        return DistilledSet(tensors=param.stored_tensors(), labels=labels.detach().cpu(), manifest=manifest)

    def snapshot(iteration: int) -> None:
        if iteration in cfg.snapshots and writes:
            export(0.0).save(run_dir / "snapshots" / f"iter-{iteration:06d}.safetensors")

    if first == 0 and cfg.iterations > 0:
        checkpoint(0)
        snapshot(0)
    last_good = first
    loop_start = time.perf_counter()
    bar = tqdm(range(first, cfg.iterations), desc=f"distill {spec.name}", disable=not progress,
               initial=first, total=cfg.iterations)
    for it in bar:
        out = objective.loss(param, generator)
        loss, metrics = out.loss, out.metrics
        penalty = param.penalty()  # the parametrization's own term (e.g. a diversity loss)
        if penalty is not None:
            # every rank computes the whole penalty: a 1/world share of it each, when the gradients are summed
            loss = loss + (penalty / world if objective.shard == "classes" else penalty)
            metrics = {**metrics, "penalty": float(penalty.detach())}
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if world > 1:
            loss = _reduce_step(groups, loss, mean=objective.shard == "replicas")
            metrics = {**metrics, "loss": float(loss)}
        optimizer.step()
        if cfg.clamp_pixels:
            param.clamp_(low, high)
        bad = param.nonfinite()
        if bad or not torch.isfinite(loss):
            what = f"parameters {bad}" if bad else "the loss"
            raise NonFiniteError(
                f"iteration {it + 1}: NaN/Inf in {what} of the synthetic set; stopped. The last good checkpoint "
                f"(iteration {last_good}) is kept at {ckpt_path}; lower {_steps_of(param, bad, step_option)} "
                "and resume or restart."
            )
        done = it + 1
        guard.step(float(loss.detach()))
        if done % cfg.log_every == 0 or done == cfg.iterations:
            raised = guard.check(done, param, objective, final=done == cfg.iterations)
            if writes:
                _append_jsonl(metrics_path, [{"iteration": done, **metrics, "seconds": time.perf_counter() - start,
                                              **({"warnings": [w.code for w in raised]} if raised else {})}])
            bar.set_postfix(loss=f"{metrics.get('loss', float('nan')):.4g}", refresh=False)
        if done % cfg.checkpoint_every == 0 or done == cfg.iterations:
            checkpoint(done)
            last_good = done
        snapshot(done)
        if on_iteration is not None:
            on_iteration(done, param)
    steps = cfg.iterations - first
    per_iter = (time.perf_counter() - loop_start) / steps if steps else 0.0
    distilled = export(per_iter)
    if writes:
        distilled.save(run_dir / "distilled.safetensors")
    return DistillResult(distilled, run_dir, time.perf_counter() - start, per_iter, first)
