"""Training-free recompression: Tucker/HOSVD, PCA, fp16, int8, pipelines and exact byte counts."""

from __future__ import annotations

import math

import pytest
import torch

from videodd.codecs.compress import (
    CompressionSpec,
    check_tensors,
    compress,
    decompress,
    dequantize_int8,
    hosvd,
    quantize_int8,
    stored_bytes,
    stored_shapes,
    tucker_reconstruct,
)
from videodd.config import ConfigError
from videodd.seeding import make_generator


def low_rank_tucker(n: int, dims: tuple[int, ...], ranks: tuple[int, ...], seed: int = 0) -> torch.Tensor:
    """``n`` tensors ``dims`` of exact multilinear rank ``ranks``: a random core times orthonormal factors."""
    gen = make_generator(seed)
    core = torch.randn(n, *ranks, generator=gen, dtype=torch.float64)
    factors = [torch.linalg.qr(torch.randn(n, d, r, generator=gen, dtype=torch.float64)).Q
               for d, r in zip(dims, ranks, strict=True)]
    return tucker_reconstruct(core, factors)


def test_tucker_recovers_a_hand_built_low_rank_tensor_exactly():
    x = low_rank_tucker(3, (4, 6, 5), (2, 3, 2)).float()  # core (2, 3, 2) x factors (4x2, 6x3, 5x2)
    for spec in ("tucker:0.5x0.5x0.4", "tucker:1", "tucker:0.75x0.5x0.6"):
        packed = compress(x, spec)
        assert packed.error < 1e-5, spec
        assert torch.allclose(packed.reconstruction, x, atol=1e-5)
    exact = compress(x, "tucker:0.5x0.5x0.4")
    assert exact.tensors["core"].shape == (3, 2, 3, 2)
    assert [exact.tensors[f"factor{m}"].shape for m in range(3)] == [(3, 4, 2), (3, 6, 3), (3, 5, 2)]
    # fewer ranks than the truth lose information
    assert compress(x, "tucker:0.25x0.5x0.4").error > 0.05


def test_hosvd_factors_are_orthonormal_and_the_core_is_the_projection():
    x = torch.randn(2, 4, 5, 6, generator=make_generator(1), dtype=torch.float64)
    core, factors = hosvd(x, (2, 3, 3))
    for u in factors:
        eye = torch.eye(u.shape[-1], dtype=u.dtype).expand(u.shape[0], -1, -1)
        assert torch.allclose(u.transpose(-1, -2) @ u, eye, atol=1e-10)
    assert core.shape == (2, 2, 3, 3)
    # the truncated reconstruction is the orthogonal projection: its residual is orthogonal to it
    recon = tucker_reconstruct(core, factors)
    assert abs(float(((x - recon) * recon).sum())) < 1e-9


def test_pca_is_exact_on_rank_r_data():
    gen = make_generator(2)
    n, d, r = 20, 2 * 4 * 4 * 4, 3
    flat = torch.randn(d, generator=gen) + torch.randn(n, r, generator=gen) @ torch.randn(r, d, generator=gen)
    x = flat.reshape(n, 2, 4, 4, 4)
    packed = compress(x, f"pca:{r}")
    assert packed.error < 1e-5
    assert {k: tuple(v.shape) for k, v in packed.tensors.items()} == {"mean": (d,), "basis": (r, d),
                                                                     "coeffs": (n, r)}
    assert compress(x, f"pca:{r - 1}").error > 0.05
    # more components than samples: capped at N
    assert compress(x[:4], "pca:16").tensors["basis"].shape == (4, d)


def test_int8_error_is_at_most_half_a_step_per_channel():
    gen = make_generator(3)
    x = torch.randn(5, 4, 3, 6, 6, generator=gen) * torch.tensor([1.0, 10.0, 0.1, 3.0]).view(1, 4, 1, 1, 1)
    q, scale, offset = quantize_int8(x)
    assert q.dtype == torch.int8 and scale.shape == (1, 4, 1, 1, 1) and offset.shape == (1, 4, 1, 1, 1)
    err = (dequantize_int8(q, scale, offset) - x).abs()
    bound = scale / 2 * (1 + 1e-5) + 1e-6
    assert bool((err <= bound).all())
    # the per-channel steps follow each channel's range
    ranges = x.amax(dim=(0, 2, 3, 4)) - x.amin(dim=(0, 2, 3, 4))
    assert torch.allclose(scale.flatten(), ranges / 255)
    # matrices: one step per row; vectors: one for the tensor; a constant is exact
    assert quantize_int8(torch.randn(3, 7, generator=gen))[1].shape == (3, 1)
    assert quantize_int8(torch.randn(7, generator=gen))[1].shape == (1,)
    const = torch.full((2, 3, 4), 1.5)
    assert torch.equal(dequantize_int8(*quantize_int8(const)), const)


def test_fp16_and_pipelines():
    x = torch.randn(6, 4, 2, 4, 4, generator=make_generator(4))
    half = compress(x, "fp16")
    assert half.tensors["latents"].dtype == torch.float16 and half.error < 1e-3
    both = compress(x, "tucker:0.5,int8")
    assert both.errors["quantize"] < 0.05 and both.errors["total"] >= both.errors["structure"] - 1e-6
    assert all(t.dtype in (torch.int8, torch.float32) for t in both.tensors.values())
    with pytest.raises(ValueError, match="overflows float16"):
        compress(x * 1e6, "fp16")


@pytest.mark.parametrize("text,canonical", [
    ("none", "none"), ("", "none"), ("tucker", "tucker:0.5"), ("tucker:0.5,int8", "tucker:0.5,int8"),
    ("TUCKER:1x0.5x0.25x0.25+fp16", "tucker:1x0.5x0.25x0.25,fp16"), ("pca:16+fp16", "pca:16,fp16"),
    ("int8", "int8"), ("fp16", "fp16"),
])
def test_spec_parsing(text, canonical):
    assert str(CompressionSpec.parse(text)) == canonical
    assert CompressionSpec.parse(canonical) == CompressionSpec.parse(text)


@pytest.mark.parametrize("bad,message", [
    ("zip", "unknown stage"), ("tucker,pca:3", "more than one structure"), ("int8,fp16", "more than one quant"),
    ("int8,tucker", "after quantization"), ("tucker:0", r"\(0, 1\]"), ("tucker:1.5", r"\(0, 1\]"),
    ("pca", "number of components"), ("pca:x", "bad argument"),
])
def test_bad_specs_are_refused(bad, message):
    with pytest.raises(ConfigError, match=message):
        CompressionSpec.parse(bad)


@pytest.mark.parametrize("spec", ["none", "fp16", "int8", "tucker:0.5", "tucker:0.3,int8", "tucker:1x0.5x0.5x0.25+fp16",
                                  "pca:5", "pca:50,int8", "pca:3+fp16"])
def test_stored_shapes_and_bytes_are_exact(spec):
    x = torch.randn(7, 4, 2, 8, 8, generator=make_generator(5))
    packed = compress(x, spec)
    expected = stored_shapes(spec, tuple(x.shape))
    assert {k: (tuple(v.shape), v.dtype) for k, v in packed.tensors.items()} == expected
    assert packed.nbytes == stored_bytes(spec, tuple(x.shape))
    assert packed.nbytes == sum(math.prod(s) * torch.empty((), dtype=dt).element_size() for s, dt in expected.values())
    again = decompress(packed.tensors, spec, tuple(x.shape))
    assert torch.equal(again, packed.reconstruction)
    check_tensors(packed.tensors, spec, tuple(x.shape))
    broken = dict(packed.tensors)
    broken.pop(next(iter(broken)))
    with pytest.raises(ValueError, match="stores tensors"):
        check_tensors(broken, spec, tuple(x.shape))


def test_compression_ratios_are_what_the_ranks_say():
    shape = (10, 8, 4, 8, 8)  # the built-in codec's latent of an 8x32x32 clip
    raw = stored_bytes("none", shape)
    assert raw == 10 * 2048 * 4
    assert stored_bytes("int8", shape) == 10 * 2048 + 2 * 8 * 4  # + a scale and an offset per channel
    # Tucker 0.5: core 4x2x4x4 = 128 + factors 8x4 + 4x2 + 8x4 + 8x4 = 104 values per latent
    assert stored_bytes("tucker:0.5", shape) == 10 * (128 + 104) * 4
