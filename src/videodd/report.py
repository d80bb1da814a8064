"""Result tables: markdown for people, JSON for machines."""

from __future__ import annotations

from dataclasses import dataclass

from videodd.distilled import human_bytes
from videodd.evaluate import EvalReport, Summary


@dataclass
class TableRow:
    """One line of a results table."""

    name: str
    ipc: int | str
    summary: Summary
    storage_bytes: int | None = None
    compression: float | None = None
    distill_seconds: float | None = None
    eval_seconds: float | None = None


def rows_from_report(report: EvalReport, distill_seconds: float | None = None) -> list[TableRow]:
    """The method's row followed by its references' rows."""
    rows = [
        TableRow(report.method, report.ipc, report.result, report.storage_bytes, report.compression_ratio,
                 distill_seconds, report.wall_seconds)
    ]
    for name, summary in report.references.items():
        rows.append(TableRow(name, "all" if name.startswith("full") else report.ipc, summary))
    return rows


def markdown_table(rows: list[TableRow]) -> str:
    """A markdown table: accuracy mean ± std (%) over runs, top-5, storage and times."""
    out = [
        "| method | IPC | top-1 (%) | top-5 (%) | runs | storage | compression | distill time | eval time |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        s = r.summary
        out.append(
            f"| {r.name} | {r.ipc} | {s.fmt()} | "
            f"{100 * s.top5_mean:.1f} ± {100 * s.top5_std:.1f} | {len(s.runs)} | "
            f"{human_bytes(r.storage_bytes) if r.storage_bytes is not None else '-'} | "
            f"{f'x{r.compression:,.0f}' if r.compression is not None else '-'} | "
            f"{f'{r.distill_seconds:.0f} s' if r.distill_seconds is not None else '-'} | "
            f"{f'{r.eval_seconds:.0f} s' if r.eval_seconds is not None else '-'} |"
        )
    return "\n".join(out)
