"""The visual backbones: shapes and exact output lengths, loading S3D's public Kinetics-400 state dict, frozen
blocks. Frames are tiny (32×32, 64×64) and short, so the file runs in seconds on a CPU."""

import logging
import re
from argparse import Namespace

import pytest
import torch
import torch.nn.functional as F

import slt_plugins  # noqa: F401  (registers the backbones)
from fairseq_slt.registry import RegistryError, build_visual_backbone

S3D_KIND = "is not an S3D Kinetics-400 state dict"


def frames(batch, time, size=32):
    return torch.rand(batch, time, 3, size, size)


@pytest.fixture(scope="module")
def s3d():
    return build_visual_backbone("s3d").eval()


# --- S3D shapes and lengths


@pytest.mark.parametrize("time", [4, 8, 16])
def test_s3d_gives_a_quarter_of_the_frames_with_832_channels(s3d, time):
    with torch.no_grad():
        features, lengths = s3d(frames(2, time), torch.tensor([time, time]))
    assert s3d.output_dim == 832
    assert features.shape == (2, time // 4, 832)
    assert lengths.tolist() == [time // 4] * 2


def test_s3d_lengths_of_a_padded_batch(s3d):
    with torch.no_grad():
        features, lengths = s3d(frames(3, 16), torch.tensor([16, 9, 4]))
    assert features.shape == (3, 4, 832)
    assert lengths.tolist() == [4, 3, 1]


@pytest.mark.parametrize("use_block, clip_lengths", [(4, range(1, 10)), (5, range(5, 13))])
def test_s3d_output_lengths_equal_what_a_clip_alone_gives(use_block, clip_lengths):
    model = build_visual_backbone("s3d", use_block=use_block).eval()
    for length in clip_lengths:
        with torch.no_grad():
            features, lengths = model(frames(1, length), torch.tensor([length]))
        assert lengths.item() == features.shape[1], f"clip of {length} frames"


def test_s3d_use_block_3_gives_480_channels():
    model = build_visual_backbone("s3d", use_block=3).eval()
    with torch.no_grad():
        features, lengths = model(frames(1, 8), torch.tensor([8]))
    assert model.output_dim == 480 and features.shape == (1, 4, 480) and lengths.tolist() == [4]


def test_s3d_bgr_input_swaps_the_colour_channels():
    rgb = build_visual_backbone("s3d", use_block=1).eval()
    bgr = build_visual_backbone("s3d", use_block=1, bgr_input=True).eval()
    bgr.load_state_dict(rgb.state_dict())
    clip, lengths = frames(1, 4), torch.tensor([4])
    with torch.no_grad():
        assert torch.allclose(bgr(clip, lengths)[0], rgb(clip.flip(2), lengths)[0])
        assert not torch.allclose(bgr(clip, lengths)[0], rgb(clip, lengths)[0])


def test_s3d_refuses_bad_block_numbers():
    with pytest.raises(ValueError, match="use_block"):
        build_visual_backbone("s3d", use_block=6)
    with pytest.raises(ValueError, match="frozen_blocks=3, but this S3D has 2 blocks"):
        build_visual_backbone("s3d", use_block=2, frozen_blocks=3)


# --- S3D weights in the layout of github.com/kylemin/S3D (S3D_kinetics400.pt)


def bn_keys(prefix, channels):
    keys = {f"{prefix}.{name}": (channels,) for name in ("weight", "bias", "running_mean", "running_var")}
    return {**keys, f"{prefix}.num_batches_tracked": ()}


def basic_conv_keys(prefix, cin, cout):
    return {f"{prefix}.conv.weight": (cout, cin, 1, 1, 1), **bn_keys(f"{prefix}.bn", cout)}


def sep_conv_keys(prefix, cin, cout, k):
    return {
        f"{prefix}.conv_s.weight": (cout, cin, 1, k, k),
        **bn_keys(f"{prefix}.bn_s", cout),
        f"{prefix}.conv_t.weight": (cout, cout, k, 1, 1),
        **bn_keys(f"{prefix}.bn_t", cout),
    }


def inception_keys(prefix, cin, b0, mid1, out1, mid2, out2, b3):
    return {
        **basic_conv_keys(f"{prefix}.branch0.0", cin, b0),
        **basic_conv_keys(f"{prefix}.branch1.0", cin, mid1),
        **sep_conv_keys(f"{prefix}.branch1.1", mid1, out1, 3),
        **basic_conv_keys(f"{prefix}.branch2.0", cin, mid2),
        **sep_conv_keys(f"{prefix}.branch2.1", mid2, out2, 3),
        **basic_conv_keys(f"{prefix}.branch3.1", cin, b3),
    }


# a few keys of blocks 1–4 as the public model.py names and sizes them, written out by hand
PUBLIC_BLOCK_1_TO_4_SAMPLES = {
    "base.0.conv_s.weight": (64, 3, 1, 7, 7),
    "base.0.conv_t.weight": (64, 64, 7, 1, 1),
    "base.2.conv.weight": (64, 64, 1, 1, 1),
    "base.3.conv_s.weight": (192, 64, 1, 3, 3),
    "base.5.branch1.1.conv_t.weight": (128, 128, 3, 1, 1),
    "base.6.branch3.1.conv.weight": (64, 256, 1, 1, 1),
    "base.12.branch0.0.bn.running_var": (256,),
    "base.12.branch2.1.conv_s.weight": (128, 32, 1, 3, 3),
}
# the layers of the public file that blocks 1–4 do not build: Mixed_5b, Mixed_5c and the Kinetics classifier
PUBLIC_BLOCK_5_AND_FC = {
    **inception_keys("base.14", 832, 256, 160, 320, 32, 128, 128),
    **inception_keys("base.15", 832, 384, 192, 384, 48, 128, 128),
    "fc.0.weight": (400, 1024, 1, 1, 1),
    "fc.0.bias": (400,),
}
# block 1: a separable conv (2 convs + 2 BNs of 5 tensors) = 12; block 2: 1×1 conv 6 + separable 12 = 18;
# an inception: 4 1×1 convs (6 each) + 2 separable (12 each) = 48, and blocks 3–4 hold 7 of them
BLOCK_1_TO_4_TENSORS = 12 + 18 + 7 * 48


def random_tensor(shape):
    return torch.randint(0, 1000, shape) if shape == () else torch.randn(shape)


@pytest.fixture(scope="module")
def public_state(s3d):
    own = {key: tuple(value.shape) for key, value in s3d.state_dict().items()}
    assert len(own) == BLOCK_1_TO_4_TENSORS
    for key, shape in PUBLIC_BLOCK_1_TO_4_SAMPLES.items():
        assert own[key] == shape, key
    return {key: random_tensor(shape) for key, shape in {**own, **PUBLIC_BLOCK_5_AND_FC}.items()}


@pytest.mark.parametrize("variant", ["plain", "dataparallel_without_batch_counters"])
def test_s3d_loads_the_public_state_dict(public_state, variant, tmp_path, caplog):
    state = public_state
    if variant != "plain":
        state = {f"module.{k}": v for k, v in state.items() if not k.endswith("num_batches_tracked")}
    path = tmp_path / "S3D_kinetics400.pt"
    torch.save(state, path)
    with caplog.at_level(logging.INFO):
        model = build_visual_backbone("s3d", pretrained=str(path))
    loaded = model.state_dict()
    for key, value in loaded.items():
        if variant == "plain" or not key.endswith("num_batches_tracked"):
            assert torch.equal(value, public_state[key]), key
    assert not any(key.startswith(("base.13", "base.14", "base.15", "fc")) for key in loaded)
    assert f"tensors of an S3D Kinetics-400 state dict from {path}" in caplog.text
    ignored = [k for k in PUBLIC_BLOCK_5_AND_FC if variant == "plain" or not k.endswith("num_batches_tracked")]
    assert f"ignored {len(ignored)} of layers not built" in caplog.text


def test_s3d_refuses_a_state_dict_of_other_channel_counts(tmp_path):
    path = tmp_path / "narrow.pt"
    narrow = {key: (32,) + shape[1:] if shape else shape for key, shape in sep_conv_keys("base.0", 3, 64, 7).items()}
    torch.save({key: random_tensor(shape) for key, shape in narrow.items()}, path)
    with pytest.raises(ValueError) as error:
        build_visual_backbone("s3d", use_block=1, pretrained=str(path))
    assert f"{path} {S3D_KIND}" in str(error.value)
    assert "base.0.conv_s.weight is (32, 3, 1, 7, 7), expected (64, 3, 1, 7, 7)" in str(error.value)


def test_s3d_refuses_a_resnet_state_dict(tmp_path):
    path = tmp_path / "resnet18.pth"
    resnet = {"conv1.weight": (64, 3, 7, 7), "bn1.weight": (64,), "layer1.0.conv1.weight": (64, 64, 3, 3)}
    torch.save({key: torch.randn(shape) for key, shape in resnet.items()}, path)
    missing = r"missing base\.0\.conv_s\.weight, .* \(305 in all\)"  # all but the counters of the 61 BatchNorms
    with pytest.raises(ValueError, match=rf"{re.escape(str(path))} {S3D_KIND}: {missing}"):
        build_visual_backbone("s3d", pretrained=str(path))


def test_s3d_refuses_a_file_without_a_state_dict(tmp_path):
    path = tmp_path / "tensor.pt"
    torch.save(torch.zeros(3), path)
    with pytest.raises(ValueError, match=rf"{re.escape(str(path))} {S3D_KIND}: it holds a Tensor"):
        build_visual_backbone("s3d", pretrained=str(path))


# --- frozen blocks


def test_s3d_frozen_block_keeps_weights_and_batchnorm_statistics():
    model = build_visual_backbone("s3d", use_block=2, frozen_blocks=1).train()
    frozen, trained = model.base[0], model.base[3]
    assert not any(p.requires_grad for p in frozen.parameters())
    assert all(p.requires_grad for p in trained.parameters())
    assert not frozen.bn_s.training and trained.bn_s.training
    before = {name: t.clone() for name, t in model.state_dict().items() if "running" in name}
    model(frames(2, 8), torch.tensor([8, 8]))[0].sum().backward()
    after = model.state_dict()
    assert all(torch.equal(after[name], before[name]) for name in before if name.startswith("base.0."))
    assert not torch.equal(after["base.3.bn_s.running_mean"], before["base.3.bn_s.running_mean"])
    assert not model.eval().train().base[0].bn_t.training


# --- cnn_tconv


@pytest.fixture(scope="module")
def cnn():
    return build_visual_backbone("cnn_tconv", channels=[8, 16, 32], output_dim=64).eval()


def test_cnn_tconv_shapes_and_lengths_of_a_padded_batch(cnn):
    with torch.no_grad():
        features, lengths = cnn(frames(3, 12, size=64), torch.tensor([12, 7, 1]))
    assert cnn.output_dim == 64
    assert features.shape == (3, 3, 64)
    assert lengths.tolist() == [3, 2, 1]


def test_cnn_tconv_output_lengths_equal_what_a_clip_alone_gives(cnn):
    for length in range(1, 10):
        with torch.no_grad():
            features, lengths = cnn(frames(1, length), torch.tensor([length]))
        assert lengths.item() == features.shape[1], f"clip of {length} frames"


def test_cnn_tconv_default_width_and_gradients_flow():
    model = build_visual_backbone("cnn_tconv").train()
    features, _ = model(frames(2, 8, size=64), torch.tensor([8, 6]))
    assert features.shape == (2, 2, 256)
    (features * torch.randn_like(features)).sum().backward()
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name


def test_cnn_tconv_frozen_blocks():
    model = build_visual_backbone("cnn_tconv", channels=[8, 16], output_dim=32, frozen_blocks=2).train()
    assert not any(p.requires_grad for p in model.frame_cnn.parameters())
    assert all(p.requires_grad for p in model.temporal.parameters())
    before = model.frame_cnn[1][1].running_mean.clone()
    model(frames(2, 8), torch.tensor([8, 8]))
    assert torch.equal(model.frame_cnn[1][1].running_mean, before)
    assert all(p.requires_grad is False for p in build_visual_backbone("cnn_tconv", frozen_blocks=5).parameters())
    with pytest.raises(ValueError, match="frozen_blocks=6, but this CNNTConv has 5 blocks"):
        build_visual_backbone("cnn_tconv", frozen_blocks=6)


def test_cnn_tconv_reloads_its_own_weights(tmp_path):
    config = Namespace(channels=[8, 16], output_dim=32, frozen_blocks=0, use_block=4, arch="whatever")
    source = build_visual_backbone("cnn_tconv", config)  # a model's namespace: only cnn_tconv's fields are read
    path = tmp_path / "cnn.pt"
    torch.save({f"module.{k}": v for k, v in source.state_dict().items()}, path)
    copy = build_visual_backbone("cnn_tconv", config, pretrained=str(path))
    assert all(torch.equal(v, copy.state_dict()[k]) for k, v in source.state_dict().items())
    with pytest.raises(ValueError, match=rf"{re.escape(str(path))} is not a cnn_tconv state dict: .*expected \(32,"):
        build_visual_backbone("cnn_tconv", channels=[8, 32], output_dim=32, pretrained=str(path))


def test_unknown_backbone_lists_the_known_ones():
    with pytest.raises(RegistryError) as error:
        build_visual_backbone("nope")
    assert "unknown visual backbone 'nope'" in str(error.value)
    assert all(name in str(error.value) for name in ("cnn_tconv", "resnet18", "s3d"))


@pytest.mark.parametrize("temporal_pools,expected", [(2, [3, 2]), (1, [5, 4]), (0, [9, 7])])
def test_cnn_tconv_grid_pooling_and_temporal_pools(temporal_pools, expected):
    """Grid pooling and fewer temporal pools change the shapes as documented; a clip gives the same features
    alone as padded in a batch."""
    net = build_visual_backbone("cnn_tconv", channels=[4, 8], output_dim=6, pool_grid=2,
                                temporal_pools=temporal_pools).eval()
    frames = torch.rand(2, 9, 3, 16, 16)
    lengths = torch.tensor([9, 7])
    features, out_lengths = net(frames, lengths)
    assert out_lengths.tolist() == expected and features.shape == (2, expected[0], 6)
    alone, _ = net(frames[1:, :7], lengths[1:])
    assert torch.allclose(features[1, : expected[1]], alone[0], atol=1e-5)


@pytest.mark.parametrize("stride", [2, 3])
def test_cnn_tconv_frame_stride_sees_every_kth_frame(stride):
    """With ``frame_stride`` k the CNN sees frames 0, k, 2k, …: the output equals that of the strided clip with
    stride 1 and the same weights, a padded clip gives what it gives alone, and ``output_lengths`` agrees."""
    torch.manual_seed(0)
    strided = build_visual_backbone("cnn_tconv", channels=[4, 8], output_dim=6, pool_grid=2, temporal_pools=1,
                                    frame_stride=stride).eval()
    plain = build_visual_backbone("cnn_tconv", channels=[4, 8], output_dim=6, pool_grid=2, temporal_pools=1).eval()
    plain.load_state_dict(strided.state_dict())
    frames = torch.rand(2, 11, 3, 16, 16)
    lengths = torch.tensor([11, 7])
    with torch.no_grad():
        features, out_lengths = strided(frames, lengths)
        expected, expected_lengths = plain(frames[:, ::stride], (lengths + stride - 1) // stride)
        alone, alone_lengths = strided(frames[1:, :7], lengths[1:])
    assert out_lengths.tolist() == expected_lengths.tolist() == strided.output_lengths(lengths).tolist()
    assert torch.allclose(features, expected, atol=1e-6)
    assert alone_lengths.item() == out_lengths[1].item()
    assert torch.allclose(features[1, : out_lengths[1]], alone[0], atol=1e-5)


@pytest.mark.parametrize("stride", [1, 2])
def test_cnn_tconv_frame_difference_gives_the_cnn_each_taken_frame_and_its_change(stride):
    """``frame_difference``: the first convolution reads each taken frame and its difference from the frame just
    before it (the first frame's from itself: zero), so it equals a 6-channel CNN fed those by hand; a skipped
    frame changes the output through the difference, and a padded clip gives what it gives alone."""
    torch.manual_seed(0)
    options = dict(channels=[4, 8], output_dim=6, pool_grid=2, temporal_pools=1, frame_stride=stride)
    model = build_visual_backbone("cnn_tconv", frame_difference=True, **options).eval()
    assert model.frame_cnn[0][0].in_channels == 6
    frames = torch.randint(0, 256, (2, 11, 3, 16, 16), dtype=torch.uint8)
    lengths = torch.tensor([11, 7])
    with torch.no_grad():
        features, out_lengths = model(frames, lengths)
        x = frames.float() / 255 * 2 - 1
        taken = torch.arange(0, 11, stride)
        by_hand = torch.cat([x[:, taken], x[:, taken] - x[:, (taken - 1).clamp(min=0)]], dim=2)
        grid = F.adaptive_avg_pool2d(model.frame_cnn(by_hand.flatten(0, 1)), 2).flatten(1)
        valid = torch.arange(len(taken)) < (lengths[:, None] + stride - 1) // stride
        expected = model.temporal(torch.where(valid[..., None], grid.view(2, len(taken), -1), 0).transpose(1, 2))
        alone, _ = model(frames[1:, :7], lengths[1:])
        changed = frames.clone()
        changed[0, 3] = 255 - changed[0, 3]  # skipped with stride 2; its difference still counts
        features_changed, _ = model(changed, lengths)
    assert out_lengths.tolist() == model.output_lengths(lengths).tolist()
    assert torch.allclose(features[0], expected.transpose(1, 2)[0], atol=1e-5)
    assert torch.allclose(features[1, : out_lengths[1]], alone[0], atol=1e-5)
    assert not torch.allclose(features_changed[0], features[0], atol=1e-3)


# --- resnet18: torchvision's ResNet18 per frame, then VAC's temporal convolutions

RESNET_KIND = "is not a torchvision ResNet18 state dict"


def torchvision_resnet18_keys():
    """torchvision's resnet18 state dict less fc, in its order, written from the architecture: a 7×7 stem, then
    layers 1–4 of two basic blocks each, the first block of layers 2–4 with a 1×1 strided downsample."""
    keys = {"conv1.weight": (64, 3, 7, 7), **bn_keys("bn1", 64)}
    widths = [64, 64, 128, 256, 512]
    for layer in range(1, 5):
        cin, cout = widths[layer - 1], widths[layer]
        for block in range(2):
            prefix = f"layer{layer}.{block}"
            block_in = cin if block == 0 else cout
            keys.update({f"{prefix}.conv1.weight": (cout, block_in, 3, 3), **bn_keys(f"{prefix}.bn1", cout)})
            keys.update({f"{prefix}.conv2.weight": (cout, cout, 3, 3), **bn_keys(f"{prefix}.bn2", cout)})
            if layer > 1 and block == 0:
                downsample = {f"{prefix}.downsample.0.weight": (cout, cin, 1, 1)}
                keys.update({**downsample, **bn_keys(f"{prefix}.downsample.1", cout)})
    return keys


@pytest.fixture(scope="module")
def resnet():
    return build_visual_backbone("resnet18", output_dim=16).eval()


def test_resnet18_state_dict_has_torchvision_keys_and_shapes(resnet):
    expected = torchvision_resnet18_keys()
    own = resnet.frame_cnn.state_dict()
    assert list(own) == list(expected) and len(own) == 120  # 20 convs, 20 BatchNorms of 5 tensors
    assert {key: tuple(value.shape) for key, value in own.items()} == expected
    # torchvision counts 11,689,512 parameters, of which fc holds 512 × 1000 + 1000
    assert sum(p.numel() for p in resnet.frame_cnn.parameters()) == 11_689_512 - 513_000
    assert {key.split(".")[0] for key in resnet.state_dict()} == {"frame_cnn", "temporal"}  # mean, std not saved


def test_resnet18_shapes_lengths_and_padding(resnet):
    clips, lengths = frames(2, 9), torch.tensor([9, 6])
    with torch.no_grad():
        features, out_lengths = resnet(clips, lengths)
        alone, alone_lengths = resnet(clips[1:, :6], lengths[1:])
    assert resnet.output_dim == 16 and features.shape == (2, 3, 16)
    assert out_lengths.tolist() == [3, 2] and alone_lengths.tolist() == [2]  # ⌈T/4⌉
    assert torch.allclose(features[1, :2], alone[0], atol=1e-5)


def test_resnet18_output_lengths_equal_what_a_clip_alone_gives(resnet):
    for length in range(1, 10):
        with torch.no_grad():
            features, lengths = resnet(frames(1, length), torch.tensor([length]))
        assert lengths.item() == features.shape[1] == -(-length // 4), f"clip of {length} frames"
        assert resnet.output_lengths(torch.tensor([length])).item() == lengths.item()


def test_resnet18_defaults_and_imagenet_normalisation():
    model = build_visual_backbone("resnet18", temporal_pools=1).eval()
    assert model.output_dim == 1024  # VAC's hidden size
    seen = []
    model.frame_cnn.register_forward_pre_hook(lambda module, args: seen.append(args[0]))
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 1, 3, 1, 1)
    with torch.no_grad():
        features, lengths = model(mean.expand(1, 3, 3, 8, 8), torch.tensor([3]))
    assert features.shape == (1, 2, 1024) and lengths.tolist() == [2]
    assert seen[0].shape == (3, 3, 8, 8) and seen[0].abs().max() < 1e-6  # the ImageNet mean becomes 0
    with pytest.raises(ValueError, match="temporal_pools must be 0, 1 or 2, got 3"):
        build_visual_backbone("resnet18", temporal_pools=3)


@pytest.mark.parametrize("variant", ["plain", "dataparallel_without_batch_counters"])
def test_resnet18_loads_a_torchvision_state_dict(variant, tmp_path, caplog):
    state = {key: random_tensor(shape) for key, shape in torchvision_resnet18_keys().items()}
    state.update({"fc.weight": torch.randn(1000, 512), "fc.bias": torch.randn(1000)})
    saved = state
    if variant != "plain":
        saved = {f"module.{k}": v for k, v in state.items() if not k.endswith("num_batches_tracked")}
    path = tmp_path / "resnet18-f37072fd.pth"
    torch.save(saved, path)
    with caplog.at_level(logging.INFO):
        model = build_visual_backbone("resnet18", output_dim=8, pretrained=str(path))
    for key, value in model.frame_cnn.state_dict().items():
        if variant == "plain" or not key.endswith("num_batches_tracked"):
            assert torch.equal(value, state[key]), key
    assert f"tensors of a torchvision ResNet18 state dict from {path}" in caplog.text
    assert "ignored 2 of layers not built (fc.bias, fc.weight)" in caplog.text


def test_resnet18_reloads_its_own_weights(tmp_path):
    source = build_visual_backbone("resnet18", output_dim=8)
    path = tmp_path / "backbone.pt"
    torch.save({f"module.{k}": v for k, v in source.state_dict().items()}, path)
    copy = build_visual_backbone("resnet18", output_dim=8, pretrained=str(path))
    assert all(torch.equal(v, copy.state_dict()[k]) for k, v in source.state_dict().items())
    with pytest.raises(ValueError) as error:
        build_visual_backbone("resnet18", output_dim=16, pretrained=str(path))
    assert f"{path} {RESNET_KIND}: missing conv1.weight" in str(error.value)
    assert f"{path} is not a resnet18 backbone state dict: temporal.0.weight is (8, 512, 5), expected (16, 512, 5)" \
        in str(error.value)


def test_resnet18_refuses_a_misshapen_torchvision_file(tmp_path):
    state = {key: random_tensor(shape) for key, shape in torchvision_resnet18_keys().items()}
    state["conv1.weight"] = torch.randn(64, 3, 5, 5)
    path = tmp_path / "resnet18.pth"
    torch.save(state, path)
    with pytest.raises(ValueError) as error:
        build_visual_backbone("resnet18", output_dim=8, pretrained=str(path))
    assert f"{path} {RESNET_KIND}: conv1.weight is (64, 3, 5, 5), expected (64, 3, 7, 7)" in str(error.value)


def test_resnet18_frozen_blocks():
    model = build_visual_backbone("resnet18", output_dim=8, frozen_blocks=2).train()  # the stem and layer1
    frozen = [model.frame_cnn.conv1, model.frame_cnn.bn1, model.frame_cnn.layer1]
    trained = [model.frame_cnn.layer2, model.frame_cnn.layer3, model.frame_cnn.layer4, model.temporal]
    before = model.frame_cnn.layer1[1].bn2.running_mean.clone()
    features, _ = model(frames(2, 6), torch.tensor([6, 5]))
    (features * torch.randn_like(features)).sum().backward()
    assert all(p.grad is None and not p.requires_grad for block in frozen for p in block.parameters())
    assert all(p.grad is not None for block in trained for p in block.parameters())
    assert torch.equal(model.frame_cnn.layer1[1].bn2.running_mean, before)
    assert not model.eval().train().frame_cnn.bn1.training and model.frame_cnn.layer2.training
    all_frozen = build_visual_backbone("resnet18", output_dim=8, frozen_blocks=6)
    assert not any(p.requires_grad for p in all_frozen.parameters())
    with pytest.raises(ValueError, match="frozen_blocks=7, but this ResNet18 has 6 blocks"):
        build_visual_backbone("resnet18", output_dim=8, frozen_blocks=7)


def test_cnn_tconv_channels_last_gives_the_default_layouts_numbers():
    """The 2D stages run channels last (faster on a CPU); the same weights in the default layout, as plain PyTorch
    code would run them, give the same features and gradients up to float rounding."""
    import copy

    import torch.nn.functional as F

    torch.manual_seed(0)
    model = build_visual_backbone("cnn_tconv", {"channels": [8, 16, 16], "output_dim": 16, "pool_grid": 2}).train()
    reference = copy.deepcopy(model.frame_cnn).to(memory_format=torch.contiguous_format)
    frames = torch.rand(6, 3, 32, 32)  # contiguous, as plain code has them
    ours = model._frame_features(frames)
    plain = F.adaptive_avg_pool2d(reference(frames * 2 - 1), 2).flatten(1)
    torch.testing.assert_close(ours, plain, rtol=1e-5, atol=1e-5)
    (ours.square().sum()).backward()
    (plain.square().sum()).backward()
    for (name, a), b in zip(model.frame_cnn.named_parameters(), reference.parameters()):
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-4, atol=1e-5, msg=name)
