"""The published evaluation: the official ``utils.evaluate_synset`` (training) and ``utils.epoch`` (the test and
its per-batch z-score) on a tiny network, for ``tests/test_parity_protocol.py``.

Both sides start from the same weights (stored in the fixture) and the same uint8 pixels. The official side
gets them in the ImageNet normalization, as its loaders make them (``transforms.Normalize``); videodd gets them
in a store's own normalization (``STORE_MEAN``/``STORE_STD``) and renormalizes (``TrainConfig.renormalize``).
The training set (6 clips) is smaller than the batch (256): one batch per epoch, so the official DataLoader's
shuffle changes the gradient only by float rounding. The test set is a ``TensorDataset`` (no random reads):
70 clips, so batches of 64 and 6, each z-scored on its own.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from benchmarks.parity.common import OfficialCode, save_fixture, torch_seed

NAME = "protocol"
SHAPE = (3, 4, 8, 8)  # (C, T, H, W): the layout does not matter to a scalar z-score
CLASSES = 3
TRAIN_PER_CLASS, TEST_CLIPS = 2, 70
STORE_MEAN, STORE_STD = (0.45, 0.5, 0.55), (0.2, 0.25, 0.3)
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


class TinyNet(nn.Module):
    """A 3x3 convolution, ReLU, global mean, linear: no dropout, no normalization (the same in train and eval).
    ``tests/test_parity_protocol.py`` defines the same network."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv3d(SHAPE[0], 4, (1, 3, 3), padding=(0, 1, 1))
        self.fc = nn.Linear(4, CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(F.relu(self.conv(x)).mean(dim=(2, 3, 4)))


class Recorder(nn.Module):
    """The network, keeping every input it is given (the z-scored batch the official ``epoch`` feeds it)."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net, self.seen = net, []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.append(x.detach().clone())
        return self.net(x)


def imagenet(pixels: torch.Tensor) -> torch.Tensor:
    """uint8 ``(N, C, T, H, W)`` -> the official loaders' floats: ``ToTensor`` then ``Normalize`` (ImageNet)."""
    m = torch.tensor(IMAGENET_MEAN).view(1, -1, 1, 1, 1)
    s = torch.tensor(IMAGENET_STD).view(1, -1, 1, 1, 1)
    return (pixels.float() / 255.0 - m) / s


def make(official: OfficialCode, out_dir: Path) -> Path:
    utils = official.module("utils")
    gen = torch.Generator().manual_seed(27)
    # pixels with a class signal (a brightness offset per class), so that training moves the test accuracy
    labels = torch.arange(CLASSES).repeat_interleave(TRAIN_PER_CLASS)
    test_labels = torch.randint(0, CLASSES, (TEST_CLIPS,), generator=gen)

    def pixels(lab: torch.Tensor) -> torch.Tensor:
        noise = torch.randint(0, 160, (len(lab), *SHAPE), generator=gen)
        return (noise + 4 * lab.view(-1, 1, 1, 1, 1)).clamp(0, 255).to(torch.uint8)

    train_px, test_px = pixels(labels), pixels(test_labels)
    with torch_seed(0):
        init = {k: v.clone() for k, v in TinyNet().state_dict().items()}

    args = argparse.Namespace(lr_net=0.01, epoch_eval_train=500, batch_train=256, device="cpu", model="ConvNet3D",
                              eval_mode="S")
    net = TinyNet()
    net.load_state_dict(init)
    testloader = torch.utils.data.DataLoader(utils.TensorDataset(imagenet(test_px), test_labels), batch_size=64,
                                             shuffle=False)
    with torch_seed(0):  # the official DataLoader shuffles with the global RNG
        net, acc_train, acc_test, _ = utils.evaluate_synset(0, net, imagenet(train_px), labels, testloader, args,
                                                            mode="none")
    criterion = nn.CrossEntropyLoss()
    with torch.no_grad():
        loss_test, acc_again, _ = utils.epoch("test", testloader, net, None, criterion, args)
    assert abs(acc_again - acc_test) < 1e-12  # a TensorDataset test set: every pass reads the same clips

    # the z-score on one fixed batch of 5 clips (initial weights)
    batch_px = test_px[:5].clone()
    probe = TinyNet()
    probe.load_state_dict(init)
    rec = Recorder(probe)
    loader = torch.utils.data.DataLoader(utils.TensorDataset(imagenet(batch_px), test_labels[:5]), batch_size=64,
                                         shuffle=False)
    with torch.no_grad():
        loss_batch, acc_batch, _ = utils.epoch("test", loader, rec, None, criterion, args)

    tensors = {
        "train_pixels": train_px, "train_labels": labels, "test_pixels": test_px, "test_labels": test_labels,
        **{f"init.{k}": v for k, v in init.items()},
        **{f"final.{k}": v.detach() for k, v in net.state_dict().items()},
        "official_test_acc": torch.tensor(float(acc_test), dtype=torch.float64),
        "official_test_loss": torch.tensor(float(loss_test), dtype=torch.float64),
        "official_train_acc": torch.tensor(float(acc_train), dtype=torch.float64),
        "zscore_pixels": batch_px, "zscore_official_input": rec.seen[0],
        "zscore_official_loss": torch.tensor(float(loss_batch), dtype=torch.float64),
    }
    sources = {
        "final.*": "utils.py:848-888 (evaluate_synset, mode='none': 501 epochs, new SGD at x0.1 after index 251)",
        "official_test_acc": "utils.py:866-870 (the test after the last epoch) and 793-820 (epoch 'test', 3 passes)",
        "official_test_loss": "utils.py:752-846 (epoch 'test' on the final network)",
        "zscore_official_input": "utils.py:799 (img = (img - img.mean()) / img.std(), the test batch)",
        "zscore_official_loss": "utils.py:793-820",
    }
    return save_fixture(NAME, tensors, official, sources=sources, out_dir=out_dir, store_mean=STORE_MEAN,
                        store_std=STORE_STD, args=vars(args), seed_before_official=0,
                        network="conv3d 3->4 (1x3x3, pad 0,1,1), relu, mean over (T, H, W), linear 4->3")
