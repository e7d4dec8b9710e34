"""A per-frame 2D CNN followed by VAC's temporal convolutions (K5-P2-K5-P2): a backbone small enough to train from
scratch on a CPU in minutes on small frames (the demo corpus, tests), with the same interface as S3D.

Blocks, for ``frozen_blocks``: one per 2D stage (3×3 conv with stride 2, BatchNorm, ReLU), then the temporal
part (conv k5, max-pool 2, conv k5, max-pool 2), which gives T' = ⌈T/4⌉ as S3D does (``temporal_pools`` 1: T/2).
"""

from dataclasses import dataclass, field
from typing import Callable, List, Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from fairseq_slt.registry import register_visual_backbone
from slt_plugins.models.backbones import VisualBackbone, load_weights, unit_range


@dataclass
class CNNTConvConfig:
    channels: List[int] = field(
        default_factory=lambda: [32, 64, 128, 256],
        metadata={"help": "output channels of the 2D stages; each stage halves the frame's height and width"},
    )
    output_dim: int = field(default=256, metadata={"help": "channels of the temporal convolutions and the output"})
    temporal_pools: int = field(
        default=2,
        metadata={"help": "max-pools over time, each halving it: 2 gives T/4 as S3D does, 1 keeps T/2 (more CTC "
                          "steps per gloss for short clips)"},
    )
    frame_stride: int = field(
        default=1,
        metadata={
            "help": "take every k-th frame into the 2D CNN (S3D's first convolution also strides time by 2): k× less "
            "work per clip; the output has ⌈T/k⌉ steps before the temporal pools"
        },
    )
    frame_difference: bool = field(
        default=False,
        metadata={
            "help": "give the 2D CNN each frame's difference from the frame before it as three more input channels "
            "(TSN's RGB difference): where and which way the hand moves is then visible in one frame, and with "
            "frame_stride the skipped frames still count"
        },
    )
    pool_grid: int = field(
        default=1,
        metadata={
            "help": "pool each frame to a grid × grid map instead of one vector: where the hands are (a phonological "
            "parameter of a sign) survives the pooling; 1 is global average pooling, as in VAC"
        },
    )
    frozen_blocks: int = field(
        default=0,
        metadata={
            "help": "the first N blocks keep their weights and BatchNorm statistics: blocks 1..len(channels) are "
            "the 2D stages, the last is the temporal part"
        },
    )
    pretrained: Optional[str] = field(
        default=None, metadata={"help": "a state dict of this backbone to start from (saved by an earlier run)"}
    )
    channels_last: bool = field(
        default=True,
        metadata={"help": "run the 2D stages channels last (the same numbers, faster on a CPU: bench/train_step.py); "
                          "False keeps PyTorch's default layout"},
    )


def _frame_stage(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, stride=2, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


def _temporal_conv(in_channels: int, out_channels: int, pool: bool) -> List[nn.Module]:
    """Conv k5 with padding 2 (keeps the length), BatchNorm, ReLU, max-pool 2 (⌈T/2⌉: a last odd frame is kept)."""
    layers = [nn.Conv1d(in_channels, out_channels, 5, padding=2, bias=False), nn.BatchNorm1d(out_channels),
              nn.ReLU(inplace=True)]
    return layers + [nn.MaxPool1d(2, ceil_mode=True)] if pool else layers


@register_visual_backbone("cnn_tconv", dataclass=CNNTConvConfig)
class CNNTConv(VisualBackbone):
    """2D stages and an average pool per frame (global, or to a small grid), then two temporal conv + max-pool
    steps."""

    def __init__(self, cfg: CNNTConvConfig):
        super().__init__()
        widths = [6 if cfg.frame_difference else 3, *cfg.channels]
        # channels last (N×H×W×C in memory): oneDNN's convolutions run ~1.4× faster on it on a CPU (the same
        # arithmetic; see bench/train_step.py), and the clips arrive in that layout from the dataset
        self.memory_format = torch.channels_last if cfg.channels_last else torch.contiguous_format
        self.frame_cnn = nn.Sequential(*(_frame_stage(a, b) for a, b in zip(widths, widths[1:]))).to(
            memory_format=self.memory_format)
        self.temporal = nn.Sequential(
            *_temporal_conv(widths[-1] * cfg.pool_grid**2, cfg.output_dim, pool=cfg.temporal_pools >= 1),
            *_temporal_conv(cfg.output_dim, cfg.output_dim, pool=cfg.temporal_pools >= 2),
        )
        self.output_dim = cfg.output_dim
        self.pool_grid = cfg.pool_grid
        if not 0 <= cfg.temporal_pools <= 2:
            raise ValueError(f"temporal_pools must be 0, 1 or 2, got {cfg.temporal_pools}")
        self.temporal_pools = cfg.temporal_pools
        if cfg.frame_stride < 1:
            raise ValueError(f"frame_stride must be at least 1, got {cfg.frame_stride}")
        self.frame_stride = cfg.frame_stride
        self.frame_difference = cfg.frame_difference
        if cfg.pretrained:
            load_weights(self, cfg.pretrained, "a cnn_tconv state dict")
        self.freeze_blocks([*self.frame_cnn, self.temporal], cfg.frozen_blocks)

    def forward(self, frames: torch.Tensor, lengths: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        taken = frames[:, :: self.frame_stride]  # a view
        if self.frame_difference:  # each taken frame with the one before it (the first with itself): B×T'×6×H×W
            index = torch.arange(0, frames.size(1), self.frame_stride, device=frames.device)
            taken = torch.cat([taken, frames[:, (index - 1).clamp(min=0)]], dim=2)
        return frames_then_temporal(self._frame_features, self.temporal, taken,
                                    strided_lengths(lengths, self.frame_stride))

    def _frame_features(self, frames: torch.Tensor) -> torch.Tensor:
        x = unit_range(frames) * 2 - 1
        if self.frame_difference:
            x = torch.cat([x[:, :3], x[:, :3] - x[:, 3:]], dim=1)
        x = x.contiguous(memory_format=self.memory_format)
        return F.adaptive_avg_pool2d(self.frame_cnn(x), self.pool_grid).flatten(1)

    def output_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        return pooled_lengths(strided_lengths(lengths, self.frame_stride), self.temporal_pools)


def strided_lengths(lengths: torch.Tensor, stride: int) -> torch.Tensor:
    """Frames 0, k, 2k, … of L frames: ⌈L/k⌉."""
    return (lengths + stride - 1) // stride


def frames_then_temporal(
    frame_features: Callable[[torch.Tensor], torch.Tensor],
    temporal: nn.Sequential,
    frames: torch.Tensor,
    lengths: torch.Tensor,
) -> Tuple[torch.Tensor, torch.Tensor]:
    """``frame_features`` (N×3×H×W, uint8 or float as given → N×C) on each valid frame, then the ``temporal`` layers of
    :func:`_temporal_conv`: B×T'×channels and the output lengths. Shared by the per-frame backbones."""
    batch, time = frames.shape[:2]
    valid = torch.arange(time, device=frames.device) < lengths[:, None]  # B×T
    # only the valid frames go through the CNN: padding costs nothing and stays out of BatchNorm's statistics
    per_frame = frame_features(frames[valid])
    x = per_frame.new_zeros(batch, time, per_frame.shape[1])
    x[valid] = per_frame
    x, out_lengths = x.transpose(1, 2), lengths
    for layer in temporal:
        x = layer(x)
        if isinstance(layer, nn.MaxPool1d):
            out_lengths = (out_lengths + 1) // 2
        elif isinstance(layer, nn.ReLU):
            # zero the steps beyond each clip, as a clip alone would see them (the convolution's zero padding):
            # otherwise BatchNorm's shift at padded steps leaks into the last valid ones, and a clip's output
            # would depend on the longest clip of its batch
            x = x.masked_fill(torch.arange(x.size(2), device=x.device) >= out_lengths[:, None, None], 0.0)
    return x.transpose(1, 2), out_lengths


def pooled_lengths(lengths: torch.Tensor, pools: int) -> torch.Tensor:
    """The convolutions keep the length and each max-pool gives ⌈L/2⌉: ⌈⌈L/2⌉/2⌉ = ⌈L/4⌉ for two."""
    for _ in range(pools):
        lengths = (lengths + 1) // 2
    return lengths
