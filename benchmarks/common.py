"""Fixtures shared by the benchmark scripts (``benchmarks/tables/``, ``benchmarks/tuning/``).

The scripts run from the repository root as modules (``python -m benchmarks.tables.methods_synth``)
and import what they share from here: the synth-actions validation split, the DM recipe of the
first measurements, the shipped synth-actions recipes, and the helpers that every results
file uses (resuming, the machine description, the protocol arguments).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import threading
import time
from pathlib import Path
from typing import Any

import torch
import yaml

from videodd.config import load_yaml
from videodd.data.store import ClipStore, write_store
from videodd.data.synth_motion import SynthMotionConfig, generate_synth_motion, synth_motion_stores
from videodd.data.synthetic import SynthActionsConfig, generate_synth_actions, synth_actions_stores
from videodd.evaluate import EvalReport
from videodd.teachers.experts import ExpertConfig

__all__ = [
    "BENCHMARKS",
    "DM_RANDOM_INIT",
    "RECIPES",
    "SYNTH_ACTIONS",
    "SYNTH_EXPERTS",
    "add_protocol_args",
    "apply_sets",
    "benchmark_stores",
    "load_results",
    "machine_info",
    "references_summary",
    "set_dotted",
    "shipped_recipe",
    "validation_store",
]

#: this folder, and the synth-actions recipes the benchmarks run as shipped
BENCHMARKS = Path(__file__).resolve().parent
RECIPES = BENCHMARKS.parent / "configs" / "synth-actions"

#: what the results files of the synth-actions benchmarks name as their benchmark (the default generator)
SYNTH_ACTIONS = "synth-actions (10 classes, 8x32x32)"

# DM from random real clips, lr chosen on a validation split (benchmarks/tuning/tune_dm_synth.py): the
# recipe of the first measurements, kept as the default of the benchmarks that reproduce them
DM_RANDOM_INIT = {"iterations": 200, "batch_real": 64, "lr": 100.0, "momentum": 0.5, "model": "convnet3d-s"}


# the expert buffer the synth-actions MTT recipes are written for (see configs/synth-actions/mtt-ipc1.yaml)
# (trained without the published flips, renormalization and z-score, as every synth-actions figure was measured)
SYNTH_EXPERTS = ExpertConfig(model="convnet3d-s", epochs=6, lr=0.05, batch_size=64, num_experts=5,
                             save_epochs_up_to=5, flip=0.0, zscore=False, renormalize=None)


def benchmark_stores(name: str, work: Path) -> tuple[ClipStore, ClipStore, ClipStore]:
    """``(train, test, validation)`` of an embedded benchmark at its default size, in ``WORK/data``.

    The validation clips are the test split of the same generator with seed 1: never the test clips.
    """
    if name == "synth-actions":
        train, test = synth_actions_stores(work / "data", SynthActionsConfig())
        return train, test, validation_store(work, train)
    if name == "synth-motion":
        train, test = synth_motion_stores(work / "data", SynthMotionConfig())
        val = work / "val"
        if not (val / "meta.json").exists():
            clips, labels, _ = generate_synth_motion(SynthMotionConfig(seed=1), "test")
            write_store(val, clips, labels, dataset="synth-motion", split="val", classes=train.classes,
                        spec=train.spec, mean=train.meta.mean, std=train.meta.std)
        return train, test, ClipStore(val)
    raise SystemExit(f"unknown benchmark {name!r}; valid: synth-actions, synth-motion")


def validation_store(work: Path, train: ClipStore) -> ClipStore:
    """The validation clips in ``WORK/val`` (written on first use, normalised with train's stats)."""
    if (work / "val" / "meta.json").exists():
        return ClipStore(work / "val")
    clips = generate_synth_actions(SynthActionsConfig(seed=1), "test")
    return write_store(work / "val", clips.clips, clips.labels, dataset="synth-actions", split="val",
                       classes=clips.classes, spec=train.spec, mean=train.meta.mean, std=train.meta.std)


def set_dotted(cfg: dict[str, Any], key: str, value: Any) -> None:
    """``cfg["a"]["b"] = value`` for ``key == "a.b"``; the value is parsed as YAML (numbers, lists)."""
    *parents, leaf = key.split(".")
    for p in parents:
        cfg = cfg.setdefault(p, {})
    cfg[leaf] = yaml.safe_load(value) if isinstance(value, str) else value


def apply_sets(cfg: dict[str, Any], method: str, sets: list[str]) -> dict[str, Any]:
    """Apply the ``METHOD:KEY=VALUE`` items of ``sets`` that name ``method`` to ``cfg`` (in place; returned)."""
    for item in sets:
        target, sep, assignment = item.partition(":")
        key, eq, value = assignment.partition("=")
        if not (sep and eq and key):
            raise ValueError(f"--set {item!r}: expected METHOD:KEY=VALUE, e.g. dm:iterations=1000")
        if target == method:
            set_dotted(cfg, key, value)
    return cfg


def shipped_recipe(method: str, ipc: int) -> dict[str, Any]:
    """The overrides of ``configs/synth-actions/METHOD-ipcK.yaml`` at ``ipc`` (the method's defaults,
    i.e. ``{"ipc": ipc}``, when there is no such recipe)."""
    path = RECIPES / f"{method}-ipc{ipc}.yaml"
    cfg: dict[str, Any] = load_yaml(str(path)) if path.exists() else {}
    cfg.pop("method", None)
    cfg["ipc"] = ipc
    return cfg


def load_results(out: Path, **header: Any) -> dict[str, Any]:
    """The results already in ``out`` (empty when it is not there yet), so that a benchmark resumes; with a
    ``header`` (what the run is), updated with it and :func:`machine_info`."""
    results = json.loads(out.read_text()) if out.exists() else {}
    if header:
        results.update({**header, **machine_info()})
    return results


def machine_info() -> dict[str, str]:
    """The ``machine`` and ``torch`` entries a results file records."""
    cpu = " ".join(x for x in (platform.machine(), platform.processor()) if x)
    return {"machine": f"{cpu}, {torch.get_num_threads()} threads", "torch": torch.__version__}


def references_summary(report: EvalReport) -> dict[str, Any]:
    """Each reference of ``report``: mean, std and every run's top-1."""
    return {name: {"top1_mean": s.top1_mean, "top1_std": s.top1_std, "top1_runs": [r.top1 for r in s.runs]}
            for name, s in report.references.items()}


def add_protocol_args(parser: argparse.ArgumentParser, protocol: str = "default", runs: int = 3) -> None:
    """``--protocol`` (an evaluation protocol's name) and ``--runs`` (evaluation runs)."""
    parser.add_argument("--protocol", default=protocol)
    parser.add_argument("--runs", type=int, default=runs)


_PAGE = os.sysconf("SC_PAGE_SIZE")


def rss() -> int:
    """Current resident set size in bytes."""
    with open("/proc/self/statm", encoding="ascii") as fh:
        return int(fh.read().split()[1]) * _PAGE


class PeakRSS:
    """Polls the resident set size in a thread until ``stop()``, which returns the peak seen."""

    def __init__(self, interval: float = 2e-4) -> None:
        self.peak = rss()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(interval,), daemon=True)
        self._thread.start()

    def _run(self, interval: float) -> None:
        while not self._done.is_set():
            self.peak = max(self.peak, rss())
            time.sleep(interval)

    def stop(self) -> int:
        self._done.set()
        self._thread.join()
        return max(self.peak, rss())
