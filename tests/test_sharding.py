"""What each torchrun rank computes, checked in one process: ``objective.set_shard(rank, world)``.

For the class-sharded objectives (DM, DC, FRePo's KRR) the ranks' losses and set gradients add up to
the one-process loss and gradient, and every rank leaves the run's generator in the same state (so
the next iteration's draws agree). The real processes are in tests/test_distributed.py.
"""

from __future__ import annotations

import pytest
import torch

from videodd.distill import make_objective, resolve_config
from videodd.objectives import OBJECTIVES
from videodd.seeding import make_generator
from videodd.synthesis.pixels import Pixels

CASES = {
    "dm": {"ipc": 2, "batch_real": 4},
    "dc": {"ipc": 2, "batch_real": 4, "objective": {"outer_loop": 2, "inner_loop": 1}},
    "frepo": {"ipc": 2, "batch_real": 4, "objective": {"num_models": 2, "max_online_steps": 3}},
}


def shard_step(train, method: str, rank: int, world: int):
    """Two iterations' losses on one rank: the second one's loss, set gradient and generator after."""
    cfg = resolve_config(method, CASES[method])
    gen = make_generator(0)
    param = Pixels(train, cfg.ipc, gen)
    objective = make_objective(OBJECTIVES.get(cfg.method if method != "frepo" else "krr"), train, cfg,
                               torch.device("cpu"))
    objective.set_shard(rank, world)
    objective.loss(param, gen)  # the first iteration: pools built, networks drawn
    param.videos.grad = None
    loss = objective.loss(param, gen).loss
    loss.backward()
    return loss.detach(), param.videos.grad.clone(), torch.rand(3, generator=gen)


@pytest.mark.parametrize("method", sorted(CASES))
@pytest.mark.parametrize("world", [2, 3])
def test_class_shards_add_up_to_the_whole_loss_and_gradient(tiny_stores, method, world):
    train, _ = tiny_stores
    whole, grad, after = shard_step(train, method, 0, 1)
    shards = [shard_step(train, method, r, world) for r in range(world)]
    torch.testing.assert_close(sum(s[0] for s in shards), whole, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(sum(s[1] for s in shards), grad, rtol=1e-4, atol=1e-7)
    assert all(torch.equal(s[2], after) for s in shards)  # the generator in step on every rank
    assert sum(bool(s[1].abs().sum() > 0) for s in shards) >= 2  # the work is really split


def test_mtt_replicas_follow_their_own_draws_from_one_generator(tiny_stores, tmp_path):
    from videodd.teachers.experts import ExpertConfig, train_experts

    train, _ = tiny_stores
    train_experts(train, tmp_path / "experts", ExpertConfig(num_experts=3, epochs=2), seed=0)
    cfg = resolve_config("mtt", {"ipc": 1, "objective": {"experts": str(tmp_path / "experts"), "syn_steps": 2,
                                                         "max_start_epoch": 1}})
    picks, after = [], []
    for rank in range(2):
        gen = make_generator(5)
        param = Pixels(train, 1, gen)
        objective = make_objective(OBJECTIVES.get("mtt"), train, cfg, torch.device("cpu"))
        objective.set_shard(rank, 2)
        picks.append([int(objective.loss(param, gen).metrics["expert"]) for _ in range(6)])
        after.append(torch.rand(3, generator=gen))
    assert picks[0] != picks[1]  # each rank its own segment
    assert torch.equal(after[0], after[1])
