"""``videodd export``: every kind of set out to files people open, with the pixels it trains on."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import SmokeRuns
from test_kinds import set_of_kind
from videodd.cli import main
from videodd.data.media import decode_video, encode_video, frame_strip, to_uint8
from videodd.distilled import KINDS
from videodd.errors import ConfigError
from videodd.export import export_set, select


def test_to_uint8_inverts_normalization_by_hand():
    mean, std = [0.5, 0.25, 0.0], [0.5, 0.25, 1.0]
    pixels = torch.tensor([0.0, 0.5, 1.0, 0.2])  # in [0, 1]
    # (1, 3, 1, 1, 4): channel c holds (pixels - mean[c]) / std[c]
    videos = torch.stack([(pixels - m) / s for m, s in zip(mean, std, strict=True)]).view(1, 3, 1, 1, 4)
    out = to_uint8(videos, mean, std)
    assert out.shape == (1, 1, 1, 4, 3) and out.dtype == np.uint8
    assert out[0, 0, 0, :, 0].tolist() == [0, 128, 255, 51]
    wild = to_uint8(torch.full((1, 3, 1, 1, 1), 100.0), mean, std)  # out of range: clipped, not wrapped
    assert wild.ravel().tolist() == [255, 255, 255]


def test_h264_round_trip_and_determinism():
    rng = np.random.default_rng(0)
    smooth = np.repeat(np.linspace(0, 255, 32, dtype=np.uint8)[None, None, :, None], 32, axis=1)  # (1, 32, 32, 1)
    frames = np.repeat(np.repeat(smooth, 8, axis=0), 3, axis=3).copy()  # (8, 32, 32, 3) a gradient
    frames[:, :4] += rng.integers(0, 3, size=(8, 4, 32, 3), dtype=np.uint8)
    data = encode_video(frames, crf=10)
    assert data == encode_video(frames, crf=10)  # the same bytes every time (bitexact, one thread)
    back = decode_video(data)
    assert back.shape == frames.shape and np.abs(back.astype(int) - frames).mean() < 3
    assert len(encode_video(frames, crf=40)) < len(data)


@pytest.mark.parametrize("kind", KINDS.names())
@pytest.mark.parametrize("fmt", ["gif", "npz"])
def test_every_kind_exports(smoke_runs: SmokeRuns, kind: str, fmt: str, tmp_path):
    dset = set_of_kind(smoke_runs, kind)
    result = export_set(dset, tmp_path / "out", fmt)
    want = to_uint8(dset.materialize().videos, dset.manifest.mean, dset.manifest.std)  # (N, T, H, W, 3)
    assert result.videos == len(want)
    listing = json.loads((tmp_path / "out" / "export.json").read_text())
    assert all((tmp_path / "out" / f).is_file() for f in listing["files"])
    if fmt == "npz":
        with np.load(tmp_path / "out" / "distilled.npz", allow_pickle=False) as data:
            assert np.array_equal(data["videos"], want)
            assert data["classes"].tolist() == dset.manifest.classes
            hard = dset.labels.argmax(1) if dset.labels.ndim == 2 else dset.labels
            assert data["labels"].tolist() == hard.tolist()
    else:
        first = tmp_path / "out" / listing["files"][0]
        with Image.open(first) as gif:
            assert gif.n_frames == want.shape[1]
            factor = -(-128 // want.shape[2])
            assert gif.size == (want.shape[3] * factor, want.shape[2] * factor)
            frame = np.asarray(gif.convert("RGB"))
            # the first frame, upscaled by nearest neighbour, up to GIF's 256-colour palette
            assert np.abs(frame[::factor, ::factor].astype(int) - want[0, 0]).mean() < 12
        sheet = np.asarray(Image.open(tmp_path / "out" / "sheet.png"))
        assert sheet.std() > 1  # not blank


def test_mp4_png_filters_and_sheets(smoke_runs: SmokeRuns, tmp_path):
    dset = set_of_kind(smoke_runs, "pixels")
    classes = dset.manifest.classes
    result = export_set(dset, tmp_path / "mp4", "mp4", classes=[classes[1]], max_per_class=1, scale=2)
    mp4s = [f for f in result.files if f.suffix == ".mp4"]
    assert result.videos == 1 and len(mp4s) == 1 and mp4s[0].parent.name == classes[1]
    frames = decode_video(mp4s[0].read_bytes())
    want = select(dset, [classes[1]], 1).frames[0]  # (T, H, W, 3)
    assert frames.shape == (want.shape[0], want.shape[1] * 2, want.shape[2] * 2, 3)
    assert np.abs(frames[:, ::2, ::2].astype(int) - want).mean() < 12  # crf 12: a faithful preview
    png = export_set(dset, tmp_path / "png", "png", max_per_class=1, scale=1)
    strip = np.asarray(Image.open(next(f for f in png.files if f.name != "sheet.png")))
    first = select(dset, None, 1).frames[0]
    assert np.array_equal(strip, frame_strip(first))
    with pytest.raises(ConfigError, match="unknown class"):
        export_set(dset, tmp_path / "x", "png", classes=["no-such-class"])


def test_hf_export_loads_with_datasets(smoke_runs: SmokeRuns, tmp_path):
    datasets = pytest.importorskip("datasets")  # the hf extra; the dev install has it
    dset = set_of_kind(smoke_runs, "pixels")
    export_set(dset, tmp_path / "hf", "hf")
    ds = datasets.load_dataset(str(tmp_path / "hf"), split="train", cache_dir=str(tmp_path / "cache"))
    ds = ds.with_format("numpy")
    want = to_uint8(dset.materialize().videos, dset.manifest.mean, dset.manifest.std)
    assert ds.features["label"].names == dset.manifest.classes
    assert np.array_equal(np.stack(list(ds["video"])), want)
    assert [int(x) for x in ds["label"]] == dset.labels.tolist()


def test_export_command(smoke_runs: SmokeRuns, tmp_path, capsys):
    dset = set_of_kind(smoke_runs, "pixels")
    assert main(["export", str(dset.path), "--format", "png", "--out", str(tmp_path / "o"), "--max-per-class",
                 "1"]) == 0
    assert f"wrote {dset.num_classes} videos as png" in capsys.readouterr().out
    assert main(["export", str(dset.path), "--format", "png", "--out", str(tmp_path / "o"), "--classes",
                 "nope"]) == 2
