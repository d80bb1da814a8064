"""videodd's models against the official code's, on the same weights and clips (the fixtures of
``python -m benchmarks.parity.make_fixtures --official DIR``; weights and clips are regenerated here from
the seeds the fixture records, and checked against its checksum)."""

import pytest
import torch

from parity import checksum, load_fixture, seeded_state, seeded_uniform
from videodd.models import create_model


def assert_matches(ours: torch.Tensor, official: torch.Tensor, rtol: float = 1e-5) -> None:
    """Same shape, and max |ours - official| within ``rtol`` of the largest official value."""
    assert ours.shape == official.shape
    scale = official.abs().max().item()
    assert scale > 0
    diff = (ours - official).abs().max().item()
    assert diff <= rtol * scale, f"max |diff| {diff:.3g} against max |official| {scale:.3g}"


def seeded_model(name: str, case: dict, num_classes: int, clips: int, bound: float, **kw
                 ) -> tuple[torch.nn.Module, torch.Tensor]:
    """``name`` with the fixture case's seeded weights, in eval mode, and its seeded clips; checks the checksum."""
    shape = tuple(case["shape"])
    model = create_model(name, num_classes, shape, **kw).eval()
    state = seeded_state(model, case["weight_seed"])
    model.load_state_dict(state)
    x = seeded_uniform((clips, *shape), case["input_seed"], bound)
    assert checksum({**state, "input": x}) == case["checksum"], "regenerated other weights or clips than the fixture's"
    return model, x


CONVNET3D = load_fixture("convnet3d")


@pytest.mark.parametrize("case", ["t16_112", "t8_64"])
def test_convnet3d_logits_and_embed_match_the_official(case):
    """The head's stride-1 average pool (3 time steps at 16x112x112) and DM's embedding (the trunk's output
    flattened: 2048 / 256 values) as in the official networks.py ConvNet3D."""
    tensors, meta = CONVNET3D
    m = meta["meta"]
    info = m["cases"][case]
    model, x = seeded_model("convnet3d", info, m["num_classes"], m["clips"], m["input_bound"])
    assert sum(p.numel() for p in model.parameters()) == info["params"]
    with torch.no_grad():
        logits, embed = model(x), model.embed(x)
    assert_matches(embed, tensors[f"{case}.embed"])
    assert_matches(logits, tensors[f"{case}.logits"])


FRAMEWISE = load_fixture("framewise")


@pytest.mark.parametrize("head", ["mean", "mlp", "lstm", "rnn", "gru"])
def test_published_framewise_logits_and_embed_match_the_official(head):
    """convnet-HEAD-published against networks.py VideoConvNet*: mean at 4x112x112 through the official
    24-px centre crop (utils.epoch), the others at small frames."""
    tensors, meta = FRAMEWISE
    m = meta["meta"]
    model, x = seeded_model(f"convnet-{head}-published", m["cases"][head], m["num_classes"], m["clips"],
                            m["input_bound"])
    assert model.crop == (m["crop"] if x.shape[-1] == 112 else 0)
    with torch.no_grad():
        logits, embed = model(x), model.embed(x)
    assert_matches(embed, tensors[f"{head}.embed"])
    assert_matches(logits, tensors[f"{head}.logits"])


@pytest.mark.parametrize("head", ["mean", "mlp", "lstm", "rnn", "gru"])
def test_published_framewise_parameter_counts_match_the_official(head):
    """16x112x112 clips (cropped to 64x64), 50 classes: the official counts at 16x64x64 (0.71 / 0.85 / 538 /
    9.8 / 28.7 M), on the meta device (no memory: the LSTM is 538 M parameters)."""
    with torch.device("meta"):
        model = create_model(f"convnet-{head}-published", 50, (3, 16, 112, 112))
    assert sum(p.numel() for p in model.parameters()) == FRAMEWISE[1]["meta"]["params_16x64x64_50"][head]
