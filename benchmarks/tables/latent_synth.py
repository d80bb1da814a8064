"""Latent video distillation on synth-actions (CPU scale): equal storage against pixels, and an ablation.

    python -m benchmarks.tables.latent_synth               # the full run: default protocol, 3 runs
    python -m benchmarks.tables.latent_synth --protocol cpu --runs 1 --epochs 2 --ipcs 1 --references random \\
        --selects random,dpp --ablation-ipc 2 --codec-epochs 1 --dm-iterations 2 \\
        --data /tmp/latent-smoke/data --work /tmp/latent-smoke --out /tmp/latent-smoke/latent_synth.json

1. Trains the built-in codec (``videodd train-codec`` defaults) on the training split, once
   (``WORK/codec``; reused when it was trained on the same store with the same settings).
2. **Equal storage.** For each pixel IPC K (``--ipcs``): random real clips at IPC K, DM at IPC K
   (``benchmarks.common.DM_RANDOM_INIT``), and the latent method (k-DPP selection) with each ``--main-compress``
   pipeline at ``match_ipc=K``: the largest latent IPC whose stored latent bytes fit K x classes
   float32 videos (capped at the clips per class). The random row carries the random-real (a new
   selection per run) and full-data references.
3. **Ablation.** selection {random, kmeans, dpp} x recompression {none, tucker (:0.5), pca (N/2
   components), int8} at a fixed latent IPC (``--ablation-ipc``): the same number of latents, so
   the rows isolate what selection and recompression do; their bytes are reported too.

Nothing is chosen by test accuracy: the main configurations (k-DPP with the median-heuristic RBF
kernel; ``none`` and ``tucker:0.5``) are fixed in advance. Writes JSON (``--out``, default
``benchmarks/results/9-latent/latent_synth.json``) and prints markdown tables.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path
from typing import Any

from benchmarks.common import DM_RANDOM_INIT, SYNTH_ACTIONS, add_protocol_args, machine_info, references_summary
from videodd.codecs import CodecError, load_codec
from videodd.codecs.autoencoder import CodecTrainConfig, train_codec
from videodd.data.store import ClipStore
from videodd.data.synthetic import SynthActionsConfig, synth_actions_stores
from videodd.distill import distill, resolve_config
from videodd.distilled import human_bytes
from videodd.evaluate import EvalProtocol, evaluate, get_protocol
from videodd.io import write_json

COMPRESSIONS = {"none": "none", "tucker": "tucker:0.5", "int8": "int8"}  # pca: N/2 components, set per run


def codec_folder(train: ClipStore, work: Path, cfg: CodecTrainConfig, device: str) -> tuple[str, dict[str, Any]]:
    """``builtin:WORK/codec``, trained unless a codec of this store and these settings is there."""
    folder = work / "codec"
    try:
        codec = load_codec(f"builtin:{folder}")
        info = codec.info
        if info.get("fingerprint") == train.fingerprint and info.get("config") == dataclasses.asdict(cfg):
            return f"builtin:{folder}", {**info, "reused": True, "weight_bytes": codec.weight_bytes()}
    except CodecError:  # missing or unreadable: train it below
        pass
    result = train_codec(train, folder, cfg, device=device, progress=True)
    return f"builtin:{result.path}", {**result.codec.info, "reused": False, "weight_bytes": result.codec.weight_bytes()}


def run_one(name: str, method: str, overrides: dict[str, Any], train: ClipStore, test: ClipStore,
            protocol: EvalProtocol, work: Path, device: str, references: tuple[str, ...]) -> dict[str, Any]:
    """Distil ``method`` with ``overrides`` into WORK/runs/NAME, evaluate, and summarise as a dict.

    The summary is kept in the run folder (one file per protocol), so a rerun skips finished rows.
    """
    cfg = resolve_config(method, overrides)
    cached = work / "runs" / name / f"row-{protocol.name}-{protocol.runs}runs.json"
    if cached.exists():
        print(f"{name}: done ({cached})", flush=True)
        return json.loads(cached.read_text())
    print(f"distill {name}", flush=True)
    result = distill(train, cfg, work / "runs" / name, resume=True, overwrite=True, device=device,
                     progress=False)
    dset = result.distilled
    print(f"    {dset.num_videos} videos (IPC {dset.ipc}) in {result.seconds:.0f} s; evaluate: {protocol.runs} runs of "
          f"{protocol.train.epochs} epochs", flush=True)
    report = evaluate(dset, test, protocol, train_store=train, references=references, device=device,
                      cache_dir=work / "references")
    report.save(result.run_dir / "report.json")
    detail = report.storage_detail
    m = dset.manifest
    row = {
        "name": name,
        "method": method,
        "ipc": dset.ipc,
        "videos": dset.num_videos,
        "select": (m.info.get("selection") or {}).get("select"),
        "compression": m.layout.get("compression"),
        "match_ipc": m.equal_storage_ipc,
        "storage_bytes": report.storage_bytes,
        "latent_bytes": detail["parts"].get("latents"),
        "decoder_bytes": detail["parts"].get("decoder"),
        # the latent kind's own figure (latent bytes over one float32 pixel IPC); pixel kinds have none: theirs
        "pixel_equivalent_ipc": detail["equivalent_ipc"] if detail.get("equivalent_ipc") is not None
        else detail["pixel_equivalent_ipc"],
        "latent_relative_error": (m.info.get("reconstruction_error") or {}).get("total"),
        "top1_mean": report.result.top1_mean,
        "top1_std": report.result.top1_std,
        "top1_runs": [r.top1 for r in report.result.runs],
        "diverged_runs": report.result.diverged,
        "distill_seconds": result.seconds,
        "eval_seconds": report.wall_seconds,
        "references": references_summary(report),
    }
    write_json(cached, row)
    return row


def _pct(mean: float, std: float) -> str:
    return f"{100 * mean:.1f} ± {100 * std:.1f}"


def main_table(rows: list[dict[str, Any]]) -> str:
    out = ["| pixel IPC (budget) | method | selection | recompression | videos/class | stored bytes | "
           "pixel-eq. IPC | top-1 (%) |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        pe = r["pixel_equivalent_ipc"]
        out.append(f"| {r['budget_ipc']} | {r['method']} | {r['select'] or '-'} | {r['compression'] or '-'} | "
                   f"{r['ipc']} | {human_bytes(r['storage_bytes'])} | {pe:.3g} | "
                   f"{_pct(r['top1_mean'], r['top1_std'])} |")
    return "\n".join(out)


def ablation_table(rows: list[dict[str, Any]]) -> str:
    out = ["| selection | recompression | latents/class | latent bytes | pixel-eq. IPC | latent rel. error | "
           "top-1 (%) |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        out.append(f"| {r['select']} | {r['compression']} | {r['ipc']} | {human_bytes(r['latent_bytes'])} | "
                   f"{r['pixel_equivalent_ipc']:.3g} | {r['latent_relative_error']:.3g} | "
                   f"{_pct(r['top1_mean'], r['top1_std'])} |")
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_protocol_args(parser)
    parser.add_argument("--epochs", type=int, default=None, help="override the protocol's epochs (quick checks)")
    parser.add_argument("--ipcs", default="1,5", help="pixel IPCs of the equal-storage comparison")
    parser.add_argument("--main-compress", default="none,tucker:0.5",
                        help="recompression pipelines of the latent rows at equal storage")
    parser.add_argument("--selects", default="random,kmeans,dpp", help="ablation: selections")
    parser.add_argument("--compressions", default="none,tucker,pca,int8", help="ablation: recompressions")
    parser.add_argument("--ablation-ipc", type=int, default=5, help="ablation: latents per class (0: no ablation)")
    parser.add_argument("--codec-epochs", type=int, default=CodecTrainConfig().epochs)
    parser.add_argument("--dm-iterations", type=int, default=DM_RANDOM_INIT["iterations"])
    parser.add_argument("--no-dm", action="store_true", help="skip the DM rows")
    parser.add_argument("--references", default="random,full",
                        help="references on the random rows (random: a new selection per run; full: all of train)")
    parser.add_argument("--train-per-class", type=int, default=SynthActionsConfig().train_per_class)
    parser.add_argument("--test-per-class", type=int, default=SynthActionsConfig().test_per_class)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--data", default="benchmarks/work/data", help="synth-actions stores (made if missing)")
    parser.add_argument("--work", default="benchmarks/work/latent", help="scratch folder (codec, runs, references)")
    parser.add_argument("--out", default="benchmarks/results/9-latent/latent_synth.json")
    args = parser.parse_args()

    start = time.perf_counter()
    work = Path(args.work)
    synth = SynthActionsConfig(train_per_class=args.train_per_class, test_per_class=args.test_per_class)
    train, test = synth_actions_stores(Path(args.data), synth)
    protocol = get_protocol(args.protocol).with_runs(args.runs)
    if args.epochs:
        protocol = protocol.with_epochs(args.epochs)
    codec_cfg = CodecTrainConfig(epochs=args.codec_epochs)
    t0 = time.perf_counter()
    codec, codec_info = codec_folder(train, work, codec_cfg, args.device)
    codec_seconds = time.perf_counter() - t0
    holdout = codec_info.get("holdout") or {}
    print(f"codec {codec}: latent {codec_info.get('latent_shape')} for video {codec_info.get('video_shape')}, "
          f"held-out PSNR {holdout.get('psnr_db', float('nan')):.2f} dB "
          f"(predicting the mean: {holdout.get('mean_baseline_psnr_db', float('nan')):.2f} dB)", flush=True)

    main_rows: list[dict[str, Any]] = []
    for k in (int(x) for x in args.ipcs.split(",") if x):
        row = run_one(f"random-ipc{k}", "random", {"ipc": k}, train, test, protocol, work, args.device,
                      tuple(r for r in args.references.split(",") if r))
        main_rows.append({**row, "budget_ipc": k})
        if not args.no_dm:
            dm = {**DM_RANDOM_INIT, "ipc": k, "iterations": args.dm_iterations}
            main_rows.append({**run_one(f"dm-ipc{k}", "dm", dm, train, test, protocol, work, args.device, ()),
                              "budget_ipc": k})
        for comp in (c for c in args.main_compress.split(",") if c):
            sel = {"codec": codec, "select": "dpp", "compress": comp, "match_ipc": k}
            name = f"latent-dpp-{comp.replace(':', '').replace('+', '-')}-px{k}"
            main_rows.append({**run_one(name, "latent", {"builder": sel}, train, test, protocol, work, args.device,
                                        ()), "budget_ipc": k})

    ablation_rows: list[dict[str, Any]] = []
    if args.ablation_ipc > 0:
        n = args.ablation_ipc * train.num_classes
        specs = {**COMPRESSIONS, "pca": f"pca:{max(1, n // 2)}"}
        for select in (s for s in args.selects.split(",") if s):
            for comp in (c for c in args.compressions.split(",") if c):
                sel = {"codec": codec, "select": select, "compress": specs.get(comp, comp)}
                name = f"ablation-{select}-{comp.replace(':', '')}-ipc{args.ablation_ipc}"
                ablation_rows.append(run_one(name, "latent", {"ipc": args.ablation_ipc, "builder": sel}, train, test,
                                             protocol, work, args.device, ()))

    tables = {"equal_storage": main_table(main_rows), "ablation": ablation_table(ablation_rows)}
    print("\n## Equal storage\n\n" + tables["equal_storage"])
    refs = next((r["references"] for r in main_rows if r["references"]), {})
    for name, s in refs.items():
        print(f"- {name}: {_pct(s['top1_mean'], s['top1_std'])}")
    if ablation_rows:
        print(f"\n## Ablation (latent IPC {args.ablation_ipc})\n\n" + tables["ablation"])
    result = {
        "benchmark": SYNTH_ACTIONS,
        "command": "python -m benchmarks.tables.latent_synth " + " ".join(
            f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items() if v not in (None, False)),
        "protocol": protocol.name,
        "runs": args.runs,
        **machine_info(),
        "codec": {"spec": codec, "train_seconds": codec_seconds, **codec_info},
        "equal_storage": main_rows,
        "ablation": ablation_rows,
        "tables": tables,
        "seconds": time.perf_counter() - start,
    }
    write_json(args.out, json.loads(json.dumps(result, default=str)))
    print(f"\nwrote {args.out} in {result['seconds']:.0f} s")


if __name__ == "__main__":
    main()
