"""Generate-then-select on synth-actions (CPU scale): the generator, its candidates, and the selected sets.

    OMP_NUM_THREADS=1 python -m benchmarks.tables.generate_synth --part generator
    OMP_NUM_THREADS=1 python -m benchmarks.tables.generate_synth --part quality --guidance 1,2,4
    OMP_NUM_THREADS=1 python -m benchmarks.tables.generate_synth --part main --ipcs 1 \
        --methods diffusion-tacdt,diffusion-vstunet,diffusion-random,tacdt,vstunet

Parts:

- ``generator``: the built-in generator trained on the training split (``WORK/data/generator``, the
  settings ``generator: auto`` uses: ``GeneratorTrainConfig()``); training time, losses, weight bytes.
- ``quality``: a pool of ``--per-class`` candidates per class at each guidance scale (25 DDIM steps);
  the sampling time per candidate, and the accuracy of a teacher (``convnet3d-s-bn``, 10 epochs, the one
  of section 15) on them next to its accuracy on the real test clips: are the candidates recognisable as
  their class? A preview (``preview-guidanceG.png``: per class, 2 candidates' frame strips) is written next
  to the results.
- ``cost``: one batch of 50 candidates (25 DDIM steps, guidance 2) in a fresh process: seconds per
  candidate and the process's peak resident memory.
- ``main``: the recipes at each IPC (``configs/synth-actions/diffusion-tacdt-ipc1.yaml`` with ``select``
  and ``ipc`` changed, ``METHOD@poolP`` with the pool at ``P x IPC``; ``tacdt`` and ``vstunet`` on the
  real training clips), evaluated under the ``default`` protocol (3 runs) with the references at the
  same IPC and bytes. DM, MTT, herding and random real clips under the same protocol are in section 14's
  table. Each generated set's clips are drawn to ``selected-METHOD-ipcK.png`` (a row per class).

Cells resume; each keeps its whole evaluation report.
"""

from __future__ import annotations

import argparse
import resource
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import SYNTH_ACTIONS, load_results, shipped_recipe
from benchmarks.tables.idtd_synth import merged
from benchmarks.tables.tsgf_synth import teacher_for
from videodd.builders.generate import candidates_dir
from videodd.data.media import frame_strip, grid, write_png
from videodd.data.synthetic import SynthActionsConfig, synth_actions_stores
from videodd.distill import distill, resolve_config
from videodd.evaluate import EvalReport, evaluate, get_protocol
from videodd.generate.candidates import GenerationPlan, generate_candidates
from videodd.generate.diffusion import GeneratorTrainConfig, resolve_generator
from videodd.io import write_json
from videodd.report import markdown_table
from videodd.study import StudyEntry, study_rows
from videodd.teachers.classifier import load_classifier
from videodd.train import StoreData, predict


def recipe(method: str, ipc: int) -> dict[str, Any]:
    """The shipped recipe with ``ipc`` (and, for a generate-then-select method, its selector, and its pool with
    ``@poolP``) changed."""
    base = shipped_recipe("diffusion-tacdt", 1)
    method, _, pool = method.partition("@pool")
    if method.startswith("diffusion-"):
        extra = {"select": method.removeprefix("diffusion-"), **({"pool": int(pool)} if pool else {})}
        return merged(base, {"ipc": ipc, "builder": extra})
    # the real-clip selectors: the same selector options (vstunet: the same generator's U-Net)
    return {"ipc": ipc, "selector": {"generator": "auto"} if method == "vstunet" else {}}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", choices=("generator", "quality", "main", "cost"), required=True)
    parser.add_argument("--ipcs", default="1")
    parser.add_argument("--methods", default="diffusion-tacdt,diffusion-vstunet,diffusion-random,tacdt,vstunet")
    parser.add_argument("--guidance", default="1,2,4")
    parser.add_argument("--per-class", type=int, default=10)
    parser.add_argument("--protocol", default="default")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--work", default="benchmarks/work/generate")
    parser.add_argument("--out", default="benchmarks/results/16-generate/generate_synth.json")
    args = parser.parse_args(argv)
    work, out = Path(args.work), Path(args.out)
    train, test = synth_actions_stores(work / "data", SynthActionsConfig())
    protocol = get_protocol(args.protocol).with_runs(args.runs)
    results = load_results(out, benchmark=SYNTH_ACTIONS, protocol=protocol.name, runs=args.runs)

    start = time.perf_counter()
    generator = resolve_generator(train, "auto", progress=True)  # trained once, in WORK/data/generator
    if "generator" not in results:
        results["generator"] = {"config": str(GeneratorTrainConfig()), "train_seconds": generator.info["seconds"],
                                "epoch_losses": generator.info["epoch_losses"], "steps": generator.info["steps"],
                                "weight_bytes": generator.weight_bytes, "train_clips": len(train),
                                "wall_seconds": time.perf_counter() - start}
        write_json(out, results)
    print("generator:", {k: v for k, v in results["generator"].items() if k != "epoch_losses"}, flush=True)
    if args.part == "generator":
        return

    if args.part == "cost":  # one batch of 50 in a fresh process: its time and the process's peak memory
        plan = GenerationPlan(per_class=5, steps=25, guidance=2.0, seed=123)
        shutil.rmtree(work / "cost-pool", ignore_errors=True)  # a kept pool would be reused, not timed
        t0 = time.perf_counter()
        generate_candidates(generator, train, work / "cost-pool", plan)
        results["cost"] = {"candidates": 50, "seconds_per_candidate": (time.perf_counter() - t0) / 50,
                           "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
                           "steps": 25, "guidance": 2.0, "batch": plan.batch}
        write_json(out, results)
        print("cost:", results["cost"], flush=True)
        return

    if args.part == "quality":
        part = results.setdefault("quality", {})
        results["teacher"] = teacher_for(train, test, work / "teacher.safetensors")
        net, _ = load_classifier(results["teacher"]["path"], train)
        for g in (float(x) for x in args.guidance.split(",")):
            key = f"guidance={g:g}"
            if key in part:
                continue
            plan = GenerationPlan(per_class=args.per_class, steps=25, guidance=g, seed=0)
            t0 = time.perf_counter()
            pool = generate_candidates(generator, train, candidates_dir(train, generator.info["sha256"], plan, None),
                                       plan)
            seconds = time.perf_counter() - t0
            preds = predict(net, StoreData(pool), batch_size=256)
            part[key] = {"candidates": len(pool), "seconds_per_candidate": seconds / len(pool),
                         "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
                         "teacher_top1_on_candidates": preds.topk(1), "per_class": preds.per_class(pool.num_classes),
                         "teacher_top1_on_real_test": results["teacher"]["test_top1"]}
            rows = []
            for c in range(pool.num_classes):  # 2 candidates per class, each a strip of its frames
                raw = pool.raw(pool.class_indices(c)[:2]).numpy()  # (2, T, H, W, C)
                rows.append(np.concatenate([frame_strip(v) for v in raw], axis=0))
            write_png(grid(rows), out.parent / f"preview-guidance{g:g}.png")
            write_json(out, results)
            print(key, {k: v for k, v in part[key].items() if k != "per_class"}, flush=True)
        return

    part = results.setdefault("main", {})
    for k in (int(x) for x in args.ipcs.split(",")):
        for method in args.methods.split(","):
            key = f"{method}/ipc{k}"
            if key in part:
                print(f"{key}: done", flush=True)
                continue
            run_dir = work / "runs" / key.replace("/", "-")
            t0 = time.perf_counter()
            result = distill(train, resolve_config(method.partition("@")[0], recipe(method, k)), run_dir, resume=True,
                             overwrite=True)
            if method.startswith("diffusion-"):
                clips = result.distilled.tensors["clips"].numpy()  # (K*IPC, T, H, W, C), class order
                write_png(grid([np.concatenate([frame_strip(v) for v in clips[c * k : (c + 1) * k]], axis=0)
                                for c in range(train.num_classes)]), out.parent / f"selected-{method}-ipc{k}.png")
            report = evaluate(result.distilled, test, protocol, train_store=train, references=("random", "bytes"),
                              cache_dir=work / "references")
            report.save(run_dir / "report.json")
            part[key] = {"method": method, "ipc": k, "recipe": recipe(method, k), "distill_seconds": result.seconds,
                         "seconds": time.perf_counter() - t0, "report": report.to_json()}
            write_json(out, results)
            print(f"{key}: {report.result.fmt()}", flush=True)
    entries = []
    for key, cell in part.items():
        entry = StudyEntry(EvalReport.from_json(cell["report"]), out)
        entry.report.method = key.split("/")[0]
        entries.append(entry)
    results["main_table"] = markdown_table(study_rows(entries))
    write_json(out, results)
    print(results["main_table"])


if __name__ == "__main__":
    main()
