"""ResNet18 per frame, then VAC's temporal convolutions (K5-P2-K5-P2): the visual part of VAC (Min et al. 2021),
whose BiLSTM follows in the sign encoder (``--sequence-model bilstm``), not in the backbone.

The 2D network, ``frame_cnn``, names its tensors as torchvision's ``resnet18`` does, less the ``fc`` classifier,
so that torchvision's ImageNet file (``resnet18-f37072fd.pth``) loads as it is, without torchvision installed:

    conv1, bn1                                        7×7 conv with stride 2 → 64 channels (then a 3×3 max-pool)
    layer1.{0,1}.{conv1,bn1,conv2,bn2}                two basic blocks of 3×3 convs   →  64
    layer2–4.{0,1}.…, layer2–4.0.downsample.{0,1}     the same, halving the frame    → 128, 256, 512

Those weights expect ImageNet's normalisation, which ``forward`` applies to frames in [0, 1]. Blocks, for
``frozen_blocks``: 1 the stem (conv1, bn1), 2–5 layer1–layer4, 6 the temporal part. Its convolutions keep the
length (padding 2, where VAC pads the video with copies of its end frames instead), so T' = ⌈T/4⌉ as for S3D.
"""

from dataclasses import dataclass, field
from typing import List, Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from fairseq_slt.registry import register_visual_backbone
from slt_plugins.models.backbones import VisualBackbone, load_weights, unit_range
from slt_plugins.models.backbones.cnn_tconv import _temporal_conv, frames_then_temporal, pooled_lengths

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
FEATURES = 512  # channels of ResNet18's last stage, pooled per frame
TORCHVISION_KIND = "a torchvision ResNet18 state dict"


@dataclass
class ResNet18Config:
    output_dim: int = field(
        default=1024, metadata={"help": "channels of the temporal convolutions and the output (VAC: 1024)"}
    )
    temporal_pools: int = field(
        default=2, metadata={"help": "max-pools over time, each halving it: 2 gives T/4 as in VAC, 1 keeps T/2"}
    )
    frozen_blocks: int = field(
        default=0,
        metadata={"help": "the first N blocks keep their weights and BatchNorm statistics: 1 the stem, "
                          "2–5 layer1–4, 6 the temporal part"},
    )
    pretrained: Optional[str] = field(
        default=None,
        metadata={"help": "torchvision's ResNet18 ImageNet state dict (resnet18-f37072fd.pth) for the 2D network, "
                          "or a state dict of this whole backbone saved by an earlier run"},
    )


class BasicBlock(nn.Module):
    """Two 3×3 convs with BatchNorm, added to a shortcut: a strided 1×1 conv with BatchNorm (``downsample``) where
    the block halves the frame and widens the channels, otherwise the input itself."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.downsample = None
        if stride != 1 or in_channels != out_channels:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False), nn.BatchNorm2d(out_channels)
            )

    def forward(self, x):
        shortcut = x if self.downsample is None else self.downsample(x)
        y = F.relu(self.bn1(self.conv1(x)), inplace=True)
        return F.relu(self.bn2(self.conv2(y)) + shortcut, inplace=True)


def _stage(in_channels: int, out_channels: int, stride: int) -> nn.Sequential:
    return nn.Sequential(BasicBlock(in_channels, out_channels, stride), BasicBlock(out_channels, out_channels))


class FrameResNet18(nn.Module):
    """ResNet18 up to its global average pool: N×3×H×W normalised frames → N×512."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.layer1 = _stage(64, 64, stride=1)
        self.layer2 = _stage(64, 128, stride=2)
        self.layer3 = _stage(128, 256, stride=2)
        self.layer4 = _stage(256, FEATURES, stride=2)
        for module in self.modules():  # He initialisation, for training from scratch
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")

    def blocks(self) -> List[nn.Module]:
        """The stem, then the four stages; the stem's list is not registered (its layers live here already)."""
        return [nn.ModuleList([self.conv1, self.bn1]), self.layer1, self.layer2, self.layer3, self.layer4]

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.bn1(self.conv1(x)), inplace=True), 3, stride=2, padding=1)
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return x.mean(dim=(2, 3))


@register_visual_backbone("resnet18", dataclass=ResNet18Config)
class ResNet18(VisualBackbone):
    """ResNet18 on each valid frame, then two temporal conv + max-pool steps (VAC's visual part)."""

    def __init__(self, cfg: ResNet18Config):
        super().__init__()
        if not 0 <= cfg.temporal_pools <= 2:
            raise ValueError(f"temporal_pools must be 0, 1 or 2, got {cfg.temporal_pools}")
        self.frame_cnn = FrameResNet18()
        self.temporal = nn.Sequential(
            *_temporal_conv(FEATURES, cfg.output_dim, pool=cfg.temporal_pools >= 1),
            *_temporal_conv(cfg.output_dim, cfg.output_dim, pool=cfg.temporal_pools >= 2),
        )
        self.output_dim = cfg.output_dim
        self.temporal_pools = cfg.temporal_pools
        # not saved: they belong to the ImageNet weights, not to what a run learns
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        if cfg.pretrained:
            self._load_pretrained(cfg.pretrained)
        self.freeze_blocks([*self.frame_cnn.blocks(), self.temporal], cfg.frozen_blocks)

    def _load_pretrained(self, path: str) -> None:
        """A torchvision file (``conv1.weight`` …, its ``fc.*`` ignored) fills the 2D network and leaves the temporal
        convs as initialised; a file of this backbone (``frame_cnn.*``, ``temporal.*``) fills both. The layouts
        share no key, so at most one fits; when neither does, the error gives both reasons."""
        try:
            load_weights(self.frame_cnn, path, TORCHVISION_KIND)
        except ValueError as as_torchvision:
            try:
                load_weights(self, path, "a resnet18 backbone state dict")
            except ValueError as as_backbone:
                raise ValueError(f"{as_torchvision}\n{as_backbone}") from None

    def forward(self, frames: torch.Tensor, lengths: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        return frames_then_temporal(self._frame_features, self.temporal, frames, lengths)

    def _frame_features(self, frames: torch.Tensor) -> torch.Tensor:
        return self.frame_cnn((unit_range(frames) - self.mean) / self.std)

    def output_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        return pooled_lengths(lengths, self.temporal_pools)
