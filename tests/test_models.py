import pytest
import torch

from videodd.models import create_model, list_models
from videodd.registry import UnknownNameError


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_convnet3d_matches_published_parameter_count():
    # conv1 3*64*3*7*7+64, conv2 64*128*147+128, conv3 128*128*147+128, head 128*50+50
    expected = (3 * 64 * 147 + 64) + (64 * 128 * 147 + 128) + (128 * 128 * 147 + 128) + (128 * 50 + 50)
    model = create_model("convnet3d", num_classes=50, input_shape=(3, 16, 112, 112))
    assert n_params(model) == expected == 3_647_666


@pytest.mark.parametrize(
    "shape, pool, feat", [((3, 16, 112, 112), (2, 2, 2), 128 * 2), ((3, 8, 64, 64), (2, 1, 1), 128)]
)
def test_convnet3d_shapes_at_published_sizes(shape, pool, feat):
    model = create_model("convnet3d", num_classes=50, input_shape=shape)
    assert model.pool.kernel_size == pool
    x = torch.randn(2, *shape)
    assert model(x).shape == (2, 50)
    assert model.embed(x).shape == (2, feat)
    # the features before the head: (128, 4, 2, 2) at 16x112x112, (128, 2, 1, 1) at 8x64x64
    fmap = model.features(x).shape[1:]
    assert fmap == ((128, 4, 2, 2) if shape[-1] == 112 else (128, 2, 1, 1))


def test_convnet3d_is_published_layer_stack():
    model = create_model("convnet3d", num_classes=10, input_shape=(3, 8, 64, 64))
    convs = [m for m in model.features if isinstance(m, torch.nn.Conv3d)]
    assert [(c.in_channels, c.out_channels) for c in convs] == [(3, 64), (64, 128), (128, 128)]
    assert all(c.kernel_size == (3, 7, 7) and c.stride == (1, 2, 2) and c.padding == (1, 3, 3) for c in convs)
    pools = [m.kernel_size for m in model.features if isinstance(m, torch.nn.MaxPool3d)]
    assert pools == [(1, 2, 2), (2, 2, 2), (2, 2, 2)]
    assert not any(isinstance(m, (torch.nn.BatchNorm3d, torch.nn.InstanceNorm3d)) for m in model.modules())
    assert model.dropout.p == 0.5


@pytest.mark.parametrize("name", list_models())
def test_every_model_forward_backward_embed(name):
    shape = (3, 8, 32, 32) if name.startswith("convnet3d-s") else (3, 8, 64, 64)
    torch.manual_seed(0)
    model = create_model(name, num_classes=5, input_shape=shape)
    x = torch.randn(3, *shape, requires_grad=True)
    logits = model(x)
    assert logits.shape == (3, 5)
    feats = model.embed(x)
    assert feats.ndim == 2 and feats.shape[0] == 3
    (logits.sum() + feats.sum()).backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)


def test_small_variant_works_at_cpu_size_where_published_does_not():
    create_model("convnet3d-s", num_classes=10, input_shape=(3, 8, 32, 32))
    with pytest.raises((ValueError, RuntimeError)):
        create_model("convnet3d", num_classes=10, input_shape=(3, 8, 32, 32))


def test_unknown_model_lists_valid_names():
    with pytest.raises(UnknownNameError, match="convnet3d"):
        create_model("resnet9000", num_classes=2, input_shape=(3, 8, 32, 32))
