"""videodd.data.decode: clip sampling policies, PyAV video decoding, frame folders, errors.

Videos are encoded in the test with ``videofixtures`` (frame ``t`` has grey level ``8 + 8*(t % 30)``
in its top half), so each test checks WHICH source frames came back, not only shapes.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

import videodd.data.decode as decode
from videodd.data.decode import (
    ClipInfo,
    DecodeError,
    ShortVideoError,
    list_frame_files,
    read_clip,
    sample_indices,
    stride_fit,
)
from videodd.data.spec import ClipSpec, get_clip_spec
from videofixtures import CODECS, frame_level, pattern_frames, write_frames, write_video

SPEC = ClipSpec(frames=8, size=32, stride=3)  # span 22 frames


def levels(clip: np.ndarray) -> list[int]:
    return [frame_level(f) for f in clip]


def expected(indices) -> list[int]:
    return [int(i) % 30 for i in indices]


# --------------------------------------------------------------------------------- sample_indices


def test_center_clip() -> None:
    idx, start, stride, short = sample_indices(20, ClipSpec(frames=4, stride=2), "center", None)
    assert idx.tolist() == [6, 8, 10, 12] and (start, stride, short) == (6, 2, None)  # (20 - 7) // 2 = 6
    idx, start, _, short = sample_indices(7, ClipSpec(frames=4, stride=2), "center", None)  # fits exactly
    assert idx.tolist() == [0, 2, 4, 6] and start == 0 and short is None
    assert sample_indices(1, ClipSpec(frames=1), "center", None)[0].tolist() == [0]


def test_random_clip_covers_every_start() -> None:
    spec, rng = ClipSpec(frames=4, stride=2), np.random.default_rng(0)
    starts = set()
    for _ in range(300):
        idx, start, stride, short = sample_indices(20, spec, "random", rng)
        assert idx.tolist() == [start, start + 2, start + 4, start + 6] and stride == 2 and short is None
        starts.add(start)
    assert starts == set(range(14))  # 0 .. 20 - 7
    a = sample_indices(20, spec, "cached_random", np.random.default_rng([3, 7]))[0]
    assert a.tolist() == sample_indices(20, spec, "random", np.random.default_rng([3, 7]))[0].tolist()


def test_uniform_clips() -> None:
    spec = ClipSpec(frames=4, stride=2)
    starts = [sample_indices(20, spec, "uniform", None, clip_index=k, num_clips=3)[1] for k in range(3)]
    assert starts == [0, 6, 13]  # room 13: 0, round(6.5) (half to even), 13
    assert sample_indices(20, spec, "uniform", None)[1] == 6  # one clip = the centre clip


def test_short_loop() -> None:
    spec = ClipSpec(frames=4, stride=2, short_policy="loop")  # span 7 > 5 frames
    assert sample_indices(5, spec, "center", None)[0].tolist() == [0, 2, 4, 1]
    assert sample_indices(5, spec, "center", None)[1:] == (0, 2, "loop")
    rng = np.random.default_rng(1)
    for _ in range(20):
        idx, start, _, short = sample_indices(5, spec, "random", rng)
        assert 0 <= start < 5 and idx.tolist() == [(start + d) % 5 for d in (0, 2, 4, 6)] and short == "loop"


def test_short_pad() -> None:
    spec = ClipSpec(frames=4, stride=2, short_policy="pad")
    assert sample_indices(5, spec, "center", None)[0].tolist() == [0, 2, 4, 4]
    assert sample_indices(3, spec, "random", np.random.default_rng(0))[0].tolist() == [0, 2, 2, 2]
    assert sample_indices(3, spec, "center", None)[1:] == (0, 2, "pad")


def test_short_reduce_stride() -> None:
    spec = ClipSpec(frames=4, stride=4, short_policy="reduce_stride")  # span 13
    idx, start, stride, short = sample_indices(10, spec, "center", None)  # stride 9 // 3 = 3 fits exactly
    assert idx.tolist() == [0, 3, 6, 9] and (start, stride, short) == (0, 3, "reduce_stride")
    idx, start, stride, _ = sample_indices(9, spec, "center", None)  # stride 2, span 7, centre start 1
    assert idx.tolist() == [1, 3, 5, 7] and (start, stride) == (1, 2)
    idx, start, stride, short = sample_indices(3, spec, "center", None)  # even stride 1 is too long: pad
    assert idx.tolist() == [0, 1, 2, 2] and (start, stride, short) == (0, 1, "reduce_stride")
    assert sample_indices(1, spec, "center", None)[0].tolist() == [0, 0, 0, 0]
    assert sample_indices(13, spec, "center", None)[1:] == (0, 4, None)  # not short: policy unused


def test_stride_fit_is_the_published_sampler() -> None:
    """Hand-computed from distill_utils/dataset.py:427-433 (16 frames, gap 4; 1-based starts
    randint(1, n - 15 * skip), exclusive): 0-based starts 0 .. n - 15 * skip - 2."""
    spec = ClipSpec(frames=16, stride=4, short_policy="stride_fit")
    assert stride_fit(64, 16, 4) == (4, 2) and stride_fit(63, 16, 4) == (3, 16) and stride_fit(17, 16, 4) == (1, 0)
    idx, start, stride, short = sample_indices(100, spec, "center", None)  # starts 0..38
    assert (start, stride, short) == (19, 4, None) and idx.tolist() == list(range(19, 19 + 64, 4))
    idx, start, stride, short = sample_indices(40, spec, "center", None)  # skip 40 // 16 = 2, starts 0..8
    assert (start, stride, short) == (4, 2, "stride_fit") and idx[-1] == 34
    starts = {sample_indices(65, spec, "random", np.random.default_rng(s))[1] for s in range(200)}
    assert starts == {0, 1, 2, 3}  # never the start that would end on the last frame (index 64)
    assert [sample_indices(100, spec, "uniform", None, clip_index=k, num_clips=3)[1] for k in range(3)] == [0, 19, 38]
    for n in (1, 15, 16):
        with pytest.raises(ShortVideoError, match=f"{n} frames"):
            sample_indices(n, spec, "center", None)


def test_squash_resize_then_centre_crop(tmp_path: Path) -> None:
    """resize=(W, H) squashes (aspect not kept), then the centre size x size: a 64x48 frame whose left and
    right quarters are black and white fills a 40x30 squash, cropped to 24x24 at left 8, top 3."""
    frame = np.zeros((48, 64, 3), dtype=np.uint8)
    frame[:, 32:] = 255
    folder = write_frames(tmp_path / "f", np.stack([frame] * 20), template="frame{:06d}.png")
    spec = ClipSpec(frames=4, size=24, stride=1, resize=(40, 30), short_policy="stride_fit")
    clip, info = read_clip(folder, spec)
    assert clip.shape == (4, 24, 24, 3) and info.source_size == (64, 48)
    row = clip[0, 12, :, 0].astype(int)
    assert row[:11].max() < 10 and row[13:].min() > 245  # the edge at x = 20 of 40, i.e. 12 of the crop
    video = write_video(tmp_path / "v.mp4", np.stack([frame] * 20), options={"crf": "0"})
    vclip, _ = read_clip(video, spec)
    assert np.abs(vclip.astype(int) - clip.astype(int)).mean() < 4


def test_sample_indices_errors() -> None:
    with pytest.raises(ValueError, match="num_frames"):
        sample_indices(0, SPEC, "center", None)
    with pytest.raises(ValueError, match="sampling"):
        sample_indices(10, SPEC, "middle", None)
    with pytest.raises(ValueError, match="rng"):
        sample_indices(10, SPEC, "random", None)
    with pytest.raises(ValueError, match="clip_index"):
        sample_indices(10, SPEC, "uniform", None, clip_index=2, num_clips=2)


# ------------------------------------------------------------------------------------------ videos


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """40 pattern frames (48x64) in every container/codec of ``CODECS``."""
    root = tmp_path_factory.mktemp("videos")
    frames = pattern_frames(40)
    return {suffix: write_video(root / f"v{suffix}", frames) for suffix in CODECS}


@pytest.mark.parametrize("suffix", sorted(CODECS))
def test_every_container_gives_the_centre_clip(videos: dict[str, Path], suffix: str) -> None:
    clip, info = read_clip(videos[suffix], SPEC)
    assert clip.shape == (8, 32, 32, 3) and clip.dtype == np.uint8 and clip.flags.c_contiguous
    start = (40 - 22) // 2
    assert levels(clip) == expected(range(start, start + 22, 3))
    assert info == ClipInfo(num_frames=40, fps=info.fps, source_size=(64, 48), rotation=0, start=start, stride=3,
                            short=None)
    assert info.fps == pytest.approx(25)
    assert info.to_dict()["source_size"] == [64, 48]


def test_matroska_has_no_header_frame_count(videos: dict[str, Path]) -> None:
    """Why frames are counted by demuxing: mkv/webm headers do not say how many there are."""
    with av.open(str(videos[".mkv"])) as container:
        assert container.streams.video[0].frames == 0
    assert read_clip(videos[".mkv"], SPEC)[1].num_frames == 40


@pytest.mark.parametrize("suffix", [".avi", ".mp4"])
def test_short_video_policies(tmp_path: Path, suffix: str) -> None:
    path = write_video(tmp_path / f"short{suffix}", pattern_frames(10))
    spec = ClipSpec(frames=8, size=32, stride=2)  # span 15 > 10
    for policy, want in [
        ("loop", [0, 2, 4, 6, 8, 0, 2, 4]),
        ("pad", [0, 2, 4, 6, 8, 9, 9, 9]),
        ("reduce_stride", [1, 2, 3, 4, 5, 6, 7, 8]),  # stride 1, span 8, centre start 1
    ]:
        clip, info = read_clip(path, spec.replace(short_policy=policy))
        assert levels(clip) == want, policy
        assert info.short == policy and info.num_frames == 10


def test_random_sampling_is_reproducible(videos: dict[str, Path]) -> None:
    a, ia = read_clip(videos[".mp4"], SPEC, sampling="random", rng=np.random.default_rng(5))
    b, ib = read_clip(videos[".mp4"], SPEC, sampling="random", rng=np.random.default_rng(5))
    assert np.array_equal(a, b) and ia == ib
    assert levels(a) == expected(range(ia.start, ia.start + 22, 3))


@pytest.fixture(scope="module")
def long_videos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """300 tiny frames with a keyframe at least every 25 frames (x264 at high quality: tiny frames at
    the default rate lose the grey levels)."""
    root = tmp_path_factory.mktemp("long")
    frames = pattern_frames(300, height=24, width=32)
    x264 = {"crf": "12"}
    return {s: write_video(root / f"long{s}", frames, gop=25, options=x264 if s != ".webm" else None)
            for s in (".mp4", ".mkv", ".webm")}


@pytest.mark.parametrize("suffix", [".mp4", ".mkv", ".webm"])
def test_seek_near_the_end_matches_sequential_decoding(
    long_videos: dict[str, Path], suffix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    seeks: list[int] = []
    real_seek = decode._seek
    monkeypatch.setattr(decode, "_seek", lambda c, s, pts: (seeks.append(pts), real_seek(c, s, pts)))
    spec = ClipSpec(frames=8, size=16, stride=4)  # span 29: the last clip starts at 271
    clip, info = read_clip(long_videos[suffix], spec, sampling="uniform", clip_index=1, num_clips=2)
    assert seeks, "a clip this far in should seek"
    assert info.start == 271 and levels(clip) == expected(range(271, 300, 4))
    plain, plain_info = read_clip(long_videos[suffix], spec, sampling="uniform", clip_index=1, num_clips=2, seek=False)
    assert len(seeks) == 1 and np.array_equal(clip, plain) and info == plain_info
    read_clip(long_videos[suffix], spec, sampling="uniform", clip_index=0, num_clips=2)
    assert len(seeks) == 1  # a clip at the start decodes sequentially


def test_over_counted_frames_are_resampled(videos: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    """The demuxer claims 60 frames but only 40 decode: sample again from 40 instead of failing."""
    real_scan = decode._scan

    def over_count(path):
        order, keys, trusted, fps = real_scan(path)
        return order + [order[-1] + 1 + i for i in range(20)], keys, trusted, fps

    monkeypatch.setattr(decode, "_scan", over_count)
    for suffix in (".avi", ".mkv"):
        clip, info = read_clip(videos[suffix], SPEC)
        assert info.num_frames == 40 and info.start == 9 and levels(clip) == expected(range(9, 31, 3))


@pytest.mark.parametrize("suffix", [".mp4", ".mkv"])
def test_variable_frame_rate_indexes_by_frame_order(tmp_path: Path, suffix: str) -> None:
    # 20 frames 10 ms apart, then 20 frames 200 ms apart: by time, the middle is near frame 21.
    pts = [10 * i for i in range(20)] + [200 + 200 * i for i in range(20)]
    path = write_video(tmp_path / f"vfr{suffix}", pattern_frames(40), pts=pts, gop=10)
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        times = [float(f.pts * f.time_base) for f in container.decode(stream)]
    assert len(set(np.round(np.diff(times), 3))) > 1, "the fixture should be variable frame rate"
    clip, info = read_clip(path, SPEC)
    assert info.num_frames == 40 and levels(clip) == expected(range(9, 31, 3))
    spec = ClipSpec(frames=8, size=32, stride=2)  # last clip starts at 25, after the keyframe at 20
    clip, info = read_clip(path, spec, sampling="uniform", clip_index=1, num_clips=2)
    assert info.start == 25 and levels(clip) == expected(range(25, 40, 2))


def _upright_ok(clip: np.ndarray) -> bool:
    """Flat grey at the top, noise at the bottom (a turned frame mixes them)."""
    h = clip.shape[1]
    top, bottom = clip[:, : h // 3].astype(float), clip[:, -h // 4 :].astype(float)
    return bool(top.std(axis=(1, 2, 3)).max() < 5 and bottom.std(axis=(1, 2, 3)).min() > 15)


@pytest.mark.parametrize(("suffix", "rotation"), [(".mp4", 90), (".mp4", 180), (".mp4", 270), (".mkv", 90),
                                                  (".webm", 270), (".mov", 90)])
def test_rotation_metadata_makes_video_upright(tmp_path: Path, suffix: str, rotation: int) -> None:
    upright = pattern_frames(30, height=64, width=48)  # portrait
    coded = np.rot90(upright, k=rotation // 90, axes=(1, 2))  # turned back by the rotation, as a phone stores it
    path = write_video(tmp_path / f"rot{suffix}", np.ascontiguousarray(coded), rotation=rotation)
    clip, info = read_clip(path, ClipSpec(frames=4, size=32, stride=2))
    assert info.rotation == rotation and info.source_size == (48, 64)
    assert levels(clip) == expected(range(11, 18, 2)) and _upright_ok(clip)


def test_rotation_helper_reads_frame_and_stream() -> None:
    class Frame:
        rotation = 0

    class Stream:
        metadata = {"rotate": "90"}  # legacy clockwise tag

    assert decode._rotation_cw(Frame(), Stream()) == 90
    Frame.rotation = -90  # display matrix: counter-clockwise -90 = clockwise 90
    assert decode._rotation_cw(Frame(), type("S", (), {"metadata": {}})()) == 90
    Frame.rotation = 180
    assert decode._rotation_cw(Frame(), Stream()) == 180


@pytest.mark.parametrize(("suffix", "width", "height"), [(".avi", 51, 37), (".mov", 321, 241), (".mp4", 50, 38)])
def test_odd_sizes(tmp_path: Path, suffix: str, width: int, height: int) -> None:
    path = write_video(tmp_path / f"odd{suffix}", pattern_frames(12, height=height, width=width), crop_even=False)
    for spec in (ClipSpec(frames=4, size=32, stride=3), ClipSpec(frames=4, size=32, stride=3, resize_short=36)):
        clip, info = read_clip(path, spec)
        assert clip.shape == (4, 32, 32, 3) and info.source_size == (width, height)
        assert levels(clip) == [1, 4, 7, 10]  # span 10 of 12 frames: centre start 1


def test_large_frames_are_shrunk_without_aliasing(tmp_path: Path) -> None:
    """1080p one-pixel stripes shrunk to 32: an area-aware filter gives flat grey, point sampling stripes."""
    frames = np.zeros((2, 1080, 1920, 3), dtype=np.uint8)
    frames[:, ::2] = 255
    path = write_video(tmp_path / "stripes.avi", frames)
    clip, info = read_clip(path, ClipSpec(frames=2, size=32))
    assert info.source_size == (1920, 1080) and clip.shape == (2, 32, 32, 3)
    assert abs(clip.mean() - 127.5) < 10 and clip.astype(float).std() < 10


# ------------------------------------------------------------------------------------ frame folders


@pytest.mark.parametrize("template", ["img_{:05d}.jpg", "frame{:06d}.jpg", "image_{:05d}.png"])
def test_frame_folder_styles(tmp_path: Path, template: str) -> None:
    folder = write_frames(tmp_path / "v", pattern_frames(40), template=template)
    auto, info = read_clip(folder, SPEC)
    assert levels(auto) == expected(range(9, 31, 3))
    assert info == ClipInfo(num_frames=40, fps=None, source_size=(64, 48), rotation=0, start=9, stride=3, short=None)
    given, _ = read_clip(folder, SPEC, frame_template=template)
    printf = template.replace("{:05d}", "%05d").replace("{:06d}", "%06d")
    assert np.array_equal(auto, given) and np.array_equal(auto, read_clip(folder, SPEC, frame_template=printf)[0])


def test_frame_folder_sorts_numerically(tmp_path: Path) -> None:
    folder = write_frames(tmp_path / "v", pattern_frames(12), template="f{}.jpg")  # f1.jpg .. f12.jpg
    assert [p.name for p in list_frame_files(folder)] == [f"f{i}.jpg" for i in range(1, 13)]
    clip, info = read_clip(folder, ClipSpec(frames=12, size=32))
    assert levels(clip) == list(range(12)) and info.num_frames == 12  # lexicographic would give 0, 9, 10, 11, 1, ...


def test_frame_folder_prefers_rgb_frames_over_flow(tmp_path: Path) -> None:
    folder = write_frames(tmp_path / "v", pattern_frames(20))
    write_frames(folder, np.zeros((25, 48, 64, 3), np.uint8), template="flow_x_{:05d}.jpg")
    (folder / "notes.txt").write_text("not a frame")
    assert len(list_frame_files(folder)) == 20
    assert len(list_frame_files(folder, "flow_x_{:05d}.jpg")) == 25
    clip, info = read_clip(folder, ClipSpec(frames=4, size=32, stride=2))
    assert info.num_frames == 20 and levels(clip) == [6, 8, 10, 12]


def test_frame_folder_loads_only_sampled_frames(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = write_frames(tmp_path / "v", pattern_frames(40))
    loaded: list[str] = []
    real_load = decode._load_image
    monkeypatch.setattr(decode, "_load_image", lambda p, spec: (loaded.append(p.name), real_load(p, spec))[1])
    read_clip(folder, SPEC)
    assert loaded == [f"img_{i + 1:05d}.jpg" for i in range(9, 31, 3)]
    loaded.clear()
    read_clip(folder, ClipSpec(frames=8, size=32, stride=2, short_policy="loop"), frame_template="img_{:05d}.jpg")
    assert len(loaded) == 8


def test_frame_folder_errors(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(DecodeError, match="no frame images"):
        read_clip(tmp_path / "empty", SPEC)
    folder = write_frames(tmp_path / "v", pattern_frames(5))
    with pytest.raises(DecodeError, match="no frame images matching"):
        read_clip(folder, SPEC, frame_template="frame{:06d}.jpg")
    (folder / "img_00003.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(DecodeError, match="img_00003.jpg") as err:
        read_clip(folder, ClipSpec(frames=5, size=32))
    assert err.value.path == str(folder)
    with pytest.raises(DecodeError, match="number field"):
        read_clip(folder, SPEC, frame_template="img.jpg")


# ------------------------------------------------------------------------------------------- errors


def test_decode_error_names_the_path_and_pickles(tmp_path: Path) -> None:
    missing = tmp_path / "nope.mp4"
    with pytest.raises(DecodeError) as err:
        read_clip(missing, SPEC)
    assert str(missing) in str(err.value) and err.value.path == str(missing) and isinstance(err.value, ValueError)
    copy = pickle.loads(pickle.dumps(err.value))
    assert (copy.path, copy.reason, str(copy)) == (err.value.path, err.value.reason, str(err.value))


def test_unreadable_videos_raise_decode_error(tmp_path: Path, videos: dict[str, Path]) -> None:
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    empty = tmp_path / "empty.avi"
    empty.write_bytes(b"")
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(videos[".mp4"].read_bytes()[: videos[".mp4"].stat().st_size // 2])
    for path in (junk, empty, truncated):
        with pytest.raises(DecodeError) as err:
            read_clip(path, SPEC)
        assert str(path) in str(err.value)


def test_no_video_stream_or_no_frames(tmp_path: Path) -> None:
    audio = tmp_path / "audio.wav"
    with av.open(str(audio), mode="w") as container:
        stream = container.add_stream("pcm_s16le", rate=8000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 800), np.int16), format="s16", layout="mono")
        frame.sample_rate = 8000
        for packet in stream.encode(frame):
            container.mux(packet)
    with pytest.raises(DecodeError, match="no video stream"):
        read_clip(audio, SPEC)
    no_frames = tmp_path / "none.mkv"  # a video stream without packets next to an audio stream
    with av.open(str(no_frames), mode="w") as container:
        video = container.add_stream("mpeg4", rate=25)
        video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        stream = container.add_stream("pcm_s16le", rate=8000)
        for packet in stream.encode(frame):
            container.mux(packet)
    with pytest.raises(DecodeError, match="no frames"):
        read_clip(no_frames, SPEC)


# ------------------------------------------------------------------------- real clips (shared data)


def _real_clips(root: Path) -> list[Path]:
    clips = sorted(p for p in (root / "real-clips").glob("*/*") if p.suffix in {".avi", ".mp4", ".mkv"})
    return [p for p in clips if p.name != "corrupted.mp4"]


def test_real_clips_decode_to_presets(test_data_dir: Path) -> None:
    clips = _real_clips(test_data_dir)
    assert len(clips) == 9
    for path in clips:
        for preset in ("ucf-16x112", "ucf-16x112-published", "k400-8x64", "8x32"):
            spec = get_clip_spec(preset)
            clip, info = read_clip(path, spec, threads=1)
            assert clip.shape == (spec.frames, spec.size, spec.size, 3) and clip.dtype == np.uint8, (path, preset)
            assert clip.mean() > 20 and clip.std() > 10, f"{path.name} looks blank"
            assert info.num_frames > 100 and info.short is None and info.rotation == 0


def test_real_corrupted_clip_raises(test_data_dir: Path) -> None:
    path = test_data_dir / "real-clips" / "misc" / "corrupted.mp4"
    for preset in ("ucf-16x112", "8x32"):
        with pytest.raises(DecodeError, match="corrupted.mp4") as err:
            read_clip(path, get_clip_spec(preset))
        assert "Invalid data" in err.value.reason


def test_real_1080p_clip_matches_an_independent_resize(test_data_dir: Path) -> None:
    path = test_data_dir / "real-clips" / "ntu" / "S001C001P001R001A001_rgb.avi"
    spec = get_clip_spec("ucf-16x112")
    clip, info = read_clip(path, spec)
    assert info.source_size == (1920, 1080)
    wanted = [info.start + info.stride * k for k in range(spec.frames)]
    reference = []
    with av.open(str(path)) as container:  # full-size RGB, resized by Pillow, cropped by hand
        for i, frame in enumerate(container.decode(video=0)):
            if i in wanted:
                img = frame.to_image().resize((228, 128), Image.Resampling.BILINEAR)  # 1920 * 128 / 1080 = 227.6
                reference.append(np.asarray(img)[8:120, 58:170])
            if i == wanted[-1]:
                break
    diff = np.abs(clip.astype(float) - np.stack(reference).astype(float))
    assert diff.mean() < 3, diff.mean()
    assert clip.mean() > 40


def test_real_clip_seek_matches_sequential(test_data_dir: Path) -> None:
    spec = get_clip_spec("8x32")
    for name in ("kinetics/demo.mp4", "misc/flipping_a_pancake.mkv", "activitynet/v_GGSY1Qvo990.mp4"):
        path = test_data_dir / "real-clips" / name
        for k in (1, 2):
            a, ia = read_clip(path, spec, sampling="uniform", clip_index=k, num_clips=3)
            b, ib = read_clip(path, spec, sampling="uniform", clip_index=k, num_clips=3, seek=False)
            assert np.array_equal(a, b) and ia == ib, (name, k)


def test_real_ucf_clip_published_framing_matches_an_independent_squash(test_data_dir: Path) -> None:
    """ucf-16x112-published on a real 320x240 UCF101 video: Pillow's squash to 160x120 and the centre
    112x112 (rows 4..116, columns 24..136, distill_utils/resize_mydata.py:24-30) of the same frames."""
    path = test_data_dir / "real-clips" / "ucf101" / "v_ApplyEyeMakeup_g01_c01.avi"
    spec = get_clip_spec("ucf-16x112-published")
    clip, info = read_clip(path, spec)
    assert info.source_size == (320, 240) and info.stride == 4 and info.short is None
    assert info.start == (info.num_frames - 15 * 4 - 2) // 2  # the middle of the published start range
    wanted = list(range(info.start, info.start + 64, 4))
    reference = []
    with av.open(str(path)) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if i in wanted:
                img = frame.to_image().resize((160, 120), Image.Resampling.BILINEAR)
                reference.append(np.asarray(img)[4:116, 24:136])
            if i == wanted[-1]:
                break
    diff = np.abs(clip.astype(float) - np.stack(reference).astype(float))
    assert diff.mean() < 3, diff.mean()
