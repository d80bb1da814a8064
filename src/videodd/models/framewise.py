"""Frame-wise ConvNets: the 2D ConvNet of image distillation (DC/DM) run on every frame, with the
frame features fused over time by a head (the "ConvNet+Mean/MLP/LSTM/RNN/GRU" rows of the
cross-architecture tables of Wang et al., CVPR 2024), and the same ConvNet on single images.

Frame encoder, per frame ``(3, H, W)``: 3 blocks of ``Conv2d(3x3, width 128, pad 1)``,
``GroupNorm(128, 128)`` (= instance norm with affine, as DC/DM write it), ReLU,
``AvgPool2d(2)``; the map ``(128, H/8, W/8)`` is flattened to ``F = 128 * H/8 * W/8`` features
(2,048 at 32x32, 8,192 at 64x64, 25,088 at 112x112). The ``convnet-s-*`` family is the same at
width 32, for CPU runs at 8x32x32 (the cross-architecture rows next to ``convnet3d-s``).

Heads over the ``T`` frame features ``(N, T, F)``; ``embed`` returns the fused feature:

- ``mean``: average over time -> ``(N, F)`` -> linear. Order-free.
- ``mlp``: concatenate over time -> ``(N, T*F)`` -> Linear(T*F, 128) -> ReLU -> ``(N, 128)`` -> linear.
- ``lstm`` / ``rnn`` / ``gru``: one-layer ``torch.nn`` recurrent net, hidden 128; the last hidden
  state ``(N, 128)`` -> linear.

The released code of Wang et al. differs in the fusion details (its "MLP" is a learned per-feature
weighting of the frames; its recurrent heads average the outputs over time, hidden = F or F/8);
those sizes explode at 112x112 (an LSTM with hidden 25,088), so these CPU-scale heads use hidden 128.

The released models themselves are ``convnet-{mean,mlp,lstm,rnn,gru}-published``
(:class:`PublishedFramewise`): official ``networks.py`` VideoConvNetMean/MLP/LSTM/RNN/GRU
(lines 537-723) with ``get_network``'s settings (utils.py:512-514: width 128, depth 3, relu,
instancenorm = ``GroupNorm(128, 128)``, avgpooling), in videodd's ``(N, C, T, H, W)`` layout, and
the official centre crop of 24 px per side as part of the model at 112x112 (``utils.epoch`` crops
every 'Video' model's input, ``img[:, :, :, 24:-24, 24:-24]``, utils.py:768-769 and 797-798). At
16x112x112 (seen as 64x64, F = 8,192) and 50 classes they have 709,170 / 848,434 / 537,645,618 /
9,790,002 / 28,668,466 parameters (mean / mlp / lstm / rnn / gru).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from videodd.models.base import register_model

HEADS = ("mean", "mlp", "lstm", "rnn", "gru")
_RECURRENT = {"lstm": nn.LSTM, "rnn": nn.RNN, "gru": nn.GRU}


def frame_encoder(channels: int, width: int = 128, depth: int = 3) -> nn.Sequential:
    """The DC/DM image ConvNet trunk: ``depth`` x (conv 3x3, instance norm, ReLU, avg-pool 2)."""
    layers: list[nn.Module] = []
    for d in range(depth):
        layers += [
            nn.Conv2d(channels if d == 0 else width, width, kernel_size=3, padding=1),
            nn.GroupNorm(width, width, affine=True),
            nn.ReLU(inplace=True),
            nn.AvgPool2d(2),
        ]
    return nn.Sequential(*layers)


def encode_frames(encoder: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``(N, C, T, H, W) -> (N, T, F)``: ``encoder`` applied to every frame independently, flattened."""
    n, c, t, h, w = x.shape
    frames = x.transpose(1, 2).reshape(n * t, c, h, w)  # (N*T, C, H, W), frame-major per video
    return encoder(frames).reshape(n, t, -1)  # (N, T, F)


def _frame_features(height: int, width: int, channels: int, depth: int) -> int:
    h, w = height >> depth, width >> depth  # each avg-pool 2 floors the size
    if h < 1 or w < 1:
        raise ValueError(f"frames of {height}x{width} are too small for {depth} pooling blocks")
    return channels * h * w


class FramewiseConvNet(nn.Module):
    """2D ConvNet on every frame, fused over time by ``head`` (one of ``HEADS``).

    Args:
        num_classes: K.
        input_shape: (C, T, H, W); T is fixed for the ``mlp`` head (it concatenates frames).
        head: temporal fusion, see the module docstring.
        width, depth: of the frame encoder.
        hidden: size of the ``mlp`` hidden layer and of the recurrent state.
    """

    def __init__(self, num_classes: int, input_shape: Sequence[int], head: str = "mean", width: int = 128,
                 depth: int = 3, hidden: int = 128) -> None:
        super().__init__()
        if head not in HEADS:
            raise ValueError(f"unknown temporal head {head!r}; valid: {', '.join(HEADS)}")
        channels, frames, height, width_px = input_shape
        self.head, self.input_shape, self.num_classes = head, tuple(input_shape), num_classes
        self.encoder = frame_encoder(channels, width, depth)
        feat = _frame_features(height, width_px, width, depth)
        if head == "mean":
            self.fuse: nn.Module = nn.Identity()
            out = feat
        elif head == "mlp":
            self.fuse = nn.Sequential(nn.Linear(frames * feat, hidden), nn.ReLU(inplace=True))
            out = hidden
        else:
            self.fuse = _RECURRENT[head](feat, hidden, num_layers=1, batch_first=True)
            out = hidden
        self.classifier = nn.Linear(out, num_classes)

    def frame_features(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, C, T, H, W) -> (N, T, F)``: the encoder applied to every frame independently."""
        return encode_frames(self.encoder, x)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """The fused feature ``(N, F')`` before the classifier."""
        feats = self.frame_features(x)  # (N, T, F)
        if self.head == "mean":
            return feats.mean(dim=1)  # (N, F)
        if self.head == "mlp":
            if feats.shape[1] != self.input_shape[1]:
                raise ValueError(f"convnet-mlp was built for {self.input_shape[1]} frames, got {feats.shape[1]}")
            return self.fuse(feats.flatten(1))  # (N, T*F) -> (N, hidden)
        _, state = self.fuse(feats)  # state: h_T (layers, N, hidden); (h_T, c_T) for an LSTM
        h_last = state[0] if isinstance(state, tuple) else state
        return h_last[-1]  # (N, hidden): the last layer's state after the last frame

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.embed(x))


class ConvNet2D(nn.Module):
    """The DC/DM image ConvNet (frame encoder + linear) for still frames.

    Takes images ``(N, C, H, W)`` or single-frame videos ``(N, C, 1, H, W)``, so that a stage that
    distils still frames can use the video code paths unchanged; ``input_shape`` is ``(C, H, W)``
    or ``(C, 1, H, W)``. For clips of several frames use ``convnet-mean``.
    """

    def __init__(self, num_classes: int, input_shape: Sequence[int], width: int = 128, depth: int = 3) -> None:
        super().__init__()
        if len(input_shape) == 4:
            if input_shape[1] != 1:
                raise ValueError(f"convnet2d is an image model: input_shape {tuple(input_shape)} has "
                                 f"{input_shape[1]} frames (want 1, or use convnet-mean for clips)")
            input_shape = (input_shape[0], *input_shape[2:])
        channels, height, width_px = input_shape
        self.input_shape, self.num_classes = tuple(input_shape), num_classes
        self.encoder = frame_encoder(channels, width, depth)
        self.classifier = nn.Linear(_frame_features(height, width_px, width, depth), num_classes)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, C, H, W)`` or ``(N, C, 1, H, W)`` -> ``(N, F)``."""
        if x.ndim == 5:
            if x.shape[2] != 1:
                raise ValueError(f"convnet2d takes single frames, got {x.shape[2]} frames")
            x = x.squeeze(2)  # (N, C, 1, H, W) -> (N, C, H, W)
        return self.encoder(x).flatten(1)  # (N, width * H/8 * W/8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.embed(x))


# CPU-scale width of the ``convnet-s-*`` family: at width 128 one SGD step on 10 clips of 8x32x32
# takes ~0.74 s on one core (14x convnet3d-s), at 32 ~0.10 s (benchmarks/RESULTS.md, section 7).
SMALL_WIDTH = 32


def _register(head: str, doc: str) -> None:
    def factory(num_classes: int, input_shape: tuple[int, ...], **kw) -> FramewiseConvNet:
        return FramewiseConvNet(num_classes, input_shape, head=head, **kw)

    def small(num_classes: int, input_shape: tuple[int, ...], **kw) -> FramewiseConvNet:
        return FramewiseConvNet(num_classes, input_shape, head=head, **{"width": SMALL_WIDTH, **kw})

    factory.__doc__ = doc
    small.__doc__ = doc.replace("conv-128", f"conv-{SMALL_WIDTH}") + " CPU-scale width."
    register_model(f"convnet-{head}")(factory)
    register_model(f"convnet-s-{head}")(small)


_register("mean", "Frame-wise 2D ConvNet (3x conv-128, instance norm), frame features averaged over time.")
_register("mlp", "Frame-wise 2D ConvNet, frame features concatenated over time, MLP (hidden 128).")
_register("lstm", "Frame-wise 2D ConvNet, frame features fused by an LSTM (hidden 128, last state).")
_register("rnn", "Frame-wise 2D ConvNet, frame features fused by a tanh RNN (hidden 128, last state).")
_register("gru", "Frame-wise 2D ConvNet, frame features fused by a GRU (hidden 128, last state).")


# -- the released models (networks.py VideoConvNet*) -------------------------------------------------------

PUBLISHED_CROP = 24
"""Pixels cut from each side of a 112x112 frame (utils.py:768-769, 797-798): the models see 64x64."""
FEAT_FACTOR = 8
"""The RNN and GRU hidden size is F // 8 (networks.py:678, 703)."""
PUBLISHED_MIN = (3, 16, 16, 16)
"""Where the generic model tests build the published family: 16 frames (VideoConvNetMLP's fixed count,
networks.py:541) of 16 px, no crop. At 64 px the LSTM has 538 M parameters (2 GB), too large for a unit
test; its published size is counted on the meta device (tests/test_models.py)."""


class PublishedFramewise(nn.Module):
    """The frame-wise ConvNets of the released code (networks.py:537-723), ``head`` one of ``HEADS``.

    Frame encoder: ``_make_layers`` (networks.py:604-623) with width 128, depth 3, GroupNorm(128, 128),
    ReLU, AvgPool2d(2) (:func:`frame_encoder`; the same layer indices as the official ``features``). Over
    the ``T`` frame features ``(N, T, F)``:

    - ``mean``: the mean over time (networks.py:556-565); classifier Linear(F, K).
    - ``mlp``: a per-feature weighting of the frames, ``out[n, f] = sum_t x[n, t, f] w[f, t] + b[f]``,
      with ``w`` ``(F, T, 1)`` and ``b`` ``(F, 1)`` initialised by ``torch.randn`` as published
      (networks.py:630-646; no hidden layer, no nonlinearity); classifier Linear(F, K). The official class
      fixes T = 16 (networks.py:541); here T is the input's, 16 at the published size.
    - ``lstm``: ``nn.LSTM(F, F)``, outputs averaged over time (networks.py:649-673); Linear(F, K).
    - ``rnn`` / ``gru``: ``nn.RNN`` (tanh) / ``nn.GRU`` with hidden F // 8, outputs averaged over time
      (networks.py:676-723); Linear(F // 8, K).

    Args:
        num_classes: K.
        input_shape: (C, T, H, W) of the clips the model is given.
        head: temporal fusion.
        crop: pixels cut from each side of every frame before the encoder; ``None``: 24 at 112x112 (the
            official ``utils.epoch`` crop, which the official trainer applies to the input of every 'Video'
            model), 0 otherwise. The official code builds the class for ``im_size`` while ``utils.epoch``
            feeds it the cropped frames; the published parameter counts are those of the class built for
            the cropped 64x64 frames, which is what this builds.

    Note: ``utils.epoch`` z-scores each batch after the crop (utils.py:768-770); a trainer that z-scores
    before the model normalises the uncropped frames.
    """

    def __init__(self, num_classes: int, input_shape: Sequence[int], head: str = "mean", crop: int | None = None
                 ) -> None:
        super().__init__()
        if head not in HEADS:
            raise ValueError(f"unknown temporal head {head!r}; valid: {', '.join(HEADS)}")
        channels, frames, height, width = input_shape
        if crop is None:
            crop = PUBLISHED_CROP if (height, width) == (112, 112) else 0
        if crop < 0 or 2 * crop >= min(height, width):
            raise ValueError(f"crop {crop} does not fit frames of {height}x{width}")
        self.head, self.crop, self.input_shape, self.num_classes = head, crop, tuple(input_shape), num_classes
        self.encoder = frame_encoder(channels, 128, 3)
        feat = _frame_features(height - 2 * crop, width - 2 * crop, 128, 3)
        out = feat
        if head == "mlp":
            self.temporal_weight = nn.Parameter(torch.randn(feat, frames, 1))
            self.temporal_bias = nn.Parameter(torch.randn(feat, 1))
        elif head == "lstm":
            self.temporal = nn.LSTM(feat, feat, num_layers=1, batch_first=True)
        elif head in ("rnn", "gru"):
            out = feat // FEAT_FACTOR
            self.temporal = _RECURRENT[head](feat, out, num_layers=1, batch_first=True)
        self.classifier = nn.Linear(out, num_classes)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """The fused feature ``(N, F)`` (``(N, F // 8)`` for rnn/gru) before the classifier."""
        if self.crop:
            c = self.crop
            x = x[..., c:-c, c:-c]  # (N, C, T, H - 2c, W - 2c): the official centre crop
        feats = encode_frames(self.encoder, x)  # (N, T, F)
        if self.head == "mean":
            return feats.mean(dim=1)  # (N, F)
        if self.head == "mlp":
            if feats.shape[1] != self.temporal_weight.shape[1]:
                raise ValueError(f"convnet-mlp-published was built for {self.temporal_weight.shape[1]} frames, "
                                 f"got {feats.shape[1]}")
            return torch.einsum("ntf,ft->nf", feats, self.temporal_weight[..., 0]) + self.temporal_bias[:, 0]
        out, _ = self.temporal(feats)  # (N, T, hidden); zero initial state, as published
        return out.mean(dim=1)  # (N, hidden): the outputs averaged over time

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.embed(x))


def _register_published(head: str, doc: str) -> None:
    def factory(num_classes: int, input_shape: tuple[int, ...], **kw) -> PublishedFramewise:
        return PublishedFramewise(num_classes, input_shape, head=head, **kw)

    factory.__doc__ = doc + " 112x112 frames are centre-cropped to 64x64, as published; see PublishedFramewise."
    register_model(f"convnet-{head}-published", min_input=PUBLISHED_MIN)(factory)


# parameter counts at 16x112x112 (seen as 64x64) and 50 classes
_register_published("mean", "The released VideoConvNetMean: frame features averaged over time (0.71 M).")
_register_published("mlp", "The released VideoConvNetMLP: a learned per-feature weighting of 16 frames (0.85 M).")
_register_published("lstm", "The released VideoConvNetLSTM: LSTM(F, F), outputs averaged over time (538 M).")
_register_published("rnn", "The released VideoConvNetRNN: RNN(F, F/8), outputs averaged over time (9.8 M).")
_register_published("gru", "The released VideoConvNetGRU: GRU(F, F/8), outputs averaged over time (28.7 M).")


@register_model("convnet2d", min_input=(3, 1, 32, 32))  # still frames: T = 1
def convnet2d(num_classes: int, input_shape: tuple[int, ...], **kw) -> ConvNet2D:
    """The DC/DM image ConvNet (3x conv-128, instance norm) on still frames (N, C, H, W) or (N, C, 1, H, W)."""
    return ConvNet2D(num_classes, input_shape, **kw)
