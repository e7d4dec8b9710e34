"""S3D's fast path (channels last, the separable convolutions and max-pools as 2-D ones: conv_as_2d.py) gives the
plain way's numbers: the same weights run with ``channels_last=False`` (Conv3d / MaxPool3d in PyTorch's default
layout, as the reference code runs them) give the same features, gradients and BatchNorm statistics.

In float64 the two ways agree to rounding (1e-9 of the numbers' size): any slip in a view, stride or padding
would show as a difference of the size of the numbers themselves. In float32, the precision training runs in
(and where oneDNN's kernels run, not float64's), the fast way differs from the float64 result by rounding alone.
"""

import copy

import pytest
import torch
import torch.nn.functional as F

import slt_plugins  # noqa: F401
from fairseq_slt.registry import build_visual_backbone
from slt_plugins.models.backbones.conv_as_2d import Conv3dAs2d, MaxPool3dAs2d


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """The tensors are tiny: on one thread a model's step takes ~0.1 s, on two threads of a busy machine seconds
    (the threads wait for each other at every layer)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def twins(dtype, **options):
    """The fast way and the plain way, with the same (random) weights and BatchNorm statistics."""
    torch.manual_seed(0)
    fast = build_visual_backbone("s3d", **options)
    plain = build_visual_backbone("s3d", channels_last=False, **options)
    for module in fast.modules():  # BatchNorm statistics away from 0 and 1, as a trained model has them
        if isinstance(module, torch.nn.BatchNorm3d):
            module.running_mean.uniform_(-0.1, 0.1)
            module.running_var.uniform_(0.5, 2.0)
    plain.load_state_dict(fast.state_dict())
    return fast.to(dtype), plain.to(dtype)


def no_3d_kernels(monkeypatch):
    """Make the 3-D kernels fail, so that a fast way that silently fell back to them cannot pass."""
    def refuse(*args, **kwargs):
        raise AssertionError("the fast way ran a 3-D kernel")

    monkeypatch.setattr(F, "conv3d", refuse)
    monkeypatch.setattr(F, "max_pool3d", refuse)


def run(model, frames, lengths, monkeypatch=None):
    """Features, every parameter's gradient, every BatchNorm statistic after one training forward and backward
    (of the features weighted at random, the same weights for every model)."""
    with pytest.MonkeyPatch.context() as patch:
        if monkeypatch:
            no_3d_kernels(patch)
        features, out_lengths = model(frames, lengths)
        weights = torch.randn(features.shape, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
        (features * weights.to(features.dtype)).sum().backward()
    grads = {name: p.grad for name, p in model.named_parameters() if p.grad is not None}
    stats = {name: b for name, b in model.named_buffers() if "running" in name}
    return features.detach(), out_lengths, grads, stats


def assert_same(ours, theirs, name="features"):
    """Equal to float64 rounding, relative to the tensor's magnitude (a gradient summed over many terms may
    cancel to almost nothing in some elements)."""
    torch.testing.assert_close(ours, theirs, rtol=1e-9, atol=1e-9 * theirs.abs().max().item(), msg=name)


@pytest.fixture(scope="module")
def clips():
    torch.manual_seed(1)
    # two clips of 9 frames (an odd length: the strided time convolution and pools see a ragged end), 24×24
    return torch.rand(2, 9, 3, 24, 24, dtype=torch.float64), torch.tensor([9, 6])


def test_s3d_fast_way_gives_the_plain_ways_numbers_in_float64(clips):
    frames, lengths = clips
    fast, plain = twins(torch.float64)  # blocks 1-4 at their real widths, block 1 frozen (SLRT's setting)
    fast.train(), plain.train()
    ours = run(fast, frames, lengths, monkeypatch=True)
    theirs = run(plain, frames, lengths)
    assert_same(ours[0], theirs[0])
    assert torch.equal(ours[1], theirs[1])
    frozen = len(list(plain.base[0].parameters()))  # block 1 has no gradients
    assert ours[2].keys() == theirs[2].keys() and len(ours[2]) == len(list(plain.parameters())) - frozen
    for name in theirs[2]:
        assert_same(ours[2][name], theirs[2][name], name)
    for name in theirs[3]:  # BatchNorm's running statistics moved alike (and block 1's not at all)
        assert_same(ours[3][name], theirs[3][name], name)

    fast.eval(), plain.eval()
    with torch.no_grad(), pytest.MonkeyPatch.context() as patch:
        no_3d_kernels(patch)
        evaluated = fast(frames, lengths)[0]
    with torch.no_grad():
        assert_same(evaluated, plain(frames, lengths)[0])


def test_s3d_fast_way_in_float32_is_as_close_to_the_exact_numbers_as_the_plain_way(clips):
    frames, lengths = clips
    exact, _ = twins(torch.float64, use_block=2)
    fast, plain = twins(torch.float32, use_block=2)
    for model in (exact, fast, plain):
        model.train()
    reference = run(exact, frames, lengths)
    ours = run(fast, frames.float(), lengths, monkeypatch=True)
    theirs = run(plain, frames.float(), lengths)

    def error(result, name=None):
        got, want = (result[0], reference[0]) if name is None else (result[2][name], reference[2][name])
        return ((got.double() - want).norm() / want.norm()).item()

    # measured (blocks 1-2): features 3.8e-7 (plain 1.8e-7), the worst gradient 3.5e-6 (plain 1.5e-6); a wrong
    # view or padding gives errors of order 1
    assert error(ours) < 1e-5 and error(theirs) < 1e-5
    for name in reference[2]:
        assert error(ours, name) < 5e-5, name


def test_conv3d_as_2d_keeps_the_weights_and_checkpoint_keys():
    fast, plain = twins(torch.float32)
    assert {k: v.shape for k, v in fast.state_dict().items()} == {k: v.shape for k, v in plain.state_dict().items()}
    assert "base.5.branch1.1.conv_t.weight" in fast.state_dict()
    clone = copy.deepcopy(plain)
    clone.load_state_dict(fast.state_dict())  # a checkpoint saved by either way loads into the other


@pytest.mark.parametrize("layer", [
    Conv3dAs2d(4, 6, (1, 3, 3), (1, 2, 2), (0, 1, 1), bias=False),  # over space, strided (block 1)
    Conv3dAs2d(4, 6, (3, 1, 1), (2, 1, 1), (1, 0, 0), bias=True),  # over time, strided, with a bias
    Conv3dAs2d(4, 6, 1, bias=False),  # 1×1×1
    Conv3dAs2d(4, 6, 3, padding=1, bias=False),  # space and time at once: Conv3d itself
    MaxPool3dAs2d((1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1)),  # blocks 2 and 3
    MaxPool3dAs2d(3, stride=1, padding=1),  # the inceptions' pool branch
    MaxPool3dAs2d(3, stride=2, padding=1),  # block 4
    MaxPool3dAs2d(2, stride=2),  # block 5
], ids=lambda layer: repr(layer))
def test_each_layer_gives_its_3d_self_s_numbers_and_gradients_even_on_ties(layer):
    """Every kernel S3D uses (and one it does not), against plain Conv3d / MaxPool3d in float64, on a batch of 2
    with odd sizes. The values are small integers, so max-pool windows hold ties: the gradient goes to the same
    element as MaxPool3d's (the first in time, then in the frame)."""
    torch.manual_seed(0)
    layer = layer.double()
    x = torch.randint(0, 4, (2, 4, 7, 9, 11), dtype=torch.float64)
    fast_in = x.contiguous(memory_format=torch.channels_last_3d).requires_grad_()
    plain_in = x.clone().requires_grad_()
    with pytest.MonkeyPatch.context() as patch:
        if layer.kernel_size != (3, 3, 3) or isinstance(layer, MaxPool3dAs2d):  # all but the space-and-time conv
            no_3d_kernels(patch)
        fast_out = layer(fast_in)
    plain_out = super(type(layer), layer).forward(plain_in)
    assert_same(fast_out, plain_out)
    weights = torch.randn(plain_out.shape, dtype=torch.float64)
    (fast_out * weights).sum().backward()
    (plain_out * weights).sum().backward()
    assert_same(fast_in.grad, plain_in.grad, "input")
