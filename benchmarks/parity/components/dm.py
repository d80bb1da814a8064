"""Parity component ``dm``: one step of the official DM (distill_baseline.py, ``--method DM``) on the official
``ConvNet3D.embed``, against videodd's ``dm`` objective.

The DM step is inline in ``main()`` of distill_baseline.py, so :func:`official_dm_step` re-types its lines
(distill_baseline.py:334-353): the network in train mode with frozen parameters, then for every class
``output_real = embed(img_real).detach()``, ``output_syn = embed(img_syn)``,
``loss += torch.sum((torch.mean(output_real, dim=0) - torch.mean(output_syn, dim=0))**2)``, and
``loss.backward()`` to the synthetic pixels ``image_syn`` ``(K*ipc, T, C, H, W)`` (distill_baseline.py:92).
The loop applies no augmentation.

Weights: ``tests/parity.py:seeded_state`` of videodd's ``convnet3d`` (copied to the official names as in the
``convnet3d`` component). Real clips: uint8 ``(K*B, T, H, W, C)`` from ``seeded_uint8``, class-grouped,
normalized as the official loaders do (``ToTensor`` then ``Normalize`` with the ImageNet mean and std,
utils.py:213-214). Synthetic pixels: ``seeded_uniform`` in videodd's ``(K*ipc, C, T, H, W)``.

Stored: the loss and ``tests/parity.py:tensor_summary`` of the gradient: its L2 norm, its dot product with a
seeded direction (the whole gradient) and its values at 4096 seeded positions (the whole gradient would be
0.8-4.8 MB).
"""

from __future__ import annotations

from pathlib import Path

import torch

from benchmarks.parity.common import OfficialCode, parity_helpers, save_fixture
from benchmarks.parity.components.convnet3d import build_official, official_key
from videodd.models import create_model

NAME = "dm"
MEAN, STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]  # utils.py:213-214 (ImageNet)
SYN_BOUND = 3.0 ** 0.5
SAMPLES = 4096
# shape (C, T, H, W), classes K, ipc, real clips per class B, seeds: weights, real, synthetic, direction, samples
CASES = {
    "t8_64": dict(shape=(3, 8, 64, 64), classes=3, ipc=2, real=4, seeds=(31, 32, 33, 34, 35)),
    "t16_112": dict(shape=(3, 16, 112, 112), classes=2, ipc=1, real=3, seeds=(41, 42, 43, 44, 45)),
}
SOURCES = {"loss": "distill_baseline.py:334-351 (DM step, re-typed)", "grad": "distill_baseline.py:353 (loss.backward)",
           "embed": "networks.py:747-751 (ConvNet3D.embed)"}


def real_float(raw: torch.Tensor) -> torch.Tensor:
    """uint8 ``(N, T, H, W, C)`` -> the official clips ``(N, T, C, H, W)``: ToTensor (/255), Normalize."""
    x = raw.permute(0, 1, 4, 2, 3).float() / 255.0  # (N, T, C, H, W)
    x = (x - torch.tensor(MEAN).view(1, 1, 3, 1, 1)) / torch.tensor(STD).view(1, 1, 3, 1, 1)
    # contiguous, as the official loaders' stacked clips are: ConvNet3D.embed's .view (networks.py:750)
    # fails on the channels-last map that a channels-last input gives
    return x.contiguous()


def official_dm_step(net: torch.nn.Module, img_real_all: torch.Tensor, image_syn: torch.Tensor, num_classes: int,
                     ipc: int, batch_real: int) -> torch.Tensor:
    """distill_baseline.py:334-353, re-typed: the loss (backward already taken into ``image_syn.grad``)."""
    net.train()
    for param in list(net.parameters()):
        param.requires_grad = False
    embed = net.embed
    _, frames, channel, h, w = image_syn.shape
    loss = torch.tensor(0.0)
    for c in range(0, num_classes):
        img_real = img_real_all[c * batch_real:(c + 1) * batch_real]  # get_images(c, args.batch_real)
        img_syn = image_syn[c * ipc:(c + 1) * ipc].reshape((ipc, frames, channel, h, w))
        output_real = embed(img_real).detach()
        output_syn = embed(img_syn)
        loss += torch.sum((torch.mean(output_real, dim=0) - torch.mean(output_syn, dim=0)) ** 2)
    loss.backward()
    return loss.detach()


def case_inputs(case: dict) -> tuple[dict[str, torch.Tensor], torch.Tensor, torch.Tensor]:
    """Seeded videodd weights, real uint8 clips ``(K*B, T, H, W, C)`` and synthetic ``(K*ipc, C, T, H, W)``."""
    helpers = parity_helpers()
    c, t, h, w = case["shape"]
    wseed, rseed, sseed, _, _ = case["seeds"]
    state = helpers.seeded_state(create_model("convnet3d", case["classes"], case["shape"]), wseed)
    raw = helpers.seeded_uint8((case["classes"] * case["real"], t, h, w, c), rseed)
    syn = helpers.seeded_uniform((case["classes"] * case["ipc"], c, t, h, w), sseed, SYN_BOUND)
    return state, raw, syn


def make(official: OfficialCode, out_dir: Path) -> Path:
    networks = official.module("networks")
    helpers = parity_helpers()
    tensors, cases = {}, {}
    for name, case in CASES.items():
        state, raw, syn = case_inputs(case)
        net = build_official(networks, case["shape"], case["classes"])
        net.load_state_dict({official_key(k): v for k, v in state.items()})
        image_syn = syn.permute(0, 2, 1, 3, 4).contiguous().requires_grad_(True)  # (K*ipc, T, C, H, W)
        loss = official_dm_step(net, real_float(raw), image_syn, case["classes"], case["ipc"], case["real"])
        grad = image_syn.grad.permute(0, 2, 1, 3, 4)  # back to videodd's (K*ipc, C, T, H, W)
        summary = helpers.tensor_summary(grad, *case["seeds"][3:], SAMPLES)
        print(f"  {name}: loss {loss.item():.6g}, |grad| {summary['norm'].item():.6g}, "
              f"embedding {net.embed(image_syn[:1]).shape[1]} values")
        tensors[f"{name}.loss"] = loss.reshape(1)
        tensors.update({f"{name}.grad_{k}": v for k, v in summary.items()})
        cases[name] = {**{k: list(v) if isinstance(v, tuple) else v for k, v in case.items()},
                       "checksum": helpers.checksum({**state, "real": raw.float(), "syn": syn})}
    return save_fixture(NAME, tensors, official, sources=SOURCES, out_dir=out_dir, cases=cases, mean=MEAN, std=STD,
                        syn_bound=SYN_BOUND, samples=SAMPLES,
                        weights="tests/parity.py:seeded_state(videodd convnet3d, seeds[0])",
                        real="tests/parity.py:seeded_uint8((K*B, T, H, W, C), seeds[1]), class-grouped",
                        syn="tests/parity.py:seeded_uniform((K*ipc, C, T, H, W), seeds[2], syn_bound)",
                        grad="tests/parity.py:tensor_summary(grad, seeds[3], seeds[4], samples) as grad_norm, "
                             "grad_dot, grad_sample")
