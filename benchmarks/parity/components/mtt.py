"""Parity component ``mtt``: the inner unroll of the official MTT (distill_baseline.py, ``--method MTT``) on the
official ``ReparamModule`` (reparam_module.py) over ``networks.ConvNet3D``, against videodd's ``mtt`` objective.

The MTT iteration is inline in ``main()`` of distill_baseline.py, so :func:`official_mtt_unroll` re-types its
lines 192-278: a ConvNet3D wrapped in ``ReparamModule``, ``student_net.train()`` (dropout on), ``num_params``
of the wrapper, the flattened start/target parameters, ``syn_steps`` steps of ``torch.randperm`` chunks of
``batch_syn`` (None: the whole set, line 68), ``student_net(x, flat_param=student_params[-1])`` on the
synthetic clips as they are (NOT z-scored), ``grad = autograd.grad(ce, student_params[-1], create_graph=True)``
and ``student_params.append(student_params[-1] - syn_lr * grad)``; then ``param_loss`` / ``param_dist`` (summed
squared errors, each divided by ``num_params``), ``param_loss /= param_dist`` and ``grand_loss.backward()``
into ``image_syn (N, T, C, H, W)`` and ``syn_lr`` (lr_teacher 0.01, ``--train_lr``).

One addition, for repeatability only: before each step's forward the global torch RNG is seeded with a
recorded seed, so that the dropout mask of each step is one videodd can draw again (videodd seeds each
student step's dropout the same way, ``objectives/mtt.py`` ``Student.step``). The permutations the official
loop drew are recorded too (tiny int tensors).

Weights: the start parameters are ``tests/parity.py:seeded_state`` of videodd's ``convnet3d`` flattened in its
parameter order (the official ``ReparamModule`` order is the same: features.0/3/6 there, 0/4/8 here, then the
classifier); the target is the start plus ``TARGET_SCALE * seeded_uniform((P,), target_seed)``. Synthetic
clips: ``seeded_uniform`` in videodd's ``(N, C, T, H, W)``.

Stored: the loss, the gradient on ``syn_lr``, ``tensor_summary`` of the gradient on the synthetic clips
(in videodd's layout) and of the last student parameters, the permutations, the seeds and a checksum of the
regenerated tensors; not the 3.6 M parameters.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from benchmarks.parity.common import OfficialCode, parity_helpers, save_fixture, torch_seed
from benchmarks.parity.components.convnet3d import build_official
from videodd.models import create_model

NAME = "mtt"
SHAPE = (3, 8, 64, 64)  # (C, T, H, W)
CLASSES, IPC, SYN_STEPS = 3, 1, 3
LR_TEACHER = 0.01  # sh/baseline/MTT.sh --lr_teacher 0.01: the initial syn_lr
SYN_BOUND = 3.0 ** 0.5
TARGET_SCALE = 0.001  # the expert's displacement between the start and target epochs, per parameter
SAMPLES = 4096
# weights, target, synthetic, global RNG (randperm), dropout of step 0.., direction, samples
SEEDS = dict(weights=51, target=52, syn=53, rng=54, dropout=(55, 56, 57), direction=58, sample=59)
SOURCES = {"loss": "distill_baseline.py:255-272 (param_loss / param_dist, re-typed)",
           "grad_syn": "distill_baseline.py:278 (grand_loss.backward) into image_syn",
           "grad_lr": "distill_baseline.py:278 into syn_lr (requires_grad: --train_lr, line 106)",
           "unroll": "distill_baseline.py:219-252 (student_params, randperm chunks, autograd.grad, SGD step)",
           "student": "distill_baseline.py:192-201 (get_network + ReparamModule, train(), num_params)",
           "reparam": "reparam_module.py (ReparamModule.forward with flat_param)"}


def case_tensors() -> tuple[torch.nn.Module, torch.Tensor, torch.Tensor, torch.Tensor, str]:
    """videodd's convnet3d (the layout), the start and target parameters ``(P,)``, the synthetic clips
    ``(N, C, T, H, W)`` and the checksum of the three."""
    helpers = parity_helpers()
    model = create_model("convnet3d", CLASSES, SHAPE)
    state = helpers.seeded_state(model, SEEDS["weights"])
    model.load_state_dict(state)
    start = torch.cat([p.detach().reshape(-1) for p in model.parameters()])  # (P,) in named_parameters order
    target = start + TARGET_SCALE * helpers.seeded_uniform(tuple(start.shape), SEEDS["target"])
    syn = helpers.seeded_uniform((CLASSES * IPC, *SHAPE), SEEDS["syn"], SYN_BOUND)
    return model, start, target, syn, helpers.checksum({"start": start, "target": target, "syn": syn})


def official_mtt_unroll(reparam_module, networks, start: torch.Tensor, target: torch.Tensor,
                        image_syn: torch.Tensor, label_syn: torch.Tensor, syn_lr: torch.Tensor,
                        dropout_seeds: tuple[int, ...]) -> tuple[torch.Tensor, list[torch.Tensor], torch.Tensor]:
    """distill_baseline.py:192-278, re-typed: ``(grand_loss, permutations, last student parameters)``; the
    gradients are in ``image_syn.grad`` and ``syn_lr.grad``. ``start``/``target`` stand for
    ``expert_trajectory[start_epoch]`` / ``[start_epoch + expert_epochs]`` (lists of the parameters)."""
    student_net = build_official(networks, SHAPE, CLASSES)  # get_network('ConvNet3D', ...), utils.py:609
    student_net = reparam_module.ReparamModule(student_net)
    student_net.train()
    num_params = sum([np.prod(p.size()) for p in (student_net.parameters())])
    shapes = student_net._param_shapes  # the expert files hold the parameters as a list (buffer.py:77, 87)
    starting_params = list(start.split([s.numel() for s in shapes]))
    starting_params = [p.view(s) for p, s in zip(starting_params, shapes, strict=True)]
    target_params = [p.view(s) for p, s in zip(target.split([s.numel() for s in shapes]), shapes, strict=True)]

    target_params = torch.cat([p.data.reshape(-1) for p in target_params], 0)
    student_params = [torch.cat([p.data.reshape(-1) for p in starting_params], 0).requires_grad_(True)]
    starting_params = torch.cat([p.data.reshape(-1) for p in starting_params], 0)
    syn_images = image_syn
    y_hat = label_syn
    batch_syn = CLASSES * IPC  # args.batch_syn None -> num_classes * ipc (line 68)
    criterion = torch.nn.CrossEntropyLoss()
    indices_chunks, perms = [], []
    for step in range(SYN_STEPS):
        if not indices_chunks:
            indices = torch.randperm(len(syn_images))
            perms.append(indices)
            indices_chunks = list(torch.split(indices, batch_syn))
        these_indices = indices_chunks.pop()
        x = syn_images[these_indices]
        this_y = y_hat[these_indices]
        forward_params = student_params[-1]
        torch.manual_seed(dropout_seeds[step])  # the fixture's addition: a dropout mask videodd can repeat
        x = student_net(x, flat_param=forward_params)
        ce_loss = criterion(x, this_y)
        grad = torch.autograd.grad(ce_loss, student_params[-1], create_graph=True)[0]
        student_params.append(student_params[-1] - syn_lr * grad)

    param_loss = torch.tensor(0.0)
    param_dist = torch.tensor(0.0)
    param_loss += torch.nn.functional.mse_loss(student_params[-1], target_params, reduction="sum")
    param_dist += torch.nn.functional.mse_loss(starting_params, target_params, reduction="sum")
    param_loss /= num_params
    param_dist /= num_params
    param_loss /= param_dist
    grand_loss = param_loss
    grand_loss.backward()
    return grand_loss.detach(), perms, student_params[-1].detach()


def make(official: OfficialCode, out_dir: Path) -> Path:
    networks, reparam_module = official.module("networks"), official.module("reparam_module")
    helpers = parity_helpers()
    model, start, target, syn, checksum = case_tensors()
    probe = build_official(networks, SHAPE, CLASSES)
    ours = [tuple(p.shape) for p in model.parameters()]
    theirs = [tuple(p.shape) for p in probe.parameters()]
    assert ours == theirs, f"parameter layouts differ: {ours} vs {theirs}"
    image_syn = syn.permute(0, 2, 1, 3, 4).contiguous().requires_grad_(True)  # (N, C, T, H, W) -> (N, T, C, H, W)
    label_syn = torch.arange(CLASSES).repeat_interleave(IPC)  # [0, .., 0, 1, ..] (line 93)
    syn_lr = torch.tensor(LR_TEACHER).requires_grad_(True)
    with torch_seed(SEEDS["rng"]):
        loss, perms, theta = official_mtt_unroll(reparam_module, networks, start, target, image_syn, label_syn,
                                                 syn_lr, SEEDS["dropout"])
    grad_syn = image_syn.grad.permute(0, 2, 1, 3, 4)  # back to videodd's (N, C, T, H, W)
    gsum = helpers.tensor_summary(grad_syn, SEEDS["direction"], SEEDS["sample"], SAMPLES)
    tsum = helpers.tensor_summary(theta, SEEDS["direction"], SEEDS["sample"], SAMPLES)
    print(f"  loss {loss.item():.6f}, d/d syn_lr {syn_lr.grad.item():.6g}, |d/d syn| {gsum['norm'].item():.6g}")
    tensors = {"loss": loss.reshape(1), "grad_lr": syn_lr.grad.detach().reshape(1),
               "perms": torch.stack(perms), "dropout_seeds": torch.tensor(SEEDS["dropout"]),
               **{f"grad_syn.{k}": v for k, v in gsum.items()}, **{f"theta.{k}": v for k, v in tsum.items()}}
    return save_fixture(NAME, tensors, official, sources=SOURCES, out_dir=out_dir, shape=list(SHAPE), classes=CLASSES,
                        ipc=IPC, syn_steps=SYN_STEPS, lr_teacher=LR_TEACHER, syn_bound=SYN_BOUND,
                        target_scale=TARGET_SCALE, samples=SAMPLES, seeds=SEEDS, checksum=checksum,
                        num_params=int(start.numel()),
                        start="tests/parity.py:seeded_state(videodd convnet3d, weights) flattened",
                        target="start + target_scale * tests/parity.py:seeded_uniform((P,), target)",
                        syn="tests/parity.py:seeded_uniform((N, C, T, H, W), syn, syn_bound)")
