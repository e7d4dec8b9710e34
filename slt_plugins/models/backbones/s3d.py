"""S3D (Xie et al. 2018: 3D convolutions factored into space then time), the Sign2Gloss backbone of SLRT.

Layers and parameter names follow the public PyTorch port github.com/kylemin/S3D, so that its Kinetics-400 state
dict (``S3D_kinetics400.pt``) loads as it is: ``base`` is one flat Sequential, and ``base.0.conv_s.weight``,
``base.5.branch1.1.conv_t.weight`` … are the file's keys. The blocks, as SLRT counts them:

    block 1  base.0       separable 7×7×7 conv, stride 2 in time and space        →   64 channels
    block 2  base.1–3     spatial max-pool, 1×1×1 conv, separable 3×3×3 conv       →  192
    block 3  base.4–6     spatial max-pool, inception 3b, 3c                       →  480
    block 4  base.7–12    3×3×3 max-pool with stride 2, inception 4b–4f            →  832
    block 5  base.13–15   2×2×2 max-pool with stride 2, inception 5b, 5c           → 1024

Time shrinks by 2 in blocks 1, 4 and 5: blocks 1–4 (the default, as in SLRT) give T' = ⌈T/4⌉ frames of 832.
"""

import itertools
from dataclasses import dataclass, field
from typing import Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from fairseq_slt.registry import register_visual_backbone
from slt_plugins.models.backbones import VisualBackbone, load_weights, unit_range
from slt_plugins.models.backbones.conv_as_2d import Conv3dAs2d, MaxPool3dAs2d

BLOCK_CHANNELS = {1: 64, 2: 192, 3: 480, 4: 832, 5: 1024}

# inception widths: input, 1×1×1 branch, (1×1×1 reduction, separable 3×3×3) ×2 branches, max-pool projection
INCEPTION_WIDTHS = {
    "3b": (192, 64, 96, 128, 16, 32, 32),
    "3c": (256, 128, 128, 192, 32, 96, 64),
    "4b": (480, 192, 96, 208, 16, 48, 64),
    "4c": (512, 160, 112, 224, 24, 64, 64),
    "4d": (512, 128, 128, 256, 24, 64, 64),
    "4e": (512, 112, 144, 288, 32, 64, 64),
    "4f": (528, 256, 160, 320, 32, 128, 128),
    "5b": (832, 256, 160, 320, 32, 128, 128),
    "5c": (832, 384, 192, 384, 48, 128, 128),
}


@dataclass
class S3DConfig:
    use_block: int = field(
        default=4, metadata={"help": "run S3D blocks 1..N: 4 gives T/4 × 832 features (SLRT), 5 gives T/8 × 1024"}
    )
    frozen_blocks: int = field(
        default=1,
        metadata={"help": "the first N blocks keep their weights and BatchNorm statistics (SLRT freezes block 1)"},
    )
    pretrained: Optional[str] = field(
        default=None, metadata={"help": "S3D Kinetics-400 state dict to start from (kylemin/S3D: S3D_kinetics400.pt)"}
    )
    bgr_input: bool = field(
        default=False,
        metadata={
            "help": "feed the colour channels in BGR order, as SLRT's training does (for weights fine-tuned by "
            "SLRT); the Kinetics-400 weights expect RGB"
        },
    )
    channels_last: bool = field(
        default=True,
        metadata={
            "help": "on a CPU, run on channels-last tensors, the separable convolutions and the max-pools as 2-D "
            "ones over frames or over time: the same numbers, a faster training step (bench/train_step.py); "
            "False runs plain Conv3d / MaxPool3d in the default layout, as the reference code does. A GPU runs "
            "Conv3d either way"
        },
    )


def _batch_norm(channels: int) -> nn.BatchNorm3d:
    # eps and momentum as in the port, whose weights were trained with them
    return nn.BatchNorm3d(channels, eps=1e-3, momentum=0.001)


class Conv3dBNReLU(nn.Module):
    """1×1×1 conv, BatchNorm, ReLU (the port's ``BasicConv3d``: keys ``conv``, ``bn``)."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv = Conv3dAs2d(in_channels, out_channels, kernel_size=1, bias=False)
        self.bn = _batch_norm(out_channels)

    def forward(self, x):
        return F.relu(self.bn(self.conv(x)), inplace=True)


class SeparableConv3d(nn.Module):
    """A k×k×k conv factored into 1×k×k over space then k×1×1 over time, each with BatchNorm and ReLU: S3D's idea
    (the port's ``SepConv3d``: keys ``conv_s``, ``bn_s``, ``conv_t``, ``bn_t``)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1):
        super().__init__()
        k, s, p = kernel_size, stride, kernel_size // 2
        self.conv_s = Conv3dAs2d(in_channels, out_channels, (1, k, k), (1, s, s), (0, p, p), bias=False)
        self.bn_s = _batch_norm(out_channels)
        self.conv_t = Conv3dAs2d(out_channels, out_channels, (k, 1, 1), (s, 1, 1), (p, 0, 0), bias=False)
        self.bn_t = _batch_norm(out_channels)

    def forward(self, x):
        x = F.relu(self.bn_s(self.conv_s(x)), inplace=True)
        return F.relu(self.bn_t(self.conv_t(x)), inplace=True)


class Inception3d(nn.Module):
    """Four branches concatenated on channels: 1×1×1; 1×1×1 → separable 3×3×3 (twice, of other widths);
    3×3×3 max-pool → 1×1×1. None changes the time or frame size."""

    def __init__(self, in_channels, out_1x1, mid_a, out_a, mid_b, out_b, out_pool):
        super().__init__()
        self.branch0 = nn.Sequential(Conv3dBNReLU(in_channels, out_1x1))
        self.branch1 = nn.Sequential(Conv3dBNReLU(in_channels, mid_a), SeparableConv3d(mid_a, out_a, 3))
        self.branch2 = nn.Sequential(Conv3dBNReLU(in_channels, mid_b), SeparableConv3d(mid_b, out_b, 3))
        self.branch3 = nn.Sequential(MaxPool3dAs2d(3, stride=1, padding=1), Conv3dBNReLU(in_channels, out_pool))

    def forward(self, x):
        return torch.cat([self.branch0(x), self.branch1(x), self.branch2(x), self.branch3(x)], dim=1)


def _build_blocks(use_block: int):
    def inception(*names):
        return [Inception3d(*INCEPTION_WIDTHS[name]) for name in names]

    def spatial_pool():
        return MaxPool3dAs2d((1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1))

    makers = [
        lambda: [SeparableConv3d(3, 64, 7, stride=2)],
        lambda: [spatial_pool(), Conv3dBNReLU(64, 64), SeparableConv3d(64, 192, 3)],
        lambda: [spatial_pool(), *inception("3b", "3c")],
        lambda: [MaxPool3dAs2d(3, stride=2, padding=1), *inception("4b", "4c", "4d", "4e", "4f")],
        lambda: [MaxPool3dAs2d(2, stride=2), *inception("5b", "5c")],
    ]
    return [nn.Sequential(*make()) for make in makers[:use_block]]


def _in_time(value):
    return value[0] if isinstance(value, tuple) else value


@register_visual_backbone("s3d", dataclass=S3DConfig)
class S3D(VisualBackbone):
    """S3D blocks 1..``use_block``, spatially average-pooled per output frame."""

    def __init__(self, cfg: S3DConfig):
        super().__init__()
        if cfg.use_block not in BLOCK_CHANNELS:
            raise ValueError(f"use_block must be one of {sorted(BLOCK_CHANNELS)}, got {cfg.use_block}")
        blocks = _build_blocks(cfg.use_block)  # groupings only: the layers are registered once, in base
        self.base = nn.Sequential(*itertools.chain.from_iterable(blocks))
        self.output_dim = BLOCK_CHANNELS[cfg.use_block]
        self.bgr_input = cfg.bgr_input
        self.channels_last = cfg.channels_last
        if cfg.pretrained:
            load_weights(self, cfg.pretrained, "an S3D Kinetics-400 state dict")
        self.freeze_blocks(blocks, cfg.frozen_blocks)

    def forward(self, frames: torch.Tensor, lengths: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        x = unit_range(frames).transpose(1, 2)  # B×3×T×H×W, as Conv3d wants
        if x.device.type == "cpu":  # channels last (the dataset's frames are) takes conv_as_2d's 2-D kernels
            x = x.contiguous(memory_format=torch.channels_last_3d if self.channels_last else torch.contiguous_format)
        if self.bgr_input:
            x = x.flip(1)
        x = self.base(x * 2 - 1)  # the Kinetics-400 weights were trained on [-1, 1]
        return x.mean(dim=(3, 4)).transpose(1, 2), self.output_lengths(lengths)

    def output_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        """Apply each layer's temporal kernel, stride and padding (1×1×1 convs and inceptions keep the length)."""
        for layer in self.base:
            if isinstance(layer, SeparableConv3d):
                layer = layer.conv_t
            if isinstance(layer, (nn.Conv3d, nn.MaxPool3d)):
                kernel, stride, padding = map(_in_time, (layer.kernel_size, layer.stride, layer.padding))
                lengths = (lengths + 2 * padding - kernel) // stride + 1
        return lengths
