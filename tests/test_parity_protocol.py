"""The ``published`` protocol against the official evaluation (``tests/fixtures/parity/protocol.safetensors``,
made by ``python -m benchmarks.parity.make_fixtures --official DIR --only protocol``).

Both sides train the same tiny network from the same weights on the same pixels: the official
``utils.evaluate_synset`` on the ImageNet-normalized clips, videodd's :func:`fit` with the published
``TrainConfig`` on the clips in a store's own normalization (renormalized to ImageNet's). The final weights
agree to ``WEIGHT_ATOL`` (float32 rounding over 501 epochs: the two sides sum each batch's loss in another
order; measured 7e-7). Reverting any of the z-score, the renormalization, the 501st epoch or the optimizer
reset moves them by 4e-4 or more.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from parity import load_fixture
from videodd.data.store import normalize_uint8
from videodd.protocol import get_protocol, predict_test_set
from videodd.seeding import make_generator
from videodd.train import Renormalize, TensorData, fit, zscore_batch

#: the largest difference allowed between the official and videodd's final weights
WEIGHT_ATOL = 1e-5


class TinyNet(nn.Module):
    """benchmarks/parity/components/protocol.py's network."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv3d(3, 4, (1, 3, 3), padding=(0, 1, 1))
        self.fc = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(F.relu(self.conv(x)).mean(dim=(2, 3, 4)))


def _fixture():
    tensors, meta = load_fixture("protocol")
    return tensors, meta["meta"]


def _store_space(pixels: torch.Tensor, meta: dict) -> torch.Tensor:
    """uint8 ``(N, C, T, H, W)`` -> the store's normalization, as ``ClipStore.batch`` gives clips."""
    return normalize_uint8(pixels.permute(0, 2, 3, 4, 1), meta["store_mean"], meta["store_std"])  # (N, T, H, W, C) in


def _net(tensors: dict, prefix: str) -> TinyNet:
    net = TinyNet()
    net.load_state_dict({k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)})
    return net


def _train(cfg=None) -> tuple[TinyNet, dict, dict]:
    tensors, meta = _fixture()
    cfg = cfg or get_protocol("published").train
    net = _net(tensors, "init.")
    data = TensorData(_store_space(tensors["train_pixels"], meta), tensors["train_labels"])
    fit(net, data, cfg, generator=make_generator(0), normalization=(meta["store_mean"], meta["store_std"]))
    return net, tensors, meta


def _max_weight_difference(net: nn.Module, tensors: dict) -> float:
    final = {k[len("final."):]: v for k, v in tensors.items() if k.startswith("final.")}
    return max(float((net.state_dict()[k] - v).abs().max()) for k, v in final.items())


def test_published_training_reaches_the_official_weights():
    net, tensors, _ = _train()
    assert _max_weight_difference(net, tensors) < WEIGHT_ATOL


def test_the_published_schedule_is_the_official_one():
    """501 epochs, the lr x0.1 after 252 of them, a new optimizer there, batch 256, SGD 0.9 / 5e-4."""
    cfg = get_protocol("published").train
    assert (cfg.epochs, cfg.milestones(), cfg.lr_gamma, cfg.optimizer_reset) == (501, [252], 0.1, True)
    assert (cfg.batch_size, cfg.lr, cfg.momentum, cfg.weight_decay) == (256, 0.01, 0.9, 5e-4)
    assert cfg.batch_zscore and cfg.renormalize == "imagenet" and cfg.flip == 0.0


def test_reverting_a_published_choice_moves_the_weights():
    """Each of the z-score, the ImageNet renormalization, the 501st epoch and the momentum reset changes the final
    weights by more than the tolerance (the smallest, the 501st epoch, by about 4e-4): the parity test above
    would fail without any one of them."""
    cfg = get_protocol("published").train
    for wrong in (dataclasses.replace(cfg, batch_zscore=False), dataclasses.replace(cfg, renormalize=None),
                  dataclasses.replace(cfg, epochs=500), dataclasses.replace(cfg, optimizer_reset=False)):
        net, tensors, _ = _train(wrong)
        assert _max_weight_difference(net, tensors) > 10 * WEIGHT_ATOL, wrong


def test_zscore_of_a_batch_is_the_official_one():
    """ImageNet renormalization then the per-batch z-score give the input the official ``epoch`` feeds the net."""
    tensors, meta = _fixture()
    x = _store_space(tensors["zscore_pixels"], meta)
    ours = zscore_batch(Renormalize.to("imagenet", meta["store_mean"], meta["store_std"])(x))
    torch.testing.assert_close(ours, tensors["zscore_official_input"], rtol=0, atol=1e-5)
    with torch.no_grad():
        loss = F.cross_entropy(_net(tensors, "init.")(ours), tensors["test_labels"][:5])
    assert abs(float(loss) - float(tensors["zscore_official_loss"])) < 1e-5


class _TensorStore:
    """Just enough of a ClipStore for the test: fixed clips (a TensorDataset, as the fixture's test set)."""

    def __init__(self, videos: torch.Tensor, labels: torch.Tensor, mean, std) -> None:
        self.videos, self.labels = videos, labels.numpy()
        self.meta = type("Meta", (), {"mean": list(mean), "std": list(std)})()

    def __len__(self) -> int:
        return len(self.videos)

    def batch(self, indices, device="cpu"):
        return self.videos[torch.as_tensor(np.asarray(indices))].to(device)

    def labels_tensor(self, indices=None):
        return torch.from_numpy(self.labels if indices is None else self.labels[np.asarray(indices)])


def test_published_test_of_the_official_model_is_the_official_test():
    """The official final network under videodd's published test (3 passes, batches of 64 z-scored on their
    own) gives the official test accuracy and loss. The fixture's test set is a TensorDataset, read without
    flips: the flips are the official loaders', so they are off here."""
    tensors, meta = _fixture()
    store = _TensorStore(_store_space(tensors["test_pixels"], meta), tensors["test_labels"], meta["store_mean"],
                         meta["store_std"])
    protocol = dataclasses.replace(get_protocol("published"), test_flip=0.0)
    pred = predict_test_set(_net(tensors, "final."), store, protocol, run_seed=0, renormalize="imagenet")
    assert len(pred.labels) == 3 * len(store)  # three passes
    assert abs(pred.topk(1) - float(tensors["official_test_acc"])) < 1e-6  # one clip of 210 is 5e-3
    loss = F.cross_entropy(pred.logits, pred.labels)
    assert abs(float(loss) - float(tensors["official_test_loss"])) < 1e-5
