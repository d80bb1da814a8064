"""Generate-then-select: the U-Net, the resumable training loop, the generator files, candidate pools,
the VST-UNet selector and the ``generated-clips`` set kind."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import make_tiny_stores
from videodd.builders.generate import GENERATED, GenerateBuilder, GenerateOptions
from videodd.config import ConfigError
from videodd.data.store import StoreError
from videodd.distill import distill, resolve_config
from videodd.generate import candidates as cand
from videodd.generate.candidates import GenerationPlan, generate_candidates, open_candidates
from videodd.generate.diffusion import (
    GeneratorError,
    GeneratorTrainConfig,
    VideoGenerator,
    make_scheduler,
    train_generator,
)
from videodd.generate.unet import UNetConfig, VideoUNet
from videodd.models import create_model
from videodd.seeding import make_generator
from videodd.selection.vstunet import VSTUNet, VSTUNetOptions, greedy_representative_diverse
from videodd.train import StoreData, TrainConfig, fit

TINY = GeneratorTrainConfig(width=4, mults=(1, 2), embed_dim=16, epochs=2, batch_size=6)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Tiny stores and a tiny generator trained on their training split (two epochs)."""
    root = tmp_path_factory.mktemp("gen")
    train, test = make_tiny_stores(root / "data")
    result = train_generator(train, root / "generator", TINY)
    return train, test, result


@pytest.mark.parametrize("mults,blocks", [((1, 2), 1), ((1, 2, 2), 2)])
def test_unet_predicts_noise_of_the_video_shape(mults, blocks):
    net = VideoUNet(UNetConfig(channels=3, num_classes=4, width=8, mults=mults, blocks=blocks, embed_dim=16))
    x = torch.randn(2, 3, 4, 16, 16)  # (N, C, T, H, W)
    t, y = torch.tensor([0, 999]), torch.tensor([1, 4])  # 4 = "no class"
    assert net(x, t, y).shape == x.shape
    assert torch.equal(net(x, t, y), torch.zeros_like(x))  # the output conv starts at zero
    assert net.features(x, t, y).shape == (2, 8 * mults[-1])


def test_fit_resumed_from_its_checkpoint_matches_the_uninterrupted_run(tiny_stores, tmp_path):
    train, _ = tiny_stores
    cfg = TrainConfig(epochs=4, batch_size=5, lr=0.01, lr_milestones=(0.5,))

    def model():
        torch.manual_seed(0)
        return create_model("convnet3d-s", train.num_classes, train.video_shape)

    full = fit(model(), StoreData(train), cfg, generator=make_generator(3))

    class Killed(Exception):
        pass

    def kill(epoch, _model):
        if epoch == 2:
            raise Killed

    ckpt = tmp_path / "ckpt.safetensors"
    with pytest.raises(Killed):
        fit(model(), StoreData(train), cfg, generator=make_generator(3), checkpoint=ckpt, on_epoch_end=kill)
    resumed = fit(model(), StoreData(train), cfg, generator=make_generator(3), checkpoint=ckpt)
    assert resumed.epoch_losses == pytest.approx(full.epoch_losses, rel=1e-6)
    assert resumed.steps == full.steps
    for a, b in zip(full.model.state_dict().values(), resumed.model.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_generator_training_lowers_the_denoising_loss_and_records_its_store(tmp_path):
    train, _ = make_tiny_stores(tmp_path / "data")
    result = train_generator(train, tmp_path / "g", GeneratorTrainConfig(width=4, mults=(1, 2), embed_dim=16,
                                                                           epochs=12, batch_size=6, lr=3e-3))
    assert result.epoch_losses[-1] < 0.8 * result.epoch_losses[0]  # epsilon MSE starts near 1
    info = json.loads((tmp_path / "g" / "generator.json").read_text())
    assert info["fingerprint"] == train.fingerprint and info["classes"] == train.classes
    assert not (tmp_path / "g" / "checkpoint.safetensors").exists()  # removed once the generator is saved


def test_sampling_is_seeded_and_guided(trained):
    train, _, result = trained
    g = VideoGenerator.load(result.path)
    labels = torch.tensor([0, 1, 2])
    a = g.sample(labels, make_generator(5), steps=3, guidance=2.0)
    assert a.shape == (3, *train.spec.shape, 3) and a.dtype == torch.uint8  # (N, T, H, W, C)
    assert torch.equal(a, g.sample(labels, make_generator(5), steps=3, guidance=2.0))
    assert not torch.equal(a, g.sample(labels, make_generator(6), steps=3, guidance=2.0))
    for sampler in ("dpm", "ddpm"):
        assert g.sample(labels, make_generator(5), steps=3, sampler=sampler).shape == a.shape


def test_guidance_combines_the_two_branches(trained):
    """``guidance`` g: eps = eps_uncond + g (eps_cond - eps_uncond), checked against the U-Net called by hand."""
    _, _, result = trained
    g = VideoGenerator.load(result.path)
    torch.manual_seed(0)
    for p in g.unet.parameters():  # a non-trivial network (the trained one predicts little yet)
        p.data.add_(0.1 * torch.randn_like(p))
    sched = make_scheduler("ddim", g.info["scheduler"])
    sched.set_timesteps(1)
    t = sched.timesteps[0]
    labels = torch.tensor([1, 2])
    noise = torch.randn((2, *g.video_shape), generator=make_generator(9))
    tt = torch.full((2,), int(t))
    with torch.no_grad():
        cond = g.unet(noise, tt, labels)
        uncond = g.unet(noise, tt, torch.full_like(labels, 3))
    x0 = sched.step(uncond + 3.0 * (cond - uncond), t, noise).prev_sample
    from videodd.data.store import denormalize_to_uint8
    from videodd.generate.diffusion import DATA_SCALE

    want = denormalize_to_uint8(x0 * DATA_SCALE, g.info["mean"], g.info["std"])
    got = g.sample(labels, make_generator(9), steps=1, guidance=3.0)
    assert (got.int() - want.int()).abs().max() <= 1  # float rounding at the uint8 boundary


def test_a_generator_for_another_store_or_with_changed_weights_is_refused(trained, tmp_path):
    train, _, result = trained
    other, _ = make_tiny_stores(tmp_path / "other", num_classes=3, train_per_class=7)
    g = VideoGenerator.load(result.path)
    with pytest.raises(GeneratorError, match="fingerprint"):
        g.check_store(other)
    four, _ = make_tiny_stores(tmp_path / "four", num_classes=4)
    with pytest.raises(GeneratorError, match="classes"):
        g.check_store(four)
    copy = tmp_path / "copy"
    copy.mkdir()
    for f in ("generator.json", "generator.safetensors"):
        (copy / f).write_bytes((result.path / f).read_bytes())
    data = bytearray((copy / "generator.safetensors").read_bytes())
    data[-1] ^= 0xFF
    (copy / "generator.safetensors").write_bytes(bytes(data))
    with pytest.raises(GeneratorError, match="generator.safetensors: sha256 differs"):
        VideoGenerator.load(copy)
    with pytest.raises(GeneratorError, match="not a generator folder"):
        VideoGenerator.load(tmp_path)


def test_candidate_pool_is_recorded_reused_and_resumes_to_the_same_clips(trained, tmp_path, monkeypatch):
    train, _, result = trained
    g = VideoGenerator.load(result.path)
    plan = GenerationPlan(per_class=3, steps=2, guidance=1.5, seed=4, batch=2)
    pool = generate_candidates(g, train, tmp_path / "pool", plan)
    assert len(pool) == 9 and pool.class_counts().tolist() == [3, 3, 3] and pool.meta.split == "generated"
    record = pool.meta.extra["generation"]
    assert (record["steps"], record["guidance"], record["seed"], record["per_class"]) == (2, 1.5, 4, 3)
    assert record["generator"]["sha256"] == g.info["sha256"]
    assert pool.meta.mean == train.meta.mean  # the training store's normalization
    assert open_candidates(tmp_path / "pool", g, plan).fingerprint == pool.fingerprint  # reused as it is
    with pytest.raises(GeneratorError, match="another generator or plan"):
        generate_candidates(g, train, tmp_path / "pool", GenerationPlan(per_class=3, steps=2, seed=5, batch=2))
    with pytest.raises(GeneratorError, match="another generator or plan"):  # batches draw from (seed, batch)
        generate_candidates(g, train, tmp_path / "pool", GenerationPlan(per_class=3, steps=2, guidance=1.5, seed=4,
                                                                        batch=3))

    # killed after two batches: the next call keeps them and finishes; the clips are the uninterrupted ones
    real_sample, calls = VideoGenerator.sample, []

    def dying(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real_sample(self, *args, **kwargs)

    monkeypatch.setattr(VideoGenerator, "sample", dying)
    with pytest.raises(KeyboardInterrupt):
        generate_candidates(g, train, tmp_path / "again", plan)
    assert len(list((tmp_path / "again.parts").glob("part-*.npy"))) == 2
    monkeypatch.setattr(VideoGenerator, "sample", real_sample)
    again = generate_candidates(g, train, tmp_path / "again", plan)
    assert np.array_equal(again.raw(np.arange(9)).numpy(), pool.raw(np.arange(9)).numpy())
    assert not (tmp_path / "again.parts").exists()


def test_a_corrupt_candidate_store_names_the_file(trained, tmp_path):
    train, _, result = trained
    g = VideoGenerator.load(result.path)
    plan = GenerationPlan(per_class=2, steps=1, batch=6)
    generate_candidates(g, train, tmp_path / "pool", plan)
    clips = tmp_path / "pool" / "clips.npy"
    clips.write_bytes(clips.read_bytes()[:200])
    with pytest.raises(StoreError, match="clips.npy"):
        generate_candidates(g, train, tmp_path / "pool", plan)
    with pytest.raises(StoreError, match="not a candidate store"):
        open_candidates(train.root)


def test_batch_generators_do_not_depend_on_earlier_batches():
    a = torch.randn(4, generator=cand.batch_generator(1, 3))
    assert torch.equal(a, torch.randn(4, generator=cand.batch_generator(1, 3)))
    assert not torch.equal(a, torch.randn(4, generator=cand.batch_generator(1, 2)))
    assert not torch.equal(a, torch.randn(4, generator=cand.batch_generator(2, 3)))


def test_greedy_selection_trades_representativeness_for_diversity():
    # three clips near the centre (two identical), one farther away
    f = torch.nn.functional.normalize(torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.9, 0.1], [0.6, 0.8]]), dim=1)
    centre = torch.tensor([1.0, 0.0])
    assert greedy_representative_diverse(f, centre, 2, diversity=0.0).tolist() == [0, 1]  # the two nearest
    # after clip 0, at weight 2: its duplicate scores 1 - 2 = -1, clip 2 0.994 - 2 x 0.994 = -0.994, the
    # farther clip 0.6 - 2 x 0.6 = -0.6: it wins; at weight 0.5 the duplicate still does (0.5 > 0.497 > 0.3)
    assert greedy_representative_diverse(f, centre, 2, diversity=2.0).tolist() == [0, 3]
    assert greedy_representative_diverse(f, centre, 2, diversity=0.5).tolist() == [0, 1]


def test_vstunet_selects_per_class_from_real_and_generated_clips(trained, tmp_path):
    train, _, result = trained
    sel = VSTUNet(VSTUNetOptions(generator=str(result.path)))
    idx = sel.select(train, 2, make_generator(0))
    labels = train.labels_tensor(idx).tolist()
    assert labels == [0, 0, 1, 1, 2, 2]
    assert np.array_equal(idx, sel.select(train, 2, make_generator(0)))
    pool = generate_candidates(VideoGenerator.load(result.path), train, tmp_path / "pool",
                               GenerationPlan(per_class=3, steps=1, batch=9))
    picked = VSTUNet(VSTUNetOptions(generator=str(result.path), reference=str(train.root))).select(
        pool, 2, make_generator(0))
    assert pool.labels_tensor(picked).tolist() == [0, 0, 1, 1, 2, 2]


def test_generate_builder_refuses_a_pool_smaller_than_ipc(trained):
    train, _, result = trained
    builder = GenerateBuilder(GenerateOptions(generator=str(result.path), per_class=1, steps=1))
    with pytest.raises(ConfigError, match="1 candidates per class cannot give IPC 2"):
        builder.build(train, 2, make_generator(0))


def test_generated_set_counts_the_generator_apart_and_all_in(trained, tmp_path):
    train, _, result = trained
    cfg = resolve_config("diffusion-random", {"ipc": 2, "builder": {
        "generator": str(result.path), "pool": 2, "steps": 1, "cache_dir": str(tmp_path / "cache")}})
    dset = distill(train, cfg, tmp_path / "run").distilled
    assert dset.manifest.kind == GENERATED and dset.tensors["clips"].dtype == torch.uint8
    gen_bytes = VideoGenerator.load(result.path).weight_bytes
    storage = dset.storage_detail()
    assert storage.parts["generator"] == gen_bytes and storage.external_bytes == gen_bytes
    assert storage.parts["videos"] == dset.tensors["clips"].numel()
    assert dset.materialize().videos.shape == (6, *train.video_shape)
    assert Path(dset.manifest.info["candidate_store"]).is_relative_to(tmp_path / "cache")
    layout = dset.manifest.layout["candidates"]
    assert (layout["per_class"], layout["steps"], layout["guidance"]) == (4, 1, 2.0)


# -- bring your own pipeline ------------------------------------------------------------------------------
def _bytes_to_unicode() -> dict[int, str]:
    """The byte-level BPE alphabet (each byte as a printable character), for a tokenizer without merges."""
    bs = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    cs, n = bs[:], 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs), strict=True))


def tiny_text_to_video_pipeline(folder: Path) -> Path:
    """A randomly initialised text-to-video Stable Diffusion pipeline of a few thousand weights, saved to
    ``folder`` (a character-level CLIP tokenizer, a 1-layer text encoder, a 2-level 3D U-Net, a 1-level VAE)."""
    transformers = pytest.importorskip("transformers")
    diffusers = pytest.importorskip("diffusers")
    chars = list(_bytes_to_unicode().values())
    vocab = {c: i for i, c in enumerate(chars)} | {c + "</w>": len(chars) + i for i, c in enumerate(chars)}
    bos, eos = len(vocab), len(vocab) + 1
    vocab |= {"<|startoftext|>": bos, "<|endoftext|>": eos}
    tok_dir = folder.parent / "tokenizer-files"
    tok_dir.mkdir(parents=True)
    (tok_dir / "vocab.json").write_text(json.dumps(vocab))
    (tok_dir / "merges.txt").write_text("#version: 0.2\n")
    tokenizer = transformers.CLIPTokenizer(str(tok_dir / "vocab.json"), str(tok_dir / "merges.txt"),
                                           model_max_length=16)
    torch.manual_seed(0)
    text = transformers.CLIPTextModel(transformers.CLIPTextConfig(
        vocab_size=len(vocab), hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
        max_position_embeddings=16, bos_token_id=bos, eos_token_id=eos, pad_token_id=eos))
    unet = diffusers.UNet3DConditionModel(
        block_out_channels=(8, 16), layers_per_block=1, sample_size=8, in_channels=4, out_channels=4,
        down_block_types=("CrossAttnDownBlock3D", "DownBlock3D"), up_block_types=("UpBlock3D", "CrossAttnUpBlock3D"),
        cross_attention_dim=16, attention_head_dim=4, norm_num_groups=4)
    vae = diffusers.AutoencoderKL(block_out_channels=(8,), in_channels=3, out_channels=3, latent_channels=4,
                                  down_block_types=("DownEncoderBlock2D",), up_block_types=("UpDecoderBlock2D",),
                                  norm_num_groups=4, sample_size=32)
    scheduler = diffusers.DDIMScheduler(beta_schedule="scaled_linear", clip_sample=False, set_alpha_to_one=False)
    pipe = diffusers.TextToVideoSDPipeline(vae=vae, text_encoder=text, tokenizer=tokenizer, unet=unet,
                                           scheduler=scheduler)
    pipe.save_pretrained(folder)
    return folder


def test_class_names_become_prompts():
    from videodd.generate.pipeline import class_prompt

    assert class_prompt("ApplyEyeMakeup") == "apply eye makeup"
    assert class_prompt("red-disk-up", "a video of {}") == "a video of red disk up"
    assert class_prompt("Playing_cello") == "playing cello"


def test_a_local_diffusers_pipeline_generates_a_seeded_candidate_pool_and_a_set(trained, tmp_path):
    import warnings

    train, _, _ = trained
    folder = tiny_text_to_video_pipeline(tmp_path / "pipe")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the pipeline class's deprecation notice
        from videodd.generate.load import open_generator

        g = open_generator(train, f"diffusers:{folder}", prompt="a video of {}")
        a = g.sample(torch.tensor([0, 2]), make_generator(1), steps=2, guidance=2.0)
        assert a.shape == (2, *train.spec.shape, 3) and a.dtype == torch.uint8  # the store's clip shape
        assert torch.equal(a, g.sample(torch.tensor([0, 2]), make_generator(1), steps=2, guidance=2.0))
        assert not torch.equal(a, g.sample(torch.tensor([0, 2]), make_generator(2), steps=2, guidance=2.0))
        cfg = resolve_config("diffusion-tacdt", {"ipc": 1, "builder": {
            "generator": f"diffusers:{folder}", "pool": 2, "steps": 2, "batch": 3, "selector": {"n_init": 1},
            "cache_dir": str(tmp_path / "cache")}})
        dset = distill(train, cfg, tmp_path / "run").distilled
    described = dset.manifest.layout["generator"]
    assert described["kind"] == "diffusers" and described["prompt"] == "{}"
    assert dset.manifest.layout["generator_bytes"] == sum(
        p.stat().st_size for p in folder.rglob("*.safetensors"))
    assert dset.storage_detail().external_bytes == dset.manifest.layout["generator_bytes"]
    from videodd.generate.pipeline import GeneratorError as PipelineError

    with pytest.raises(PipelineError, match="not a diffusers pipeline folder"):
        open_generator(train, f"diffusers:{tmp_path}")


def test_cli_trains_a_generator_samples_a_pool_and_distils_from_it(tmp_path, capsys):
    from videodd.cli import main

    make_tiny_stores(tmp_path / "data")
    data, gen = str(tmp_path / "data"), str(tmp_path / "gen")
    assert main(["train-generator", "--data", data, "--out", gen, "--epochs", "1", "--width", "4", "--quiet"]) == 0
    assert main(["generate", "--data", data, "--generator", gen, "--out", str(tmp_path / "pool"), "--per-class", "2",
                 "--steps", "1", "--quiet"]) == 0
    assert "generated 6 candidates (2 per class)" in capsys.readouterr().out
    assert main(["distill", "--method", "diffusion-tacdt", "--ipc", "1", "--data", data, "--out", str(tmp_path / "run"),
                 "--set", f"builder.generator={gen}", "--set", "builder.steps=1", "--quiet"]) == 0
    assert main(["info", str(tmp_path / "run" / "distilled.safetensors")]) == 0
    assert "not in this file" in capsys.readouterr().out  # the generator's line
    assert main(["generate", "--data", data, "--generator", str(tmp_path), "--out", str(tmp_path / "p2"),
                 "--per-class", "2"]) == 2
    assert "not a generator folder" in capsys.readouterr().err


def test_generator_training_resumes_only_its_own_checkpoint(tmp_path, monkeypatch):
    import videodd.generate.diffusion as diffusion

    train, _ = make_tiny_stores(tmp_path / "data")
    cfg = GeneratorTrainConfig(width=4, mults=(1, 2), embed_dim=16, epochs=3, batch_size=6)
    full = train_generator(train, tmp_path / "full", cfg)

    real_fit, seen = diffusion.fit, {}

    def killed_fit(*args, **kwargs):  # dies after epoch 2, its checkpoint written
        def kill(epoch, _model):
            if epoch == 2:
                raise KeyboardInterrupt
        return real_fit(*args, **kwargs, on_epoch_end=kill)

    monkeypatch.setattr(diffusion, "fit", killed_fit)
    with pytest.raises(KeyboardInterrupt):
        train_generator(train, tmp_path / "g", cfg)
    monkeypatch.setattr(diffusion, "fit", real_fit)
    assert (tmp_path / "g" / "checkpoint.safetensors").exists()
    resumed = train_generator(train, tmp_path / "g", cfg)
    assert resumed.epoch_losses == pytest.approx(full.epoch_losses, rel=1e-6)
    for a, b in zip(full.generator.unet.state_dict().values(), resumed.generator.unet.state_dict().values(),
                    strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)

    # a checkpoint left by a training with other settings is not continued
    monkeypatch.setattr(diffusion, "fit", killed_fit)
    with pytest.raises(KeyboardInterrupt):
        train_generator(train, tmp_path / "h", cfg)
    def watched_fit(*args, **kwargs):
        seen["fresh"] = not Path(kwargs["checkpoint"]).exists()
        return real_fit(*args, **kwargs)

    monkeypatch.setattr(diffusion, "fit", watched_fit)
    train_generator(train, tmp_path / "h", dataclasses.replace(cfg, lr=1e-3))
    assert seen["fresh"]
