"""VST-UNet: a trained spatio-temporal U-Net that ranks clips by representativeness and diversity.

The seed's authors describe VST-UNet only as "a model designed to select a diverse and informative
subset". What is built here, and why:

- **Training target.** The U-Net is the built-in generator's denoiser (:mod:`videodd.generate`):
  trained on the real training split to predict the noise added to a clip, conditioned on its class
  (or on "no class"). A denoiser has to model what real clips of the dataset look like and how they
  move (its blocks convolve over time), without depending on a classifier's decision boundary; and a
  generate-then-select run has trained it already, so selection costs no extra training.
- **Features.** Each clip is noised lightly (timestep ``timestep`` of 1000, fixed noise per clip from the
  run's generator) and passed through the U-Net with the "no class" label (so a candidate's label does
  not shape its feature); the bottleneck activations pooled over time and space, L2-normalized, are its
  feature ``f``.
- **Scoring rule.** Per class ``c``, ``mu_c`` is the normalized mean feature of the *real* clips of ``c``
  (``reference``: the training store; by default the source itself). Clips are picked greedily:

      pick argmax_i  cos(f_i, mu_c) - diversity * max_{j picked} cos(f_i, f_j)

  the first term is representativeness (close to the class distribution of real videos: a generated
  candidate that drifted from its class scores low), the second is diversity (maximal marginal relevance:
  a clip like one already kept scores low), so the IPC kept clips cover the class instead of
  repeating its mean.

It works on any clip source: real training clips, or generated candidates.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from videodd.data.clips import ClipSource
from videodd.data.store import ClipStore
from videodd.generate.diffusion import DATA_SCALE, make_scheduler, resolve_generator
from videodd.methods import MethodSpec, register_method
from videodd.selection.base import Selector, check_ipc, per_class, register_selector


@dataclass(frozen=True)
class VSTUNetOptions:
    """Settings of the ``vstunet`` selector (``--set selector.KEY=VALUE``).

    Attributes:
        generator: the U-Net: a generator folder (``videodd train-generator``) or ``auto`` (``DATA/generator``
            of the reference store, trained there when missing).
        reference: the real training store whose class means define representativeness (default: the source).
        timestep: the noise level of the features (of the scheduler's 1000 training steps).
        diversity: the weight of the diversity term (0: the IPC most representative clips).
        batch: clips per forward pass.
    """

    generator: str = "auto"
    reference: str | None = None
    timestep: int = 100
    diversity: float = 1.0
    batch: int = 64

    def __post_init__(self) -> None:
        if self.timestep < 0 or self.diversity < 0 or self.batch < 1:
            raise ValueError("timestep >= 0, diversity >= 0 and batch >= 1 are required")


@torch.no_grad()
def unet_features(unet: torch.nn.Module, alphas: torch.Tensor, source: ClipSource, timestep: int,
                  generator: torch.Generator, *, scale: float, batch: int = 64,
                  device: str | torch.device = "cpu") -> torch.Tensor:
    """L2-normalized pooled bottleneck features of every clip of ``source`` at noise level ``timestep``: ``(N, F)``."""
    unet.to(device).eval()
    k = unet.config.num_classes
    a = float(alphas[min(timestep, len(alphas) - 1)])
    out = []
    for s in range(0, len(source), batch):
        x0 = source.batch(np.arange(s, min(s + batch, len(source))), device) / scale  # (n, C, T, H, W)
        noise = torch.randn(x0.shape, generator=generator).to(device)
        x = a**0.5 * x0 + (1 - a) ** 0.5 * noise
        t = torch.full((len(x0),), timestep, device=device)
        y = torch.full((len(x0),), k, device=device)  # "no class"
        out.append(F.normalize(unet.features(x, t, y).float(), dim=1).cpu())
    return torch.cat(out) if out else torch.zeros(0, 1)


def greedy_representative_diverse(features: torch.Tensor, centre: torch.Tensor, k: int,
                                  diversity: float) -> torch.Tensor:
    """Positions of ``k`` rows of ``features (n, F)`` (normalized) picked greedily by
    ``cos(f, centre) - diversity * max cos(f, picked)`` (sorted int64)."""
    rep = features @ centre  # (n,)
    sim = features @ features.T  # (n, n)
    picked: list[int] = []
    redundancy = torch.zeros_like(rep)
    for _ in range(k):
        score = rep - diversity * redundancy
        if picked:
            score[picked] = -float("inf")
        i = int(torch.argmax(score))
        picked.append(i)
        redundancy = torch.maximum(redundancy, sim[i]) if len(picked) > 1 else sim[i].clone()
    return torch.sort(torch.tensor(picked, dtype=torch.int64)).values


@register_selector("vstunet")
class VSTUNet(Selector):
    """Per class, the clips a denoising U-Net finds representative of the real class and unlike each other."""

    Options = VSTUNetOptions
    options: VSTUNetOptions

    def select(self, source: ClipSource, ipc: int, generator: torch.Generator, *,
               device: str | torch.device = "cpu") -> np.ndarray:
        check_ipc(source, ipc)
        o = self.options
        reference = ClipStore(o.reference) if o.reference else source
        if not isinstance(reference, ClipStore):
            raise ValueError("vstunet: the source is not a store; set selector.reference to the training store")
        if list(reference.classes) != list(source.classes):
            raise ValueError(f"vstunet: reference {reference.root} has other classes than the source")
        gen_model = resolve_generator(reference, o.generator, device=device)
        alphas = make_scheduler("ddpm", gen_model.info["scheduler"]).alphas_cumprod
        feats = unet_features(gen_model.unet, alphas, source, o.timestep, generator, scale=DATA_SCALE,
                              batch=o.batch, device=device)  # (N, F)
        ref_feats = feats if reference is source else unet_features(
            gen_model.unet, alphas, reference, o.timestep, generator, scale=DATA_SCALE, batch=o.batch, device=device)
        centres = F.normalize(torch.stack([ref_feats[reference.class_indices(c)].mean(0)
                                           for c in range(reference.num_classes)]), dim=1)  # (K, F)
        labels = source.labels_tensor().numpy()

        def pick(members: np.ndarray) -> np.ndarray:
            c = int(labels[members[0]])
            return members[greedy_representative_diverse(feats[members], centres[c], ipc, o.diversity).numpy()]

        return per_class(source, ipc, pick)


register_method(
    MethodSpec(
        "vstunet",
        "VST-UNet: real clips a denoising U-Net (the built-in generator) finds representative of their class and "
        "diverse",
        selector="vstunet",
        smoke={"selector": {"generator": "${generator}"}},
    )
)
