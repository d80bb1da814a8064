import pytest
import torch

from videodd.models import auto_model, create_model, list_models, min_input
from videodd.registry import UnknownNameError


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_convnet3d_matches_published_parameter_count():
    # conv1 3*64*3*7*7+64, conv2 64*128*147+128, conv3 128*128*147+128, head 128*50+50
    expected = (3 * 64 * 147 + 64) + (64 * 128 * 147 + 128) + (128 * 128 * 147 + 128) + (128 * 50 + 50)
    model = create_model("convnet3d", num_classes=50, input_shape=(3, 16, 112, 112))
    assert n_params(model) == expected == 3_647_666


@pytest.mark.parametrize(
    "shape, pool, feat, head", [((3, 16, 112, 112), (2, 2, 2), 2048, 128 * 3), ((3, 8, 64, 64), (2, 1, 1), 256, 128)]
)
def test_convnet3d_shapes_at_published_sizes(shape, pool, feat, head):
    model = create_model("convnet3d", num_classes=50, input_shape=shape)
    assert model.pool.kernel_size == pool and model.pool.stride == (1, 1, 1)  # stride 1, as published
    x = torch.randn(2, *shape)
    assert model(x).shape == (2, 50)
    # DM's embedding: the trunk's output flattened (2048 / 256 values); the head's stride-1 pool keeps
    # 3 time steps at 16x112x112 (the named alternative embed_from="head")
    assert model.embed(x).shape == (2, feat)
    assert create_model("convnet3d", num_classes=50, input_shape=shape, embed_from="head").embed(x).shape == (2, head)
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
    shape = min_input(name)  # every model declares the smallest (C, T, H, W) it is built for
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


# Parameter counts (printed by test_new_models_parameter_counts with -s):
#   model          10 classes, 8x32x32   50 classes, 16x112x112
#   convnet-mean        320,010              1,553,970
#   convnet-mlp       2,398,090             51,686,322   (Linear(T*F, 128) on 16 x 25,088 features)
#   convnet-lstm      1,415,946             13,217,586
#   convnet-rnn         579,594              3,533,874
#   convnet-gru       1,137,162              9,989,682
#   convnet2d           320,010 (3x1x32x32)  1,553,970 (3x1x112x112)   = DC/DM ConvNet-3 on CIFAR-10
#   resnet3d-18      33,171,402             33,191,922   (= torchvision r3d_18's 33,371,472 at 400 classes)
#   resnet3d-18-s     2,081,274              2,086,434
NEW_COUNTS = {
    "convnet-mean": (320_010, 1_553_970),
    "convnet-mlp": (2_398_090, 51_686_322),
    "convnet-lstm": (1_415_946, 13_217_586),
    "convnet-rnn": (579_594, 3_533_874),
    "convnet-gru": (1_137_162, 9_989_682),
    "resnet3d-18": (33_171_402, 33_191_922),
    "resnet3d-18-s": (2_081_274, 2_086_434),
}
# fused feature size (embed) at 8x32x32 and 16x112x112
NEW_EMBED = {"convnet-mean": (2048, 25088), "resnet3d-18": (512, 512), "resnet3d-18-s": (128, 128)}


@pytest.mark.parametrize("name", sorted(NEW_COUNTS))
def test_new_models_shapes_and_parameter_counts(name):
    # meta tensors: shapes and counts without the compute (the real forward is tested above and below)
    for (k, shape), count, feat in zip(
        [(10, (3, 8, 32, 32)), (50, (3, 16, 112, 112))], NEW_COUNTS[name], NEW_EMBED.get(name, (128, 128)), strict=True
    ):
        with torch.device("meta"):
            model = create_model(name, num_classes=k, input_shape=shape)
            x = torch.empty(2, *shape)
            assert model(x).shape == (2, k) and model.embed(x).shape == (2, feat)
        print(f"{name} {k} classes {shape}: {n_params(model):,} parameters")
        assert n_params(model) == count


def test_resnet3d_runs_at_published_size_on_cpu():
    model = create_model("resnet3d-18", num_classes=50, input_shape=(3, 16, 112, 112)).eval()
    with torch.no_grad():
        x = torch.randn(1, 3, 16, 112, 112)
        assert model.stages(model.stem(x)).shape == (1, 512, 2, 7, 7)
        assert model(x).shape == (1, 50)
    assert create_model("resnet3d-18-s", 10, (3, 8, 64, 64)).stages[-1][-1].conv2.out_channels == 128


@pytest.mark.parametrize("head", ["mean", "mlp", "lstm", "rnn", "gru"])
def test_temporal_heads_see_frame_order_except_mean(head):
    torch.manual_seed(0)
    model = create_model(f"convnet-{head}", num_classes=4, input_shape=(3, 4, 16, 16)).eval()
    x = torch.randn(2, 3, 4, 16, 16)
    with torch.no_grad():
        out, shuffled = model(x), model(x[:, :, [2, 0, 3, 1]])
    assert torch.allclose(out, shuffled, atol=1e-5) == (head == "mean")


def test_convnet2d_takes_images_and_single_frames():
    torch.manual_seed(0)
    model = create_model("convnet2d", num_classes=3, input_shape=(3, 1, 32, 32))
    images = torch.randn(2, 3, 32, 32)
    assert torch.equal(model(images), model(images.unsqueeze(2)))
    assert model.embed(images).shape == (2, 2048)
    assert create_model("convnet2d", num_classes=3, input_shape=(3, 32, 32)).embed(images).shape == (2, 2048)
    with pytest.raises(ValueError, match="convnet-mean"):
        create_model("convnet2d", num_classes=3, input_shape=(3, 8, 32, 32))
    with pytest.raises(ValueError, match="frames"):
        model(torch.randn(2, 3, 4, 32, 32))


def test_convnet_mlp_refuses_other_clip_lengths():
    model = create_model("convnet-mlp", num_classes=3, input_shape=(3, 4, 16, 16))
    with pytest.raises(ValueError, match="4 frames"):
        model(torch.randn(1, 3, 8, 16, 16))


@pytest.mark.parametrize("head", ["mean", "mlp", "lstm", "rnn", "gru"])
def test_small_framewise_family_is_width_32(head):
    model = create_model(f"convnet-s-{head}", num_classes=10, input_shape=(3, 8, 32, 32))
    convs = [m for m in model.encoder if isinstance(m, torch.nn.Conv2d)]
    assert [(c.in_channels, c.out_channels) for c in convs] == [(3, 32), (32, 32), (32, 32)]
    if head == "mean":
        # 3 convs (3*32*9+32, 2 x 32*32*9+32), 3 affine norms (2*32), linear on 32*4*4 features
        encoder = (3 * 32 * 9 + 32) + 2 * (32 * 32 * 9 + 32) + 3 * 2 * 32
        assert n_params(model) == encoder + (32 * 4 * 4 * 10 + 10) == 24_714


def test_auto_model_picks_the_published_net_from_64_px():
    assert auto_model((3, 16, 112, 112)) == "convnet3d" and auto_model((3, 8, 64, 64)) == "convnet3d"
    assert auto_model((3, 8, 32, 32)) == "convnet3d-s-bn"
    assert min_input(auto_model((3, 8, 64, 64)))[-1] <= 64 and min_input(auto_model((3, 8, 32, 32)))[-1] <= 32


# The released frame-wise models (networks.py VideoConvNet*) at 16x112x112, 50 classes, by hand: the frame
# encoder (3x3 convs 3->128->128->128, GroupNorm(128, 128)) on the 64x64 crop gives F = 128 * 8 * 8 = 8192.
_ENCODER = (3 * 128 * 9 + 128) + 2 * (128 * 128 * 9 + 128) + 3 * 2 * 128  # 299,520
_F, _H = 8192, 8192 // 8
PUBLISHED_COUNTS = {
    "mean": _ENCODER + _F * 50 + 50,  # 709,170
    "mlp": _ENCODER + _F * 16 + _F + _F * 50 + 50,  # temporal weight (F, 16, 1) and bias (F, 1): 848,434
    "lstm": _ENCODER + 4 * (2 * _F * _F + 2 * _F) + _F * 50 + 50,  # LSTM(F, F): 537,645,618
    "rnn": _ENCODER + (_F * _H + _H * _H + 2 * _H) + _H * 50 + 50,  # RNN(F, F // 8): 9,790,002
    "gru": _ENCODER + 3 * (_F * _H + _H * _H + 2 * _H) + _H * 50 + 50,  # GRU(F, F // 8): 28,668,466
}


@pytest.mark.parametrize("head", sorted(PUBLISHED_COUNTS))
def test_published_framewise_sizes(head):
    """The published sizes (issue 27: 0.85 M / 538 M / 9.8 M / 28.7 M for mlp / lstm / rnn / gru), counted on
    the meta device; the generic test above builds them at min_input, 16 px, where the LSTM is small."""
    assert min_input(f"convnet-{head}-published") == (3, 16, 16, 16)
    with torch.device("meta"):
        model = create_model(f"convnet-{head}-published", num_classes=50, input_shape=(3, 16, 112, 112))
        assert model.embed(torch.empty(2, 3, 16, 112, 112)).shape == (2, _H if head in ("rnn", "gru") else _F)
    assert model.crop == 24
    assert n_params(model) == PUBLISHED_COUNTS[head]


def test_published_framewise_crops_112_to_the_centre_64():
    torch.manual_seed(0)
    at_112 = create_model("convnet-gru-published", num_classes=3, input_shape=(3, 2, 112, 112)).eval()
    at_64 = create_model("convnet-gru-published", num_classes=3, input_shape=(3, 2, 64, 64)).eval()
    assert at_64.crop == 0
    at_64.load_state_dict(at_112.state_dict())
    x = torch.randn(1, 3, 2, 112, 112)
    with torch.no_grad():
        assert torch.equal(at_112(x), at_64(x[..., 24:-24, 24:-24]))
        x[..., :24, :] = 100.0  # the border is cut away
        assert torch.equal(at_112(x), at_64(x[..., 24:-24, 24:-24]))
    with pytest.raises(ValueError, match="16 frames"):
        create_model("convnet-mlp-published", 3, (3, 16, 16, 16))(torch.randn(1, 3, 8, 16, 16))


@pytest.mark.parametrize("name", ["convnet3d-s", "convnet3d-s-bn", "convnet3d-s-in"])
def test_cpu_scale_convnet3d_embeds_the_trunk_output_as_published(name):
    """DM's embedding at CPU scale is the published construction: the trunk's output flattened, the map after
    the last max-pool, (64, 2, 1, 1) = 128 values at 8x32x32; convnet3d-s-fm keeps the last conv block's map."""
    torch.manual_seed(0)
    model = create_model(name, num_classes=10, input_shape=(3, 8, 32, 32)).eval()
    x = torch.randn(2, 3, 8, 32, 32)
    with torch.no_grad():
        assert model.features(x).shape[1:] == (64, 2, 1, 1)
        assert torch.equal(model.embed(x), model.features(x).flatten(1))
    assert model.embed(x).shape == (2, 128)
    fm = create_model("convnet3d-s-fm", num_classes=10, input_shape=(3, 8, 32, 32)).eval()
    with torch.no_grad():
        assert torch.equal(fm.embed(x), fm.features[:-1](x).flatten(1)) and fm.embed(x).shape == (2, 64 * 4 * 2 * 2)
