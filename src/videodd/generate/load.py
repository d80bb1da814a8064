"""Which generator a setting names: the built-in one (``auto`` or a folder) or a local diffusers pipeline."""

from __future__ import annotations

import torch

from videodd.data.store import ClipStore
from videodd.generate.diffusion import VideoGenerator, resolve_generator
from videodd.generate.pipeline import PREFIX, PipelineGenerator


def open_generator(store: ClipStore, spec: str, *, prompt: str = "{}", device: str | torch.device = "cpu",
                   progress: bool = False) -> VideoGenerator | PipelineGenerator:
    """``auto`` (the built-in generator of ``store``, trained when missing), a generator folder, or
    ``diffusers:DIR`` (a pretrained pipeline with class names as prompts in ``prompt``)."""
    if spec.startswith(PREFIX):
        return PipelineGenerator.load(spec, store, prompt=prompt, device=device)
    return resolve_generator(store, spec, device=device, progress=progress)
