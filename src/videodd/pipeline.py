"""distill -> evaluate for a list of methods on one benchmark: shared by the demo and benchmarks."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from videodd.data.store import ClipStore
from videodd.distill import DistillResult, distill, resolve_config
from videodd.evaluate import REFERENCES, EvalProtocol, EvalReport, evaluate
from videodd.report import TableRow, rows_from_report


@dataclass
class MethodRun:
    """One method's distillation and its evaluation."""

    distill: DistillResult
    report: EvalReport


def run_methods(
    train: ClipStore,
    test: ClipStore,
    methods: list[tuple[str, dict[str, Any]]],
    protocol: EvalProtocol,
    out: Path,
    *,
    references: tuple[str, ...] = REFERENCES,
    device: str | torch.device = "cpu",
    progress: bool = False,
    say: Callable[[str], None] = lambda _msg: None,
) -> tuple[list[MethodRun], list[TableRow]]:
    """Distil and evaluate each ``(method, config overrides)``; references are computed once.

    Returns the runs and the table rows (methods first, then the references).
    """
    runs: list[MethodRun] = []
    method_rows: list[TableRow] = []
    reference_rows: dict[str, TableRow] = {}
    for method, overrides in methods:
        cfg = resolve_config(method, overrides)
        name = f"{method}-ipc{cfg.ipc}"
        say(f"distill {method} IPC {cfg.ipc}")
        # a finished run with the same settings is reused (the demo can run again); other settings replace it
        result = distill(train, cfg, out / "runs" / name, resume=True, overwrite=True, device=device,
                         progress=progress)
        if result.seconds_per_iteration:
            say(f"    {cfg.iterations} iterations in {result.seconds:.0f} s "
                f"({result.seconds_per_iteration:.2f} s/iteration)")
        say(f"    evaluate {method}: {protocol.runs} runs, {protocol.train.epochs} epochs each")
        report = evaluate(result.distilled, test, protocol, train_store=train, references=references,
                          device=device, progress=progress, cache_dir=out / "references")
        report.save(result.run_dir / "report.json")
        runs.append(MethodRun(result, report))
        rows = rows_from_report(report, distill_seconds=result.seconds)
        own = 1 + len(report.augmented)  # the method's rows: the protocol's, then with its own augmentation
        method_rows += rows[:own]
        for row in rows[own:]:
            reference_rows.setdefault(f"{row.name}/{row.ipc}", row)
    # the references by the bytes they keep (the full training set last), whichever method brought them
    ordered = sorted(reference_rows.values(), key=lambda r: (r.storage_bytes is None, r.storage_bytes or 0))
    return runs, method_rows + ordered
