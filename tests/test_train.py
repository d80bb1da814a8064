import numpy as np
import pytest
import torch

from videodd.models import create_model
from videodd.seeding import make_generator, seeded
from videodd.train import StoreData, TensorData, TrainConfig, fit, loss_fn, predict


def _model(gen, k=3):
    with seeded(gen):
        return create_model("convnet3d-s", num_classes=k, input_shape=(3, 4, 32, 32))


def test_fit_learns_and_is_deterministic(tiny_stores):
    train, test = tiny_stores
    cfg = TrainConfig(epochs=15, batch_size=6, lr=0.01)
    runs = []
    for _ in range(2):
        gen = make_generator(7)
        model = _model(gen)
        res = fit(model, StoreData(train), cfg, generator=gen)
        runs.append((model, res))
    (m1, r1), (m2, r2) = runs
    assert r1.epoch_losses == r2.epoch_losses  # same seed, same run
    assert all(torch.equal(a, b) for a, b in zip(m1.state_dict().values(), m2.state_dict().values(), strict=True))
    assert r1.epoch_losses[-1] < r1.epoch_losses[0]
    assert r1.steps == 15 * 3


def test_soft_labels_equal_cross_entropy_for_one_hot():
    logits = torch.randn(5, 4)
    hard = torch.tensor([0, 3, 1, 2, 3])
    soft = torch.nn.functional.one_hot(hard, 4).float()
    assert torch.allclose(loss_fn(logits, hard), loss_fn(logits, soft))


def test_lr_schedule_steps_at_half():
    seen = []
    gen = make_generator(0)
    model = _model(gen)
    data = TensorData(torch.randn(4, 3, 4, 32, 32), torch.tensor([0, 1, 2, 0]))

    def record(epoch, m):
        seen.append(opt_lr[0])

    opt_lr = [None]
    import videodd.train as train_mod

    orig = train_mod.torch.optim.SGD

    class Spy(orig):
        def step(self, *a, **k):
            opt_lr[0] = self.param_groups[0]["lr"]
            return super().step(*a, **k)

    train_mod.torch.optim.SGD = Spy
    try:
        fit(model, data, TrainConfig(epochs=4, batch_size=4, lr=0.1), generator=gen, on_epoch_end=record)
    finally:
        train_mod.torch.optim.SGD = orig
    assert [round(x, 6) for x in seen] == [0.1, 0.1, 0.01, 0.01]


def test_predict_topk_and_per_class(tiny_stores):
    _, test = tiny_stores
    model = _model(make_generator(0))
    pred = predict(model, StoreData(test), batch_size=5)
    assert pred.logits.shape == (len(test), 3)
    assert pred.topk(3) == 1.0  # K = 3: the true class is always in the top 3
    per_class = pred.per_class(3)
    assert abs(sum(per_class) / 3 - pred.topk(1)) < 1e-6  # balanced test set


def test_divergence_is_detected_and_reported():
    gen = make_generator(0)
    model = _model(gen)
    x = torch.randn(4, 3, 4, 32, 32, generator=make_generator(1)) * 1e3
    res = fit(model, TensorData(x, torch.tensor([0, 1, 2, 0])), TrainConfig(epochs=50, batch_size=4, lr=1e3),
              generator=gen)
    assert res.diverged_at_epoch is not None and res.diverged_at_epoch < 50
    import math

    assert math.isnan(res.epoch_losses[-1]) and len(res.epoch_losses) == res.diverged_at_epoch

    from videodd.evaluate import RunResult, Summary

    s = Summary([RunResult(0, 0.1, 0.5, [0.1], float("nan"), 1.0, diverged_at_epoch=3),
                 RunResult(1, 0.3, 0.5, [0.3], 0.1, 1.0)])
    assert s.diverged == 1 and "(1 diverged)" in s.fmt()


def test_resident_clips_gather_the_same_batches(tiny_stores):
    """A store copied to the device (on a GPU; here the CPU) gives exactly the memmap's batches."""
    import numpy as np

    from videodd.data.clips import ResidentClips, resident

    train, _ = tiny_stores
    copy = ResidentClips(train, "cpu")
    idx = np.array([5, 0, 7, 7])
    assert torch.equal(copy.batch(idx), train.batch(idx))
    assert copy.fingerprint == train.fingerprint and len(copy) == len(train) and copy.num_classes == 3
    assert resident(train, "cpu") is train  # a CPU reads the memmap through the page cache


@pytest.mark.parametrize("kind", ["fp32", "tf32", "bf16"])
def test_precision_on_a_cpu(kind):
    """fp32 and tf32 are float32 on a CPU; bf16 is bfloat16 autocast there too."""
    from videodd.train import precision

    with precision(kind, torch.device("cpu")):
        want = torch.bfloat16 if kind == "bf16" else torch.float32
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == want
    assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.float32  # only inside the block
    with pytest.raises(ValueError, match="unknown precision"), precision("fp8", torch.device("cpu")):
        pass


def test_protocols_record_their_precision():
    from videodd.evaluate import get_protocol

    assert get_protocol("vdsd").precision == "tf32" and get_protocol("default").precision == "tf32"
    assert get_protocol("cpu").precision == "fp32" and get_protocol("fast").precision == "bf16"


def test_runs_trained_at_once_equal_runs_trained_one_by_one(tiny_stores):
    """fit_runs (vmap over stacked parameters) makes each run's updates exactly as fit does, for a network
    without dropout: the same weights, batch-norm statistics and losses, to float rounding."""
    from videodd.seeding import make_generator, seeded
    from videodd.train import fit_runs

    train, _ = tiny_stores
    cfg = TrainConfig(epochs=3, batch_size=5, lr=0.05, momentum=0.9, weight_decay=5e-4, lr_milestones=(0.5,))
    datas = [StoreData(train, np.arange(r, 18, 2)) for r in range(2)]  # each run its own data (9 clips)

    def models():
        out = []
        for seed in (3, 4):
            with seeded(make_generator(seed)):
                out.append(create_model("convnet3d-s-bn", 3, train.video_shape, dropout=0.0))
        return out

    one_by_one = models()
    sequential = [fit(m, d, cfg, generator=make_generator(seed)) for m, d, seed in
                  zip(one_by_one, datas, (3, 4), strict=True)]
    together = models()
    parallel = fit_runs(together, datas, cfg, generators=[make_generator(3), make_generator(4)])
    for a, b, ra, rb in zip(one_by_one, together, sequential, parallel, strict=True):
        for (name, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
            assert torch.allclose(x.float(), y.float(), atol=1e-5, rtol=1e-4), name
        assert np.allclose(ra.epoch_losses, rb.epoch_losses, rtol=1e-5) and ra.steps == rb.steps
