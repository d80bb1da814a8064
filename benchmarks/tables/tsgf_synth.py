"""TSGF on synth-actions (CPU scale): against the other methods, its ablation, and how it scales.

    OMP_NUM_THREADS=1 python -m benchmarks.tables.tsgf_synth --part main --ipcs 1
    OMP_NUM_THREADS=1 python -m benchmarks.tables.tsgf_synth --part ablation --ipcs 1
    OMP_NUM_THREADS=1 python -m benchmarks.tables.tsgf_synth --part scale --sizes 25,50,100,200 \
        --scale-classes 5,10,20,40
    OMP_NUM_THREADS=1 python -m benchmarks.tables.tsgf_synth --part frames --frames 2,4,8
    OMP_NUM_THREADS=1 python -m benchmarks.tables.tsgf_synth --part cross \
        --models convnet3d-s-bn,convnet-s-mean,convnet-s-gru,resnet3d-18-s

The teacher (``convnet3d-s-bn``, 10 epochs on the training split; its full-data test accuracy and training
time are recorded) is trained once into ``WORK/teacher.safetensors``. Parts:

- ``main``: ``configs/synth-actions/tsgf-ipcK.yaml`` (IPC 1; at other IPCs its settings with ``ipc`` changed),
  evaluated under the ``default`` protocol (3 runs) with the references at the same IPC and bytes; the
  report carries the protocol's row and the ``+tsgf-a`` row. The other methods' rows are in sections 11
  and 14 (same protocol, same test clips).
- ``ablation`` (``ABLATIONS``): cross-entropy only; + batch-norm statistics (the SRe2L-style baseline);
  + TSGF-O; + TSGF-A (its row); both; soft labels; the saliency window ``k``.
- ``scale``: seconds per distillation iteration, peak memory, and the teacher's training time as the
  training set grows (``--sizes``: training clips per class of 10-class synth-actions) and as classes are
  added (``--scale-classes``, 50 training clips each), IPC 1, 20 iterations each. Each cell runs in a child
  process; memory is its resident set size sampled every 0.2 ms while distillation runs (``PeakRSS``), as the
  peak and as the increase over the resident size before it (store open, teacher loaded).
- ``frames``: the synthetic videos' stored frames ``t`` (``parametrization.frames``: ``t`` learnable frames
  expanded linearly to the clip's 8), IPC 1.
- ``cross``: the ``main`` IPC 1 set evaluated on other networks (``--models``), with random real clips on
  each.

Cells resume; each keeps its whole evaluation report.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.common import SYNTH_ACTIONS, PeakRSS, load_results, rss, shipped_recipe
from benchmarks.tables.idtd_synth import merged
from videodd.data.synthetic import SynthActionsConfig, synth_actions_stores
from videodd.distill import distill, resolve_config
from videodd.evaluate import EvalReport, evaluate, get_protocol
from videodd.io import write_json
from videodd.report import markdown_table
from videodd.study import StudyEntry, study_rows
from videodd.teachers.classifier import ClassifierConfig, load_classifier, train_and_save
from videodd.train import StoreData, predict

MODULE = "benchmarks.tables.tsgf_synth"  # run as python -m MODULE (the scale cells' children too)
TEACHER = ClassifierConfig(model="convnet3d-s-bn", epochs=10)
_PLAIN = {"saliency_grad": False, "eval_augment": False}
ABLATIONS: dict[str, dict[str, Any]] = {
    "ce-only": {"objective": {"alpha": 0.0, **_PLAIN}},
    "ce+bn": {"objective": {**_PLAIN}},
    "ce+bn+tsgf-o": {"objective": {"saliency_grad": True, "eval_augment": False}},
    "ce+bn+tsgf-a": {"objective": {"saliency_grad": False, "eval_augment": True}},
    "full": {},
    "full+soft-labels": {"objective": {"labels": "soft"}},
    "window-1": {"objective": {"window": 1}},
    "window-3": {"objective": {"window": 3}},
}


def teacher_for(train: Any, test: Any, path: Path) -> dict[str, Any]:
    """Train the teacher once (or reuse it); its test accuracy and training time."""
    if not path.exists():
        start = time.perf_counter()
        train_and_save(train, path, TEACHER, seed=0)
        seconds = time.perf_counter() - start
    else:
        seconds = None
    net, manifest = load_classifier(path, train)
    accuracy = predict(net, StoreData(test), batch_size=256).topk(1)
    return {"path": str(path), "model": manifest["model"], "test_top1": accuracy,
            "train_seconds": seconds if seconds is not None else manifest.get("seconds")}


def scale_cell(work: Path, per_class: int, classes: int) -> dict[str, Any]:
    """One scale cell, run in its own process (so that its peak memory is its own): a synth-actions store of
    ``classes`` x ``per_class`` training clips, its teacher, then 20 TSGF iterations at IPC 1, timed, with the
    resident memory sampled while they run."""
    tag = f"{per_class}" if classes == 10 else f"{per_class}x{classes}"  # 10 classes: the earlier cells' names
    train, test = synth_actions_stores(work / f"data-{tag}", SynthActionsConfig(train_per_class=per_class,
                                                                              num_classes=classes))
    path = work / f"teacher-{tag}.safetensors"
    if not path.exists():  # trained in this process, its allocations would blur the memory measured next
        return {"teacher": teacher_for(train, test, path), "memory": "not measured: the teacher trained first"}
    teacher = teacher_for(train, test, path)
    cfg = merged(shipped_recipe("tsgf", 1), {"iterations": 20, "objective": {"teacher": teacher["path"]}})
    before = rss()  # the store is open and the teacher trained: what distillation adds is measured from here
    sampler = PeakRSS()
    result = distill(train, resolve_config("tsgf", cfg), work / "runs" / f"scale-{tag}", overwrite=True)
    peak = sampler.stop()
    return {"classes": classes, "train_clips": len(train), "seconds_per_iteration": result.seconds_per_iteration,
            "rss_before_bytes": before, "peak_rss_bytes": peak, "distill_increase_bytes": peak - before,
            "teacher": teacher}


def cross_architecture(results: dict[str, Any], part: dict[str, Any], models: list[str], train: Any, test: Any,
                       protocol: Any, work: Path, out: Path) -> None:
    """The ``main`` part's IPC 1 set on each of ``models`` (one resumable cell per model)."""
    from videodd.distilled import DistilledSet

    distilled = DistilledSet.load(work / "runs" / "tsgf-ipc1" / "distilled.safetensors")
    for model in models:
        if model in part:
            continue
        report = evaluate(distilled, test, protocol.with_model(model), train_store=train, references=("random",),
                          cache_dir=work / "references")
        ref = report.references["random real IPC 1"]
        part[model] = {"top1_mean": report.result.top1_mean, "top1_std": report.result.top1_std,
                       "top1_runs": [r.top1 for r in report.result.runs],
                       "augmented": {k: [v.top1_mean, v.top1_std] for k, v in report.augmented.items()},
                       "random_top1_mean": ref.top1_mean, "random_top1_std": ref.top1_std,
                       "random_top1_runs": [r.top1 for r in ref.runs], "eval_seconds": report.wall_seconds}
        write_json(out, results)
        print(model, {k: v for k, v in part[model].items() if "runs" not in k}, flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", choices=("main", "ablation", "scale", "frames", "cross", "scale-cell"),
                        required=True)
    parser.add_argument("--frames", default="2,4,8")
    parser.add_argument("--redo", default="", help="cells to compute again (e.g. tsgf/ipc1)")
    parser.add_argument("--models", default="convnet3d-s-bn,convnet-s-mean,convnet-s-gru,resnet3d-18-s")
    parser.add_argument("--ipcs", default="1")
    parser.add_argument("--sizes", default="25,50,100,200", help="scale: training clips per class (10 classes)")
    parser.add_argument("--scale-classes", default="5,10,20,40", help="scale: classes (50 training clips each)")
    parser.add_argument("--classes", type=int, default=10, help=argparse.SUPPRESS)  # scale-cell
    parser.add_argument("--protocol", default="default")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--work", default="benchmarks/work/tsgf")
    parser.add_argument("--out", default="benchmarks/results/15-tsgf/tsgf_synth.json")
    args = parser.parse_args(argv)
    work, out = Path(args.work), Path(args.out)
    protocol = get_protocol(args.protocol).with_runs(args.runs)
    results = load_results(out, benchmark=SYNTH_ACTIONS, protocol=protocol.name, runs=args.runs)
    part: dict[str, Any] = results.setdefault(args.part, {})

    if args.part == "scale-cell":  # the child of one scale cell: its JSON is the last line printed
        print(json.dumps(scale_cell(work, int(args.sizes), args.classes)))
        return
    if args.part == "scale":
        cells = [(10, int(n)) for n in args.sizes.split(",")] + [(int(c), 50) for c in args.scale_classes.split(",")]
        for classes, n in dict.fromkeys(cells):
            key = f"classes={classes},train_per_class={n}"
            if key in part:
                continue
            for _ in range(2):  # the first child trains the teacher when there is none yet; the second measures
                child = subprocess.run([sys.executable, "-m", MODULE, "--part", "scale-cell", "--sizes", str(n),
                                        "--classes", str(classes), "--work", str(work)],
                                       check=True, capture_output=True, text=True)
                part[key] = json.loads(child.stdout.strip().splitlines()[-1])
                if "memory" not in part[key]:
                    break
            write_json(out, results)
            print(key, part[key], flush=True)
        return

    train, test = synth_actions_stores(work / "data", SynthActionsConfig())
    results["teacher"] = teacher_for(train, test, work / "teacher.safetensors")
    base = {"objective": {"teacher": results["teacher"]["path"]}}
    ipcs = [int(x) for x in args.ipcs.split(",")]
    if args.part == "cross":
        cross_architecture(results, part, args.models.split(","), train, test, protocol, work, out)
        return
    if args.part == "frames":
        variants = {f"@t{t}": {"parametrization": {"frames": int(t)}} for t in args.frames.split(",")}
    else:
        variants = {"": {}} if args.part == "main" else {f"@{a}": extra for a, extra in ABLATIONS.items()}
    jobs = [(f"tsgf{name}/ipc{k}", merged(merged(shipped_recipe("tsgf", 1), {**base, "ipc": k}), extra))
            for k in ipcs for name, extra in variants.items()]
    for key, cfg in jobs:
        if key in part and key not in args.redo.split(","):
            print(f"{key}: done", flush=True)
            continue
        run_dir = work / "runs" / key.replace("/", "-").replace("@", "-")
        start = time.perf_counter()
        result = distill(train, resolve_config("tsgf", cfg), run_dir, resume=True, overwrite=True)
        report = evaluate(result.distilled, test, protocol, train_store=train, references=("random", "bytes"),
                          cache_dir=work / "references")
        report.save(run_dir / "report.json")
        part[key] = {"recipe": cfg, "distill_seconds": result.seconds, "seconds": time.perf_counter() - start,
                     "report": report.to_json()}
        write_json(out, results)
        print(f"{key}: {report.result.fmt()}; +tsgf-a: "
              f"{', '.join(s.fmt() for s in report.augmented.values()) or '-'}", flush=True)
    entries = []
    for key, cell in part.items():
        entry = StudyEntry(EvalReport.from_json(cell["report"]), out)
        entry.report.method = key.split("/")[0]
        entry.report.augmented = {f"{entry.report.method} {k.split(' ', 1)[1]}": v
                                  for k, v in entry.report.augmented.items()}
        entries.append(entry)
    results[f"{args.part}_table"] = markdown_table(study_rows(entries))
    write_json(out, results)
    print(results[f"{args.part}_table"])


if __name__ == "__main__":
    main()
