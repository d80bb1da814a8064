"""One folder per study, readable on GitHub: ``videodd report RUN_OR_REPORT... --out DIR [--html]``.

It gathers evaluation reports from run folders (``RUN/report.json``, with ``RUN/metrics.jsonl`` and
``RUN/distilled.safetensors`` when they are there), report files, a demo's ``results.json`` or any results
JSON that holds reports, and writes:

- ``index.md``: the results table (every reference row, stored and all-in bytes), the plots, and each
  report's details;
- ``accuracy_vs_bytes.png``: top-1 against stored bytes (log scale) for every method and reference
  (an open marker at a method's all-in bytes when they differ), the full training set as a line;
- ``per_class.png``: per-class accuracy bars;
- ``curves.png``: the distillation metrics from ``metrics.jsonl``;
- ``previews.png``: the same class's first video for every method, frames left to right;
- with ``--html``, ``index.html``: the same page, self-contained (plots inlined).

Plots need matplotlib (the ``plots`` extra).
"""

from __future__ import annotations

import base64
import html
import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from videodd.data.media import frame_strip
from videodd.distilled import DistilledSet
from videodd.errors import ConfigError
from videodd.evaluate import EvalReport
from videodd.export import select
from videodd.io import atomic_path
from videodd.report import TableRow, markdown_table, method_rows, rows_from_report

FIGSIZE, DPI = (7.0, 4.5), 100  # every plot is 700 x 450 pixels


@dataclass
class StudyEntry:
    """One evaluated set: its report and, when known, the run folder it came from."""

    report: EvalReport
    source: Path
    run_dir: Path | None = None

    @property
    def label(self) -> str:
        return f"{self.report.method} IPC {self.report.ipc}"


@dataclass
class StudyResult:
    """What :func:`build_study` wrote."""

    out_dir: Path
    files: list[Path] = field(default_factory=list)


# -- gathering ----------------------------------------------------------------------------------------
def report_dicts(data: Any) -> list[dict[str, Any]]:
    """Every dict inside ``data`` that is an EvalReport's JSON."""
    if isinstance(data, dict):
        if {"method", "ipc", "result", "references", "storage_bytes"} <= set(data):
            return [data]
        return [r for v in data.values() for r in report_dicts(v)]
    if isinstance(data, list):
        return [r for v in data for r in report_dicts(v)]
    return []


def _run_dir_for(report: dict[str, Any], near: Path) -> Path | None:
    """The run folder of ``report`` near the JSON it came from: the JSON's own folder, or (a demo's
    ``results.json``) ``runs/METHOD-ipcK`` beside it."""
    for candidate in (near, near / "runs" / f"{report['method']}-ipc{report['ipc']}"):
        if (candidate / "distilled.safetensors").is_file() or (candidate / "metrics.jsonl").is_file():
            return candidate
    return None


def load_entries(paths: Sequence[str | Path]) -> list[StudyEntry]:
    """The reports in ``paths`` (run folders, report files, results JSON); ConfigError naming a path without any."""
    entries: list[StudyEntry] = []
    for path in map(Path, paths):
        if path.is_dir():
            found = [p for p in (path / "report.json", path / "results.json") if p.is_file()]
            if not found:
                raise ConfigError(f"{path}: no report.json or results.json in it (evaluate the run first: "
                                  "videodd evaluate RUN/distilled.safetensors ...)")
            json_path = found[0]
        elif path.is_file():
            json_path = path
        else:
            raise ConfigError(f"{path}: no such file or folder")
        try:
            data = json.loads(json_path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise ConfigError(f"{json_path}: not a JSON file ({err})") from None
        reports = report_dicts(data)
        if not reports:
            raise ConfigError(f"{json_path}: holds no evaluation report")
        for r in reports:
            entries.append(StudyEntry(EvalReport.from_json(r), json_path, _run_dir_for(r, json_path.parent)))
    return entries


# -- plots --------------------------------------------------------------------------------------------
def _pyplot():
    try:
        import matplotlib
    except ImportError:
        raise ConfigError("videodd report draws its plots with matplotlib: pip install 'videodd[plots]'") from None
    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: Path) -> Path:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=DPI)
    _pyplot().close(fig)
    return path


def plot_accuracy_vs_bytes(entries: list[StudyEntry], path: Path) -> Path:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=FIGSIZE)
    refs: dict[str, tuple[float, float, float]] = {}
    full = None
    for i, e in enumerate(entries):
        r = e.report
        colour = f"C{i % 10}"
        y, err = 100 * r.result.top1_mean, 100 * r.result.top1_std
        ax.errorbar([r.storage_bytes], [y], yerr=[err], fmt="o", color=colour, capsize=3, label=e.label)
        if r.all_in_bytes != r.storage_bytes:
            ax.plot([r.storage_bytes, r.all_in_bytes], [y, y], color=colour, lw=0.8)
            ax.plot([r.all_in_bytes], [y], "o", mfc="none", color=colour)
        for name, s in r.references.items():
            stored = s.info.get("bytes")
            if isinstance(stored, list):
                stored = sum(stored) / len(stored)
            if name.startswith("full"):
                full = (100 * s.top1_mean, stored)
            elif stored:
                refs.setdefault(f"{name} ({s.info.get('ipc', r.ipc)}/class)",
                                (float(stored), 100 * s.top1_mean, 100 * s.top1_std))
    for j, (name, (x, y, err)) in enumerate(sorted(refs.items(), key=lambda kv: kv[1][0])):
        ax.errorbar([x], [y], yerr=[err], fmt=["s", "D", "^", "v", "P"][j % 5], color="0.45", capsize=2, ms=5,
                    label=name)
    if full is not None:
        ax.axhline(full[0], color="0.3", ls="--", lw=1, label="full training set")
    ax.set_xscale("log")
    ax.set_xlabel("stored bytes (log scale; open marker: all-in bytes)")
    ax.set_ylabel("top-1 accuracy (%)")
    ax.set_title("accuracy against storage")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    return _save(fig, path)


def plot_per_class(entries: list[StudyEntry], path: Path) -> Path:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=FIGSIZE)
    classes = entries[0].report.classes
    series = [(e.label, e.report.result.per_class_mean) for e in entries if e.report.classes == classes]
    first = entries[0].report.references
    random_ref = next((k for k in first if k.startswith("random real IPC")), None)
    if random_ref is not None:
        series.append((random_ref, first[random_ref].per_class_mean))
    width = 0.8 / len(series)
    x = np.arange(len(classes))
    for i, (name, values) in enumerate(series):
        ax.bar(x + i * width - 0.4 + width / 2, [100 * (0 if math.isnan(v) else v) for v in values], width,
               label=name, color=f"C{i % 10}" if i < len(entries) else "0.6")
    ax.set_xticks(x, classes, rotation=45, ha="right", fontsize=7)
    ax.set_ylabel("top-1 accuracy (%)")
    ax.set_title("per-class accuracy (mean over runs)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return _save(fig, path)


def read_metrics(run_dir: Path) -> list[dict[str, Any]]:
    """The lines of ``RUN/metrics.jsonl`` (empty when there is none)."""
    path = run_dir / "metrics.jsonl"
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def plot_curves(entries: list[StudyEntry], path: Path) -> Path | None:
    runs = [(e, read_metrics(e.run_dir)) for e in entries if e.run_dir is not None]
    runs = [(e, rows) for e, rows in runs if rows]
    if not runs:
        return None
    keys = sorted({k for _, rows in runs for row in rows for k, v in row.items()
                   if isinstance(v, (int, float)) and k not in ("iteration", "seconds")},
                  key=lambda k: (k != "loss", k))[:4]
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(keys), figsize=FIGSIZE, squeeze=False)
    for ax, key in zip(axes[0], keys, strict=False):
        for e, rows in runs:
            pts = [(row["iteration"], row[key]) for row in rows if isinstance(row.get(key), (int, float))]
            if pts:
                ax.plot(*zip(*pts, strict=True), color=f"C{entries.index(e) % 10}", label=e.label, lw=1)
        values = [row[key] for _, rows in runs for row in rows if isinstance(row.get(key), (int, float))]
        if key == "loss" and values and min(values) > 0:
            ax.set_yscale("log")
        ax.set_title(key, fontsize=9)
        ax.set_xlabel("iteration", fontsize=8)
        ax.tick_params(labelsize=7)
    axes[0][0].legend(fontsize=7)
    fig.suptitle("distillation metrics (metrics.jsonl)", fontsize=10)
    fig.tight_layout()
    return _save(fig, path)


def plot_previews(entries: list[StudyEntry], path: Path, class_name: str | None = None) -> Path | None:
    sets = [(e, e.run_dir / "distilled.safetensors") for e in entries if e.run_dir is not None]
    sets = [(e, p) for e, p in sets if p.is_file()]
    if not sets:
        return None
    name = class_name or sets[0][0].report.classes[0]
    strips = []
    for e, p in sets:
        dset = DistilledSet.load(p)
        if name in dset.manifest.classes:
            strips.append((e.label, frame_strip(select(dset, [name], 1).frames[0])))
    if not strips:
        return None
    plt = _pyplot()
    fig, axes = plt.subplots(len(strips), 1, figsize=FIGSIZE, squeeze=False)
    for ax, (label, strip) in zip(axes[:, 0], strips, strict=True):
        ax.imshow(strip, interpolation="nearest")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_ylabel(label, rotation=0, ha="right", va="center", fontsize=8)
    fig.suptitle(f"class {name!r}: each method's first video, frames left to right", fontsize=10)
    fig.tight_layout()
    return _save(fig, path)


# -- the page -----------------------------------------------------------------------------------------
def study_rows(entries: list[StudyEntry]) -> list[TableRow]:
    """Every method's row, then each distinct reference row once."""
    methods, refs = [], {}
    for e in entries:
        rows = rows_from_report(e.report)
        own = method_rows(e.report)  # the protocol's, with its own augmentation, test-selected (labelled)
        methods += rows[:own]
        for row in rows[own:]:
            refs.setdefault(f"{row.name}/{row.ipc}", row)
    return methods + list(refs.values())


def build_study(entries: list[StudyEntry], out: str | Path, *, title: str | None = None, html_page: bool = False,
                preview_class: str | None = None) -> StudyResult:
    """Write the study folder (see the module docstring) for ``entries``."""
    if not entries:
        raise ConfigError("videodd report: no reports given")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    first = entries[0].report
    title = title or f"videodd study: {first.dataset}, protocol {first.protocol['name']} v{first.protocol['version']}"
    plots = {
        "accuracy against stored bytes": plot_accuracy_vs_bytes(entries, out / "accuracy_vs_bytes.png"),
        "per-class accuracy": plot_per_class(entries, out / "per_class.png"),
        "distillation metrics": plot_curves(entries, out / "curves.png"),
        "previews": plot_previews(entries, out / "previews.png", preview_class),
    }
    lines = [f"# {title}", "", markdown_table(study_rows(entries)), "",
             "top-1 is mean ± std over the evaluation runs. *storage* is what the set stores; *all-in* adds what "
             "using it needs outside the file (a latent set's decoder). *same bytes* rows spend the method's "
             "stored bytes on real clips instead: uint8, or H.264 at the best quality that fits.", ""]
    if any(e.report.test_selected is not None for e in entries):
        lines[-1:-1] = ["Rows marked *[test-selected, as published: optimistic]* are the best of a run's snapshots "
                        "chosen by TEST accuracy, as the published code reports its number; the method's own row "
                        "is its final set, nothing chosen on test.", ""]
    for caption, path in plots.items():
        if path is not None:
            lines += [f"## {caption}", "", f"![{caption}]({path.name})", ""]
    lines += ["## reports", ""]
    for e in entries:
        lines += [e.report.to_markdown(), "", f"source: `{e.source}`", ""]
    files = [p for p in plots.values() if p is not None]
    index = out / "index.md"
    with atomic_path(index) as tmp:
        tmp.write_text("\n".join(lines), encoding="utf-8")
    files.append(index)
    if html_page:
        files.append(write_html(index, out / "index.html", title))
    return StudyResult(out, files)


def _inline(cells: str) -> str:
    text = html.escape(cells)
    text = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", text)
    text = re.sub(r"`(.+?)`", r"<code>\1</code>", text)
    return re.sub(r"\*(.+?)\*", r"<i>\1</i>", text)


def write_html(markdown_path: Path, target: Path, title: str) -> Path:
    """``index.md`` as one self-contained HTML page: the markdown this module writes (headings, tables,
    images, paragraphs), with every image inlined as a data URI."""
    body: list[str] = []
    table: list[list[str]] = []

    def flush_table() -> None:
        if table:
            head, *rows = table
            body.append("<table><tr>" + "".join(f"<th>{_inline(c)}</th>" for c in head) + "</tr>"
                        + "".join("<tr>" + "".join(f"<td>{_inline(c)}</td>" for c in r) + "</tr>" for r in rows)
                        + "</table>")
            table.clear()

    for line in markdown_path.read_text(encoding="utf-8").splitlines():
        if line.startswith("|"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            if not all(set(c) <= {"-", ":"} for c in cells):
                table.append(cells)
            continue
        flush_table()
        image = re.fullmatch(r"!\[(.*)\]\((.+)\)", line)
        heading = re.match(r"(#+) (.*)", line)
        if image:
            data = base64.b64encode((markdown_path.parent / image.group(2)).read_bytes()).decode()
            body.append(f'<img alt="{html.escape(image.group(1))}" src="data:image/png;base64,{data}">')
        elif heading:
            level = len(heading.group(1))
            body.append(f"<h{level}>{_inline(heading.group(2))}</h{level}>")
        elif line.strip():
            body.append(f"<p>{_inline(line)}</p>")
    flush_table()
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title><style>"
            "body{font-family:sans-serif;max-width:60em;margin:auto}table{border-collapse:collapse}"
            "td,th{border:1px solid #ccc;padding:2px 6px;font-size:90%}img{max-width:100%}</style></head><body>"
            + "\n".join(body) + "</body></html>\n")
    with atomic_path(target) as tmp:
        tmp.write_text(page, encoding="utf-8")
    return target
