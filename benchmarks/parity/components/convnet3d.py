"""Parity component ``convnet3d``: the official ``networks.ConvNet3D`` against videodd's ``convnet3d``.

The official network is built as ``utils.get_network('ConvNet3D', ...)`` builds it (utils.py:608-609:
net_width 128, depth 3, relu, norm ``'none'``, ``'maxpooling'``), by calling the class directly:
``get_network`` reseeds torch from the clock (utils.py:519). Both sides get the same weights, drawn by
``tests/parity.py:seeded_state`` in videodd's state-dict order and copied to the official names
(:func:`official_key`), and the same clips (``seeded_uniform``). The fixture stores the official eval-mode
logits and ``embed`` outputs of 2 clips at 16x112x112 and 8x64x64 (5 classes), the seeds, and a checksum
of the weights and inputs; not the 3.6 M weights themselves, which the test regenerates.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch

from benchmarks.parity.common import OfficialCode, parity_helpers, save_fixture
from videodd.models import create_model

NAME = "convnet3d"
NUM_CLASSES = 5
CLIPS = 2
INPUT_BOUND = 3.0 ** 0.5  # uniform in +-sqrt(3): unit variance, like z-scored clips
# (C, T, H, W), weight seed, input seed
CASES = {"t16_112": ((3, 16, 112, 112), 11, 12), "t8_64": ((3, 8, 64, 64), 21, 22)}
SOURCES = {"logits": "networks.py:738-745 (ConvNet3D.forward)", "embed": "networks.py:747-751 (ConvNet3D.embed)",
           "network": "utils.py:608-609 (get_network 'ConvNet3D'), networks.py:727-736"}


def official_key(key: str) -> str:
    """videodd ``convnet3d`` state-dict key -> the official ``ConvNet3D``'s.

    videodd's trunk block is (conv, norm = Identity, ReLU, pool): convs at ``features.0/4/8``; the official
    one with ``net_norm='none'`` is (conv, ReLU, pool): ``features.0/3/6`` (networks.py:792-814). The 1x1x1
    classifier is ``classifier`` here, ``logit`` there (networks.py:736)."""
    m = re.fullmatch(r"features\.(\d+)\.(weight|bias)", key)
    if m:
        return f"features.{int(m[1]) // 4 * 3}.{m[2]}"
    return key.replace("classifier.", "logit.", 1)


def build_official(networks, shape: tuple[int, int, int, int], num_classes: int) -> torch.nn.Module:
    """``networks.ConvNet3D`` with get_network's arguments (utils.py:609)."""
    c, t, h, w = shape
    return networks.ConvNet3D(channel=c, num_classes=num_classes, net_width=128, net_depth=3, net_act="relu",
                              net_norm="none", net_pooling="maxpooling", im_size=(h, w), frames=t)


def case_tensors(shape: tuple[int, int, int, int], weight_seed: int, input_seed: int
                 ) -> tuple[torch.nn.Module, dict[str, torch.Tensor], torch.Tensor]:
    """videodd's model with the seeded weights, the weights, and the seeded clips ``(N, C, T, H, W)``."""
    helpers = parity_helpers()
    model = create_model("convnet3d", NUM_CLASSES, shape).eval()
    state = helpers.seeded_state(model, weight_seed)
    model.load_state_dict(state)
    x = helpers.seeded_uniform((CLIPS, *shape), input_seed, INPUT_BOUND)
    return model, state, x


def make(official: OfficialCode, out_dir: Path) -> Path:
    networks = official.module("networks")
    helpers = parity_helpers()
    tensors, cases = {}, {}
    for case, (shape, wseed, xseed) in CASES.items():
        model, state, x = case_tensors(shape, wseed, xseed)
        net = build_official(networks, shape, NUM_CLASSES).eval()
        net.load_state_dict({official_key(k): v for k, v in state.items()})
        x_official = x.permute(0, 2, 1, 3, 4).contiguous()  # (N, C, T, H, W) -> the official (N, T, C, H, W)
        with torch.no_grad():
            logits, embed = net(x_official), net.embed(x_official)
            ours = (model(x) - logits).abs().max().item(), (model.embed(x) - embed).abs().max().item()
        print(f"  {case}: videodd - official max |diff| logits {ours[0]:.2e}, embed {ours[1]:.2e}")
        tensors[f"{case}.logits"], tensors[f"{case}.embed"] = logits, embed
        cases[case] = {"shape": list(shape), "weight_seed": wseed, "input_seed": xseed,
                       "checksum": helpers.checksum({**state, "input": x}),
                       "params": sum(p.numel() for p in net.parameters())}
    return save_fixture(NAME, tensors, official, sources=SOURCES, out_dir=out_dir, num_classes=NUM_CLASSES,
                        clips=CLIPS, input_bound=INPUT_BOUND, cases=cases,
                        weights="tests/parity.py:seeded_state(videodd convnet3d, weight_seed)",
                        inputs="tests/parity.py:seeded_uniform((clips, C, T, H, W), input_seed, input_bound)")
