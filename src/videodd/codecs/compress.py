"""Training-free recompression of a stack of latents ``(N, c, t, h, w)``: Tucker/HOSVD, PCA, fp16, int8.

A pipeline is written as a spec string: one optional *structure* stage, then one optional
*quantization* stage, separated by ``,`` or ``+``:

- ``none``: the latents as they are (float32);
- ``tucker`` / ``tucker:F`` / ``tucker:F1xF2xF3xF4``: truncated HOSVD of **each** latent, keeping
  ``ceil(F_m * d_m)`` singular vectors of mode ``m`` (modes in latent order ``c, t, h, w``; one
  ``F`` for every mode; default 0.5). Stored: ``core (N, r_1..r_M)`` and ``factor{m} (N, d_m, r_m)``;
- ``pca:R``: PCA over the whole stack (flattened rows ``(N, D)``): ``mean (D,)``, ``basis (R, D)``,
  ``coeffs (N, R)`` with ``R`` capped at ``min(N, D)``;
- ``fp16``: every stored float tensor in float16;
- ``int8``: affine 8-bit quantization per channel: one ``scale`` and ``offset`` (float32) per
  slice along the channel axis, which is axis 1 for tensors of 3+ dims (the latent channel of
  raw latents, the first core mode of a Tucker core, the rows of the factors), axis 0 for matrices
  (one per PCA component / per row of coefficients) and the whole tensor for vectors.
  ``x ~ (q + 128) * scale + offset`` with ``scale = (max - min) / 255``: the error is at most
  ``scale / 2``. Stored per tensor ``NAME``: ``NAME.q`` (int8), ``NAME.scale``, ``NAME.offset``.

Examples: ``tucker:0.5,int8``, ``pca:16+fp16``, ``int8``, ``none``.

Why torch.linalg rather than tensorly: HOSVD is only one SVD per mode unfolding plus mode
products (a few lines here, batched over the latents), whereas ``tensorly`` pulls in ``scipy``
(tens of MB) for nothing else.

``compress(latents, spec)`` returns the stored tensors (``stored_bytes`` counts them exactly),
the reconstruction computed *from the stored tensors* (``decompress``) and the relative Frobenius
errors after the structure stage and after quantization. ``stored_shapes(spec, shape)`` gives
the stored names, shapes and dtypes without compressing anything (byte budgets, validation).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

import torch

from videodd.config import ConfigError

STRUCTURES = ("none", "tucker", "pca")
QUANTIZERS = ("fp16", "int8")
DEFAULT_TUCKER_FRACTION = 0.5
GRAMMAR = ("a compression spec is 'none', or a structure stage (tucker, tucker:F, tucker:F1xF2x..., pca:R) "
           "and/or a quantization stage (fp16, int8) joined by ',' or '+', e.g. 'tucker:0.5,int8' or 'pca:16+fp16'")


@dataclass(frozen=True)
class CompressionSpec:
    """A parsed recompression pipeline (see the module docstring for the text form).

    Attributes:
        structure: ``none``, ``tucker`` or ``pca``.
        fractions: Tucker rank fractions, one for every mode or one per mode (in ``(0, 1]``).
        components: PCA components.
        quantize: ``None``, ``fp16`` or ``int8``.
    """

    structure: str = "none"
    fractions: tuple[float, ...] = ()
    components: int = 0
    quantize: str | None = None

    @classmethod
    def parse(cls, text: str | CompressionSpec) -> CompressionSpec:
        """Parse ``tucker:0.5,int8`` and friends; a ConfigError names what is wrong."""
        if isinstance(text, CompressionSpec):
            return text
        raw = str(text).strip().lower()
        if raw in ("", "none"):
            return cls()
        structure, fractions, components, quantize = "none", (), 0, None
        for token in (t.strip() for t in re.split(r"[,+]", raw)):
            name, _, arg = token.partition(":")
            if name in QUANTIZERS and not arg:
                if quantize is not None:
                    raise ConfigError(f"compression {text!r}: more than one quantization stage; {GRAMMAR}")
                quantize = name
                continue
            if name not in ("tucker", "pca") or quantize is not None:
                structural = name in ("tucker", "pca")
                why = "a structure stage after quantization" if structural else f"unknown stage {token!r}"
                raise ConfigError(f"compression {text!r}: {why}; {GRAMMAR}")
            if structure != "none":
                raise ConfigError(f"compression {text!r}: more than one structure stage; {GRAMMAR}")
            structure = name
            if name == "pca" and not arg:
                raise ConfigError(f"compression {text!r}: PCA needs a number of components (pca:R); {GRAMMAR}")
            try:
                if name == "tucker":
                    fractions = tuple(float(f) for f in arg.split("x")) if arg else (DEFAULT_TUCKER_FRACTION,)
                else:
                    components = int(arg)
            except ValueError:
                raise ConfigError(f"compression {text!r}: bad argument in {token!r}; {GRAMMAR}") from None
        if structure == "tucker" and not all(0 < f <= 1 for f in fractions):
            raise ConfigError(f"compression {text!r}: Tucker rank fractions must be in (0, 1], got {fractions}")
        if structure == "pca" and components < 1:
            raise ConfigError(f"compression {text!r}: PCA needs a number of components >= 1 (pca:R)")
        return cls(structure=structure, fractions=fractions, components=components, quantize=quantize)

    def __str__(self) -> str:
        parts = []
        if self.structure == "tucker":
            parts.append("tucker:" + "x".join(f"{f:g}" for f in self.fractions))
        elif self.structure == "pca":
            parts.append(f"pca:{self.components}")
        if self.quantize:
            parts.append(self.quantize)
        return ",".join(parts) or "none"

    def tucker_ranks(self, latent_shape: tuple[int, ...]) -> tuple[int, ...]:
        """Kept rank of every mode of one latent ``(c, t, h, w)``: ``ceil(F_m d_m)``, at most the unfolding rank."""
        fractions = self.fractions * len(latent_shape) if len(self.fractions) == 1 else self.fractions
        if len(fractions) != len(latent_shape):
            raise ConfigError(f"compression {self}: {len(self.fractions)} rank fractions for a latent of "
                              f"{len(latent_shape)} modes {tuple(latent_shape)}")
        total = math.prod(latent_shape)
        # the mode-m unfolding is d_m x (total / d_m): its rank is at most the smaller side
        return tuple(max(1, min(math.ceil(f * d - 1e-9), d, total // d))
                     for f, d in zip(fractions, latent_shape, strict=True))


# -- shapes and bytes ------------------------------------------------------------------------------
def _channel_axis(ndim: int) -> int | None:
    return 1 if ndim >= 3 else (0 if ndim == 2 else None)


def _param_shape(shape: tuple[int, ...]) -> tuple[int, ...]:
    """Shape of an int8 scale/offset for a tensor of ``shape`` (broadcastable, channel axis kept)."""
    axis = _channel_axis(len(shape))
    return tuple(d if i == axis else 1 for i, d in enumerate(shape)) if axis is not None else (1,)


def _structure_shapes(spec: CompressionSpec, shape: tuple[int, ...]) -> dict[str, tuple[int, ...]]:
    n, latent = shape[0], tuple(shape[1:])
    if spec.structure == "tucker":
        ranks = spec.tucker_ranks(latent)
        return {"core": (n, *ranks), **{f"factor{m}": (n, d, r) for m, (d, r) in enumerate(zip(latent, ranks,
                                                                                                 strict=True))}}
    if spec.structure == "pca":
        d = math.prod(latent)
        r = min(spec.components, n, d)
        return {"mean": (d,), "basis": (r, d), "coeffs": (n, r)}
    return {"latents": (n, *latent)}


def stored_shapes(
    spec: CompressionSpec | str, shape: tuple[int, ...]
) -> dict[str, tuple[tuple[int, ...], torch.dtype]]:
    """Name -> (shape, dtype) of every tensor ``compress`` stores for latents of ``shape (N, c, t, h, w)``."""
    spec = CompressionSpec.parse(spec)
    out: dict[str, tuple[tuple[int, ...], torch.dtype]] = {}
    for name, s in _structure_shapes(spec, tuple(shape)).items():
        if spec.quantize == "int8":
            out[f"{name}.q"] = (s, torch.int8)
            out[f"{name}.scale"] = (_param_shape(s), torch.float32)
            out[f"{name}.offset"] = (_param_shape(s), torch.float32)
        else:
            out[name] = (s, torch.float16 if spec.quantize == "fp16" else torch.float32)
    return out


def stored_bytes(spec: CompressionSpec | str, shape: tuple[int, ...]) -> int:
    """Exact bytes ``compress`` stores for latents of ``shape (N, c, t, h, w)``."""
    return sum(math.prod(s) * torch.empty((), dtype=dt).element_size() for s, dt in stored_shapes(spec, shape).values())


# -- the stages ----------------------------------------------------------------------------------
def mode_product(x: torch.Tensor, matrices: torch.Tensor, mode: int) -> torch.Tensor:
    """``x ×_mode M`` for a batch: ``x (N, d_1..d_M)``, ``matrices (N, r, d_mode)`` -> mode ``mode`` becomes ``r``."""
    moved = x.movedim(mode + 1, -1)  # (N, ..., d_mode)
    flat = moved.reshape(x.shape[0], -1, moved.shape[-1])  # (N, P, d_mode)
    out = flat @ matrices.transpose(-1, -2)  # (N, P, r)
    return out.reshape(*moved.shape[:-1], matrices.shape[1]).movedim(-1, mode + 1)


def hosvd(x: torch.Tensor, ranks: tuple[int, ...]) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Truncated HOSVD of every item of ``x (N, d_1..d_M)``: core ``(N, r_1..r_M)``, factors ``(N, d_m, r_m)``.

    Factor ``m`` holds the leading left singular vectors of the mode-``m`` unfolding (orthonormal
    columns); the core is ``x`` multiplied by every factor's transpose. Exact when ``r_m`` covers the
    multilinear rank, quasi-optimal (within ``sqrt(M)`` of the best Tucker approximation) otherwise.
    """
    n = x.shape[0]
    factors = []
    for m, r in enumerate(ranks):
        unfolded = x.movedim(m + 1, 1).reshape(n, x.shape[m + 1], -1)  # (N, d_m, prod of the other modes)
        u = torch.linalg.svd(unfolded, full_matrices=False).U  # (N, d_m, min(d_m, rest))
        factors.append(u[:, :, :r].contiguous())
    core = x
    for m, u in enumerate(factors):
        core = mode_product(core, u.transpose(-1, -2), m)
    return core, factors


def tucker_reconstruct(core: torch.Tensor, factors: list[torch.Tensor]) -> torch.Tensor:
    """``core ×_1 U_1 ... ×_M U_M`` for a batch."""
    x = core
    for m, u in enumerate(factors):
        x = mode_product(x, u, m)
    return x


def pca(x: torch.Tensor, components: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """PCA of the rows of ``x (N, D)``: mean ``(D,)``, basis ``(R, D)`` (orthonormal rows), coeffs ``(N, R)``."""
    mean = x.mean(0)
    centred = x - mean
    r = min(components, *x.shape)
    basis = torch.linalg.svd(centred, full_matrices=False).Vh[:r]  # (R, D)
    return mean, basis, centred @ basis.T


def quantize_int8(t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Affine per-channel int8 (module docstring): ``q`` int8, ``scale`` and ``offset`` float32 (broadcastable)."""
    x = t.to(torch.float32)
    axis = _channel_axis(x.dim())
    if axis is None:
        lo, hi = x.min().reshape(1), x.max().reshape(1)
    else:
        dims = [i for i in range(x.dim()) if i != axis]
        lo, hi = x.amin(dim=dims, keepdim=True), x.amax(dim=dims, keepdim=True)
    scale = (hi - lo) / 255.0
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))  # a constant channel is exact with any scale
    q = torch.round((x - lo) / scale).clamp_(0, 255) - 128
    return q.to(torch.int8), scale.contiguous(), lo.contiguous()


def dequantize_int8(q: torch.Tensor, scale: torch.Tensor, offset: torch.Tensor) -> torch.Tensor:
    return (q.to(torch.float32) + 128.0) * scale.to(torch.float32) + offset.to(torch.float32)


# -- the pipeline --------------------------------------------------------------------------------
def relative_error(x: torch.Tensor, y: torch.Tensor) -> float:
    """``||x - y||_F / ||x||_F`` (0 when both are zero), computed in float64."""
    x64, y64 = x.to(torch.float64), y.to(torch.float64)
    norm = float(x64.norm())
    diff = float((x64 - y64).norm())
    return diff / norm if norm > 0 else diff


@dataclass
class Compressed:
    """What ``compress`` produced.

    Attributes:
        spec: the pipeline (canonical text via ``str``).
        shape: ``(N, c, t, h, w)`` of the latents.
        tensors: exactly what is stored (names as in ``stored_shapes``).
        reconstruction: float32 latents rebuilt from ``tensors`` (``decompress``).
        errors: relative Frobenius error after each stage (``"structure"``, ``"quantize"``) and ``"total"``.
    """

    spec: CompressionSpec
    shape: tuple[int, ...]
    tensors: dict[str, torch.Tensor]
    reconstruction: torch.Tensor
    errors: dict[str, float] = field(default_factory=dict)

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self.tensors.values())

    @property
    def error(self) -> float:
        return self.errors["total"]


def _structure(spec: CompressionSpec, x: torch.Tensor) -> dict[str, torch.Tensor]:
    if spec.structure == "tucker":
        core, factors = hosvd(x, spec.tucker_ranks(tuple(x.shape[1:])))
        return {"core": core, **{f"factor{m}": u for m, u in enumerate(factors)}}
    if spec.structure == "pca":
        mean, basis, coeffs = pca(x.reshape(x.shape[0], -1), spec.components)  # (N, c, t, h, w) -> (N, D)
        return {"mean": mean, "basis": basis, "coeffs": coeffs}
    return {"latents": x}


def _unstructure(spec: CompressionSpec, parts: dict[str, torch.Tensor], shape: tuple[int, ...]) -> torch.Tensor:
    if spec.structure == "tucker":
        factors = [parts[f"factor{m}"] for m in range(len(shape) - 1)]
        return tucker_reconstruct(parts["core"], factors)
    if spec.structure == "pca":
        flat = parts["coeffs"] @ parts["basis"] + parts["mean"]  # (N, D)
        return flat.reshape(shape)
    return parts["latents"]


def compress(latents: torch.Tensor, spec: CompressionSpec | str) -> Compressed:
    """Recompress ``latents (N, c, t, h, w)`` with the pipeline ``spec`` (decompositions in float64)."""
    spec = CompressionSpec.parse(spec)
    if latents.dim() < 2 or latents.shape[0] < 1:
        raise ValueError(f"latents must be (N, c, ...) with N >= 1, got {tuple(latents.shape)}")
    shape = tuple(latents.shape)
    x = latents.detach().to("cpu", torch.float64)
    parts = _structure(spec, x)
    structured = _unstructure(spec, parts, shape)
    stored: dict[str, torch.Tensor] = {}
    for name, t in parts.items():
        if spec.quantize == "int8":
            stored[f"{name}.q"], stored[f"{name}.scale"], stored[f"{name}.offset"] = quantize_int8(t)
        elif spec.quantize == "fp16":
            half = t.to(torch.float16)
            if not bool(torch.isfinite(half).all()):
                raise ValueError(f"compression {spec}: {name!r} overflows float16 (|x| > 65504); use int8")
            stored[name] = half
        else:
            stored[name] = t.to(torch.float32).contiguous()
    recon = decompress(stored, spec, shape)
    errors = {"structure": relative_error(x, structured), "quantize": relative_error(structured, recon),
              "total": relative_error(x, recon)}
    return Compressed(spec=spec, shape=shape, tensors=stored, reconstruction=recon, errors=errors)


def decompress(tensors: dict[str, torch.Tensor], spec: CompressionSpec | str, shape: tuple[int, ...]) -> torch.Tensor:
    """Float32 latents ``shape (N, c, t, h, w)`` from stored ``tensors`` (on their device)."""
    spec = CompressionSpec.parse(spec)
    shape = tuple(int(s) for s in shape)
    check_tensors(tensors, spec, shape)
    parts: dict[str, torch.Tensor] = {}
    for name in _structure_shapes(spec, shape):
        if spec.quantize == "int8":
            parts[name] = dequantize_int8(tensors[f"{name}.q"], tensors[f"{name}.scale"], tensors[f"{name}.offset"])
        else:
            parts[name] = tensors[name].to(torch.float32)
    return _unstructure(spec, parts, shape).to(torch.float32).contiguous()


def check_tensors(tensors: dict[str, torch.Tensor], spec: CompressionSpec | str, shape: tuple[int, ...]) -> None:
    """Raise ValueError unless ``tensors`` are exactly what ``spec`` stores for latents of ``shape``."""
    expected = stored_shapes(spec, shape)
    if set(tensors) != set(expected):
        raise ValueError(f"compression {CompressionSpec.parse(spec)} of latents {tuple(shape)} stores tensors "
                         f"{sorted(expected)}, got {sorted(tensors)}")
    for name, (s, dt) in expected.items():
        t = tensors[name]
        if tuple(t.shape) != s or t.dtype != dt:
            raise ValueError(f"compressed tensor {name!r} must be {str(dt).removeprefix('torch.')} {s}, "
                             f"got {str(t.dtype).removeprefix('torch.')} {tuple(t.shape)}")
