"""Speed and disk of `videodd prepare` against the published pipeline's frame extraction, same videos, same run.

    python -m benchmarks.tables.prepare_speed --videos 40 [--workers 2] [--real ../shared/data/real-clips]

Videos: ``--videos`` synthetic clips (``--frames`` frames at 320x240, 25 fps, mpeg4 in .avi like UCF101;
moving shapes on a panning gradient with mild noise, so both codecs and JPEG see camera-like content),
plus every video file under ``--real`` when given. Clip spec ``ucf-16x112`` (16 frames, stride 4,
short side 128, centre crop 112), the centre clip of each video.

(a) videodd: ``prepare_split`` (decode only the needed frames, resize, uint8 store), with 1 worker and
    with ``--workers`` processes; videos/s end to end (including worker start-up) and bytes per clip.
(b) published pipeline: decode every frame and write it as a JPEG at the original size with Pillow
    (default quality 75), then build each clip by reading its 16 JPEGs back with Pillow, resizing the short
    side to 128 and centre-cropping 112; videos/s of extract + read, and JPEG bytes per clip.

Writes ``benchmarks/results/5-prepare-speed/prepare_speed.json`` and prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

import av
import numpy as np
from PIL import Image

from videodd.data.decode import sample_indices
from videodd.data.layouts import VIDEO_EXTENSIONS, VideoItem
from videodd.data.prepare import prepare_split_summary
from videodd.data.spec import ClipSpec, get_clip_spec

SPEC_NAME = "ucf-16x112"


# -- the videos --------------------------------------------------------------------------------------
def synth_frames(num_frames: int, seed: int, height: int = 240, width: int = 320, texture: float = 40.0) -> np.ndarray:
    """uint8 (T, H, W, 3): a panning textured scene (band-limited noise over a colour gradient), three moving
    discs and mild sensor noise. The texture makes its JPEG frames about as large as real 320x240 footage
    (10-16 KB at Pillow's default quality for the UCF101/Kinetics clips in the shared test data)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    base = rng.uniform(60, 180, size=3).astype(np.float32)
    tilt = rng.uniform(-0.2, 0.2, size=(3, 2)).astype(np.float32)
    gradient = np.stack([base[c] + tilt[c, 0] * xx + tilt[c, 1] * yy for c in range(3)], axis=-1)
    pad = 2 * num_frames  # the scene pans 2 px per frame
    coarse = rng.uniform(-1, 1, size=(height // 4, (width + pad) // 4, 3)).astype(np.float32)
    scene = np.stack([np.asarray(Image.fromarray(coarse[..., c], mode="F").resize((width + pad, height),
                                                                                   Image.Resampling.BICUBIC))
                      for c in range(3)], axis=-1) * texture
    discs = [(rng.uniform(0, width), rng.uniform(0, height), rng.uniform(-3, 3), rng.uniform(-2, 2),
              rng.uniform(15, 40), rng.uniform(0, 255, size=3)) for _ in range(3)]
    frames = np.empty((num_frames, height, width, 3), dtype=np.uint8)
    for t in range(num_frames):
        img = gradient + scene[:, 2 * t : 2 * t + width]
        for x0, y0, vx, vy, r, colour in discs:
            mask = (xx - (x0 + vx * t) % width) ** 2 + (yy - (y0 + vy * t) % height) ** 2 < r * r
            img[mask] = colour
        img += rng.standard_normal(img.shape, dtype=np.float32) * 3
        frames[t] = np.clip(img, 0, 255).astype(np.uint8)
    return frames


def write_avi(path: Path, frames: np.ndarray, fps: int = 25) -> None:
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("mpeg4", rate=fps)
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        stream.bit_rate = 500_000  # UCF101 clips are 300-500 kbit/s at 320x240
        for img in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")))
        container.mux(stream.encode())


def make_videos(folder: Path, count: int, frames: int, real: Path | None) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        path = folder / f"synth_{i:03d}_{frames}.avi"
        if not path.is_file():  # kept between runs when --work is given
            write_avi(path, synth_frames(frames, seed=i))
        paths.append(path)
    if real is not None:
        paths += sorted(p for p in real.rglob("*") if p.suffix.lower() in VIDEO_EXTENSIONS and p.is_file())
    return paths


# -- (a) videodd prepare -------------------------------------------------------------------------------
def run_videodd(paths: list[Path], spec: ClipSpec, workers: int, out: Path) -> dict[str, float]:
    items = [VideoItem(p, 0, p.name) for p in paths]
    shutil.rmtree(out, ignore_errors=True)
    start = time.perf_counter()
    store, summary = prepare_split_summary(items, out=out, classes=["all"], spec=spec, dataset="bench",
                                           split="train", workers=workers, progress=False, chunk_size=4)
    seconds = time.perf_counter() - start
    folder_bytes = sum(f.stat().st_size for f in store.root.iterdir())
    return {"workers": workers, "videos": len(paths), "clips": len(store), "failed": summary.failed,
            "seconds": seconds, "videos_per_s": len(paths) / seconds,
            "bytes_per_clip": folder_bytes / max(1, len(store)), "clips_npy_bytes": summary.bytes}


# -- (b) the published pipeline: every frame to JPEG, then clips read back from the JPEGs --------------
def extract_jpegs(path: Path, folder: Path) -> int:
    """Decode every frame and save it at the original size as img_00001.jpg, ... (Pillow, default quality)."""
    folder.mkdir(parents=True, exist_ok=True)
    count = 0
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            count += 1
            frame.to_image().save(folder / f"img_{count:05d}.jpg")
    return count


def clip_from_jpegs(folder: Path, num_frames: int, spec: ClipSpec) -> np.ndarray:
    """The centre clip: read the needed JPEGs, resize the short side to resize_short, centre crop."""
    indices, *_ = sample_indices(num_frames, spec, "center", None)
    short, size = spec.resize_short or spec.size, spec.size
    out = np.empty((spec.frames, size, size, 3), dtype=np.uint8)
    for k, i in enumerate(indices):
        with Image.open(folder / f"img_{int(i) + 1:05d}.jpg") as img:
            w, h = img.size
            scale = short / min(w, h)
            img = img.convert("RGB").resize((max(short, round(w * scale)), max(short, round(h * scale))),
                                            Image.Resampling.BILINEAR)
            left, top = (img.width - size) // 2, (img.height - size) // 2
            out[k] = np.asarray(img.crop((left, top, left + size, top + size)))
    return out


def run_published(paths: list[Path], spec: ClipSpec, out: Path) -> dict[str, float]:
    shutil.rmtree(out, ignore_errors=True)
    start = time.perf_counter()
    extracted, failed, jpeg_bytes, jpeg_files = [], 0, 0, 0
    for i, path in enumerate(paths):
        folder = out / f"{i:04d}"
        try:
            n = extract_jpegs(path, folder)
        except (av.FFmpegError, OSError):
            failed += 1  # the corrupt clip: nothing to extract
            shutil.rmtree(folder, ignore_errors=True)
            continue
        if n == 0:
            failed += 1
            continue
        extracted.append((folder, n))
    extract_seconds = time.perf_counter() - start
    for folder, n in extracted:
        clip_from_jpegs(folder, n, spec)
        files = list(folder.iterdir())
        jpeg_files += len(files)
        jpeg_bytes += sum(f.stat().st_size for f in files)
    seconds = time.perf_counter() - start
    return {"videos": len(paths), "clips": len(extracted), "failed": failed, "seconds": seconds,
            "extract_seconds": extract_seconds, "read_seconds": seconds - extract_seconds,
            "videos_per_s": len(paths) / seconds, "bytes_per_clip": jpeg_bytes / max(1, len(extracted)),
            "jpeg_files": jpeg_files}


def best_of(repeat: int, run) -> dict[str, float]:
    """The fastest of ``repeat`` runs (other jobs share the CPUs), with every run's seconds."""
    results = [run() for _ in range(max(1, repeat))]
    best = min(results, key=lambda r: r["seconds"])
    return {**best, "all_seconds": [r["seconds"] for r in results]}


# -- report ----------------------------------------------------------------------------------------------
def table(result: dict) -> str:
    rows = ["| pipeline | videos/s | seconds | bytes per clip | clips |", "|---|---|---|---|---|"]
    pub = result["published"]
    rows.append(f"| published: all frames -> JPEG, read clip back | {pub['videos_per_s']:.2f} | {pub['seconds']:.1f} "
                f"| {pub['bytes_per_clip'] / 1e6:.2f} MB | {pub['clips']} |")
    for run in result["videodd"]:
        rows.append(f"| videodd prepare, {run['workers']} worker(s) | {run['videos_per_s']:.2f} | {run['seconds']:.1f} "
                    f"| {run['bytes_per_clip'] / 1e6:.2f} MB | {run['clips']} |")
    lines = ["\n".join(rows), ""]
    for k, v in result["ratios"].items():
        lines.append(f"- {k}: x{v:.1f}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--videos", type=int, default=40, help="synthetic videos (default 40)")
    parser.add_argument("--frames", type=int, default=120, help="frames per synthetic video (default 120)")
    parser.add_argument("--workers", type=int, default=min(4, os.cpu_count() or 1),
                        help="workers of the parallel videodd run (default min(4, CPUs))")
    parser.add_argument("--repeat", type=int, default=2,
                        help="runs of each pipeline, the fastest is reported (default 2: the machine is shared)")
    parser.add_argument("--spec", default=SPEC_NAME, help=f"clip spec preset (default {SPEC_NAME})")
    parser.add_argument("--real", type=Path, default=None, help="also use every video file under this folder")
    parser.add_argument("--work", type=Path, default=None, help="scratch folder (default: a temporary one)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/5-prepare-speed/prepare_speed.json"))
    args = parser.parse_args()

    work = args.work or Path(tempfile.mkdtemp(prefix="videodd-prepare-speed-"))
    spec = get_clip_spec(args.spec)
    load_before = os.getloadavg()
    try:
        t0 = time.perf_counter()
        paths = make_videos(work / "videos", args.videos, args.frames, args.real)
        print(f"{len(paths)} videos ready in {time.perf_counter() - t0:.1f} s ({work / 'videos'})")
        published = best_of(args.repeat, lambda: run_published(paths, spec, work / "jpegs"))
        print(f"published pipeline: {published['seconds']:.1f} s")
        runs = []
        for workers in sorted({1, args.workers}):
            runs.append(best_of(args.repeat, lambda w=workers: run_videodd(paths, spec, w, work / f"store-w{w}")))
            print(f"videodd prepare, {workers} worker(s): {runs[-1]['seconds']:.1f} s")
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    pub_rate, store_bytes = published["videos_per_s"], runs[0]["bytes_per_clip"]
    ratios = {f"speedup, videodd {r['workers']} worker(s) vs published (1 process)": r["videos_per_s"] / pub_rate
              for r in runs}
    ratios["disk reduction (JPEG bytes / store bytes per clip)"] = published["bytes_per_clip"] / store_bytes
    result = {
        "benchmark": "prepare speed and disk, videodd vs published JPEG-frame pipeline",
        "spec": {"name": args.spec, **spec.to_dict()},
        "videos": {"synthetic": args.videos, "synthetic_frames": args.frames, "synthetic_size": "320x240 mpeg4 avi",
                   "real_folder": str(args.real) if args.real else None, "total": len(paths)},
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.platform()}",
        "load_average_1min": {"before": load_before[0], "after": os.getloadavg()[0]},
        "repeat": args.repeat,
        "published": published,
        "videodd": runs,
        "ratios": ratios,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(table(result))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
