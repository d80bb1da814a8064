"""Bring your own generator: a pretrained diffusers text-to-video pipeline from a local folder.

``builder.generator: diffusers:DIR`` (or ``videodd generate --generator diffusers:DIR``) loads
``DiffusionPipeline.from_pretrained(DIR, local_files_only=True)``: nothing is downloaded. Class names
become prompts (``ApplyEyeMakeup`` -> "apply eye makeup", ``red-disk-up`` -> "red disk up", placed in
``prompt`` such as ``"a video of {}"``). Any pipeline whose call takes ``prompt``, ``num_frames``,
``height``, ``width``, ``num_inference_steps``, ``guidance_scale``, ``generator`` and
``output_type="np"`` and returns ``.frames`` ``(N, T, H, W, C)`` in [0, 1] works (text-to-video
Stable Diffusion, and the others with that interface). Frames of another size are resized to the
store's clip shape.

The pipeline was not trained on the store: nothing ties it to one, so it works with any store; its
identity is the sha256 of its folder (every file's path and bytes), recorded with the candidates.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from videodd.codecs.base import file_sha256
from videodd.generate.diffusion import GeneratorError, _diffusers
from videodd.seeding import draw_seed

PREFIX = "diffusers:"
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".ckpt")


def class_prompt(name: str, template: str = "{}") -> str:
    """``"ApplyEyeMakeup"`` -> ``"apply eye makeup"``; ``"red-disk-up"`` -> ``"red disk up"``; in ``template``."""
    words = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", name)  # CamelCase -> Camel Case
    words = re.sub(r"[_\-]+", " ", words).strip().lower()
    return template.format(words)


def folder_sha256(folder: Path) -> str:
    """sha256 over every file of ``folder`` (relative path and content sha256, in path order)."""
    h = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        h.update(str(path.relative_to(folder)).encode())
        h.update(file_sha256(path).encode())
    return h.hexdigest()


class PipelineGenerator:
    """A local diffusers video pipeline behind the generator interface (``sample``, ``describe``, ``check_store``)."""

    def __init__(self, pipe: Any, path: Path, classes: list[str], video_shape: tuple[int, int, int, int],
                 prompt: str = "{}") -> None:
        self.pipe = pipe
        self.path = path
        self.classes = list(classes)
        self.video_shape = video_shape
        self.prompt = prompt
        self.info: dict[str, Any] = {"sha256": folder_sha256(path), "pipeline": type(pipe).__name__, "seconds": None,
                                     "prompt": prompt}

    @classmethod
    def load(cls, spec: str | Path, store: Any, *, prompt: str = "{}",
             device: str | torch.device = "cpu") -> PipelineGenerator:
        """The pipeline in ``spec`` (``diffusers:DIR`` or ``DIR``), generating ``store``'s classes at its clip shape."""
        path = Path(str(spec).removeprefix(PREFIX))
        if not (path / "model_index.json").is_file():
            raise GeneratorError(f"{path}: not a diffusers pipeline folder (no model_index.json); save one with "
                                 "pipeline.save_pretrained(DIR)")
        try:
            pipe = _diffusers().DiffusionPipeline.from_pretrained(str(path), local_files_only=True)
        except (OSError, ValueError, ImportError) as err:
            raise GeneratorError(f"{path}: cannot load the pipeline ({err})") from None
        pipe.set_progress_bar_config(disable=True)
        return cls(pipe.to(torch.device(device)), path, list(store.classes), tuple(store.video_shape), prompt)

    @property
    def weight_bytes(self) -> int:
        return int(sum(p.stat().st_size for p in self.path.rglob("*") if p.suffix in WEIGHT_SUFFIXES))

    def describe(self) -> dict[str, Any]:
        return {"kind": "diffusers", "path": str(self.path), "sha256": self.info["sha256"],
                "weight_bytes": self.weight_bytes, "pipeline": self.info["pipeline"], "prompt": self.prompt}

    def check_store(self, store: Any) -> None:
        """A pretrained pipeline suits any store whose classes and clip shape it was loaded for."""
        if list(store.classes) != self.classes or tuple(store.video_shape) != self.video_shape:
            raise GeneratorError(f"{self.path}: loaded for other classes or another clip shape than {store.root}")

    @torch.no_grad()
    def sample(self, labels: torch.Tensor, generator: torch.Generator, *, steps: int = 25, guidance: float = 2.0,
               sampler: str = "ddim", device: str | torch.device = "cpu") -> torch.Tensor:
        """Videos of the classes ``labels (N,)`` from their prompts: uint8 ``(N, T, H, W, C)``."""
        d = _diffusers()
        kinds = {"ddim": d.DDIMScheduler, "dpm": d.DPMSolverMultistepScheduler, "ddpm": d.DDPMScheduler}
        self.pipe.scheduler = kinds[sampler].from_config(self.pipe.scheduler.config)
        c, t, h, w = self.video_shape
        prompts = [class_prompt(self.classes[int(y)], self.prompt) for y in labels]
        # the pipeline draws from its own torch generator, seeded from ours: same state, same videos
        out = self.pipe(prompt=prompts, num_frames=t, height=h, width=w, num_inference_steps=steps,
                        guidance_scale=guidance, generator=torch.Generator().manual_seed(draw_seed(generator)),
                        output_type="np")
        frames = torch.as_tensor(out.frames).float()  # (N, T', H', W', C) in [0, 1]
        if frames.shape[1:4] != (t, h, w):
            x = frames.permute(0, 4, 1, 2, 3)  # (N, C, T', H', W')
            frames = F.interpolate(x, size=(t, h, w), mode="trilinear", align_corners=False).permute(0, 2, 3, 4, 1)
        if frames.shape[-1] != c:
            raise GeneratorError(f"{self.path}: the pipeline makes {frames.shape[-1]}-channel frames, the store "
                                 f"has {c}")
        return (frames.clamp(0, 1) * 255).round().to(torch.uint8)  # (N, T, H, W, C)
