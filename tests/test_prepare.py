"""`videodd prepare` end to end on tiny real encoded videos written into each official layout."""

from __future__ import annotations

import filecmp
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from videodd.cli import main
from videodd.data.datasets.ucf101 import MINIUCF_CLASSES
from videodd.data.layouts import VideoItem
from videodd.data.prepare import PrepareError, prepare_split
from videodd.data.spec import get_clip_spec
from videodd.data.store import ClipStore
from videofixtures import pattern_frames, write_frames, write_video

SPEC = "8x32"  # 8 frames, stride 2, 32x32: the tiny videos below have 20-28 frames
STORE_FILES = ("clips.npy", "labels.npy", "meta.json", "sources.jsonl")


@pytest.fixture(scope="module")
def encoded(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[bytes]]:
    """Encoded bytes of three tiny videos per container (copied into the layouts: encoding is the slow part)."""
    folder = tmp_path_factory.mktemp("encoded")
    out: dict[str, list[bytes]] = {}
    for ext in (".avi", ".mp4", ".mkv", ".webm"):
        out[ext] = [write_video(folder / f"v{k}{ext}", pattern_frames(20 + 4 * k, seed=k)).read_bytes()
                    for k in range(3)]
    return out


def put(encoded: dict[str, list[bytes]], path: Path, k: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(encoded[path.suffix][k % 3])
    return path


def prepare(*args: str, out: Path, capsys: pytest.CaptureFixture[str] | None = None) -> tuple[ClipStore, ClipStore]:
    argv = ["prepare", *args, "--out", str(out), "--quiet"]
    if "--spec" not in args:
        argv += ["--spec", SPEC]
    if "--workers" not in args:
        argv += ["--workers", "1"]
    code = main(argv)
    err = capsys.readouterr().err if capsys is not None else ""
    assert code == 0, err
    return ClipStore(out / "train"), ClipStore(out / "test")


def check_store(store: ClipStore, classes: list[str], labels: list[int], spec: str = SPEC) -> None:
    assert store.classes == classes
    assert store.labels.tolist() == labels
    assert store.clips.shape == (len(labels), *get_clip_spec(spec).shape, 3)
    assert len(store.meta.source_ids) == len(labels)
    store.verify()  # the fingerprint matches the bytes


# -- official layouts --------------------------------------------------------------------------------
def write_ucf(root: Path, encoded: dict[str, list[bytes]], classes: list[str], *, rawframes: bool = False) -> Path:
    """UCF-101/<Class>/v_<Class>_gXX_cYY.avi (or rawframes folders) + ucfTrainTestlist with CRLF lines."""
    videos = root / ("rawframes" if rawframes else "UCF-101")
    lists = root / "ucfTrainTestlist"
    lists.mkdir(parents=True)
    train, test = [], []
    for c, name in enumerate(classes):
        for g, split in ((8, train), (9, train), (1, test)):
            rel = f"{name}/v_{name}_g{g:02d}_c01.avi"
            if rawframes:
                write_frames(videos / rel[:-4], pattern_frames(20, seed=g), template="img_{:05d}.jpg")
            else:
                put(encoded, videos / rel, g + c)
            split.append(f"{rel} {c + 1}" if split is train else rel)
    crlf = "\r\n"
    (lists / "classInd.txt").write_bytes(crlf.join(f"{i + 1} {n}" for i, n in enumerate(classes)).encode() + b"\r\n")
    (lists / "trainlist01.txt").write_bytes((crlf.join(train) + crlf).encode())
    (lists / "testlist01.txt").write_bytes((crlf.join(test) + crlf).encode())
    return videos


def test_ucf101_official_lists(tmp_path, encoded, capsys):
    classes = ["ApplyEyeMakeup", "Biking", "YoYo"]
    root = write_ucf(tmp_path / "ucf", encoded, classes)
    train, test = prepare("ucf101", "--root", str(root), "--split", "1", out=tmp_path / "out", capsys=capsys)
    check_store(train, classes, [0, 0, 1, 1, 2, 2])
    check_store(test, classes, [0, 1, 2])
    assert train.meta.dataset == "ucf101-split1" and train.meta.failures == []
    assert test.meta.source_ids[0] == "ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi"
    assert test.meta.mean == train.meta.mean  # the test store uses the training normalization
    assert train.meta.extra["prepare"]["sampling"] == "random" and test.meta.extra["prepare"]["sampling"] == "center"
    assert not (tmp_path / "out" / ".train.partial").exists()  # work folder removed


def test_ucf101_rawframes_with_template(tmp_path, encoded, capsys):
    classes = ["Basketball", "Diving"]
    root = write_ucf(tmp_path / "ucf", encoded, classes, rawframes=True)
    train, test = prepare("ucf101", "--root", str(root), "--annotations", str(tmp_path / "ucf" / "ucfTrainTestlist"),
                          "--frame-template", "img_{:05d}.jpg", out=tmp_path / "out", capsys=capsys)
    check_store(train, classes, [0, 0, 1, 1])
    check_store(test, classes, [0, 1])
    assert test.meta.source_ids == ["Basketball/v_Basketball_g01_c01", "Diving/v_Diving_g01_c01"]
    assert train.meta.extra["prepare"]["frame_template"] == "img_{:05d}.jpg"


def test_miniucf_keeps_its_50_classes_and_names_empty_ones(tmp_path, encoded, capsys):
    root = tmp_path / "ucf"
    lists = root / "ucfTrainTestlist"
    lists.mkdir(parents=True)
    everything = [*MINIUCF_CLASSES[:25], "YoYo", *MINIUCF_CLASSES[25:]]  # one class outside MiniUCF
    (lists / "classInd.txt").write_text("".join(f"{i + 1} {n}\n" for i, n in enumerate(everything)))
    train, test = [], []
    for c, name in enumerate(everything):
        for g in (1, 2):
            rel = f"{name}/v_{name}_g{g:02d}_c01.avi"
            put(encoded, root / "UCF-101" / rel, c + g)
            (train.append(f"{rel} {c + 1}") if g == 2 else test.append(rel))
    (lists / "trainlist01.txt").write_text("\n".join(train) + "\n")
    (lists / "testlist01.txt").write_text("\n".join(test) + "\n")
    tr, te = prepare("miniucf", "--root", str(root / "UCF-101"), out=tmp_path / "out", capsys=capsys)
    check_store(tr, list(MINIUCF_CLASSES), list(range(50)))
    check_store(te, list(MINIUCF_CLASSES), list(range(50)))
    assert "YoYo" not in " ".join(tr.meta.source_ids)
    # a class whose only training video is gone: found from the index, before anything is decoded
    (root / "UCF-101" / "Biking" / "v_Biking_g02_c01.avi").unlink()
    assert main(["prepare", "miniucf", "--root", str(root / "UCF-101"), "--out", str(tmp_path / "o2"),
                 "--spec", SPEC, "--workers", "1", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "classes with fewer than 1 video(s) in a split: 'Biking' (0 train, 1 test)" in err
    assert "Traceback" not in err and not (tmp_path / "o2" / ".train.partial").exists()  # nothing was decoded
    # issue 15, item 9: go on without it, the drop recorded in both manifests
    tr, te = prepare("miniucf", "--root", str(root / "UCF-101"), "--min-videos-per-class", "1",
                     out=tmp_path / "o3", capsys=capsys)
    assert tr.num_classes == te.num_classes == 49 and "Biking" not in tr.classes
    dropped = tr.meta.extra["prepare"]["dropped_classes"]
    assert dropped == [{"class": "Biking", "reason": "fewer than 1 video(s) in a split (--min-videos-per-class 1)",
                        "train_videos": 0, "test_videos": 1}] == te.meta.extra["prepare"]["dropped_classes"]


def write_hmdb(root: Path, encoded: dict[str, list[bytes]]) -> Path:
    splits = root / "testTrainMulti_7030_splits"
    splits.mkdir(parents=True)
    for c, name in enumerate(["brush_hair", "cartwheel"]):
        lines = []
        for v, sid in enumerate((1, 1, 0, 2, 2)):
            video = f"{name}_clip_{v}.avi"
            put(encoded, root / "hmdb51" / name / video, c + v)
            lines.append(f"{video} {sid} ")
        (splits / f"{name}_test_split1.txt").write_text("\n".join(lines) + "\n")
        (splits / f"{name}_test_split2.txt").write_text("\n".join(lines) + "\n")
    return root / "hmdb51"


def test_hmdb51_official_and_vdsd_variant(tmp_path, encoded, capsys):
    root = write_hmdb(tmp_path / "h", encoded)
    train, test = prepare("hmdb51", "--root", str(root), out=tmp_path / "official", capsys=capsys)
    classes = ["brush_hair", "cartwheel"]
    check_store(train, classes, [0, 0, 1, 1])
    check_store(test, classes, [0, 0, 1, 1])
    vtrain, vtest = prepare("hmdb51-vdsd", "--root", str(root), out=tmp_path / "vdsd", capsys=capsys)
    check_store(vtrain, classes, [0, 0, 0, 1, 1, 1])  # ids 0 and 1
    assert vtrain.meta.dataset == "hmdb51-vdsd-split1"
    assert np.array_equal(np.asarray(vtest.clips), np.asarray(test.clips))  # the same test clips


def test_kinetics400_csv_with_a_missing_video_and_a_class_subset(tmp_path, encoded, capsys):
    root, ann = tmp_path / "k400", tmp_path / "k400" / "annotations"
    ann.mkdir(parents=True)
    rows = {"train": [], "validate": []}
    for split, sub in (("train", "train"), ("validate", "val")):
        for c, label in enumerate(["abseiling", "air drumming", "zumba"]):
            for v in range(2):
                yid = f"{split[:2]}{c}{v}xxxxxxx"
                rows[split].append(f"{label},{yid},{10 * v},{10 * v + 10},{split}")
                if not (split == "validate" and c == 1 and v == 1):  # one listed video is absent
                    put(encoded, root / sub / label.replace(" ", "_") / f"{yid}_{10 * v:06d}_{10 * v + 10:06d}.mp4",
                        c + v)
    for split, lines in rows.items():
        (ann / f"{split}.csv").write_text("label,youtube_id,time_start,time_end,split\n" + "\n".join(lines) + "\n")
    train, test = prepare("kinetics400", "--root", str(root), "--annotations", str(ann), out=tmp_path / "all",
                          capsys=capsys)
    classes = ["abseiling", "air drumming", "zumba"]
    check_store(train, classes, [0, 0, 1, 1, 2, 2])
    check_store(test, classes, [0, 0, 1, 2, 2])
    assert train.spec == get_clip_spec(SPEC)
    assert train.meta.failures == []  # the absent video was listed for validation: recorded in the test store
    (failure,) = test.meta.failures
    assert failure["path"].endswith("va11xxxxxxx_000010_000020.mp4") and "not found" in failure["reason"]
    assert failure["source_id"] == "val/va11xxxxxxx_000010_000020.mp4"
    # class subset (names, in the given order) and a cap per class
    (tmp_path / "subset.txt").write_text("zumba\nabseiling\n")
    train, test = prepare("kinetics400", "--root", str(root), "--annotations", str(ann), "--classes",
                          str(tmp_path / "subset.txt"), "--max-per-class", "1", out=tmp_path / "sub", capsys=capsys)
    check_store(train, ["zumba", "abseiling"], [1, 0])
    train, _ = prepare("kinetics400", "--root", str(root), "--annotations", str(ann), "--classes", "zumba,abseiling",
                       out=tmp_path / "sub2", capsys=capsys)
    assert train.classes == ["zumba", "abseiling"]


def test_ssv2_json_and_webm(tmp_path, encoded, capsys):
    root, labels_dir = tmp_path / "ssv2" / "videos", tmp_path / "ssv2" / "labels"
    labels_dir.mkdir(parents=True)
    templates = ["Holding something", "Pushing something from left to right"]
    (labels_dir / "something-something-v2-labels.json").write_text(json.dumps({t: str(i) for i, t in
                                                                              enumerate(templates)}))
    entries: dict[str, list[dict[str, object]]] = {"train": [], "validation": []}
    for n, (split, label) in enumerate([("train", 0), ("train", 1), ("train", 0), ("validation", 1),
                                        ("validation", 0)]):
        template = templates[label].replace("something", "[something]")
        entries[split].append({"id": str(100 + n), "label": "x", "template": template, "placeholders": ["x"]})
        put(encoded, root / f"{100 + n}.webm", n)
    for split, data in entries.items():
        (labels_dir / f"something-something-v2-{split}.json").write_text(json.dumps(data))
    train, test = prepare("ssv2", "--root", str(root), "--annotations", str(labels_dir), out=tmp_path / "out",
                          capsys=capsys)
    check_store(train, templates, [0, 1, 0])
    check_store(test, templates, [1, 0])
    assert test.meta.source_ids == ["103.webm", "104.webm"]


def test_folder_layout_records_a_corrupt_file(tmp_path, encoded, capsys):
    root = tmp_path / "mine"
    for c, (name, ext) in enumerate((("jump", ".mkv"), ("run", ".mp4"), ("walk", ".avi"))):
        for v in range(4):
            put(encoded, root / name / f"{name}{v}{ext}", c + v)
    bad = root / "run" / "zz_corrupt.mp4"
    bad.write_bytes(np.random.default_rng(0).integers(0, 256, 3000, dtype=np.uint8).tobytes())
    train, test = prepare("folder", "--root", str(root), "--test-fraction", "0.25", out=tmp_path / "out",
                          capsys=capsys)
    assert train.classes == ["jump", "run", "walk"]
    assert len(train) + len(test) == 12  # 13 videos, one corrupt
    assert sorted(np.bincount(test.labels).tolist()) == [1, 1, 1]
    failures = train.meta.failures + test.meta.failures
    assert [f["source_id"] for f in failures] == ["run/zz_corrupt.mp4"]
    assert failures[0]["path"] == str(bad) and failures[0]["reason"]


def test_list_csv(tmp_path, encoded, capsys):
    root = tmp_path / "lists"
    for c, name in enumerate(("a", "b")):
        for v in range(3):
            put(encoded, root / "clips" / f"{name}{v}.mp4", c + v)
    (root / "train.csv").write_text("path,label\nclips/a0.mp4,a\nclips/a1.mp4,a\nclips/b0.mp4,b\nclips/b1.mp4,b\n")
    (root / "test.csv").write_text("path,label\nclips/b2.mp4,b\nclips/a2.mp4,a\n")
    train, test = prepare("list", "--train-list", str(root / "train.csv"), "--test-list", str(root / "test.csv"),
                          out=tmp_path / "out", capsys=capsys)
    check_store(train, ["a", "b"], [0, 0, 1, 1])
    check_store(test, ["a", "b"], [1, 0])


# -- errors -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("argv, message", [
    (["ucf101"], "needs --root"),
    (["ucf101", "--root", "{tmp}/nowhere"], "nowhere"),
    (["ucf101", "--root", "{tmp}", "--test-fraction", "0.5"], "does not use --test-fraction"),
    (["folder", "--root", "{tmp}", "--spec", "9x9"], "valid clip specs"),
    (["synth-actions", "--classes", "walk,run"], "number of classes"),
    (["synth-actions", "--root", "{tmp}"], "does not use --root"),
    (["folder", "--root", "{tmp}", "--num-classes", "3"], "does not use --num-classes"),
    (["folder", "--root", "{tmp}", "--frames", "0"], "frames must be >= 1"),
    (["kinetics400", "--root", "{tmp}", "--annotations", "{tmp}", "--classes", "{tmp}/nope.txt"], "nope.txt"),
])
def test_bad_options_give_one_line_errors(tmp_path, capsys, argv, message):
    argv = [a.format(tmp=tmp_path) for a in argv]
    assert main(["prepare", *argv, "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


# -- determinism, resume ----------------------------------------------------------------------------
@pytest.fixture()
def folder_dataset(tmp_path, encoded) -> Path:
    root = tmp_path / "data"
    for c, name in enumerate(("a", "b", "c")):
        for v in range(4):
            put(encoded, root / "train" / name / f"{name}{v}.mp4", c + v)
        put(encoded, root / "test" / name / f"{name}9.avi", c)
    return root


def same_stores(a: Path, b: Path) -> None:
    for split in ("train", "test"):
        for name in STORE_FILES:
            assert filecmp.cmp(a / split / name, b / split / name, shallow=False), f"{split}/{name} differ"


def test_two_workers_write_the_same_bytes_as_one(folder_dataset, tmp_path, capsys):
    args = ("folder", "--root", str(folder_dataset), "--chunk-size", "2")
    prepare(*args, "--workers", "1", out=tmp_path / "w1", capsys=capsys)
    prepare(*args, "--workers", "2", out=tmp_path / "w2", capsys=capsys)
    same_stores(tmp_path / "w1", tmp_path / "w2")


_SLOW_CHILD = """
import sys, time
import videodd.data.prepare as prepare
from videodd.cli import main

real = prepare._load_reader
def slow_reader():
    read_clip, error = real()
    def read(*args, **kwargs):
        time.sleep(0.15)  # slow enough that the parent kills it mid-way
        return read_clip(*args, **kwargs)
    return read, error
prepare._load_reader = slow_reader
sys.exit(main(sys.argv[1:]))
"""


def test_killed_run_resumes_to_identical_bytes(folder_dataset, tmp_path, capsys):
    args = ["prepare", "folder", "--root", str(folder_dataset), "--spec", SPEC, "--workers", "1", "--quiet",
            "--chunk-size", "2"]
    out = tmp_path / "killed"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    child = subprocess.Popen([sys.executable, "-c", _SLOW_CHILD, *args, "--out", str(out)], env=env,
                             start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while not list((out / ".train.partial").glob("chunk-*.json")):
            assert child.poll() is None, "prepare finished before it could be killed"
            assert time.monotonic() < deadline
            time.sleep(0.01)
    finally:
        os.killpg(child.pid, signal.SIGKILL)
        child.wait()
    partial = out / ".train.partial"
    done = len(list(partial.glob("chunk-*.json")))
    assert 1 <= done < 6 and not (out / "train").exists()
    # without --resume the leftovers are not silently thrown away; other settings are refused
    assert main([*args, "--out", str(out)]) == 2
    assert "pass --resume" in capsys.readouterr().err
    assert main([*args, "--out", str(out), "--resume", "--seed", "3"]) == 2
    assert "seed: 0 -> 3" in capsys.readouterr().err
    assert main([*args, "--out", str(out), "--resume", "--frames", "4"]) == 2
    assert "spec.frames: 8 -> 4" in capsys.readouterr().err
    assert main([*args, "--out", str(out), "--resume"]) == 0
    assert "resumed" in capsys.readouterr().out
    main([*args, "--out", str(tmp_path / "whole")])
    same_stores(out, tmp_path / "whole")
    assert not partial.exists()
    # resuming a finished dataset keeps it as it is
    before = (out / "train" / "clips.npy").stat().st_mtime_ns
    assert main([*args, "--out", str(out), "--resume"]) == 0
    assert (out / "train" / "clips.npy").stat().st_mtime_ns == before


# -- library API --------------------------------------------------------------------------------------
def test_prepare_split_with_a_stub_reader(tmp_path, monkeypatch):
    """prepare_split's own logic (cached random starts, failures, shapes) without a real decoder."""
    from videodd.data import prepare as prep
    from videodd.data.decode import ClipInfo, DecodeError

    spec = get_clip_spec(SPEC)

    def fake_read(path, spec, *, sampling, rng, frame_template, threads):
        if "bad" in str(path):
            raise DecodeError(path, "no video stream")
        start = int(rng.integers(0, 100)) if sampling == "random" else 50
        clip = np.full((*spec.shape, 3), start, dtype=np.uint8)
        return clip, ClipInfo(100, 25.0, (64, 48), 0, start, spec.stride, None)

    monkeypatch.setattr(prep, "_load_reader", lambda: (fake_read, DecodeError))
    items = [VideoItem(Path(f"/v/{n}.mp4"), i % 2, f"{n}.mp4") for i, n in enumerate(("x0", "x1", "bad2", "x3", "x4"))]
    store = prepare_split(items, out=tmp_path, classes=["a", "b"], spec=spec, dataset="stub", split="train",
                          seed=7, progress=False, chunk_size=2, missing=[{"path": "/v/gone.mp4", "reason": "absent"}])
    starts = [int(np.random.default_rng([7, i]).integers(0, 100)) for i in (0, 1, 3, 4)]
    assert np.asarray(store.clips)[:, 0, 0, 0, 0].tolist() == starts  # rng = default_rng([seed, index])
    assert store.labels.tolist() == [0, 1, 1, 0]
    assert [f["source_id"] for f in store.meta.failures] == ["/v/gone.mp4", "bad2.mp4"]
    with pytest.raises(PrepareError, match="no clips for class 'b'"):
        prepare_split(items[:1], out=tmp_path / "o", classes=["a", "b"], spec=spec, dataset="stub", split="train",
                      progress=False)


# -- the shared real clips (opt-in) ------------------------------------------------------------------
def test_real_clips_folder(test_data_dir, tmp_path, capsys):
    real = test_data_dir / "real-clips"
    layout = {
        "train/ucf": ["ucf101/v_ApplyEyeMakeup_g01_c01.avi"],
        "test/ucf": ["ucf101/v_BaseballPitch_g01_c01.avi"],
        "train/kinetics": ["kinetics/clean_and_jerk.mp4", "kinetics/skateboarding.mp4", "kinetics/ta_chi.mp4"],
        "test/kinetics": ["kinetics/demo.mp4"],
        "train/other": ["ntu/S001C001P001R001A001_rgb.avi", "misc/flipping_a_pancake.mkv", "misc/corrupted.mp4"],
        "test/other": ["activitynet/v_GGSY1Qvo990.mp4"],
    }
    for folder, files in layout.items():
        (tmp_path / "real" / folder).mkdir(parents=True)
        for f in files:
            os.symlink(real / f, tmp_path / "real" / folder / Path(f).name)
    train, test = prepare("folder", "--root", str(tmp_path / "real"), "--workers", "2", out=tmp_path / "out",
                          capsys=capsys)
    check_store(train, ["kinetics", "other", "ucf"], [0, 0, 0, 1, 1, 2])
    check_store(test, ["kinetics", "other", "ucf"], [0, 1, 2])
    assert [f["source_id"] for f in train.meta.failures] == ["train/other/corrupted.mp4"]
    assert np.asarray(train.clips).std() > 10  # real content, not blank frames
    shutil.rmtree(tmp_path / "out")


def test_nothing_in_a_folder_is_dropped_without_a_word(tmp_path, encoded, capsys):
    """Issue 15, item 10: a val/ split next to test/ is reported; broken links, ._* files and empty files are
    listed with their reason; `videodd info` lists the failures."""
    root = tmp_path / "mine"
    for split in ("train", "test", "val"):
        for c, name in enumerate(("jump", "run")):
            for v in range(2):
                put(encoded, root / split / name / f"{name}{v}.mp4", c + v)
    (root / "train" / "run" / "._run0.mp4").write_bytes(b"\x00\x05\x16\x07")  # macOS resource fork
    (root / "train" / "jump" / "gone.mp4").symlink_to(tmp_path / "nowhere.mp4")  # a dangling symlink
    (root / "test" / "jump" / "partial.mp4").write_bytes(b"")  # a 0-byte file from an interrupted download
    train, test = prepare("folder", "--root", str(root), out=tmp_path / "out", capsys=capsys)
    assert len(train) == 4 and len(test) == 4
    reasons = {f["source_id"]: f["reason"] for f in train.meta.failures + test.meta.failures}
    assert reasons["run/._run0.mp4"].startswith("macOS resource fork")
    assert reasons["jump/gone.mp4"].startswith("broken symbolic link")
    assert reasons["test/jump/partial.mp4"].startswith("empty file (0 bytes)")
    assert main(["prepare", "folder", "--root", str(root), "--out", str(tmp_path / "again"), "--spec", SPEC,
                 "--workers", "1", "--quiet"]) == 0
    assert "warning: " in capsys.readouterr().err  # val/ is not used: said so
    info_out = tmp_path / "info"
    assert main(["info", str(tmp_path / "out" / "test")]) == 0
    printed = capsys.readouterr().out
    assert "test/jump/partial.mp4: empty file (0 bytes)" in printed
    val = prepare("folder", "--root", str(root), "--test-split", "val", out=info_out, capsys=capsys)[1]
    assert all(s.startswith("val/") for s in val.meta.source_ids)


def test_a_class_whose_test_videos_all_fail_stops_before_the_training_split_is_decoded(tmp_path, encoded, capsys):
    """Issue 15, item 9: the test split is decoded first, and the error names that class's own files."""
    root = tmp_path / "mine"
    for split in ("train", "test"):
        for c, name in enumerate(("jump", "run")):
            for v in range(2):
                put(encoded, root / split / name / f"{name}{v}.mp4", c + v)
    for v in range(2):
        (root / "test" / "run" / f"run{v}.mp4").write_bytes(b"not a video" * 50)
    (root / "train" / "jump" / "jump0.mp4").write_bytes(b"also broken" * 50)  # another class's failure
    assert main(["prepare", "folder", "--root", str(root), "--out", str(tmp_path / "out"), "--spec", SPEC,
                 "--workers", "1", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "no clips for class 'run' (2 videos listed, 2 failed to decode)" in err
    assert "test/run/run0.mp4" in err and "jump0" not in err  # the example is the class's own file
    assert not (tmp_path / "out" / ".train.partial").exists() and not (tmp_path / "out" / "train").exists()


def _tagged(tag: str) -> list[int]:
    """PIDs of live processes whose environment holds ``VIDEODD_TEST_TAG=tag``."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            env = (proc / "environ").read_bytes()
            state = (proc / "stat").read_text().split()[2]
        except OSError:
            continue
        if f"VIDEODD_TEST_TAG={tag}".encode() in env.split(b"\0") and state != "Z":
            found.append(int(proc.name))
    return found


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="needs Linux /proc")
def test_decoding_workers_die_with_a_killed_prepare(tmp_path, encoded):
    """Issue 15, item 11: kill -9 of `videodd prepare` leaves no worker (nor resource tracker) decoding on."""
    import os
    import signal
    import subprocess
    import sys
    import time
    import uuid

    root = tmp_path / "mine"
    for c, name in enumerate(("jump", "run")):
        for v in range(30):
            put(encoded, root / name / f"{name}{v}.mp4", c + v)
    tag = uuid.uuid4().hex
    # every decode takes 30 s (a long video): a worker orphaned mid-task would decode on long after the kill
    slow = tmp_path / "slow"
    slow.mkdir()
    (slow / "sitecustomize.py").write_text(
        "import time\nimport videodd.data.prepare as prep\nreal = prep._load_reader\n"
        "def slow_reader():\n    read, err = real()\n"
        "    def read_clip(*a, **k):\n        time.sleep(30)\n        return read(*a, **k)\n"
        "    return read_clip, err\nprep._load_reader = slow_reader\n")
    env = {**os.environ, "VIDEODD_TEST_TAG": tag, "OMP_NUM_THREADS": "1", "VIDEODD_PREPARE_CHUNK": "1",
           "PYTHONPATH": os.pathsep.join([str(slow), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen([sys.executable, "-m", "videodd.cli", "prepare", "folder", "--root", str(root), "--out",
                             str(tmp_path / "out"), "--spec", SPEC, "--workers", "2", "--quiet"], env=env)
    deadline = time.time() + 60
    while len(_tagged(tag)) < 3:  # the parent and at least two children (workers, resource tracker)
        assert proc.poll() is None and time.time() < deadline, "the workers did not start"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    time.sleep(2)  # workers now in their 30-s decode
    deadline = time.time() + 8
    try:
        while _tagged(tag):
            assert time.time() < deadline, f"processes outlived the killed prepare: {_tagged(tag)}"
            time.sleep(0.1)
    finally:
        for pid in _tagged(tag):  # on failure: do not leave them running
            os.kill(pid, signal.SIGKILL)
    assert (tmp_path / "out" / ".test.partial" / "settings.json").exists()  # the unfinished work is kept


# -- test views (ClipSpec.test_views) -----------------------------------------------------------------
def _view_reader(fail_on: str | None = None):
    """A stub read_clip: the clip's pixels are its start (random: drawn from the rng; uniform: 10 * k; centre: 50)."""
    from videodd.data.decode import ClipInfo, DecodeError

    def read(path, spec, *, sampling, rng=None, frame_template, threads, clip_index=0, num_clips=1):
        if fail_on and fail_on in str(path):
            raise KeyboardInterrupt  # a killed run, in the middle of the split
        if "bad" in str(path):
            raise DecodeError(path, "no video stream")
        start = {"random": lambda: int(rng.integers(0, 100)), "uniform": lambda: 10 * clip_index,
                 "center": lambda: 50}[sampling]()
        return np.full((*spec.shape, 3), start, dtype=np.uint8), ClipInfo(100, 25.0, (64, 48), 0, start, 2, None)

    return lambda: (read, DecodeError)


def test_test_views_are_seeded_per_video_and_view_and_resume_to_the_same_bytes(tmp_path, monkeypatch):
    from videodd.data import prepare as prep

    spec = get_clip_spec(SPEC).replace(test_sampling="random", test_clips=3)
    items = [VideoItem(Path(f"/v/{n}.mp4"), i % 2, f"{n}.mp4") for i, n in enumerate(("x0", "x1", "bad2", "x3", "x4"))]
    kw = dict(classes=["a", "b"], spec=spec, dataset="stub", split="test", seed=7, progress=False, chunk_size=2)
    monkeypatch.setattr(prep, "_load_reader", _view_reader())
    store = prepare_split(items, out=tmp_path / "whole", **kw)
    assert store.test_views == 3 and store.views.shape == (3, 4, *spec.shape, 3)
    assert np.asarray(store.clips)[:, 0, 0, 0, 0].tolist() == [50] * 4  # clips.npy: the centre clip
    for k in range(3):  # view k of video i: default_rng([seed, i, k]); i counts the failed video too
        want = [int(np.random.default_rng([7, i, k]).integers(0, 100)) for i in (0, 1, 3, 4)]
        assert np.asarray(store.views[k])[:, 0, 0, 0, 0].tolist() == want
        batch = store.view_batch([3, 0], k)
        assert batch.shape == (2, 3, *spec.shape) and torch_close(batch, store, k, [3, 0])
    assert store.meta.views == 3 and store.meta.extra["prepare"]["views"]["count"] == 3
    assert store.meta.extra["prepare"]["seed"] == 7
    lines = [json.loads(line) for line in (store.root / "sources.jsonl").read_text().splitlines()]
    assert [v["start"] for v in lines[0]["views"]] == np.asarray(store.views)[:, 0, 0, 0, 0, 0].tolist()
    store.verify()
    # a run killed after its first chunk, resumed, writes the same bytes
    monkeypatch.setattr(prep, "_load_reader", _view_reader(fail_on="x3"))
    with pytest.raises(KeyboardInterrupt):
        prepare_split(items, out=tmp_path / "killed", **kw)
    assert (tmp_path / "killed" / ".test.partial" / "chunk-00000.views.npy").is_file()
    monkeypatch.setattr(prep, "_load_reader", _view_reader())
    resumed = prepare_split(items, out=tmp_path / "killed", resume=True, **kw)
    for name in (*STORE_FILES, "views.npy"):
        assert filecmp.cmp(store.root / name, resumed.root / name, shallow=False), name
    # another seed gives other views, and the same centre clips
    other = prepare_split(items, out=tmp_path / "seed8", **{**kw, "seed": 8})
    assert not np.array_equal(other.views, store.views) and np.array_equal(other.clips, store.clips)
    # uniform views need no seed: evenly spaced clips
    uniform = prepare_split(items, out=tmp_path / "uniform", **{**kw, "spec": spec.replace(test_sampling="uniform")})
    assert np.asarray(uniform.views)[:, 0, 0, 0, 0, 0].tolist() == [0, 10, 20]
    assert uniform.meta.extra["prepare"]["seed"] is None
    # the training split of the same spec has no views
    train = prepare_split(items, out=tmp_path / "tr", **{**kw, "split": "train"})
    assert train.test_views == 0 and not (train.root / "views.npy").exists()


def torch_close(batch, store: ClipStore, view: int, indices: list[int]) -> bool:
    import torch

    from videodd.data.store import normalize_uint8

    raw = torch.from_numpy(np.asarray(store.views[view])[indices].copy())
    return bool(torch.allclose(batch, normalize_uint8(raw, store.meta.mean, store.meta.std)))


def test_the_published_spec_writes_three_views_the_same_with_two_workers(folder_dataset, tmp_path, capsys):
    """Real decoding of 20-28 frame videos with ucf-16x112-published (at 32x32: squash 46x34)."""
    args = ("folder", "--root", str(folder_dataset), "--chunk-size", "1", "--spec", "ucf-16x112-published",
            "--size", "32")
    tr1, te1 = prepare(*args, "--workers", "1", out=tmp_path / "w1", capsys=capsys)
    prepare(*args, "--workers", "2", out=tmp_path / "w2", capsys=capsys)
    same_stores(tmp_path / "w1", tmp_path / "w2")
    assert filecmp.cmp(tmp_path / "w1" / "test" / "views.npy", tmp_path / "w2" / "test" / "views.npy", shallow=False)
    assert te1.spec.resize == (46, 34) and te1.test_views == 3 and tr1.test_views == 0
    assert te1.views.shape == (3, 3, 16, 32, 32, 3)
    te1.verify()
    starts = [[v["start"] for v in json.loads(line)["views"]]
              for line in (te1.root / "sources.jsonl").read_text().splitlines()]
    assert all(0 <= s <= 28 - 15 - 2 for row in starts for s in row) and len({tuple(r) for r in starts}) > 1
