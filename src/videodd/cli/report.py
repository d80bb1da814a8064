"""``videodd report RUN_OR_REPORT... --out DIR``: one folder per study, readable on GitHub."""

from __future__ import annotations

import argparse

from videodd.study import build_study, load_entries


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="a study folder: results table, plots (accuracy vs bytes, per class, "
                                      "metrics, previews), markdown and HTML",
                       description="Gather evaluation reports from run folders (RUN/report.json), report files, a "
                                   "demo's results.json or results JSON, and write DIR/index.md with the results "
                                   "table and PNG plots (matplotlib: the plots extra); --html also writes a "
                                   "self-contained DIR/index.html.")
    p.add_argument("paths", nargs="+", metavar="RUN_OR_REPORT", help="run folders or JSON files with reports")
    p.add_argument("--out", required=True, help="the study folder to write")
    p.add_argument("--title", default=None, help="the page title (default: dataset and protocol)")
    p.add_argument("--html", action="store_true", help="also write a self-contained index.html")
    p.add_argument("--preview-class", default=None, help="the class the previews show (default: the first)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    entries = load_entries(args.paths)
    result = build_study(entries, args.out, title=args.title, html_page=args.html, preview_class=args.preview_class)
    print(f"{len(entries)} report(s) -> {len(result.files)} files in {result.out_dir}: "
          f"{', '.join(f.name for f in result.files)}")
    return 0
