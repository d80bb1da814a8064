"""The ``latent`` DistilledSet kind: recompressed codec latents, decoded to videos on materialize.

Stored tensors (one safetensors file, like every distilled set):

- ``latent.NAME``: the recompressed latents exactly as :func:`videodd.codecs.compress.compress`
  stores them (``latent.latents``, or ``latent.core`` + ``latent.factor{m}``, or
  ``latent.mean`` + ``latent.basis`` + ``latent.coeffs``; ``.q``/``.scale``/``.offset`` with int8);
- ``codec.KEY`` (only with ``embed_codec``): the built-in codec's decoder weights, so the file
  decodes without the codec folder.

Manifest ``layout`` keys read here: ``codec`` (the codec's ``describe()``: kind, path, sha256,
config, weight_bytes), ``codec_embedded``, ``compression`` (the pipeline spec), ``latent_shape``
``(c, t, h, w)``, ``num_latents``, ``decoder_bytes`` (of a referenced codec) and ``budget_bytes``.
``materialize()`` = decompress -> load the codec (from its path,
sha256 checked, or the embedded weights) -> ``decode`` to [0, 1] -> normalize with the manifest's
mean/std -> ``(N, C, T, H, W)``.

Storage is reported by part: latent bytes (``latent.*``), decoder bytes (embedded ``codec.*``, or the
referenced codec's decoder, which is not in the file) and the pixel-equivalent IPC: latent bytes
over the bytes of one class-balanced IPC of float32 pixels (the published storage convention:
a 3x16x112x112 float32 video is 2.41 MB).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch

from videodd.codecs.autoencoder import AutoencoderConfig
from videodd.codecs.base import CODECS, Codec, CodecError, load_codec, normalize_unit
from videodd.codecs.compress import check_tensors, decompress
from videodd.distilled import DistilledManifest, Kind, KindStorage, human_bytes, layout_entry, register_kind
from videodd.seeding import make_generator, seeded

LATENT_PREFIX = "latent."
CODEC_PREFIX = "codec."
DECODE_BATCH = 32
EMBEDDABLE = ("builtin",)


def split_tensors(tensors: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """``(latent tensors, embedded codec tensors)`` with their prefixes removed."""
    latent = {k[len(LATENT_PREFIX):]: v for k, v in tensors.items() if k.startswith(LATENT_PREFIX)}
    codec = {k[len(CODEC_PREFIX):]: v for k, v in tensors.items() if k.startswith(CODEC_PREFIX)}
    return latent, codec


def pixel_bytes_per_video(video_shape: tuple[int, ...]) -> int:
    """Bytes of one float32 video ``(C, T, H, W)`` (the storage convention of pixel IPC)."""
    return math.prod(video_shape) * 4


def check_latent_set(tensors: dict[str, torch.Tensor], manifest: Any, num_videos: int) -> None:
    """Cheap structural check (no decoding): names, shapes and dtypes against the manifest; ValueError."""
    latent, codec = split_tensors(tensors)
    other = sorted(k for k in tensors if not k.startswith((LATENT_PREFIX, CODEC_PREFIX)))
    if other:
        raise ValueError(f"unexpected tensors {other} in a 'latent' distilled set (only latent.* and codec.*)")
    shape = (int(layout_entry(manifest, "num_latents")), *(int(s) for s in layout_entry(manifest, "latent_shape")))
    if shape[0] != num_videos:
        raise ValueError(f"{shape[0]} latents for {num_videos} labels")
    check_tensors(latent, str(layout_entry(manifest, "compression")), shape)
    embedded = bool(manifest.layout.get("codec_embedded", False))
    if embedded != bool(codec):
        raise ValueError("the manifest says the codec is embedded but no codec.* tensors are stored"
                         if embedded else "codec.* tensors are stored but the manifest does not say the codec is "
                         "embedded")


def _decoder_modules(codec: Codec) -> list[tuple[str, torch.nn.Module]]:
    """``(state_dict prefix, module)`` of the parts ``decode`` needs (the encoder is not kept)."""
    found = []
    for owner, prefix in ((codec, ""), (getattr(codec, "vae", None), "vae.")):  # built-in / diffusers layouts
        for name in ("decoder", "post_quant_conv"):
            module = getattr(owner, name, None) if owner is not None else None
            if isinstance(module, torch.nn.Module):
                found.append((f"{prefix}{name}.", module))
    return found


def decoder_weight_bytes(codec: Codec) -> int:
    """Bytes of the weights decoding needs (the decoder; the whole codec if it has no ``decoder``)."""
    modules = _decoder_modules(codec)
    if not modules:
        return codec.weight_bytes()
    tensors = {f"{p}{k}": v for p, m in modules for k, v in m.state_dict().items()}
    return int(sum(t.numel() * t.element_size() for t in tensors.values()))


def embedded_state(codec: Codec) -> dict[str, torch.Tensor]:
    """The decoder weights that embed ``codec`` in a distilled set (``codec.KEY``; built-in codecs only)."""
    if codec.name not in EMBEDDABLE:
        raise CodecError(f"embedding the weights is supported for the {', '.join(EMBEDDABLE)} codec, not "
                         f"{codec.name!r}; reference {codec.describe().get('path')} by path and sha256 instead "
                         "(selector.embed_codec=false)")
    prefixes = tuple(p for p, _ in _decoder_modules(codec)) or ("",)
    return {CODEC_PREFIX + k: v.detach().cpu().contiguous() for k, v in codec.state_dict().items()
            if k.startswith(prefixes)}


def codec_from_embedded(info: dict[str, Any], state: dict[str, torch.Tensor], device: torch.device) -> Codec:
    """Rebuild an embedded built-in codec from its ``describe()`` config and stored weights."""
    if info.get("kind") not in EMBEDDABLE:
        raise CodecError(f"cannot rebuild an embedded {info.get('kind')!r} codec")
    cls = CODECS.get(str(info["kind"]))
    with seeded(make_generator(0)):  # the initial weights are all overwritten; seeded keeps it reproducible
        codec = cls(AutoencoderConfig.from_dict(dict(info["config"])), path=info.get("path"),  # type: ignore[call-arg]
                    sha256=info.get("sha256"))
    expected = set(embedded_state(codec))
    got = {CODEC_PREFIX + k for k in state}
    if got != expected:
        raise CodecError(f"the embedded codec weights do not fit its config: missing {sorted(expected - got)[:5]}, "
                         f"unexpected {sorted(got - expected)[:5]}")
    try:
        codec.load_state_dict(state, strict=False)  # the encoder is not embedded: decoding never uses it
    except RuntimeError as err:
        raise CodecError(f"the embedded codec weights do not fit its config ({err})") from None
    return codec.to(device).eval()


def codec_for_set(tensors: dict[str, torch.Tensor], manifest: Any, device: torch.device) -> Codec:
    """The codec that decodes a latent set: the embedded one, or the referenced one (sha256 checked)."""
    info = dict(layout_entry(manifest, "codec"))
    _, state = split_tensors(tensors)
    if state:
        return codec_from_embedded(info, {k: v.to("cpu") for k, v in state.items()}, device)
    path = info.get("path")
    if not path:
        raise CodecError("the set references no codec path and embeds no codec weights")
    if not Path(path).exists():
        raise CodecError(f"{path}: the codec this latent set decodes with is missing (the set stores latents and a "
                         "reference to the codec, path + sha256); restore the folder, or distil again with "
                         "--set selector.embed_codec=true for a self-contained file")
    codec = load_codec(f"{info['kind']}:{path}", device=device)
    got, want = codec.describe().get("sha256"), info.get("sha256")
    if want and got != want:
        raise CodecError(f"{path}: the codec's sha256 {str(got)[:16]}... differs from {str(want)[:16]}... recorded in "
                         "the distilled set; it was retrained or changed after the set was written")
    return codec


@torch.no_grad()
def decode_latent_set(tensors: dict[str, torch.Tensor], manifest: Any) -> torch.Tensor:
    """Normalized float32 videos ``(N, C, T, H, W)`` of a latent set (on the tensors' device)."""
    latent, _ = split_tensors(tensors)
    shape = (int(layout_entry(manifest, "num_latents")), *(int(s) for s in layout_entry(manifest, "latent_shape")))
    z = decompress(latent, str(layout_entry(manifest, "compression")), shape)  # (N, c, t, h, w)
    device = z.device
    codec = codec_for_set(tensors, manifest, device)
    videos = [codec.decode(z[s : s + DECODE_BATCH]) for s in range(0, shape[0], DECODE_BATCH)]  # [0, 1]
    out = torch.cat(videos) if videos else torch.zeros(0, len(manifest.mean), *manifest.spec.shape)
    return normalize_unit(out.float().to(device), list(manifest.mean), list(manifest.std))


def latent_storage(tensors: dict[str, torch.Tensor], manifest: Any) -> KindStorage:
    """Bytes by part (the latents; the decoder, embedded or referenced) and the pixel-equivalent IPC of
    the latents: their bytes over one class-balanced IPC of float32 pixels."""
    latent, codec = split_tensors(tensors)
    latent_bytes = int(sum(t.numel() * t.element_size() for t in latent.values()))
    embedded_bytes = int(sum(t.numel() * t.element_size() for t in codec.values()))
    info = manifest.layout.get("codec") or {}
    decoder = embedded_bytes if codec else int(manifest.layout.get("decoder_bytes", info.get("weight_bytes", 0)))
    video_shape = (len(manifest.mean), *manifest.spec.shape)
    per_ipc = pixel_bytes_per_video(video_shape) * len(manifest.classes)
    equivalent = latent_bytes / per_ipc if per_ipc else float("nan")
    match = manifest.equal_storage_ipc
    fit = f", chosen to fit pixel IPC {match}" if match is not None else ""
    where = "embedded, counted above" if codec else "referenced, not counted above"
    return KindStorage(
        parts={"latents": latent_bytes, "decoder": decoder}, equivalent_ipc=equivalent,
        external_bytes=0 if codec else decoder,
        notes=(f"latent set: {latent_bytes:,} latent bytes = pixel-equivalent IPC {equivalent:.3g} (float32 pixels)"
               f"{fit}; decoder {decoder:,} bytes ({where})",))


def describe_latent(tensors: dict[str, torch.Tensor], manifest: DistilledManifest) -> list[tuple[str, str]]:
    """``videodd info`` rows: the latents, their bytes, the decoder and the pixel-equivalent IPC."""
    part = latent_storage(tensors, manifest)
    m = manifest.layout
    codec = m.get("codec") or {}
    embedded = bool(split_tensors(tensors)[1])
    where = "embedded in this file" if embedded else (
        f"not in this file: {codec.get('kind')}:{codec.get('path')} (sha256 {str(codec.get('sha256'))[:16]})")
    match = manifest.equal_storage_ipc
    budget = m.get("budget_bytes")
    budget_text = (f"; chosen to fit pixel IPC {match} ({human_bytes(int(budget))})" if match is not None
                   else f"; chosen to fit {human_bytes(int(budget))}" if budget is not None else "")
    err = (manifest.info.get("reconstruction_error") or {}).get("total")
    latent_bytes, decoder = part.parts["latents"], part.parts["decoder"]
    return [
        ("latents", f"{m.get('num_latents')} x {tuple(m.get('latent_shape') or ())}, compression "
                    f"{m.get('compression')}" + (f" (relative error {err:.3g})" if err is not None else "")),
        ("latent bytes", f"{human_bytes(latent_bytes)} ({latent_bytes:,})"),
        ("decoder bytes", f"{human_bytes(decoder)} ({decoder:,}), {where}"),
        ("pixel-eq. IPC", f"{part.equivalent_ipc:.3g} (latent bytes / bytes of one float32 pixel IPC)" + budget_text),
    ]


def materialize_latent(tensors: dict[str, torch.Tensor], manifest: DistilledManifest) -> torch.Tensor:
    """Codec latents: decompress ``latent.*``, decode with the referenced (or embedded) codec, normalize."""
    return decode_latent_set(tensors, manifest)


register_kind(Kind("latent", materialize=materialize_latent, check=check_latent_set, storage=latent_storage,
                   describe=describe_latent))
