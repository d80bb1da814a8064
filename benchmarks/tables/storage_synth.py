"""Honest storage baselines: each method against real clips kept in the same bytes, on synth-actions.

    OMP_NUM_THREADS=1 python -m benchmarks.tables.storage_synth --ipcs 1,5 \
        --out benchmarks/results/13-storage/storage_synth.json
    videodd report benchmarks/results/13-storage/storage_synth.json --out benchmarks/results/13-storage/study

For each IPC K, the shipped synth-actions recipes (``configs/synth-actions/METHOD-ipcK.yaml``) of ``random``
(real clips at the same IPC), ``dm``, ``mtt``, the static-dynamic ``vdsd-dm`` (after its ``vdsd-static``
stills) and the latent method (k-DPP selection of the built-in codec's latents, ``match_ipc`` K: the
latents that fit K float32 videos per class; the decoder is referenced, so its bytes are the all-in
column's). Every set is evaluated with every reference (``videodd.references``):

- random real clips at the set's IPC;
- random real uint8 clips in the set's stored bytes (a float32 set of IPC K: 4K clips per class);
- random real clips as bare H.264 streams in the set's stored bytes, 4x the uint8 count per class at the
  lowest CRF that fits (halved until one fits), decoded for training;
- the full training set.

Every cell keeps the whole evaluation report, so ``videodd report`` draws the study from this file. Cells
resume. Nothing is chosen by test accuracy: the recipes and the baselines' rules are fixed in advance.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from benchmarks.common import SYNTH_ACTIONS, SYNTH_EXPERTS, load_results
from benchmarks.tables.latent_synth import codec_folder
from benchmarks.tables.methods_synth import recipe
from videodd.codecs.autoencoder import CodecTrainConfig
from videodd.data.synthetic import SynthActionsConfig, synth_actions_stores
from videodd.distill import distill, resolve_config
from videodd.evaluate import EvalReport, evaluate, get_protocol
from videodd.io import write_json
from videodd.report import markdown_table
from videodd.study import StudyEntry, study_rows
from videodd.teachers.experts import train_experts

METHODS = ("random", "dm", "mtt", "vdsd-static", "vdsd-dm", "latent")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ipcs", default="1,5")
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--protocol", default="cpu")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--work", default="benchmarks/work/storage")
    parser.add_argument("--out", default="benchmarks/results/13-storage/storage_synth.json")
    args = parser.parse_args(argv)

    work, out = Path(args.work), Path(args.out)
    train, test = synth_actions_stores(work / "data", SynthActionsConfig())
    protocol = get_protocol(args.protocol).with_runs(args.runs)
    methods = [m for m in args.methods.split(",") if m]
    results = load_results(out, benchmark=SYNTH_ACTIONS, protocol=protocol.name, runs=args.runs)
    cells: dict[str, Any] = results.setdefault("cells", {})
    if "mtt" in methods:
        train_experts(train, work / "experts", SYNTH_EXPERTS, seed=0, resume=True)
    codec = codec_folder(train, work, CodecTrainConfig(), "cpu")[0] if "latent" in methods else None
    for ipc in (int(x) for x in args.ipcs.split(",")):
        for method in methods:
            key = f"{method}/ipc{ipc}"
            run_dir = work / "runs" / f"{method}-ipc{ipc}"
            if key in cells:
                print(f"{key}: done", flush=True)
                continue
            overrides = ({"ipc": ipc, "builder": {"codec": codec, "select": "dpp", "compress": "none",
                                                  "match_ipc": ipc}}
                         if method == "latent" else recipe(method, ipc, work))
            start = time.perf_counter()
            result = distill(train, resolve_config(method, overrides), run_dir, resume=True, overwrite=True)
            if method == "vdsd-static":  # stage 1: stills read by vdsd-dm, not evaluated
                cells[key] = {"method": method, "ipc": ipc, "distill_seconds": result.seconds}
                write_json(out, results)
                continue
            report = evaluate(result.distilled, test, protocol, train_store=train, cache_dir=work / "references")
            report.save(run_dir / "report.json")
            cells[key] = {"method": method, "ipc": ipc, "distill_seconds": result.seconds,
                          "seconds": time.perf_counter() - start, "report": report.to_json()}
            write_json(out, results)
            print(markdown_table(study_rows([StudyEntry(report, run_dir)])), flush=True)
    for ipc in (int(x) for x in args.ipcs.split(",")):
        entries = [StudyEntry(EvalReport.from_json(c["report"]), out) for c in cells.values()
                   if c["ipc"] == ipc and "report" in c]
        if entries:
            results[f"table_ipc{ipc}"] = markdown_table(study_rows(entries))
            print(f"\nIPC {ipc}\n{results[f'table_ipc{ipc}']}", flush=True)
    write_json(out, results)


if __name__ == "__main__":
    main()
