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
    all_in_bytes: int | None = None  # storage plus what using the set needs outside it (a decoder)


def rows_from_report(report: EvalReport, distill_seconds: float | None = None) -> list[TableRow]:
    """The method's row (and its row with its own evaluation augmentation, if any; and its test-selected row,
    named ``METHOD [test-selected, as published: optimistic: SNAPSHOT]``, when the report has one) followed by
    its references' rows. :func:`method_rows` says how many rows are the method's.

    A set whose kind reports an equivalent IPC (a latent set: its latent bytes over one IPC of
    float32 pixels) shows it in the IPC cell, e.g. ``12 (= 0.98 px)``.
    """
    detail = report.storage_detail
    ipc: int | str = report.ipc
    if detail.get("equivalent_ipc") is not None:
        ipc = f"{report.ipc} (= {detail['equivalent_ipc']:.2g} px)"
    rows = [
        TableRow(report.method, ipc, report.result, report.storage_bytes, report.compression_ratio,
                 distill_seconds, report.wall_seconds, all_in_bytes=report.all_in_bytes)
    ]
    for name, summary in report.augmented.items():  # the method's own evaluation augmentation (its second row)
        rows.append(TableRow(name, ipc, summary, report.storage_bytes, report.compression_ratio,
                             all_in_bytes=report.all_in_bytes))
    selected = report.test_selected_summary
    if selected is not None:  # chosen on test: its own row, labelled, never in place of the method's
        rows.append(TableRow(report.test_selected_name, ipc, selected, report.storage_bytes, report.compression_ratio,
                             all_in_bytes=report.all_in_bytes))
    for name, summary in report.references.items():
        ref_ipc: int | str = summary.info.get("ipc", report.ipc)
        if name.startswith("full"):
            ref_ipc = "all"
        elif name.endswith("(same storage)") and report.equal_storage_ipc is not None:
            ref_ipc = report.equal_storage_ipc
        if "crf" in summary.info:  # H.264: each run's CRF
            crfs = summary.info["crf"]
            ref_ipc = f"{ref_ipc} (crf {min(crfs)}-{max(crfs)})" if min(crfs) != max(crfs) else \
                f"{ref_ipc} (crf {crfs[0]})"
        stored = summary.info.get("bytes")
        if isinstance(stored, list):
            stored = round(sum(stored) / len(stored))
        compression = report.full_train_bytes / stored if stored else None
        rows.append(TableRow(name, ref_ipc, summary, stored, compression, all_in_bytes=stored))
    return rows


def method_rows(report: EvalReport) -> int:
    """How many of :func:`rows_from_report`'s rows are the method's own (the rest are references)."""
    return 1 + len(report.augmented) + (report.test_selected is not None)


def markdown_table(rows: list[TableRow]) -> str:
    """A markdown table: accuracy mean ± std (%) over runs, top-5, storage (stored, and all-in: with what using
    the set needs outside it, e.g. a latent set's decoder) and times."""
    out = [
        "| method | IPC | top-1 (%) | top-5 (%) | runs | storage | all-in | compression | distill time | eval time |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        s = r.summary
        out.append(
            f"| {r.name} | {r.ipc} | {s.fmt()} | "
            f"{100 * s.top5_mean:.1f} ± {100 * s.top5_std:.1f} | {len(s.runs)} | "
            f"{human_bytes(r.storage_bytes) if r.storage_bytes is not None else '-'} | "
            f"{human_bytes(r.all_in_bytes) if r.all_in_bytes is not None else '-'} | "
            f"{f'x{r.compression:,.0f}' if r.compression is not None else '-'} | "
            f"{f'{r.distill_seconds:.0f} s' if r.distill_seconds is not None else '-'} | "
            f"{f'{r.eval_seconds:.0f} s' if r.eval_seconds is not None else '-'} |"
        )
    return "\n".join(out)


def cross_arch_table(reports: list[EvalReport]) -> str:
    """One markdown table for a distilled set evaluated on several models (``reports`` in order):
    rows = models; columns = top-1 mean ± std (%), top-5, runs, the top-1 of each reference the
    reports carry (the same references trained on that model), and wall time (of the whole
    evaluation of that model, references included unless they came from the cache).

    If the reports are of different sets (method or IPC), each row names its set too.
    """
    refs = list(dict.fromkeys(name for r in reports for name in r.references))
    mixed = len({(r.method, r.ipc) for r in reports}) > 1
    head = ["model", "top-1 (%)", "top-5 (%)", "runs", *[f"{name} top-1 (%)" for name in refs], "wall time"]
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in reports:
        s = r.result
        name = f"{r.model} ({r.method}, IPC {r.ipc})" if mixed else r.model
        cells = [name, s.fmt(), f"{100 * s.top5_mean:.1f} ± {100 * s.top5_std:.1f}", str(len(s.runs))]
        cells += [r.references[n].fmt() if n in r.references else "-" for n in refs]
        cells.append(f"{r.wall_seconds:.0f} s")
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out)


def paired_verdict(a: Summary, b: Summary) -> str | None:
    """``a`` against ``b``, paired by run (the same model seeds): ``+1.2 ± 0.8 points: better``, or ``no clear
    difference`` when the mean difference does not exceed its spread (the std over runs); None when unpaired."""
    diff = a.paired_difference(b)
    if diff is None:
        return None
    mean, std = 100 * diff[0], 100 * diff[1]
    word = "no clear difference" if abs(mean) <= std else ("better" if mean > 0 else "worse")
    return f"{mean:+.1f} ± {std:.1f} points: {word}"
