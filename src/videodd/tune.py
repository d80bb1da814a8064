"""Choosing a method's settings on a validation split carved from the training store (``--tune``).

``distill_tuned(train, cfg, run_dir, tune)`` does what a careful user would do by hand:

1. **Carve the split.** Each class's training clips are shuffled with ``tune.seed``, and a share
   ``val_fraction`` of them is held out for validation (at least one clip per class on each side). The
   two parts are written to ``RUN/tune/fit`` and ``RUN/tune/val``, with the training store's
   normalization, and ``RUN/tune/split.json`` records which clips went where. The test split is never
   read.
2. **Retrain on the fit part what was trained on the training store.** MTT's experts
   (``objective.experts``) and a feature teacher (``selector.checkpoint``) are trained again, with their
   own recorded settings. Otherwise they would have seen the validation clips.
3. **Run every candidate.** Each combination of ``tune.grid`` values is distilled on the fit part with
   ``tune.iterations`` (the proxy budget; default: the run's own), then trained and tested on the
   validation part under the proxy protocol.
4. **Choose.** The best validation mean wins; on a tie, the first candidate in grid order. A candidate
   whose set turns NaN/Inf is recorded as diverged (with the iteration) and not chosen; the tuning stops
   with an error only when every candidate diverges.
5. **Run the chosen settings** on the whole training store, into ``RUN``.

The table of every candidate goes into ``RUN/tune/tune.json`` and ``tune.md``, and into the set's
manifest (``info["tuning"]``), which evaluation reports show. Everything resumes: finished candidates
are kept, an interrupted candidate continues from its checkpoint, and so does the final run.
"""

from __future__ import annotations

import itertools
import json
import shutil
import warnings
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from videodd.config import ConfigError, from_dict, merge, to_dict
from videodd.data.store import ClipStore, write_store
from videodd.distill import (
    COMPONENTS,
    DistillConfig,
    DistillResult,
    RunFolderError,
    describe_run,
    distill,
    resolve_config,
)
from videodd.errors import NonFiniteError, VideoddWarning
from videodd.evaluate import evaluate, get_protocol
from videodd.io import write_json
from videodd.seeding import make_generator, numpy_rng
from videodd.teachers.base import read_manifest
from videodd.teachers.classifier import ClassifierConfig, train_and_save
from videodd.teachers.experts import ExpertBuffer, ExpertConfig, train_experts


@dataclass(frozen=True)
class TuneConfig:
    """How ``--tune`` chooses settings (a recipe's ``tune:`` mapping; CLI ``--tune KEY=V1,V2`` and ``--tune-*``).

    Attributes:
        grid: candidate values by config key, e.g. ``{"lr": [1, 10, 100]}``; a dotted key reaches a
            component option (``objective.syn_steps``). Every combination is a candidate.
        val_fraction: share of each class's training clips held out for validation.
        iterations: distillation iterations of each candidate; None: the run's own.
        epochs: training epochs of the proxy evaluation; None: the protocol's.
        runs: evaluation runs per candidate.
        protocol: the evaluation protocol of the proxy (its model is the evaluation model).
        seed: seeds the split.
    """

    grid: dict[str, list[Any]] = field(default_factory=dict)
    val_fraction: float = 0.2
    iterations: int | None = None
    epochs: int | None = 100
    runs: int = 2
    protocol: str = "cpu"
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0 < self.val_fraction < 1:
            raise ValueError(f"val_fraction must be in (0, 1), got {self.val_fraction}")
        if self.runs < 1 or (self.iterations is not None and self.iterations < 0) or \
                (self.epochs is not None and self.epochs < 1):
            raise ValueError("runs >= 1, iterations >= 0 and epochs >= 1 are required")
        empty = [k for k, v in self.grid.items() if not isinstance(v, list) or not v]
        if empty:
            raise ValueError(f"grid: every key needs a non-empty list of values, not {empty}")
        get_protocol(self.protocol)

    def candidates(self) -> list[dict[str, Any]]:
        """Every combination of the grid's values, in grid order (the first key varies slowest)."""
        keys = list(self.grid)
        return [dict(zip(keys, values, strict=True)) for values in itertools.product(*self.grid.values())]


@dataclass
class TuneResult:
    """What tuning found: a row per candidate, and the chosen one."""

    rows: list[dict[str, Any]]
    chosen: dict[str, Any]
    split: dict[str, int]


def _nested(changes: dict[str, Any]) -> dict[str, Any]:
    """``{"objective.syn_steps": 5, "lr": 1}`` -> ``{"objective": {"syn_steps": 5}, "lr": 1}``."""
    out: dict[str, Any] = {}
    for key, value in changes.items():
        part, dot, leaf = key.partition(".")
        if dot and part not in COMPONENTS:
            raise ConfigError(f"tune: {key!r}: a dotted key must start with one of {list(COMPONENTS)}")
        out = merge(out, {part: {leaf: value}} if dot else {key: value})
    return out


def with_changes(cfg: DistillConfig, changes: dict[str, Any]) -> DistillConfig:
    """``cfg`` with ``changes`` (dotted keys reach component options), validated."""
    return resolve_config(cfg.method, merge(to_dict(cfg), _nested(changes)))


def carve_split(store: ClipStore, out: Path, val_fraction: float, seed: int) -> tuple[ClipStore, ClipStore]:
    """``(fit, val)`` stores in ``out``: per class, a shuffled ``val_fraction`` of the clips (>= 1) is held
    out; both keep ``store``'s normalization. An existing split of the same store and settings is reused."""
    record = {"store": str(store.root), "fingerprint": store.fingerprint, "val_fraction": val_fraction, "seed": seed}
    split_path = out / "split.json"
    if split_path.is_file() and (out / "fit" / "meta.json").is_file() and (out / "val" / "meta.json").is_file():
        saved = json.loads(split_path.read_text())
        if {k: saved.get(k) for k in record} == record:
            return ClipStore(out / "fit"), ClipStore(out / "val")
    rng = numpy_rng(make_generator(seed))
    fit_idx, val_idx = [], []
    for c in range(store.num_classes):
        members = store.class_indices(c)
        if len(members) < 2:
            raise ConfigError(f"{store.root}: class {store.classes[c]!r} has {len(members)} clip(s); tuning needs "
                              "at least 2 per class (one to fit, one to validate)")
        members = members[rng.permutation(len(members))]
        n_val = min(len(members) - 1, max(1, round(val_fraction * len(members))))
        val_idx.append(np.sort(members[:n_val]))
        fit_idx.append(np.sort(members[n_val:]))
    stores = []
    for name, parts in (("fit", fit_idx), ("val", val_idx)):
        idx = np.concatenate(parts)
        stores.append(write_store(out / name, store.clips[idx], store.labels[idx], dataset=store.meta.dataset,
                                  split=f"tune-{name}", classes=list(store.classes), spec=store.spec,
                                  mean=list(store.meta.mean), std=list(store.meta.std),
                                  source_ids=[store.source_id(int(i)) for i in idx]))
    write_json(split_path, {**record, "fit": np.concatenate(fit_idx).tolist(), "val": np.concatenate(val_idx).tolist()})
    return stores[0], stores[1]


def refit_teachers(cfg: DistillConfig, fit: ClipStore, out: Path, *, device: str | torch.device = "cpu"
                   ) -> dict[str, Any]:
    """Option changes that point ``cfg``'s teachers (trained on the training store) at teachers trained the
    same way on the fit part: MTT's experts and a feature teacher file."""
    changes: dict[str, Any] = {}
    experts = cfg.objective.get("experts")
    if experts:
        m = ExpertBuffer(experts).manifest
        expert_cfg = from_dict(ExpertConfig, {**m["config"], "num_experts": m["num_experts"]})
        train_experts(fit, out / "experts", expert_cfg, seed=int(m["seed"]), resume=True, device=device)
        changes["objective.experts"] = str(out / "experts")
    checkpoint = cfg.selector.get("checkpoint")
    if checkpoint:
        m = read_manifest(checkpoint)
        if m is None:
            raise ConfigError(f"tune: {checkpoint} is a plain state_dict, not a `videodd teacher` file: it cannot be "
                              "trained again on the tuning split (it has seen the validation clips)")
        path = out / "teacher.safetensors"
        if not path.is_file():
            train_and_save(fit, path, from_dict(ClassifierConfig, m["config"]), seed=int(m["seed"]), device=device)
        changes["selector.checkpoint"] = str(path)
    statics = cfg.parametrization.get("statics")
    if statics not in (None, "init"):
        raise ConfigError("tune: parametrization.statics is a stage-1 set distilled on the whole training store (it "
                          "has seen the validation clips); tune stage 2 with statics=init")
    return changes


def distill_tuned(train: ClipStore, cfg: DistillConfig, run_dir: str | Path, tune: TuneConfig, *,
                  resume: bool = False, overwrite: bool = False, device: str | torch.device = "cpu",
                  progress: bool = False) -> tuple[DistillResult, TuneResult]:
    """Tune ``cfg`` on a validation split of ``train`` (see the module docstring), then distil the chosen
    settings on all of ``train`` into ``run_dir`` (``resume`` and ``overwrite`` as :func:`distill`)."""
    run_dir = Path(run_dir)
    existing = describe_run(run_dir)
    if existing and not (resume or overwrite):  # refuse before any candidate runs
        raise RunFolderError(f"{run_dir} holds {existing}. Continue it with --resume, replace it with --force, or "
                             "choose another --out")
    work = run_dir / "tune"
    if not resume and work.exists():
        shutil.rmtree(work)  # a tuning that is not resumed starts again
    candidates = tune.candidates()
    for changes in candidates:  # every candidate must be a valid config before anything runs
        with_changes(cfg, changes)
    fit, val = carve_split(train, work, tune.val_fraction, tune.seed)
    teachers = refit_teachers(cfg, fit, work, device=device)
    protocol = get_protocol(tune.protocol).with_runs(tune.runs)
    if tune.epochs is not None:
        protocol = protocol.with_epochs(tune.epochs)
    table_path = work / "tune.json"
    done: dict[str, dict[str, Any]] = {}
    if resume and table_path.is_file():
        done = {row["key"]: row for row in json.loads(table_path.read_text())["rows"]}
    rows = []
    for i, changes in enumerate(candidates):
        key = ", ".join(f"{k}={v}" for k, v in changes.items())
        if key in done:
            rows.append(done[key])
            continue
        proxy = {**changes, **teachers}
        if tune.iterations is not None and "iterations" not in changes:
            proxy["iterations"] = tune.iterations
        cand_cfg = with_changes(cfg, proxy)
        cand_dir = work / f"candidate-{i:03d}"
        try:
            result = distill(fit, replace(cand_cfg, snapshots=()), cand_dir, resume=resume and cand_dir.exists(),
                             device=device, progress=progress)
        except NonFiniteError as err:  # a step too large for this data: a finding of the search, not its end
            rows.append({"key": key, "changes": changes, "iterations": cand_cfg.iterations, "val_top1_mean": None,
                         "val_top1_std": None, "val_top1_runs": [], "collapsed": 0, "warnings": [],
                         "diverged": str(err).split(";")[0], "distill_seconds": None, "eval_seconds": None})
            _write_table(work, tune, protocol.name, rows, fit, val)
            continue
        report = evaluate(result.distilled, val, protocol, device=device, progress=progress)
        rows.append({"key": key, "changes": changes, "iterations": cand_cfg.iterations,
                     "val_top1_mean": report.result.top1_mean, "val_top1_std": report.result.top1_std,
                     "val_top1_runs": [r.top1 for r in report.result.runs], "collapsed": report.result.collapsed,
                     "warnings": result.distilled.manifest.warnings, "distill_seconds": result.seconds,
                     "eval_seconds": report.wall_seconds})
        _write_table(work, tune, protocol.name, rows, fit, val)
    finite = [j for j, row in enumerate(rows) if not row.get("diverged")]
    if not finite:  # the table of every diverged candidate is already written
        raise NonFiniteError(f"tune: every candidate diverged ({'; '.join(r['key'] for r in rows)}); see "
                             f"{work / 'tune.md'}, and try smaller values")
    best = max(finite, key=lambda j: (rows[j]["val_top1_mean"], -j))
    chosen = rows[best]
    chance = 1.0 / train.num_classes
    if chosen["val_top1_mean"] <= chance + chosen["val_top1_std"] + 1e-6:  # nothing told apart from guessing
        warnings.warn(f"tune: the best candidate ({chosen['key']}) scores {100 * chosen['val_top1_mean']:.1f} ± "
                      f"{100 * chosen['val_top1_std']:.1f} % on validation, within its spread of chance "
                      f"({100 * chance:.1f} %): the choice is noise. A larger --val-fraction, more --tune-iterations "
                      f"or a higher IPC may tell the candidates apart; see {work / 'tune.md'}",
                      VideoddWarning, stacklevel=2)
    split = {"fit_clips": len(fit), "val_clips": len(val)}
    _write_table(work, tune, protocol.name, rows, fit, val, chosen=chosen)
    final_cfg = with_changes(cfg, chosen["changes"])
    result = distill(train, final_cfg, run_dir, resume=resume, overwrite=overwrite, device=device,
                     progress=progress)
    tuning = {"config": asdict(tune), "protocol": protocol.name, "split": split, "rows": rows,
              "chosen": chosen["key"]}
    dset = result.distilled
    dset.manifest.info = {**dset.manifest.info, "tuning": tuning}
    dset.save(run_dir / "distilled.safetensors")
    return result, TuneResult(rows=rows, chosen=chosen, split=split)


def tuning_table(rows: list[dict[str, Any]], chosen: str | None = None) -> str:
    """A markdown table of the candidates (validation top-1 mean ± std, %)."""
    lines = ["| candidate | iterations | validation top-1 (%) | distill time | warnings |", "|---|---|---|---|---|"]
    for row in rows:
        mark = " **(chosen)**" if row["key"] == chosen else ""
        if row.get("diverged"):
            lines.append(f"| {row['key'] or '(as given)'} | {row['iterations']} | diverged: {row['diverged']} "
                         "| - | - |")
            continue
        collapsed = f" ({row['collapsed']} collapsed)" if row.get("collapsed") else ""
        lines.append(f"| {row['key'] or '(as given)'}{mark} | {row['iterations']} | "
                     f"{100 * row['val_top1_mean']:.1f} ± {100 * row['val_top1_std']:.1f}{collapsed} | "
                     f"{row['distill_seconds']:.0f} s | {len(row['warnings'])} |")
    return "\n".join(lines)


def _write_table(work: Path, tune: TuneConfig, protocol: str, rows: list[dict[str, Any]], fit: ClipStore,
                 val: ClipStore, chosen: dict[str, Any] | None = None) -> None:
    write_json(work / "tune.json", {"config": asdict(tune), "protocol": protocol, "fit_clips": len(fit),
                                    "val_clips": len(val), "rows": rows,
                                    "chosen": None if chosen is None else chosen["key"]})
    (work / "tune.md").write_text(tuning_table(rows, None if chosen is None else chosen["key"]) + "\n",
                                  encoding="utf-8")
