"""videodd's MTT against the official code (yuz1wan/video_distillation at 5871dc5):

- the inner unroll: the same start/target parameters, synthetic clips, permutations and dropout masks give the
  official loss and gradients on the clips and on ``syn_lr`` (fixture ``mtt`` of
  benchmarks/parity/components/mtt.py; tensors regenerated from its seeds), plain and checkpointed;
- the experts each iteration follows: a shuffled buffer taken in order, each expert once per cycle, reshuffled
  per cycle, within ONE group of 10 (distill_baseline.py lines 122-135 and 203-211);
- the published experts' input: flips at every read, the ImageNet normalization and a per-batch z-score
  (buffer.py + distill_utils/dataset.py read_images + utils.py epoch), checked against one SGD step by hand.
"""

import dataclasses

import numpy as np
import pytest
import torch

from conftest import make_tiny_stores
from parity import checksum, load_fixture, seeded_state, seeded_uniform, tensor_summary
from videodd.distill import make_objective, resolve_config
from videodd.models import MODELS, create_model, register_model
from videodd.objectives.mtt import (
    Student,
    StudentStep,
    TrajectoryMatching,
    trajectory_loss,
    unroll_checkpoint,
    unroll_plain,
)
from videodd.seeding import make_generator
from videodd.synthesis.pixels import Pixels
from videodd.teachers.experts import ExpertBuffer, ExpertConfig, train_experts

CPU = torch.device("cpu")
MTT = load_fixture("mtt")
IMAGENET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))  # utils.py get_dataset (miniUCF101 and the others)


class _Linear(torch.nn.Module):
    """Softmax regression on the flattened clip (no dropout): one SGD step is computable by hand."""

    def __init__(self, num_classes: int, input_shape: tuple[int, ...]) -> None:
        super().__init__()
        self.fc = torch.nn.Linear(int(np.prod(input_shape)), num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x.flatten(1))


if "mtt-parity-linear" not in MODELS:
    register_model("mtt-parity-linear")(lambda num_classes, input_shape: _Linear(num_classes, input_shape))


# -- the unroll -------------------------------------------------------------------------------
def fixture_case() -> tuple[dict, torch.nn.Module, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The fixture's settings, videodd's convnet3d (the parameter layout), start and target ``(P,)``, clips."""
    m = MTT[1]["meta"]
    shape = tuple(m["shape"])
    net = create_model("convnet3d", m["classes"], shape)
    net.load_state_dict(seeded_state(net, m["seeds"]["weights"]))
    start = torch.cat([p.detach().reshape(-1) for p in net.parameters()])  # (P,)
    target = start + m["target_scale"] * seeded_uniform(tuple(start.shape), m["seeds"]["target"])
    syn = seeded_uniform((m["classes"] * m["ipc"], *shape), m["seeds"]["syn"], m["syn_bound"])
    assert checksum({"start": start, "target": target, "syn": syn}) == m["checksum"]
    assert start.numel() == m["num_params"]
    return m, net, start, target, syn


@pytest.mark.parametrize("unroll", [unroll_plain, unroll_checkpoint], ids=["plain", "checkpoint"])
def test_unroll_loss_and_gradients_match_the_official_mtt(unroll):
    """ConvNet3D at 8x64x64, 3 classes x 1 clip, 3 steps on the whole set, dropout on: the official
    ReparamModule unroll's grand_loss and its gradients on image_syn and syn_lr."""
    tensors, meta = MTT
    m, net, start, target, syn = fixture_case()
    net.train()  # student_net.train(): dropout on (distill_baseline.py line 199)
    net.requires_grad_(False)
    student = Student(net, CPU)
    plan = [StudentStep(idx, int(seed), None) for idx, seed in zip(tensors["perms"], tensors["dropout_seeds"],
                                                                   strict=True)]
    videos = syn.clone().requires_grad_(True)
    labels = torch.arange(m["classes"]).repeat_interleave(m["ipc"])
    lr = torch.tensor(m["lr_teacher"], requires_grad=True)
    theta = unroll(student, start, videos, labels, lr, plan)
    loss = trajectory_loss(theta, start, target)
    loss.backward()

    ref = tensors["loss"].item()
    assert abs(ref - 1) > 0.5  # the student's path matters: a wrong step would show
    assert loss.item() == pytest.approx(ref, rel=1e-5)
    assert lr.grad.item() == pytest.approx(tensors["grad_lr"].item(), rel=1e-4)
    seeds = m["seeds"]
    for name, value in (("theta", theta.detach()), ("grad_syn", videos.grad)):
        ours = tensor_summary(value, seeds["direction"], seeds["sample"], m["samples"])
        norm = tensors[f"{name}.norm"].item()
        assert ours["norm"].item() == pytest.approx(norm, rel=1e-4), name
        # the dot with a uniform direction: within 1e-4 of what |value| |direction| allows
        assert abs(ours["dot"].item() - tensors[f"{name}.dot"].item()) <= 1e-4 * norm * (value.numel() / 3) ** 0.5
        sample = tensors[f"{name}.sample"]
        torch.testing.assert_close(ours["sample"], sample, rtol=1e-3, atol=1e-4 * sample.abs().max().item())


# -- the experts each iteration follows -------------------------------------------------------
@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    return make_tiny_stores(tmp_path_factory.mktemp("mtt-parity") / "data")


@pytest.fixture(scope="module")
def many_experts(stores, tmp_path_factory):
    """25 one-epoch softmax-regression experts: two full groups of 10 and 5 left over."""
    out = tmp_path_factory.mktemp("experts") / "linear"
    train_experts(stores[0], out, ExpertConfig(model="mtt-parity-linear", epochs=1, batch_size=18, num_experts=25))
    return out


def _experts_followed(stores, experts, iterations: int, **objective) -> list[int]:
    cfg = resolve_config("mtt", {"model": "mtt-parity-linear", "ipc": 1, "objective": {
        "experts": str(experts), "syn_steps": 1, "max_start_epoch": 1, **objective}})
    mtt = make_objective(TrajectoryMatching, stores[0], cfg, CPU)
    param, gen = Pixels(stores[0], 1, make_generator(0)), make_generator(5)
    return [mtt.loss(param, gen).metrics["expert"] for _ in range(iterations)]


def test_each_iteration_takes_the_next_expert_of_a_shuffled_cycle_within_one_group_of_10(stores, many_experts):
    """The published default: one group of 10 consecutive experts (one replay_buffer file of buffer.py's
    save_interval), every expert of it exactly once per cycle, each cycle in a new order."""
    seq = _experts_followed(stores, many_experts, 30)
    cycles = [seq[i : i + 10] for i in range(0, 30, 10)]
    group = sorted(cycles[0])
    assert group in ([*range(10)], [*range(10, 20)])  # a full group; experts 20-24 were never saved together
    assert all(sorted(c) == group for c in cycles)  # each expert once per cycle
    assert len({tuple(c) for c in cycles}) == 3  # reshuffled per cycle
    # expert_group null: every expert of the folder, once per cycle
    seq = _experts_followed(stores, many_experts, 50, expert_group=None)
    assert sorted(seq[:25]) == sorted(seq[25:]) == [*range(25)] and seq[:25] != seq[25:]
    # the named alternative, drawn with replacement, repeats experts within 10 iterations
    seq = _experts_followed(stores, many_experts, 10, expert_order="replacement")
    assert len(set(seq)) < 10 and max(seq) >= 0


# -- the published experts' input pipeline -----------------------------------------------------
def test_published_experts_flip_renormalize_and_zscore_every_batch(stores, tmp_path):
    """One full-batch SGD step of a softmax-regression expert, by hand: the clips in the ImageNet normalization,
    flipped left-right, z-scored by the batch's scalar mean and unbiased std; lr 0.01, momentum 0."""
    train, _ = stores
    published = ExpertConfig()
    assert (published.flip, published.zscore, published.renormalize) == (0.5, True, "imagenet")
    assert (published.lr, published.momentum, published.weight_decay, published.epochs, published.num_experts) == (
        0.01, 0.0, 0.0, 50, 30)
    assert published.train_config().flip == 0.5 and published.train_config().batch_zscore
    # flip 1: every clip flipped at its read, so that the step is computable by hand
    cfg = dataclasses.replace(published, model="mtt-parity-linear", epochs=1, batch_size=len(train), num_experts=1,
                              flip=1.0)
    train_experts(train, tmp_path / "all-flipped", cfg)
    buffer = ExpertBuffer(tmp_path / "all-flipped")
    assert buffer.pipeline == {"flip": 1.0, "zscore": True, "renormalize": "imagenet"}
    theta0, theta1 = buffer.snapshots(0, [0, 1]).double()

    def channels(v):
        return torch.tensor(v, dtype=torch.float64).view(1, -1, 1, 1, 1)  # over (N, C, T, H, W)

    clips = train.batch(np.arange(len(train))).double()  # the store's normalization
    pixels = clips * channels(train.meta.std) + channels(train.meta.mean)
    x = ((pixels - channels(IMAGENET[0])) / channels(IMAGENET[1])).flip(-1)  # ImageNet, flipped left-right
    assert not torch.allclose(x, x.flip(-1))  # flipping changes these clips
    x = ((x - x.mean()) / x.std()).flatten(1)  # one scalar mean and unbiased std over the batch
    y = torch.nn.functional.one_hot(train.labels_tensor(), train.num_classes).double()
    k, d = y.shape[1], x.shape[1]
    w, b = theta0[: k * d].view(k, d), theta0[k * d :]
    p = torch.softmax(x @ w.T + b, dim=1)
    g = torch.cat([((p - y).T @ x / len(x)).flatten(), (p - y).sum(0) / len(x)])
    step = theta1 - theta0
    torch.testing.assert_close(step, -0.01 * g, rtol=1e-3, atol=1e-4 * step.abs().max().item())

    # p 0.5: some clips flipped and some not (the trajectory differs from both never and always flipping)
    half = dataclasses.replace(cfg, flip=0.5)
    never = dataclasses.replace(cfg, flip=0.0)
    for name, c in (("half", half), ("never", never)):
        train_experts(train, tmp_path / name, c)
    step_half, step_never = (ExpertBuffer(tmp_path / n).snapshots(0, [0, 1]).double().diff(dim=0)[0]
                             for n in ("half", "never"))
    tol = 1e-3 * step.abs().max().item()
    assert (step_half - step).abs().max() > tol and (step_half - step_never).abs().max() > tol
