"""IDTD on synth-actions (CPU scale): against its base objectives, static-dynamic and real clips; ablations;
accuracy against the synthetic videos' frames.

    OMP_NUM_THREADS=1 python -m benchmarks.tables.idtd_synth --part main --ipcs 1,5 \
        --methods random,herding,dm,vdsd-static,vdsd-dm,idtd-dm,mtt,idtd-mtt
    OMP_NUM_THREADS=1 python -m benchmarks.tables.idtd_synth --part ablation --ipcs 1
    OMP_NUM_THREADS=1 python -m benchmarks.tables.idtd_synth --part frames --ipcs 1 --frames 2,4,8
    OMP_NUM_THREADS=1 python -m benchmarks.tables.idtd_synth --part frames --ipcs 1 --frames 4,8,16 \
        --clip-frames 16 --work benchmarks/work/idtd16 --out benchmarks/results/14-idtd/idtd_synth_t16.json

Every method runs its shipped recipe (``configs/synth-actions/METHOD-ipcK.yaml``; MTT on ``WORK/experts``,
static-dynamic on this benchmark's own ``vdsd-static`` stills) and is evaluated under the ``default`` protocol
(3 runs) with the references at the same IPC and at the same bytes. Parts:

- ``main``: the rows at each IPC, with stored bytes; the table is also sorted by bytes (the equal-storage
  view: which set is best for a byte budget);
- ``ablation``: ``idtd-dm`` with one piece removed (``ABLATIONS``): no diversity loss, no STA, one
  selector (``segments 1``: no diversification), the fusor replaced by plain concatenation + resampling,
  and pools of IPC and 4 x IPC segments (the recipe: 2 x IPC);
- ``frames``: the synthetic videos' stored frames ``t``: pixel DM keeps ``t`` frames expanded linearly to
  the clip's 8 (``parametrization.frames``), IDTD keeps 2 segments of ``t / 2`` frames (``segment_frames``);
  both run IDTD's iterations (200; the DM recipe's 2000 would make the study ten times longer on a CPU);
  static-dynamic has no such knob (its maps have the clip's frames), so it is one row. ``--clip-frames 16``
  runs it on synth-actions generated with 16-frame clips (the frame count of the 16-frame datasets' recipes,
  whose IDTD keeps 2 segments of 8 frames), in its own ``--work`` and ``--out``.

- ``preview``: the IPC 1 ``idtd-dm`` set's pool segments and fused video for two classes
  (``preview-idtd-dm-ipc1.png``), with each selector's weights over the pool.

- ``similarity``: for every set of ``main`` with IPC > 1, the mean cosine similarity between two videos of one
  class (the materialized, normalized videos), and the selectors' largest weight over the pool for IDTD: how
  far a class's videos are copies of one another (also for the ``superseded`` cells, from their ``run_dir``).

Cells resume; each keeps its whole evaluation report (``videodd report`` draws the study from this file). A
cell whose run folder already holds a finished set and a ``report.json`` of the same protocol (a process
killed between evaluating and writing this file) takes that report instead of evaluating again. Two
processes must not share one ``--out``: give each its own and fold them in afterwards with
``--merge A.json,B.json`` (the cells of ``--part`` that ``--out`` lacks; the tables are rebuilt). A recipe
changed on validation is measured again with ``--supersede KEY --why TEXT``: the old cell moves to
``superseded`` and its run folder to ``NAME-superseded``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path
from typing import Any

from benchmarks.common import SYNTH_ACTIONS, SYNTH_EXPERTS, apply_sets, load_results
from benchmarks.tables.methods_synth import recipe, supersede
from videodd.data.synthetic import SynthActionsConfig, synth_actions_stores
from videodd.distill import distill, resolve_config
from videodd.evaluate import EvalProtocol, EvalReport, evaluate, get_protocol
from videodd.io import write_json
from videodd.report import markdown_table
from videodd.study import StudyEntry, study_rows
from videodd.teachers.experts import train_experts

#: name -> overrides of the idtd-dm recipe (at IPC 1 the recipe's pool is 2)
ABLATIONS: dict[str, dict[str, Any]] = {
    "full": {},
    "no-diversity": {"parametrization": {"diversity": 0.0}},
    "no-sta": {"parametrization": {"sta": False}},
    "one-selector": {"parametrization": {"segments": 1, "segment_frames": 8}},
    "concat-fusor": {"parametrization": {"fusor": "concat"}},
    "pool-ipc": {"parametrization": {"pool": 1, "segments": 1, "segment_frames": 8}},  # P = IPC forces S = 1
    "pool-4ipc": {"parametrization": {"pool": 4}},
}


def merged(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = {**base}
    for key, value in extra.items():
        out[key] = {**out.get(key, {}), **value} if isinstance(value, dict) else value
    return out


def run_dir_of(work: Path, key: str) -> Path:
    """The run folder of cell ``key`` (``idtd-dm@t4/ipc1`` -> ``WORK/runs/idtd-dm-t4-ipc1``)."""
    return work / "runs" / key.replace("/", "-").replace("@", "-")


def finished_report(run_dir: Path, protocol: EvalProtocol, fingerprint: str) -> EvalReport | None:
    """The report saved in ``run_dir`` when it evaluated this run's finished set under ``protocol`` (the same
    name, version, schedule and runs) on a training store with ``fingerprint``; else None."""
    path, distilled = run_dir / "report.json", run_dir / "distilled.safetensors"
    if not (path.exists() and distilled.exists()) or path.stat().st_mtime < distilled.stat().st_mtime:
        return None
    report = EvalReport.from_json(json.loads(path.read_text()))
    wanted = json.loads(json.dumps(dataclasses.asdict(protocol)))  # tuples -> lists, as saved
    return report if report.protocol == wanted and report.dataset_fingerprint == fingerprint else None


def merge_cells(results: dict[str, Any], part: str, files: list[Path]) -> None:
    """Copy into ``results[part]`` the cells of ``part`` that ``files`` (other ``--out`` files of this script)
    hold and ``results`` lacks; a file of another benchmark, protocol or run count is refused."""
    for f in files:
        other = json.loads(f.read_text())
        for key in ("benchmark", "protocol", "runs"):
            if other.get(key) != results.get(key):
                raise SystemExit(f"{f}: its {key} is {other.get(key)!r}, this file's is {results.get(key)!r}")
        for key, cell in other.get(part, {}).items():
            results[part].setdefault(key, cell)


def within_class_similarity(path: Path) -> dict[str, float]:
    """A set's mean cosine similarity between two different videos of one class, and for IDTD sets the mean
    of the selectors' largest softmax weight over the pool (``1 / P`` would be an even mix)."""
    import torch

    from videodd.distilled import DistilledSet
    from videodd.synthesis.idtd import selector_weights

    dset = DistilledSet.load(path)
    videos, labels = dset.materialize().videos, dset.labels
    labels = labels if labels.dim() == 1 else labels.argmax(-1)
    sims = []
    for c in labels.unique():
        x = torch.nn.functional.normalize(videos[labels == c].flatten(1).float(), dim=-1)  # (ipc, C*T*H*W)
        k = x.shape[0]
        sims.append(((x @ x.T).sum() - k) / (k * (k - 1)))  # the off-diagonal mean
    out = {"within_class_cosine": float(torch.stack(sims).mean())}
    if dset.manifest.kind == "idtd":
        weights = selector_weights(dset.tensors, dset.manifest)  # (K*ipc, S, P)
        out.update(selector_max_weight=float(weights.max(-1).values.mean()), pool=int(weights.shape[-1]))
    return out


def preview(path: Path, target: Path, classes: tuple[int, ...] = (0, 4)) -> None:
    """For each of ``classes``: its two pool segments side by side (4 frames each), then the fused video
    (8 frames) under them; prints each selector's softmax over the pool."""
    import numpy as np

    from videodd.data.media import frame_strip, grid, to_uint8, write_png
    from videodd.distilled import DistilledSet
    from videodd.synthesis.idtd import selector_weights

    dset = DistilledSet.load(path)
    m, p = dset.manifest, int(dset.manifest.layout["idtd"]["pool"])
    videos = dset.materialize().videos  # (K, C, T, H, W) at IPC 1
    weights = selector_weights(dset.tensors, m)  # (K, S, P) at IPC 1
    rows = []
    for c in classes:
        segs = to_uint8(dset.tensors["pool"][c * p : (c + 1) * p], m.mean, m.std)  # (P, L, H, W, C)
        rows.append(np.concatenate([frame_strip(s) for s in segs], axis=1))
        rows.append(frame_strip(to_uint8(videos[c : c + 1], m.mean, m.std)[0]))
        print(m.classes[c], "selector x pool weights:", weights[c].numpy().round(2).tolist())
    write_png(grid(rows), target)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", choices=("main", "ablation", "frames", "preview", "similarity"), required=True)
    parser.add_argument("--ipcs", default="1")
    parser.add_argument("--methods", default="random,herding,dm,vdsd-static,vdsd-dm,idtd-dm")
    parser.add_argument("--ablations", default=",".join(ABLATIONS))
    parser.add_argument("--frames", default="2,4,8",
                        help="the frames part's stored frames t; empty: only its static-dynamic rows")
    parser.add_argument("--clip-frames", type=int, default=SynthActionsConfig.frames,
                        help="frames of the generated clips (16: the frames study of the 16-frame datasets)")
    parser.add_argument("--protocol", default="default")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--work", default="benchmarks/work/idtd")
    parser.add_argument("--out", default="benchmarks/results/14-idtd/idtd_synth.json")
    parser.add_argument("--set", action="append", default=[], metavar="METHOD:KEY=VALUE",
                        help="override one method's recipe in every cell that runs it, e.g. vdsd-dm:lr=30 (the "
                        "cell keeps the recipe it ran)")
    parser.add_argument("--merge", default="", help="comma-separated results files whose cells to fold in")
    parser.add_argument("--supersede", default="", help="comma-separated cells of --part to measure again (the "
                        "old cell moves to 'superseded', its run folder to NAME-superseded)")
    parser.add_argument("--why", default="", help="why --supersede's cells are measured again (kept with them)")
    args = parser.parse_args(argv)

    work, out = Path(args.work), Path(args.out)
    if args.part == "preview":
        preview(work / "runs" / "idtd-dm-ipc1" / "distilled.safetensors", out.parent / "preview-idtd-dm-ipc1.png")
        return
    data = SynthActionsConfig(frames=args.clip_frames)
    if args.part == "similarity":
        results = load_results(out)
        results["similarity"] = {
            key: within_class_similarity(run_dir_of(work, key) / "distilled.safetensors")
            for key, cell in results["main"].items() if cell["ipc"] > 1 and "report" in cell}
        for key, cells in results.get("superseded", {}).items():  # each keeps its (renamed) run folder
            for cell in cells:
                results["similarity"][f"{key} ({cell['run_dir']})"] = within_class_similarity(
                    work / cell["run_dir"] / "distilled.safetensors")
        write_json(out, results)
        for key, row in results["similarity"].items():
            print(key, {k: round(v, 3) for k, v in row.items()})
        return
    train, test = synth_actions_stores(work / "data", data)
    benchmark = SYNTH_ACTIONS.replace(f"{SynthActionsConfig.frames}x", f"{data.frames}x")
    protocol = get_protocol(args.protocol).with_runs(args.runs)
    results = load_results(out, benchmark=benchmark, protocol=protocol.name, runs=args.runs)
    part: dict[str, Any] = results.setdefault(args.part, {})
    ipcs = [int(x) for x in args.ipcs.split(",")]
    for key in filter(None, args.supersede.split(",")):
        supersede(results, key, run_dir_of(work, key), part=args.part, why=args.why)
        write_json(out, results)
    if args.merge:
        merge_cells(results, args.part, [Path(f) for f in args.merge.split(",")])
        write_json(out, results)

    jobs: list[tuple[str, str, int, dict[str, Any]]] = []  # (cell key, method, ipc, overrides)
    if args.part == "main":
        methods = sorted(args.methods.split(","), key=lambda m: m != "vdsd-static")  # stills first
        jobs = [(f"{m}/ipc{k}", m, k, recipe(m, k, work)) for k in ipcs for m in methods]
    elif args.part == "ablation":
        jobs = [(f"idtd-dm@{a}/ipc{k}", "idtd-dm", k, merged(recipe("idtd-dm", k, work), ABLATIONS[a]))
                for k in ipcs for a in args.ablations.split(",")]
    else:
        for k in ipcs:
            for t in (int(x) for x in args.frames.split(",") if x):
                idtd_iterations = recipe("idtd-dm", k, work)["iterations"]  # the same budget as IDTD's rows
                jobs.append((f"dm@t{t}/ipc{k}", "dm", k, merged(recipe("dm", k, work), {
                    "iterations": idtd_iterations, "parametrization": {"frames": t}})))
                jobs.append((f"idtd-dm@t{t}/ipc{k}", "idtd-dm", k, merged(recipe("idtd-dm", k, work), {
                    "parametrization": {"segment_frames": max(1, t // 2)}})))
            jobs.append((f"vdsd-static/ipc{k}", "vdsd-static", k, recipe("vdsd-static", k, work)))
            jobs.append((f"vdsd-dm/ipc{k}", "vdsd-dm", k, recipe("vdsd-dm", k, work)))
    jobs = [(key, m, k, apply_sets(overrides, m, args.set)) for key, m, k, overrides in jobs]
    if any(m.endswith("mtt") for _, m, _, _ in jobs):
        train_experts(train, work / "experts", SYNTH_EXPERTS, seed=0, resume=True)

    for key, method, ipc, overrides in jobs:
        run_dir = run_dir_of(work, key)
        if key in part:
            print(f"{key}: done", flush=True)
            continue
        start = time.perf_counter()
        result = distill(train, resolve_config(method, overrides), run_dir, resume=True, overwrite=True)
        if method == "vdsd-static":  # stage 1: stills read by vdsd-dm, not evaluated
            part[key] = {"method": method, "ipc": ipc, "distill_seconds": result.seconds}
            write_json(out, results)
            continue
        report = finished_report(run_dir, protocol, train.meta.fingerprint)
        if report is None:
            report = evaluate(result.distilled, test, protocol, train_store=train, references=("random", "bytes"),
                              cache_dir=work / "references")
            report.save(run_dir / "report.json")
        part[key] = {"method": method, "ipc": ipc, "recipe": overrides, "distill_seconds": result.seconds,
                     "seconds": time.perf_counter() - start, "report": report.to_json()}
        write_json(out, results)
        print(f"{key}: {report.result.fmt()} in {report.storage_bytes:,} bytes", flush=True)

    entries = [(k, StudyEntry(EvalReport.from_json(c["report"]), out)) for k, c in part.items() if "report" in c]
    for k, e in entries:  # the cell's name in the table (the report only knows the method)
        e.report.method = k.split("/")[0]
    table = markdown_table(study_rows([e for _, e in entries]))
    by_bytes = sorted((e for _, e in entries), key=lambda e: e.report.storage_bytes)
    results[f"{args.part}_table"] = table
    results[f"{args.part}_by_bytes"] = [
        {"cell": e.report.method, "ipc": e.report.ipc, "bytes": e.report.storage_bytes,
         "top1_mean": e.report.result.top1_mean, "top1_std": e.report.result.top1_std} for e in by_bytes]
    write_json(out, results)
    print(table)


if __name__ == "__main__":
    main()
