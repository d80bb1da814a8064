"""videodd's DM against one step of the official DM (distill_baseline.py, --method DM) on the official
ConvNet3D.embed: the same weights, real clips and synthetic pixels give the same loss and the same gradient
on the pixels (fixture ``dm`` of benchmarks/parity/components/dm.py; tensors regenerated from its seeds)."""

import numpy as np
import pytest
import torch

from parity import checksum, load_fixture, seeded_state, seeded_uint8, seeded_uniform, tensor_summary
from videodd.data.clips import InMemoryClips
from videodd.data.spec import ClipSpec
from videodd.distill import make_objective, resolve_config
from videodd.models import create_model
from videodd.objectives.dm import DistributionMatching, dm_loss
from videodd.seeding import make_generator
from videodd.synthesis.pixels import Pixels

DM = load_fixture("dm")


def case_data(case: str) -> tuple[dict, torch.nn.Module, InMemoryClips, torch.Tensor]:
    """The case's settings, videodd's convnet3d with its seeded weights, a store holding exactly its real
    clips (class-grouped, the official ImageNet normalization) and its synthetic pixels ``(K*ipc, C, T, H, W)``."""
    m = DM[1]["meta"]
    info = m["cases"][case]
    c, t, h, w = info["shape"]
    k, ipc, per_class = info["classes"], info["ipc"], info["real"]
    wseed, rseed, sseed = info["seeds"][:3]
    net = create_model("convnet3d", k, (c, t, h, w))
    state = seeded_state(net, wseed)
    net.load_state_dict(state)
    raw = seeded_uint8((k * per_class, t, h, w, c), rseed)  # (K*B, T, H, W, C)
    syn = seeded_uniform((k * ipc, c, t, h, w), sseed, m["syn_bound"])
    assert checksum({**state, "real": raw.float(), "syn": syn}) == info["checksum"]
    labels = torch.arange(k).repeat_interleave(per_class)
    store = InMemoryClips(raw, labels, [f"c{i}" for i in range(k)], m["mean"], m["std"],
                          ClipSpec(frames=t, size=h, stride=1, train_sampling="center"), name="dm parity clips")
    return info, net, store, syn


def assert_dm_matches(case: str, loss: torch.Tensor, grad: torch.Tensor) -> None:
    tensors, meta = DM
    info = meta["meta"]["cases"][case]
    ref_loss = tensors[f"{case}.loss"].item()
    assert abs(loss.item() - ref_loss) <= 1e-5 * ref_loss, (loss.item(), ref_loss)
    ours = tensor_summary(grad, *info["seeds"][3:], meta["meta"]["samples"])
    ref_norm = tensors[f"{case}.grad_norm"].item()
    assert abs(ours["norm"].item() - ref_norm) <= 1e-5 * ref_norm
    # the dot with a uniform direction: within 1e-5 of what |grad| |direction| allows
    bound = 1e-5 * ref_norm * (grad.numel() / 3) ** 0.5
    assert abs(ours["dot"].item() - tensors[f"{case}.grad_dot"].item()) <= bound
    sample = tensors[f"{case}.grad_sample"]
    diff = (ours["sample"] - sample).abs().max().item()
    assert diff <= 1e-5 * sample.abs().max().item(), f"gradient max |diff| {diff:.3g}"


@pytest.mark.parametrize("case", ["t8_64", "t16_112"])
def test_dm_objective_gives_the_official_loss_and_pixel_gradient(case, monkeypatch):
    """The DistributionMatching objective's own loss path (no augmentation, every real clip of the store as the
    class's batch, the fixture's network in place of a fresh one) against the official DM step."""
    info, net, store, syn = case_data(case)
    cfg = resolve_config("dm", {"ipc": info["ipc"], "batch_real": info["real"], "augment": (), "model": "convnet3d"})
    objective = make_objective(DistributionMatching, store, cfg, torch.device("cpu"))
    monkeypatch.setattr(objective, "new_network", lambda generator, model=None: net)
    param = Pixels(store, info["ipc"], make_generator(0))
    with torch.no_grad():
        param.videos.copy_(syn)
    out = objective.loss(param, make_generator(1))
    out.loss.backward()
    assert_dm_matches(case, out.loss.detach(), param.videos.grad)


def test_dm_loss_on_embed_gives_the_official_loss_and_pixel_gradient():
    """``dm_loss`` on ``net.embed`` (the trunk's output flattened: 256 values at 8x64x64) by hand."""
    info, net, store, syn = case_data("t8_64")
    real = store.batch(np.arange(len(store)))  # (K*B, C, T, H, W)
    syn = syn.clone().requires_grad_(True)
    net.requires_grad_(False)
    k = info["classes"]
    with torch.no_grad():
        real_feat = net.embed(real)
    assert real_feat.shape == (len(real), 256)
    loss = dm_loss(real_feat, store.labels_tensor(), net.embed(syn), torch.arange(k).repeat_interleave(info["ipc"]), k)
    loss.backward()
    assert_dm_matches("t8_64", loss.detach(), syn.grad)
