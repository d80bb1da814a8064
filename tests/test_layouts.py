"""Dataset layout parsing: official split files in tmp_path with empty placeholder videos (no decoding)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from videodd.data.datasets.file_list import index_list
from videodd.data.datasets.folder import index_folder
from videodd.data.datasets.hmdb51 import index_hmdb51
from videodd.data.datasets.kinetics400 import index_kinetics400
from videodd.data.datasets.ssv2 import index_ssv2
from videodd.data.datasets.ucf101 import MINIUCF_CLASSES, index_miniucf, index_ucf101
from videodd.data.layouts import LayoutError, SplitIndex


def touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return path


def write_lines(path: Path, lines: list[str], crlf: bool = False) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sep = "\r\n" if crlf else "\n"
    path.write_bytes((sep.join(lines) + sep).encode())
    return path


def ids(items) -> list[str]:
    return [v.source_id for v in items]


# ------------------------------------------------------------------------------------------------ UCF101

UCF_CLASSES = ["ApplyEyeMakeup", "Archery", "HandstandPushups", "YoYo"]


def ucf_disk_name(cls: str) -> str:
    """The real archive writes this class's folder and files as HandStandPushups."""
    return "HandStandPushups" if cls == "HandstandPushups" else cls


def make_ucf(base: Path, classes: list[str] = UCF_CLASSES, groups: int = 3, flat: bool = False,
             rawframes: bool = False) -> Path:
    """base/UCF-101/<Class>/v_<Class>_gXX_c01.avi and base/ucfTrainTestlist (CRLF, official formats).

    Split 1: test = g01, train = g02..; split 2: test = g02, train = the rest. The lists name the folder in
    classInd case; the disk uses the archive's case.
    """
    root = base / ("rawframes" if rawframes else "UCF-101")
    ann = base / "ucfTrainTestlist"
    write_lines(ann / "classInd.txt", [f"{i + 1} {c}" for i, c in enumerate(classes)], crlf=True)
    for split in (1, 2):
        train, test = [], []
        for i, cls in enumerate(classes):
            disk = ucf_disk_name(cls)
            for g in range(1, groups + 1):
                name = f"v_{disk}_g{g:02d}_c01.avi"
                (test if g == split else train).append((f"{cls}/{name}", i + 1))
        write_lines(ann / f"trainlist0{split}.txt", [f"{p} {lab}" for p, lab in train], crlf=True)
        write_lines(ann / f"testlist0{split}.txt", [p for p, _ in test], crlf=True)
    for cls in classes:
        disk = ucf_disk_name(cls)
        for g in range(1, groups + 1):
            name = f"v_{disk}_g{g:02d}_c01.avi"
            if rawframes:
                for f in (1, 2):
                    touch(root / disk / name[:-4] / f"img_{f:05d}.jpg")
            else:
                touch(root / name if flat else root / disk / name)
    return root


def test_ucf101_official_split1(tmp_path: Path) -> None:
    root = make_ucf(tmp_path)
    idx = index_ucf101(root)
    assert isinstance(idx, SplitIndex)
    assert idx.dataset == "ucf101-split1"
    assert idx.classes == UCF_CLASSES
    assert len(idx.train) == 4 * 2 and len(idx.test) == 4
    assert idx.missing == []
    assert idx.train[0].source_id == "ApplyEyeMakeup/v_ApplyEyeMakeup_g02_c01.avi"
    assert idx.train[0].path == root / "ApplyEyeMakeup" / "v_ApplyEyeMakeup_g02_c01.avi"
    assert idx.train[0].path.is_absolute()
    assert [v.label for v in idx.train] == [0, 0, 1, 1, 2, 2, 3, 3]
    assert [v.label for v in idx.test] == [0, 1, 2, 3]
    # the list says HandstandPushups/, the disk HandStandPushups/: resolved case-insensitively
    assert idx.test[2].source_id == "HandStandPushups/v_HandStandPushups_g01_c01.avi"
    assert idx.test[2].path.is_file()
    assert all("g01" in s for s in ids(idx.test)) and not any("g01" in s for s in ids(idx.train))


def test_ucf101_split2_flat_and_explicit_annotations(tmp_path: Path) -> None:
    root = make_ucf(tmp_path, flat=True)
    ann = tmp_path / "elsewhere"
    (tmp_path / "ucfTrainTestlist").rename(ann)
    idx = index_ucf101(root, split=2, annotations=ann)
    assert idx.dataset == "ucf101-split2"
    assert all("g02" in s for s in ids(idx.test)) and len(idx.test) == 4
    assert ids(idx.test)[0] == "v_ApplyEyeMakeup_g02_c01.avi"  # flat layout
    # annotations may also point at a file inside the folder
    assert index_ucf101(root, split=2, annotations=ann / "classInd.txt").classes == UCF_CLASSES


def test_ucf101_missing_files_reported(tmp_path: Path) -> None:
    root = make_ucf(tmp_path)
    (root / "Archery" / "v_Archery_g03_c01.avi").unlink()
    idx = index_ucf101(root)
    assert len(idx.train) == 7
    assert len(idx.missing) == 1
    miss = idx.missing[0]
    assert miss["source_id"] == "Archery/v_Archery_g03_c01.avi"
    assert miss["path"] == str(root / "Archery" / "v_Archery_g03_c01.avi")
    assert "trainlist01.txt" in miss["reason"]


def test_ucf101_rawframes(tmp_path: Path) -> None:
    root = make_ucf(tmp_path, rawframes=True)
    idx = index_ucf101(root, frame_template="img_{:05d}.jpg")
    assert idx.frame_template == "img_{:05d}.jpg"
    assert idx.train[0].source_id == "ApplyEyeMakeup/v_ApplyEyeMakeup_g02_c01"
    assert idx.train[0].path.is_dir()
    assert len(idx.train) == 8 and len(idx.test) == 4 and not idx.missing


def test_ucf101_errors(tmp_path: Path) -> None:
    root = make_ucf(tmp_path)
    ann = tmp_path / "ucfTrainTestlist"
    with pytest.raises(LayoutError, match="does not exist"):
        index_ucf101(tmp_path / "nope")
    with pytest.raises(LayoutError, match="trainlist03.txt"):
        index_ucf101(root, split=3)
    with pytest.raises(LayoutError, match="split must be 1, 2 or 3"):
        index_ucf101(root, split=4)

    write_lines(ann / "testlist01.txt", ["ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi", "Nope/v_Nope_g01_c01.avi"],
                crlf=True)
    with pytest.raises(LayoutError, match=r"testlist01\.txt, line 2: unknown class 'Nope'.*ApplyEyeMakeup"):
        index_ucf101(root)

    write_lines(ann / "testlist01.txt", [], crlf=True)
    with pytest.raises(LayoutError, match=r"testlist01\.txt.*lists no videos"):
        index_ucf101(root)

    write_lines(ann / "trainlist01.txt", ["ApplyEyeMakeup/v_ApplyEyeMakeup_g02_c01.avi 1", "a b c"], crlf=True)
    with pytest.raises(LayoutError, match=r"trainlist01\.txt, line 2: malformed"):
        index_ucf101(root)
    write_lines(ann / "trainlist01.txt", ["ApplyEyeMakeup/v_ApplyEyeMakeup_g02_c01.avi 9"], crlf=True)
    with pytest.raises(LayoutError, match=r"trainlist01\.txt, line 1: malformed.*1\.\.4"):
        index_ucf101(root)
    write_lines(ann / "trainlist01.txt", ["ApplyEyeMakeup/v_ApplyEyeMakeup_g02_c01.avi 2"], crlf=True)
    with pytest.raises(LayoutError, match=r"trainlist01\.txt, line 1: label 2 \(Archery\) disagrees"):
        index_ucf101(root)

    write_lines(ann / "classInd.txt", ["1 ApplyEyeMakeup", "x"], crlf=True)
    with pytest.raises(LayoutError, match=r"classInd\.txt, line 2: malformed"):
        index_ucf101(root)
    (ann / "classInd.txt").unlink()
    with pytest.raises(LayoutError, match=r"classInd\.txt not found; looked in: .*ucfTrainTestlist"):
        index_ucf101(root)


def test_ucf101_all_missing_is_an_error(tmp_path: Path) -> None:
    make_ucf(tmp_path)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(LayoutError, match=r"trainlist01\.txt: none of the 8 train videos"):
        index_ucf101(empty, annotations=tmp_path / "ucfTrainTestlist")


# ------------------------------------------------------------------------------------------------ MiniUCF


# the official classInd.txt order (1..101)
_UCF101_TEXT = """ApplyEyeMakeup ApplyLipstick Archery BabyCrawling BalanceBeam BandMarching BaseballPitch Basketball
BasketballDunk BenchPress Biking Billiards BlowDryHair BlowingCandles BodyWeightSquats Bowling BoxingPunchingBag
BoxingSpeedBag BreastStroke BrushingTeeth CleanAndJerk CliffDiving CricketBowling CricketShot CuttingInKitchen Diving
Drumming Fencing FieldHockeyPenalty FloorGymnastics FrisbeeCatch FrontCrawl GolfSwing Haircut Hammering HammerThrow
HandstandPushups HandstandWalking HeadMassage HighJump HorseRace HorseRiding HulaHoop IceDancing JavelinThrow
JugglingBalls JumpingJack JumpRope Kayaking Knitting LongJump Lunges MilitaryParade Mixing MoppingFloor Nunchucks
ParallelBars PizzaTossing PlayingCello PlayingDaf PlayingDhol PlayingFlute PlayingGuitar PlayingPiano PlayingSitar
PlayingTabla PlayingViolin PoleVault PommelHorse PullUps Punch PushUps Rafting RockClimbingIndoor RopeClimbing Rowing
SalsaSpin ShavingBeard Shotput SkateBoarding Skiing Skijet SkyDiving SoccerJuggling SoccerPenalty StillRings
SumoWrestling Surfing Swing TableTennisShot TaiChi TennisSwing ThrowDiscus TrampolineJumping Typing UnevenBars
VolleyballSpiking WalkingWithDog WallPushups WritingOnBoard YoYo"""
UCF101_CLASSES = _UCF101_TEXT.split()


def test_miniucf_restricts_to_the_50_classes(tmp_path: Path) -> None:
    assert len(UCF101_CLASSES) == 101 and set(MINIUCF_CLASSES) <= set(UCF101_CLASSES)
    root = make_ucf(tmp_path, classes=UCF101_CLASSES, groups=2)
    full = index_ucf101(root)
    assert full.classes == UCF101_CLASSES and len(full.train) == 101
    idx = index_miniucf(root)
    assert idx.dataset == "miniucf"
    assert idx.classes == list(MINIUCF_CLASSES) and len(idx.classes) == 50
    assert len(idx.train) == 50 and len(idx.test) == 50
    for item in idx.train + idx.test:
        assert item.source_id.split("/")[0] == MINIUCF_CLASSES[item.label]
    assert ids(idx.train)[:2] == ["ApplyEyeMakeup/v_ApplyEyeMakeup_g02_c01.avi",
                                  "BalanceBeam/v_BalanceBeam_g02_c01.avi"]
    assert not any(s.split("/")[0] in ("YoYo", "HandStandPushups") for s in ids(idx.train) + ids(idx.test))
    assert idx.missing == []
    # class order is MiniUCF's, not classInd's
    shuffled = tmp_path / "shuffled"
    make_ucf(shuffled, classes=sorted(UCF101_CLASSES, key=lambda c: c[::-1]), groups=2)
    assert index_miniucf(shuffled / "UCF-101").classes == list(MINIUCF_CLASSES)


def test_miniucf_needs_all_50_classes(tmp_path: Path) -> None:
    root = make_ucf(tmp_path, classes=[c for c in MINIUCF_CLASSES if c != "Skijet"], groups=2)
    with pytest.raises(LayoutError, match=r"classInd\.txt: classes Skijet are not in classInd"):
        index_miniucf(root)


# ------------------------------------------------------------------------------------------------ HMDB51

HMDB_IDS = {  # per class: video -> (split1 id, split2 id)
    "wave": {"#122_wave_u_nm_np1_fr_goo_0.avi": (1, 2), "wave_b.avi": (2, 1), "wave_c.avi": (0, 1)},
    "brush_hair": {"April_09_brush_hair_u_nm_np1_ba_goo_0.avi": (1, 1), "bh_b.avi": (2, 0), "bh_c.avi": (0, 2),
                   "bh_d.avi": (1, 1)},
    "cartwheel": {"cw_a.avi": (2, 1), "cw_b.avi": (1, 2), "cw_c.avi": (1, 0)},
}


def make_hmdb(base: Path) -> Path:
    root = base / "hmdb51"
    ann = base / "testTrainMulti_7030_splits"
    for cls, vids in HMDB_IDS.items():
        for vid in vids:
            touch(root / cls / vid)
        for split in (1, 2):
            write_lines(ann / f"{cls}_test_split{split}.txt", [f"{v} {s[split - 1]} " for v, s in vids.items()])
    return root


def test_hmdb51_official_and_vdsd(tmp_path: Path) -> None:
    root = make_hmdb(tmp_path)
    idx = index_hmdb51(root)
    assert idx.dataset == "hmdb51-split1"
    assert idx.classes == ["brush_hair", "cartwheel", "wave"]
    assert ids(idx.train) == ["brush_hair/April_09_brush_hair_u_nm_np1_ba_goo_0.avi", "brush_hair/bh_d.avi",
                              "cartwheel/cw_b.avi", "cartwheel/cw_c.avi", "wave/#122_wave_u_nm_np1_fr_goo_0.avi"]
    assert ids(idx.test) == ["brush_hair/bh_b.avi", "cartwheel/cw_a.avi", "wave/wave_b.avi"]
    assert [v.label for v in idx.train] == [0, 0, 1, 1, 2]
    assert [v.label for v in idx.test] == [0, 1, 2]

    vdsd = index_hmdb51(root, variant="vdsd")
    assert vdsd.dataset == "hmdb51-vdsd-split1"
    assert ids(vdsd.test) == ids(idx.test)
    assert ids(vdsd.train) == ["brush_hair/April_09_brush_hair_u_nm_np1_ba_goo_0.avi", "brush_hair/bh_c.avi",
                               "brush_hair/bh_d.avi", "cartwheel/cw_b.avi", "cartwheel/cw_c.avi",
                               "wave/#122_wave_u_nm_np1_fr_goo_0.avi", "wave/wave_c.avi"]

    split2 = index_hmdb51(root, split=2)
    assert split2.dataset == "hmdb51-split2"
    assert ids(split2.test) == ["brush_hair/bh_c.avi", "cartwheel/cw_b.avi", "wave/#122_wave_u_nm_np1_fr_goo_0.avi"]


def test_hmdb51_missing_and_errors(tmp_path: Path) -> None:
    root = make_hmdb(tmp_path)
    (root / "wave" / "wave_b.avi").unlink()
    idx = index_hmdb51(root)
    assert [m["source_id"] for m in idx.missing] == ["wave/wave_b.avi"]
    assert "wave_test_split1.txt" in idx.missing[0]["reason"]
    assert len(idx.test) == 2

    with pytest.raises(LayoutError, match=r"_test_split3\.txt.*testTrainMulti_7030_splits"):
        index_hmdb51(root, split=3)
    with pytest.raises(LayoutError, match="variant"):
        index_hmdb51(root, variant="nope")
    with pytest.raises(LayoutError, match="does not exist"):
        index_hmdb51(tmp_path / "missing")
    write_lines(tmp_path / "testTrainMulti_7030_splits" / "cartwheel_test_split1.txt", ["cw_a.avi 2", "cw_b.avi 7"])
    with pytest.raises(LayoutError, match=r"cartwheel_test_split1\.txt, line 2: malformed"):
        index_hmdb51(root)


def test_hmdb51_empty_test_split(tmp_path: Path) -> None:
    root = make_hmdb(tmp_path)
    for cls, vids in HMDB_IDS.items():
        write_lines(tmp_path / "testTrainMulti_7030_splits" / f"{cls}_test_split1.txt", [f"{v} 1" for v in vids])
    with pytest.raises(LayoutError, match=r"_test_split1\.txt: the test split lists no videos"):
        index_hmdb51(root)


# ------------------------------------------------------------------------------------------------ Kinetics-400

K400_HEADER = "label,youtube_id,time_start,time_end,split"


def make_k400(base: Path) -> tuple[Path, Path]:
    root = base / "k400"
    ann = base / "annotations"
    train_rows = [
        ("abseiling", "aaa", 10, 20), ("abseiling", "-bb", 0, 10), ("abseiling", "ccc", 5, 15),
        ('"passing American football (in game)"', "ddd", 30, 40), ("air drumming", "eee", 1, 11),
        ("air drumming", "missing1", 0, 10),
    ]
    val_rows = [("abseiling", "vvv", 0, 10), ("air drumming", "www", 100, 110),
                ('"passing American football (in game)"', "xxx", 7, 17)]
    write_lines(ann / "train.csv", [K400_HEADER] + [f"{a},{b},{c},{d},train" for a, b, c, d in train_rows])
    write_lines(ann / "validate.csv", [K400_HEADER] + [f"{a},{b},{c},{d},val" for a, b, c, d in val_rows])
    write_lines(ann / "test.csv", [K400_HEADER, "abseiling,ttt,0,10,test"])
    touch(root / "train" / "abseiling" / "aaa_000010_000020.mp4")  # root/<split>/<label>/
    touch(root / "train" / "-bb_000000_000010.mp4")  # root/<split>/
    touch(root / "train" / "abseiling" / "ccc_000005_000015.mp4")
    touch(root / "train" / "passing American football (in game)" / "ddd_000030_000040.mp4")
    touch(root / "train" / "air_drumming" / "eee_000001_000011.mp4")  # underscored label folder
    touch(root / "val" / "vvv_000000_000010.mp4")
    touch(root / "www_000100_000110.mp4")  # root directly
    touch(root / "val" / "xxx_000007_000017.mkv")  # another container
    touch(root / "test" / "ttt_000000_000010.mp4")
    return root, ann


def test_kinetics400(tmp_path: Path) -> None:
    root, ann = make_k400(tmp_path)
    idx = index_kinetics400(root, ann)
    assert idx.dataset == "kinetics400"
    assert idx.classes == ["abseiling", "air drumming", "passing American football (in game)"]
    assert ids(idx.train) == ["train/abseiling/aaa_000010_000020.mp4", "train/-bb_000000_000010.mp4",
                              "train/abseiling/ccc_000005_000015.mp4",
                              "train/passing American football (in game)/ddd_000030_000040.mp4",
                              "train/air_drumming/eee_000001_000011.mp4"]
    assert [v.label for v in idx.train] == [0, 0, 0, 2, 1]
    # val -> test; the csv's own test rows are not used
    assert ids(idx.test) == ["val/vvv_000000_000010.mp4", "www_000100_000110.mp4", "val/xxx_000007_000017.mkv"]
    assert [v.label for v in idx.test] == [0, 1, 2]
    assert [m["source_id"] for m in idx.missing] == ["train/missing1_000000_000010.mp4"]
    assert "train.csv" in idx.missing[0]["reason"]
    # default annotations folder: root/../annotations
    assert ids(index_kinetics400(root).test) == ids(idx.test)
    # explicit files; the csv's test rows on request
    explicit = index_kinetics400(root, [ann / "train.csv", ann / "test.csv"], test_split="test")
    assert ids(explicit.test) == ["test/ttt_000000_000010.mp4"]


def test_kinetics400_class_subset_and_cap(tmp_path: Path) -> None:
    root, ann = make_k400(tmp_path)
    sub = index_kinetics400(root, ann, classes=["air_drumming", "abseiling"])
    assert sub.classes == ["air drumming", "abseiling"]
    assert [v.label for v in sub.train] == [1, 1, 1, 0]
    assert [v.label for v in sub.test] == [1, 0]
    names = write_lines(tmp_path / "classes.txt", ["abseiling"])
    assert index_kinetics400(root, ann, classes=names).classes == ["abseiling"]
    capped = index_kinetics400(root, ann, max_per_class=2)
    assert [v.label for v in capped.train] == [0, 0, 2, 1]
    with pytest.raises(LayoutError, match=r"classes\.txt: unknown class 'yodelling'; valid classes include: abseil"):
        index_kinetics400(root, ann, classes=write_lines(tmp_path / "classes.txt", ["yodelling"]))
    with pytest.raises(LayoutError, match=r"unknown class 'yodelling'.*air drumming"):
        index_kinetics400(root, ann, classes=["abseiling", "yodelling"])


def test_kinetics400_errors(tmp_path: Path) -> None:
    root, ann = make_k400(tmp_path)
    with pytest.raises(LayoutError, match=r"nowhere: Kinetics annotations folder not found"):
        index_kinetics400(root, tmp_path / "nowhere")
    (tmp_path / "other").mkdir()
    with pytest.raises(LayoutError, match=r"train\.csv: Kinetics-400 train\.csv not found; looked in: .*other"):
        index_kinetics400(root, tmp_path / "other")
    (ann / "validate.csv").unlink()
    with pytest.raises(LayoutError, match=r"validate\.csv or val\.csv not found"):
        index_kinetics400(root, ann)
    write_lines(ann / "val.csv", ["label,youtube_id", "abseiling,vvv"])
    with pytest.raises(LayoutError, match=r"val\.csv, line 1: expected the header"):
        index_kinetics400(root, ann)
    write_lines(ann / "val.csv", [K400_HEADER, "abseiling,vvv,0,10,val", "abseiling,vvv,zero,10,val"])
    with pytest.raises(LayoutError, match=r"val\.csv, line 3: malformed"):
        index_kinetics400(root, ann)
    write_lines(ann / "val.csv", [K400_HEADER, "abseiling,gone,0,10,val"])
    with pytest.raises(LayoutError, match=r"none of the 1 test videos.*'val/gone_000000_000010\.mp4'"):
        index_kinetics400(root, ann)


# ------------------------------------------------------------------------------------------------ SSv2

SSV2_LABELS = {"Approaching something with your camera": "0", "Holding something next to something": "1",
               "Putting something on a surface": "2"}


def make_ssv2(base: Path, prefix: str = "something-something-v2-") -> Path:
    root = base / "20bn-something-something-v2"
    ann = base / "labels"
    ann.mkdir(parents=True)
    (ann / f"{prefix}labels.json").write_text(json.dumps(SSV2_LABELS))

    def entry(vid: str, template: str) -> dict:
        return {"id": vid, "label": template.replace("[something]", "a cup"), "template": template,
                "placeholders": ["a cup"]}

    train = [entry("78687", "Holding [something] next to [something]"), entry("42326", "Putting [something] on a "
             "surface"), entry("3", "Approaching [something] with your camera"), entry("999", "Putting [something] "
             "on a surface")]
    val = [entry("24", "Putting [something] on a surface"), entry("25", "Approaching [something] with your camera")]
    (ann / f"{prefix}train.json").write_text(json.dumps(train))
    (ann / f"{prefix}validation.json").write_text(json.dumps(val))
    for vid in ("78687", "42326", "3", "24", "25"):
        touch(root / f"{vid}.webm")
    return root


def test_ssv2(tmp_path: Path) -> None:
    root = make_ssv2(tmp_path)
    idx = index_ssv2(root)
    assert idx.dataset == "ssv2"
    assert idx.classes == list(SSV2_LABELS)
    assert ids(idx.train) == ["78687.webm", "42326.webm", "3.webm"]
    assert [v.label for v in idx.train] == [1, 2, 0]
    assert ids(idx.test) == ["24.webm", "25.webm"] and [v.label for v in idx.test] == [2, 0]
    assert [m["source_id"] for m in idx.missing] == ["999.webm"]


def test_ssv2_short_file_names_and_errors(tmp_path: Path) -> None:
    root = make_ssv2(tmp_path, prefix="")
    assert index_ssv2(root, tmp_path / "labels").classes == list(SSV2_LABELS)
    val = tmp_path / "labels" / "validation.json"
    val.write_text(json.dumps([{"id": "24", "template": "Dancing with [something]"}]))
    with pytest.raises(LayoutError, match=r"validation\.json: entry 0 \(id 24\): unknown class 'Dancing with "
                                          r"something'; valid classes include: Approaching"):
        index_ssv2(root)
    val.write_text("[{")
    with pytest.raises(LayoutError, match=r"validation\.json, line 1: invalid JSON"):
        index_ssv2(root)
    val.unlink()
    with pytest.raises(LayoutError, match=r"something-something-v2-validation\.json: SSv2 validation file not found"):
        index_ssv2(root)
    (tmp_path / "labels" / "labels.json").unlink()
    with pytest.raises(LayoutError, match="SSv2 labels file not found"):
        index_ssv2(root)


# ------------------------------------------------------------------------------------------------ folder


def make_folder(root: Path, per_class: dict[str, int]) -> Path:
    for cls, n in per_class.items():
        for i in range(n):
            touch(root / cls / f"{cls}_{i:02d}.mp4")
    return root


def test_folder_auto_split_deterministic_and_stratified(tmp_path: Path) -> None:
    root = make_folder(tmp_path / "videos", {"walk": 10, "Run": 10, "jump": 5, "solo": 1})
    touch(root / "walk" / "notes.txt")
    touch(root / ".cache" / "x.mp4")
    (root / "empty").mkdir()
    idx = index_folder(root)
    assert idx.dataset == "folder"
    assert idx.classes == ["Run", "jump", "solo", "walk"]  # plain sorted(); hidden and empty folders ignored
    test_counts = [sum(v.label == c for v in idx.test) for c in range(4)]
    assert test_counts == [2, 1, 0, 2]  # round(n * 0.2), at least one when n >= 2; a single video stays in train
    assert len(idx.train) + len(idx.test) == 26
    assert ids(idx.train) == sorted(ids(idx.train), key=lambda s: (idx.classes.index(s.split("/")[0]), s))
    assert ids(index_folder(root).test) == ids(idx.test)
    assert ids(index_folder(root, seed=1).test) != ids(idx.test)
    # adding files moves at most about one video per class
    make_folder(root, {"walk": 12})
    grown = index_folder(root)
    assert len(set(ids(idx.test)) - set(ids(grown.test))) <= 1
    with pytest.raises(LayoutError, match="test_fraction"):
        index_folder(root, test_fraction=1.0)


def test_folder_explicit_splits_and_frame_folders(tmp_path: Path) -> None:
    root = tmp_path / "data"
    make_folder(root / "train", {"a": 3, "b": 2})
    touch(root / "val" / "a" / "clip1" / "frame000001.jpg")  # frame folder as a video
    touch(root / "val" / "b" / "b.AVI")
    idx = index_folder(root, frame_template="frame{:06d}.jpg", name="mine")
    assert idx.dataset == "mine" and idx.frame_template == "frame{:06d}.jpg"
    assert idx.classes == ["a", "b"]
    assert ids(idx.train) == ["train/a/a_00.mp4", "train/a/a_01.mp4", "train/a/a_02.mp4", "train/b/b_00.mp4",
                              "train/b/b_01.mp4"]
    assert ids(idx.test) == ["val/a/clip1", "val/b/b.AVI"] and [v.label for v in idx.test] == [0, 1]
    touch(root / "val" / "c" / "c.mp4")
    with pytest.raises(LayoutError, match=r"classes c have videos here but none in .*train"):
        index_folder(root)


def test_folder_errors(tmp_path: Path) -> None:
    with pytest.raises(LayoutError, match="does not exist"):
        index_folder(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(LayoutError, match="no class folders with videos"):
        index_folder(tmp_path / "empty")
    make_folder(tmp_path / "singles", {"a": 1, "b": 1})
    with pytest.raises(LayoutError, match="test split empty"):
        index_folder(tmp_path / "singles")


# ------------------------------------------------------------------------------------------------ list


def test_list_csv_with_header_and_names(tmp_path: Path) -> None:
    for name in ("walk/a.mp4", "walk/b.mp4", "run/c.mp4", "run/d.mp4"):
        touch(tmp_path / name)
    train = write_lines(tmp_path / "train.csv", ["path,label", "walk/a.mp4,walk", "run/c.mp4,run", "run/zz.mp4,run"])
    test = write_lines(tmp_path / "test.csv", ["walk/b.mp4,walk", "run/d.mp4,run"])
    idx = index_list(train, test)
    assert idx.dataset == "list"
    assert idx.classes == ["run", "walk"]
    assert ids(idx.train) == ["walk/a.mp4", "run/c.mp4"] and [v.label for v in idx.train] == [1, 0]
    assert ids(idx.test) == ["walk/b.mp4", "run/d.mp4"]
    assert [m["source_id"] for m in idx.missing] == ["run/zz.mp4"]
    # header naming columns in another order, extra columns
    train2 = write_lines(tmp_path / "t2.csv", ["label,duration,video_path", "walk,3.5,walk/a.mp4"])
    assert ids(index_list(train2, test).train) == ["walk/a.mp4"]
    short = write_lines(tmp_path / "short.csv", ["label,duration,video_path", "walk,3.5"])
    with pytest.raises(LayoutError, match=r"short\.csv, line 2: malformed line 'walk,3\.5'"):
        index_list(short, test)


def test_list_txt_int_labels_and_root(tmp_path: Path) -> None:
    root = tmp_path / "videos"
    for name in ("x/v_1.avi", "x/v_2.avi", "y/v_3.avi"):
        touch(root / name)
    lists = tmp_path / "lists"
    train = write_lines(lists / "train.txt", ["x/v_1.avi 1", "y/v_3.avi 3"])
    test = write_lines(lists / "test.txt", ["x/v_2.avi 1"])
    idx = index_list(train, test, root)
    assert idx.classes == ["1", "3"]  # distinct integers in numeric order
    assert [v.label for v in idx.train] == [0, 1]
    assert ids(idx.train) == ["x/v_1.avi", "y/v_3.avi"]
    named = index_list(train, test, root, classes=["zero", "one", "two", "three"])
    assert named.classes == ["zero", "one", "two", "three"] and [v.label for v in named.train] == [1, 3]
    class_ind = write_lines(tmp_path / "classInd.txt", ["1 one", "2 two", "3 three"])
    one_based = index_list(train, test, root, classes=class_ind, label_base=1)
    assert one_based.classes == ["one", "two", "three"] and [v.label for v in one_based.train] == [0, 2]


def test_list_rawframes_mmaction_style(tmp_path: Path) -> None:
    root = tmp_path / "rawframes"
    for name in ("A/v_A_g01_c01", "B/v_B_g01_c01", "A/v_A_g02_c01"):
        touch(root / name / "img_00001.jpg")
    train = write_lines(tmp_path / "train.txt", ["A/v_A_g01_c01.avi 0", "B/v_B_g01_c01 12 1"])  # 3 tokens: frames
    test = write_lines(tmp_path / "test.txt", ["A/v_A_g02_c01.avi 0"])
    idx = index_list(train, test, root, classes=["A", "B"], frame_template="img_{:05d}.jpg")
    assert ids(idx.train) == ["A/v_A_g01_c01", "B/v_B_g01_c01"] and [v.label for v in idx.train] == [0, 1]
    assert idx.train[0].path.is_dir() and idx.frame_template == "img_{:05d}.jpg"


def test_list_errors(tmp_path: Path) -> None:
    touch(tmp_path / "a.mp4")
    test = write_lines(tmp_path / "test.txt", ["a.mp4 walk"])
    with pytest.raises(LayoutError, match="list file not found"):
        index_list(tmp_path / "nope.txt", test)
    bad = write_lines(tmp_path / "bad.txt", ["a.mp4 walk", "a.mp4"])
    with pytest.raises(LayoutError, match=r"bad\.txt, line 2: malformed"):
        index_list(bad, test)
    unknown = write_lines(tmp_path / "unknown.txt", ["a.mp4 walk", "a.mp4 fly"])
    with pytest.raises(LayoutError, match=r"unknown\.txt, line 2: unknown class 'fly'; valid classes include: walk"):
        index_list(unknown, test, classes=["walk", "run"])
    mixed = write_lines(tmp_path / "mixed.txt", ["a.mp4 walk", "a.mp4 3"])
    with pytest.raises(LayoutError, match=r"mixed\.txt, line 2: label '3' is an integer"):
        index_list(mixed, test)
    gone = write_lines(tmp_path / "gone.txt", ["b.mp4 walk"])
    with pytest.raises(LayoutError, match=r"gone\.txt: none of the 1 videos"):
        index_list(gone, test)
    empty = write_lines(tmp_path / "empty.csv", ["path,label"])
    with pytest.raises(LayoutError, match=r"empty\.csv: the train list has no entries"):
        index_list(empty, test)
