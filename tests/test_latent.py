"""The latent method: encode -> select -> recompress -> a ``latent`` DistilledSet that decodes on materialize."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from videodd.builders.latent import LatentOptions, latent_ipc_for_budget, pixel_budget
from videodd.cli import main
from videodd.codecs import load_codec, normalize_unit
from videodd.codecs.autoencoder import AutoencoderConfig, VideoAutoencoder
from videodd.codecs.compress import decompress, stored_bytes
from videodd.codecs.latent_set import LATENT_PREFIX, split_tensors
from videodd.config import ConfigError
from videodd.distill import distill, resolve_config
from videodd.distilled import DistilledSet, DistilledSetError
from videodd.evaluate import evaluate, get_protocol
from videodd.report import markdown_table, rows_from_report
from videodd.seeding import make_generator, seeded

TINY_CODEC = {"latent_channels": 2, "spatial_down": 4, "temporal_down": 2, "width": 4, "blocks": 0}


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny tensors: intra-op threads only add overhead (and stall on a busy machine)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def save_codec(folder: Path, seed: int = 0) -> str:
    """An untrained tiny built-in codec saved to ``folder``: ``builtin:FOLDER`` (decoding needs no training)."""
    with seeded(make_generator(seed)):
        codec = VideoAutoencoder(AutoencoderConfig(**TINY_CODEC))
    codec.save(folder)
    return f"builtin:{folder}"


def latent_cfg(codec: str, ipc: int = 2, seed: int = 0, **options):
    return resolve_config("latent", {"ipc": ipc, "seed": seed, "builder": {"codec": codec, **options}})


def test_latent_set_save_load_materialize_identical(tiny_stores, tmp_path):
    train, _ = tiny_stores
    spec = save_codec(tmp_path / "codec")
    result = distill(train, latent_cfg(spec, compress="tucker:0.5,int8"), tmp_path / "run")
    built = result.distilled
    loaded = DistilledSet.load(tmp_path / "run" / "distilled.safetensors")
    assert loaded.manifest.kind == "latent" and loaded.ipc == 2 and loaded.num_videos == 6
    assert loaded.labels.tolist() == [0, 0, 1, 1, 2, 2]
    assert set(loaded.tensors) == set(built.tensors) and all(k.startswith(LATENT_PREFIX) for k in loaded.tensors)
    for name, t in built.tensors.items():
        assert torch.equal(loaded.tensors[name], t)
    videos = loaded.materialize().videos
    assert videos.shape == (6, 3, 4, 32, 32)
    assert torch.equal(videos, built.materialize().videos)
    # by hand: decompress, decode with the codec, normalize with the set's mean/std
    m = loaded.manifest
    latents, _ = split_tensors(loaded.tensors)
    z = decompress(latents, m.layout["compression"], (6, *m.layout["latent_shape"]))
    codec = load_codec(spec)
    assert torch.allclose(videos, normalize_unit(codec.decode(z), m.mean, m.std), atol=1e-6)
    # the picks are real training clips of the right classes, recorded by source id
    assert [s.split("/")[0] for s in m.info["source_ids"]] == ["train"] * 6
    assert loaded.storage_detail().parts["latents"] == stored_bytes("tucker:0.5,int8", (6, 2, 2, 8, 8))


@pytest.mark.parametrize("select", ["random", "kmeans", "dpp"])
def test_every_selection_is_deterministic(tiny_stores, tmp_path, select):
    train, _ = tiny_stores
    spec = save_codec(tmp_path / "codec")
    a = distill(train, latent_cfg(spec, select=select, seed=3), tmp_path / "a").distilled
    b = distill(train, latent_cfg(spec, select=select, seed=3), tmp_path / "b").distilled
    assert a.manifest.info["source_ids"] == b.manifest.info["source_ids"]
    assert torch.equal(a.tensors["latent.latents"], b.tensors["latent.latents"])
    assert a.manifest.info["selection"]["select"] == select


def test_encoding_is_cached_next_to_the_data(tiny_stores, tmp_path):
    train, _ = tiny_stores
    spec = save_codec(tmp_path / "codec")
    distill(train, latent_cfg(spec), tmp_path / "a")
    sha = load_codec(spec).describe()["sha256"]
    cache = train.root.parent / "latents" / sha[:16] / "train"
    assert (cache / "meta.json").is_file()
    stamp = (cache / "latents.npy").stat().st_mtime_ns
    distill(train, latent_cfg(spec, compress="pca:2"), tmp_path / "b")
    assert (cache / "latents.npy").stat().st_mtime_ns == stamp  # reused, not encoded again


def test_equal_storage_picks_the_largest_latent_ipc_that_fits(tiny_stores, tmp_path):
    train, _ = tiny_stores
    spec = save_codec(tmp_path / "codec")
    per_latent = stored_bytes("none", (1, 2, 2, 8, 8))  # 1,024 bytes
    assert latent_ipc_for_budget(3 * 2 * per_latent, "none", (2, 2, 8, 8), 3, 6) == 2
    assert latent_ipc_for_budget(3 * 2 * per_latent - 1, "none", (2, 2, 8, 8), 3, 6) == 1
    assert latent_ipc_for_budget(10**9, "none", (2, 2, 8, 8), 3, 6) == 6  # capped by the clips per class
    assert latent_ipc_for_budget(100, "none", (2, 2, 8, 8), 3, 6) == 0
    budget = int(3 * 2.5 * per_latent)
    dset = distill(train, latent_cfg(spec, ipc=1, budget_bytes=budget), tmp_path / "b").distilled
    assert dset.ipc == 2 and dset.manifest.layout["budget_bytes"] == budget
    assert dset.storage_detail().parts["latents"] <= budget < stored_bytes("none", (9, 2, 2, 8, 8))
    # match_ipc=1: the bytes of 3 float32 videos 3x4x32x32 fit all 6 clips of every class here
    assert pixel_budget(train, 1) == 3 * 3 * 4 * 32 * 32 * 4
    matched = distill(train, latent_cfg(spec, match_ipc=1, compress="int8"), tmp_path / "m").distilled
    assert matched.ipc == 6 and matched.manifest.equal_storage_ipc == 1
    detail = matched.storage_detail()
    assert detail.parts["latents"] == sum(t.numel() * t.element_size() for t in matched.tensors.values())
    assert detail.equivalent_ipc == pytest.approx(detail.parts["latents"] / pixel_budget(train, 1))
    with pytest.raises(ConfigError, match="over the budget"):
        distill(train, latent_cfg(spec, budget_bytes=100), tmp_path / "x")
    with pytest.raises(ConfigError, match="not both"):
        LatentOptions(match_ipc=1, budget_bytes=10)


def test_codec_reference_is_checked_and_embedding_makes_the_file_self_contained(tiny_stores, tmp_path):
    train, _ = tiny_stores
    spec = save_codec(tmp_path / "codec")
    ref = distill(train, latent_cfg(spec, compress="pca:3"), tmp_path / "ref").distilled
    emb = distill(train, latent_cfg(spec, compress="pca:3", embed_codec=True), tmp_path / "emb").distilled
    expected = ref.materialize().videos
    # embedded: counted in the file; referenced: needed to decode but not in the file
    assert emb.storage_detail().external_bytes == 0 and ref.storage_detail().external_bytes > 0
    codec_bytes = sum(t.numel() * t.element_size() for k, t in emb.tensors.items() if k.startswith("codec."))
    assert codec_bytes == emb.storage_detail().parts["decoder"] == ref.storage_detail().parts["decoder"]
    assert codec_bytes == ref.storage_detail().external_bytes
    assert all(not k.startswith("codec.encoder") for k in emb.tensors)  # only what decoding needs
    # another codec written over the folder: the sha256 differs and the referencing set refuses it
    save_codec(tmp_path / "codec", seed=1)
    loaded = DistilledSet.load(tmp_path / "ref" / "distilled.safetensors")
    with pytest.raises(DistilledSetError, match="sha256"):
        loaded.materialize()
    shutil.rmtree(tmp_path / "codec")
    with pytest.raises(DistilledSetError, match="missing"):
        loaded.materialize()
    # the embedded set still decodes exactly as before
    assert torch.equal(DistilledSet.load(tmp_path / "emb" / "distilled.safetensors").materialize().videos, expected)


def test_a_broken_latent_set_is_refused(tiny_stores, tmp_path):
    train, _ = tiny_stores
    dset = distill(train, latent_cfg(save_codec(tmp_path / "codec"), compress="tucker:0.5"), tmp_path / "r").distilled
    dset.tensors.pop("latent.factor1")
    with pytest.raises(DistilledSetError, match="stores tensors"):
        dset.save(tmp_path / "broken.safetensors")


def test_report_shows_latent_bytes_and_the_same_storage_reference(tiny_stores, tmp_path):
    train, test = tiny_stores
    spec = save_codec(tmp_path / "codec")
    dset = distill(train, latent_cfg(spec, match_ipc=1, compress="tucker:0.5,int8"), tmp_path / "r").distilled
    protocol = get_protocol("cpu").with_runs(1).with_epochs(2)
    report = evaluate(dset, test, protocol, train_store=train, references=("random",), cache_dir=tmp_path / "refs")
    assert set(report.references) == {"random real IPC 6", "random real IPC 1 (same storage)"}
    assert report.storage_detail["parts"]["latents"] == dset.storage_detail().parts["latents"]
    assert report.equal_storage_ipc == 1
    assert "latent set:" in report.to_markdown() and "pixel-equivalent IPC" in report.to_markdown()
    table = markdown_table(rows_from_report(report))
    assert "| latent | 6 (= " in table and "| random real IPC 1 (same storage) | 1 |" in table


def test_cli_train_codec_distill_evaluate_info(tiny_stores, tmp_path, capsys):
    train, _ = tiny_stores
    data = train.root.parent
    codec = tmp_path / "codec"
    assert main(["train-codec", "--data", str(data), "--out", str(codec), "--epochs", "1", "--width", "4",
                 "--latent-channels", "2", "--blocks", "0", "--quiet"]) == 0
    out = tmp_path / "run"
    assert main(["distill", "--method", "latent", "--data", str(data), "--out", str(out), "--ipc", "2",
                 "--set", f"builder.codec=builtin:{codec}", "--set", "builder.select=dpp",
                 "--set", "builder.compress=tucker:0.5", "--quiet"]) == 0
    assert "latent IPC 2: 6 videos" in capsys.readouterr().out
    path = out / "distilled.safetensors"
    assert main(["evaluate", str(path), "--data", str(data), "--protocol", "cpu", "--runs", "1", "--epochs", "2",
                 "--references", "", "--quiet"]) == 0
    assert "| latent | 2 (= " in capsys.readouterr().out
    assert main(["info", str(path)]) == 0
    info = capsys.readouterr().out
    assert "latent bytes" in info and "decoder bytes" in info and "pixel-eq. IPC" in info
    assert main(["distill", "--method", "latent", "--data", str(data), "--out", str(tmp_path / "m"),
                 "--set", f"builder.codec=builtin:{codec}", "--match-ipc", "1", "--quiet"]) == 0
    assert "latent IPC 6" in capsys.readouterr().out
    assert main(["distill", "--method", "latent", "--data", str(data), "--out", str(tmp_path / "bad"),
                 "--set", f"builder.codec=builtin:{codec}", "--set", "builder.compress=zip", "--quiet"]) == 2
    assert "unknown stage" in capsys.readouterr().err


def test_auto_codec_is_trained_once_next_to_the_data(tiny_stores, tmp_path, monkeypatch):
    from videodd.builders import latent

    train, _ = tiny_stores
    tiny = latent.CodecTrainConfig(epochs=1, width=4, latent_channels=2, blocks=0)
    monkeypatch.setattr(latent, "CodecTrainConfig", lambda: tiny)  # the defaults, made tiny for the test
    first = distill(train, resolve_config("latent", {"ipc": 1}), tmp_path / "a").distilled
    weights = train.root.parent / "codec" / "codec.safetensors"
    assert first.manifest.layout["codec"]["path"] == str(weights.parent.resolve())
    stamp = weights.stat().st_mtime_ns
    distill(train, resolve_config("latent", {"ipc": 1}), tmp_path / "b")
    assert weights.stat().st_mtime_ns == stamp  # trained on this store already: reused
    assert first.materialize().videos.shape == (3, 3, 4, 32, 32)
