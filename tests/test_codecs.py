"""Codecs: the built-in video autoencoder, the diffusers adapter, streaming/resumable encoding."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from videodd.codecs import CODECS, CodecError, load_codec, normalize_unit, unit_videos, unnormalize
from videodd.codecs.autoencoder import (
    AutoencoderConfig,
    CodecTrainConfig,
    VideoAutoencoder,
    depth_to_space,
    reconstruction_error,
    space_to_depth,
    train_codec,
)
from videodd.codecs.encode import LatentStore, encode_store
from videodd.registry import UnknownNameError
from videodd.seeding import make_generator, seeded
from videodd.train import TensorData, TrainConfig, fit


@pytest.fixture(autouse=True)
def one_thread():
    """One intra-op thread: on a shared 2-core machine, OpenMP threads that spin-wait for each other
    made these tiny convolutions ~7x slower (150 s vs 21 s for this file)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


FAST = CodecTrainConfig(width=8, blocks=0, epochs=10, batch_size=6, lr=3e-3, holdout=0.0)  # default /4 /2


def _codec(seed: int = 0, **kw) -> VideoAutoencoder:
    with seeded(make_generator(seed)):
        return VideoAutoencoder(AutoencoderConfig(width=8, **kw))


def test_space_to_depth_round_trip():
    x = torch.randn(2, 3, 4, 8, 8)
    y = space_to_depth(x, 2, 2)
    assert y.shape == (2, 24, 2, 4, 4)
    assert torch.equal(depth_to_space(y, 2, 2), x)
    assert torch.equal(y[0, :, 0, 0, 0].view(3, 2, 2, 2), x[0, :, :2, :2, :2])  # a block lands in the channels


@pytest.mark.parametrize("spatial, temporal, expected", [(4, 2, (8, 2, 8, 8)), (2, 1, (8, 4, 16, 16)),
                                                         (8, 4, (8, 1, 4, 4))])
def test_builtin_round_trip_shapes(spatial, temporal, expected):
    codec = _codec(spatial_down=spatial, temporal_down=temporal)
    videos = torch.rand(3, 3, 4, 32, 32)
    assert codec.latent_shape((3, 4, 32, 32)) == expected
    z = codec.encode(videos)
    assert z.shape == (3, *expected) and z.dtype == torch.float32
    out = codec.decode(z)
    assert out.shape == videos.shape and out.min() >= 0 and out.max() <= 1
    assert torch.equal(codec.encode(videos), z)  # deterministic
    assert torch.equal(codec.encode(videos, sample=True, generator=make_generator(1)), z)  # no posterior variance
    assert not z.requires_grad
    z.requires_grad_(True)
    codec.decode(z).sum().backward()  # latents can be optimised through the decoder
    assert z.grad is not None and z.grad.abs().sum() > 0


def test_builtin_refuses_bad_shapes():
    codec = _codec()
    with pytest.raises(CodecError, match="divisible"):
        codec.encode(torch.rand(1, 3, 3, 32, 32))
    with pytest.raises(CodecError, match="channels"):
        codec.encode(torch.rand(1, 1, 4, 32, 32))
    with pytest.raises(CodecError, match=r"\(N, C, T, H, W\)"):
        codec.encode(torch.rand(3, 4, 32, 32))
    with pytest.raises(CodecError, match="power of two"):
        AutoencoderConfig(spatial_down=3)


def test_unit_and_normalized_space_helpers():
    raw = torch.randint(0, 256, (2, 4, 8, 8, 3), dtype=torch.uint8)
    unit = unit_videos(raw)
    assert unit.shape == (2, 3, 4, 8, 8) and float(unit.max()) <= 1.0
    assert torch.equal(unit[1, 2, 3], raw[1, 3, :, :, 2].float() / 255)
    mean, std = [0.4, 0.5, 0.6], [0.2, 0.25, 0.3]
    assert torch.allclose(unnormalize(normalize_unit(unit, mean, std), mean, std), unit, atol=1e-6)


def test_fit_takes_a_reconstruction_loss_and_adam():
    gen = make_generator(0)
    codec = _codec()
    videos = torch.rand(4, 3, 4, 32, 32)
    res = fit(codec, TensorData(videos, torch.zeros(4, dtype=torch.long)),
              TrainConfig(epochs=5, batch_size=4, lr=3e-3, weight_decay=0, optimizer="adam"), generator=gen,
              loss=lambda model, x, y: torch.nn.functional.mse_loss(model(x), x))
    assert res.steps == 5 and res.epoch_losses[-1] < res.epoch_losses[0]
    with pytest.raises(ValueError, match="optimizer"):
        TrainConfig(optimizer="lbfgs")


def test_builtin_training_is_deterministic(tiny_stores, tmp_path):
    train, _ = tiny_stores
    cfg = dataclasses.replace(FAST, epochs=2)
    a, b = train_codec(train, tmp_path / "a", cfg), train_codec(train, tmp_path / "b", cfg)
    assert a.codec.sha256 == b.codec.sha256  # same seed, same weights, same bytes
    assert a.epoch_losses == b.epoch_losses
    c = train_codec(train, tmp_path / "c", dataclasses.replace(cfg, seed=1))
    assert c.codec.sha256 != a.codec.sha256


def test_builtin_reconstructs_better_than_the_mean(tiny_stores, tmp_path):
    train, test = tiny_stores
    a = train_codec(train, tmp_path / "a", FAST)
    assert a.epoch_losses[-1] < a.epoch_losses[0]
    # on clips it never saw: the trivial codec that outputs every pixel's channel mean has MSE = the data
    # variance; 30 steps of the default /4 /2 architecture get well below it (about 0.72 of it)
    err = reconstruction_error(a.codec, test, np.arange(len(test)))
    assert err["mse"] < 0.85 * err["mean_baseline_mse"], err

    info = json.loads((tmp_path / "a" / "codec.json").read_text())
    assert info["train"]["fingerprint"] == train.fingerprint
    assert info["sha256"] == a.codec.sha256 and info["config"]["width"] == 8
    loaded = load_codec(f"builtin:{tmp_path / 'a'}")
    videos = unit_videos(torch.from_numpy(np.array(train.clips[:3])))
    assert torch.equal(loaded.decode(loaded.encode(videos)), a.codec.decode(a.codec.encode(videos)))
    assert loaded.describe() == {**a.codec.describe(), "path": str((tmp_path / "a").resolve())}
    assert loaded.weight_bytes() == sum(p.numel() * 4 for p in loaded.parameters())
    assert loaded.describe()["decoder_weight_bytes"] == sum(p.numel() * 4 for p in loaded.decoder.parameters())


def test_holdout_psnr_is_recorded(tiny_stores, tmp_path):
    train, _ = tiny_stores
    res = train_codec(train, tmp_path / "c", CodecTrainConfig(width=8, epochs=1, batch_size=8, holdout=0.2))
    info = json.loads((tmp_path / "c" / "codec.json").read_text())["train"]
    assert info["holdout_clips"] == round(0.2 * len(train)) and info["train_clips"] == len(train) - 4
    assert np.isfinite(res.holdout["psnr_db"]) and info["holdout"] == res.holdout


def test_load_refuses_tampered_or_missing_files(tmp_path):
    folder = tmp_path / "codec"
    _codec().save(folder)
    weights = folder / "codec.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(CodecError, match=r"codec\.safetensors: sha256 .* does not match"):
        load_codec(folder)
    with pytest.raises(CodecError, match="no such codec folder"):
        load_codec(f"builtin:{tmp_path / 'nothing'}")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CodecError, match=r"empty/codec\.json: missing"):
        load_codec(tmp_path / "empty")
    with pytest.raises(UnknownNameError, match="valid codecs: builtin, diffusers"):
        load_codec(f"vqgan:{folder}")
    assert set(CODECS.names()) >= {"builtin", "diffusers"}


def test_encode_store_streams_and_resumes_bit_exactly(tiny_stores, tmp_path):
    train, _ = tiny_stores
    codec = _codec()
    codec.save(tmp_path / "codec")
    full = encode_store(train, codec, tmp_path / "full", batch_size=4)
    assert full.latents.shape == (len(train), 8, 2, 8, 8) and full.latents.dtype == np.float32
    assert np.array_equal(full.labels, train.labels) and full.classes == train.classes
    assert full.meta["codec"]["sha256"] == codec.sha256 and full.meta["source"]["fingerprint"] == train.fingerprint
    assert full.mean == train.meta.mean and full.video_shape == train.video_shape
    assert np.array_equal(full.class_indices(1), train.class_indices(1))
    direct = codec.encode(unit_videos(torch.from_numpy(np.array(train.clips[4:8]))))
    assert torch.allclose(full.batch([4, 5, 6, 7]), direct, atol=1e-6)

    def stop_after_first(done, total):
        if done == 4:
            raise KeyboardInterrupt

    part = tmp_path / "part"
    with pytest.raises(KeyboardInterrupt):
        encode_store(train, codec, part, batch_size=4, on_batch=stop_after_first)
    with pytest.raises(CodecError, match="unfinished"):
        LatentStore(part)
    seen = []
    # a different batch size on resume is ignored: the encoding keeps the one it started with
    resumed = encode_store(train, codec, part, batch_size=7, resume=True, on_batch=lambda d, t: seen.append(d))
    assert seen == [8, 12, 16, 18]  # started after the 4 rows already recorded
    assert (part / "latents.npy").read_bytes() == (tmp_path / "full" / "latents.npy").read_bytes()
    assert resumed.meta == {**full.meta}
    assert not (part / ".progress.json").exists()
    # resuming a finished encoding returns it; another codec is refused
    assert encode_store(train, codec, part, resume=True).meta == full.meta
    other = _codec(seed=1)
    other.save(tmp_path / "other")
    with pytest.raises(CodecError, match="another store, codec or settings"):
        encode_store(train, other, part, resume=True)
    assert resumed.load_codec().sha256 == codec.sha256


def test_diffusers_adapter_on_a_tiny_random_vae(tiny_stores, tmp_path, monkeypatch):
    diffusers = pytest.importorskip("diffusers")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    with seeded(make_generator(0)):
        vae = diffusers.AutoencoderKL(
            in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 2,
            up_block_types=("UpDecoderBlock2D",) * 2, block_out_channels=(8, 8), layers_per_block=1,
            latent_channels=4, norm_num_groups=8, sample_size=32, scaling_factor=0.5, shift_factor=0.1)
    vae.save_pretrained(tmp_path / "vae")  # safetensors + config.json, as a downloaded model folder holds

    codec = load_codec(f"diffusers:{tmp_path / 'vae'}")
    assert codec.name == "diffusers" and load_codec(tmp_path / "vae").sha256 == codec.sha256  # bare path detected
    videos = torch.rand(2, 3, 4, 32, 32)
    assert codec.latent_shape((3, 4, 32, 32)) == (4, 4, 16, 16)
    z = codec.encode(videos)
    assert z.shape == (2, 4, 4, 16, 16) and z.dtype == torch.float32
    # frame-wise: frame t of video n is encoded alone, then (z - shift) * scale
    with torch.no_grad():
        frame = vae.encode(videos[1, :, 2][None] * 2 - 1).latent_dist.mean
    assert torch.allclose(z[1, :, 2], ((frame - 0.1) * 0.5)[0], atol=1e-5)
    out = codec.decode(z)
    assert out.shape == videos.shape and out.min() >= 0 and out.max() <= 1
    assert torch.equal(codec.encode(videos), z)
    s1 = codec.encode(videos, sample=True, generator=make_generator(3))
    assert torch.equal(s1, codec.encode(videos, sample=True, generator=make_generator(3))) and not torch.equal(s1, z)
    info = codec.describe()
    assert info["kind"] == "diffusers" and info["config"]["class_name"] == "AutoencoderKL"
    assert info["weight_bytes"] == sum(p.numel() * 4 for p in vae.parameters())
    assert info["decoder_weight_bytes"] == 4 * sum(p.numel() for m in (vae.decoder, vae.post_quant_conv)
                                                   for p in m.parameters())

    latents = encode_store(tiny_stores[0], codec, tmp_path / "lat", batch_size=8)
    assert latents.latents.shape == (18, 4, 4, 16, 16) and latents.codec_spec.startswith("diffusers:")

    # a whole pipeline folder works through its vae/ subfolder; pickled weights are refused
    pipe = tmp_path / "pipe"
    pipe.mkdir()
    (tmp_path / "vae").rename(pipe / "vae")
    assert load_codec(f"diffusers:{pipe}").latent_shape((3, 4, 32, 32)) == (4, 4, 16, 16)
    for f in (pipe / "vae").glob("*.safetensors"):
        f.rename(f.with_suffix(".bin"))
    with pytest.raises(CodecError, match="pickled .bin weights are refused"):
        load_codec(f"diffusers:{pipe}")
    with pytest.raises(CodecError, match="no diffusers config.json"):
        load_codec(f"diffusers:{tmp_path}")


def test_cli_train_codec_then_encode(tmp_path, capsys):
    from conftest import make_tiny_stores
    from videodd.cli import main

    data = tmp_path / "data"
    train, test = make_tiny_stores(data)
    codec_dir, out = tmp_path / "codec", tmp_path / "latents"
    assert main(["train-codec", "--data", str(data), "--out", str(codec_dir), "--epochs", "2", "--width", "8",
                 "--batch-size", "6", "--quiet", "--device", "cpu"]) == 0
    printed = capsys.readouterr().out
    assert "held-out reconstruction (1 clips): PSNR" in printed and "x6.0 / x3.0" in printed
    assert (codec_dir / "codec.safetensors").is_file() and (codec_dir / "codec.json").is_file()
    assert main(["encode", "--data", str(data), "--codec", f"builtin:{codec_dir}", "--out", str(out),
                 "--batch-size", "5", "--quiet", "--device", "cpu"]) == 0
    assert "encoded 18 clips" in capsys.readouterr().out
    latents = LatentStore(out)
    assert latents.latents.shape == (18, 8, 2, 8, 8) and latents.meta["source"]["fingerprint"] == train.fingerprint
    assert main(["encode", "--data", str(data / "test"), "--codec", str(codec_dir), "--out", str(tmp_path / "t"),
                 "--quiet", "--device", "cpu"]) == 0  # a store folder and a bare codec path work too
    assert LatentStore(tmp_path / "t").meta["split"] == "test"
    assert main(["info", str(codec_dir)]) == 0 and "held-out PSNR" in capsys.readouterr().out
    assert main(["info", str(out)]) == 0 and "LatentStore" in capsys.readouterr().out
    # bad input: a clear error, no traceback
    (codec_dir / "codec.safetensors").write_bytes(b"\0" * 16)
    assert main(["encode", "--data", str(data), "--codec", str(codec_dir), "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "codec.safetensors: sha256" in err and "Traceback" not in err
    assert main(["train-codec", "--data", str(data), "--out", str(codec_dir), "--spatial-down", "3", "--quiet"]) == 2
    assert "power of two" in capsys.readouterr().err


def test_diffusers_temporal_decoder_vae_decodes_whole_videos(tmp_path, monkeypatch):
    diffusers = pytest.importorskip("diffusers")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with seeded(make_generator(0)):
        vae = diffusers.AutoencoderKLTemporalDecoder(block_out_channels=(32,), layers_per_block=1, latent_channels=4)
    vae.save_pretrained(tmp_path / "svd")
    codec = load_codec(f"diffusers:{tmp_path / 'svd'}")
    videos = torch.rand(2, 3, 4, 16, 16)
    z = codec.encode(videos)
    assert z.shape == (2, 4, 4, 16, 16) == (2, *codec.latent_shape((3, 4, 16, 16)))
    with torch.no_grad():
        whole = codec.decode(z)
        codec.frame_batch = 4  # one video (its 4 frames together) per decoder call
        assert torch.allclose(codec.decode(z), whole, atol=1e-5)
    assert whole.shape == videos.shape


def test_diffusers_codec_without_diffusers_says_how_to_install(tmp_path, monkeypatch):
    import sys

    folder = tmp_path / "vae"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"_class_name": "AutoencoderKL"}))
    (folder / "diffusion_pytorch_model.safetensors").write_bytes(b"")
    monkeypatch.setitem(sys.modules, "diffusers", None)  # makes `import diffusers` fail
    with pytest.raises(CodecError, match=r"pip install videodd\[diffusion\]"):
        load_codec(f"diffusers:{folder}")
