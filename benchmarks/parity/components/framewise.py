"""Parity component ``framewise``: the official ``networks.py`` VideoConvNetMean/MLP/LSTM/RNN/GRU against
videodd's ``convnet-{mean,mlp,lstm,rnn,gru}-published``.

The official networks are built with ``get_network``'s settings (utils.py:598-607 with
``get_default_convnet_setting``, utils.py:512-514: width 128, depth 3, relu, instancenorm, avgpooling) for
the frames they are given: ``utils.epoch`` crops every 'Video' model's input to
``img[:, :, :, 24:-24, 24:-24]`` (utils.py:768-769, 797-798), re-typed here for the 112x112 case, so the
official class is built for 64x64 there. videodd's model takes the uncropped ``(N, C, T, 112, 112)`` clip and
crops it itself. Both sides get the same weights (``tests/parity.py:seeded_state`` in videodd's order, copied
to the official names by :func:`official_key`) and the same clips (``seeded_uniform``).

Stored: eval-mode logits and ``embed`` of 2 clips for every head (mean at 4x112x112 with the crop; the others
at small frames, to keep the test fast: the mechanism is the same at every size), the official parameter
counts of all five at 16 frames of 64x64 (the cropped 112x112) and 50 classes, counted on the meta device
(the LSTM has 538 M), and what the official class built for im_size (112, 112) does with the cropped frames.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch

from benchmarks.parity.common import OfficialCode, parity_helpers, save_fixture
from videodd.models import create_model

NAME = "framewise"
NUM_CLASSES = 5
CLIPS = 2
INPUT_BOUND = 3.0 ** 0.5
CLASSES = {"mean": "VideoConvNetMean", "mlp": "VideoConvNetMLP", "lstm": "VideoConvNetLSTM",
           "rnn": "VideoConvNetRNN", "gru": "VideoConvNetGRU"}
# videodd input (C, T, H, W), weight seed, input seed; VideoConvNetMLP fixes 16 frames (networks.py:541)
CASES = {
    "mean": ((3, 4, 112, 112), 51, 52),
    "mlp": ((3, 16, 32, 32), 53, 54),
    "lstm": ((3, 8, 16, 16), 55, 56),
    "rnn": ((3, 8, 32, 32), 57, 58),
    "gru": ((3, 8, 32, 32), 59, 60),
}
CROP = 24
SOURCES = {"logits": "networks.py:551-554 (forward)", "embed": "networks.py:556-565, 633-644, 657-672, 685-697, "
           "710-722 (Mean/MLP/LSTM/RNN/GRU embed)", "crop": "utils.py:768-769", "params": "networks.py:537-723"}


def official_key(key: str, head: str) -> str:
    """videodd ``convnet-HEAD-published`` state-dict key -> the official class's: the frame encoder is
    ``encoder.N`` here, ``features.N`` there (the same layer indices, networks.py:604-623); the recurrent net
    is ``temporal`` here, ``temporal_lstm`` (networks.py:654) or ``temporal_rnn`` (networks.py:682, 707) there;
    ``classifier``, ``temporal_weight``, ``temporal_bias`` have the official names."""
    key = re.sub(r"^encoder\.", "features.", key)
    return re.sub(r"^temporal\.", "temporal_lstm." if head == "lstm" else "temporal_rnn.", key)


def build_official(networks, head: str, im_size: tuple[int, int], num_classes: int) -> torch.nn.Module:
    """``networks.VideoConvNet*`` with get_network's arguments (utils.py:598-607, 512-514)."""
    return getattr(networks, CLASSES[head])(channel=3, num_classes=num_classes, net_width=128, net_depth=3,
                                            net_act="relu", net_norm="instancenorm", net_pooling="avgpooling",
                                            im_size=im_size)


def official_input(x: torch.Tensor) -> torch.Tensor:
    """videodd ``(N, C, T, H, W)`` -> the official ``(N, T, C, H, W)``, cropped as ``utils.epoch`` at 112."""
    img = x.permute(0, 2, 1, 3, 4).contiguous()  # (N, T, C, H, W)
    if img.shape[-1] == 112:
        img = img[:, :, :, 24:-24, 24:-24]  # utils.py:769
    return img


def make(official: OfficialCode, out_dir: Path) -> Path:
    networks = official.module("networks")
    helpers = parity_helpers()
    tensors, cases = {}, {}
    for head, (shape, wseed, xseed) in CASES.items():
        model = create_model(f"convnet-{head}-published", NUM_CLASSES, shape).eval()
        state = helpers.seeded_state(model, wseed)
        model.load_state_dict(state)
        x = helpers.seeded_uniform((CLIPS, *shape), xseed, INPUT_BOUND)
        img = official_input(x)
        net = build_official(networks, head, tuple(img.shape[-2:]), NUM_CLASSES).eval()
        net.load_state_dict({official_key(k, head): v for k, v in state.items()})
        with torch.no_grad():
            logits, embed = net(img), net.embed(img)
            ours = (model(x) - logits).abs().max().item(), (model.embed(x) - embed).abs().max().item()
        print(f"  {head} {shape}: videodd - official max |diff| logits {ours[0]:.2e}, embed {ours[1]:.2e}")
        tensors[f"{head}.logits"], tensors[f"{head}.embed"] = logits, embed
        cases[head] = {"shape": list(shape), "weight_seed": wseed, "input_seed": xseed,
                       "checksum": helpers.checksum({**state, "input": x}), "official_im_size": list(img.shape[-2:])}
    params = {}
    with torch.device("meta"):  # shapes only: the LSTM alone has 538 M parameters
        for head in CLASSES:
            net = build_official(networks, head, (64, 64), 50)
            params[head] = sum(p.numel() for p in net.parameters())
    print(f"  parameters at 16x64x64, 50 classes: {params}")
    # the official class built for the dataset's im_size (112, 112), given the frames utils.epoch crops
    net112 = build_official(networks, "mean", (112, 112), NUM_CLASSES)
    try:
        net112(official_input(torch.zeros(1, 3, 1, 112, 112)))
        at_112 = "runs"
    except RuntimeError as err:
        at_112 = f"RuntimeError: {err}"
    print(f"  VideoConvNetMean(im_size=(112, 112)) on the cropped frames: {at_112}")
    return save_fixture(NAME, tensors, official, sources=SOURCES, out_dir=out_dir, num_classes=NUM_CLASSES,
                        clips=CLIPS, input_bound=INPUT_BOUND, crop=CROP, cases=cases, params_16x64x64_50=params,
                        official_im_size_112_on_cropped=at_112,
                        weights="tests/parity.py:seeded_state(videodd convnet-HEAD-published, weight_seed)",
                        inputs="tests/parity.py:seeded_uniform((clips, C, T, H, W), input_seed, input_bound)")
