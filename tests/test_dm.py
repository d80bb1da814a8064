import torch

from videodd.distill import resolve_config
from videodd.objectives.dm import DistributionMatching, class_means, dm_loss
from videodd.seeding import make_generator
from videodd.synthesis.pixels import Pixels


def test_class_means_and_loss_by_hand():
    feats = torch.tensor([[1.0, 0.0], [3.0, 2.0], [5.0, 5.0]])
    labels = torch.tensor([0, 0, 1])
    assert torch.equal(class_means(feats, labels, 3), torch.tensor([[2.0, 1.0], [5.0, 5.0], [0.0, 0.0]]))
    syn = torch.tensor([[2.0, 3.0], [4.0, 5.0]])
    # class 0: (2,1) vs (2,3) -> 4 ; class 1: (5,5) vs (4,5) -> 1
    assert dm_loss(feats, labels, syn, torch.tensor([0, 1]), 2).item() == 5.0


def test_dm_one_forward_for_all_real_classes_and_gradients_reach_pixels(tiny_stores, monkeypatch):
    train, _ = tiny_stores
    cfg = resolve_config("dm", {"ipc": 2, "batch_real": 4})
    gen = make_generator(0)
    param = Pixels(train, 2, gen)
    objective = DistributionMatching(train, cfg, torch.device("cpu"))
    calls = []
    from videodd.models.convnet3d import ConvNet3D

    orig = ConvNet3D.embed

    def spy(self, x):
        calls.append(x.shape[0])
        return orig(self, x)

    monkeypatch.setattr(ConvNet3D, "embed", spy)
    out = objective.loss(param, gen)
    assert calls == [3 * 4, 3 * 2]  # one pass over every class's real clips, one over all synthetic
    out.loss.backward()
    assert param.videos.grad is not None and param.videos.grad.abs().sum() > 0
    assert out.loss.item() > 0


def test_dm_loss_is_zero_when_synthetic_equals_real_class_means(tiny_stores):
    """With no augmentation and the whole class as the real batch, a synthetic set holding all
    real clips of each class matches the class means exactly."""
    train, _ = tiny_stores
    per_class = int(train.class_counts()[0])
    cfg = resolve_config("dm", {"ipc": per_class, "batch_real": 100, "augment": ()})
    param = Pixels(train, per_class, make_generator(0))
    with torch.no_grad():
        param.videos.copy_(train.batch(list(range(len(train)))))  # store is sorted by class
    out = DistributionMatching(train, cfg, torch.device("cpu")).loss(param, make_generator(1))
    assert out.loss.item() < 1e-8
