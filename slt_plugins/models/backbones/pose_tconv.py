"""``pose_tconv``: keypoints → a per-frame MLP → VAC's temporal convolutions (K5-P2-K5-P2), T/4 steps out.

The plain pose counterpart of ``cnn_tconv``: every frame's keypoints (normalised per point and channel) flattened
through two fully connected layers, then the same temporal part. Small and fast; it knows nothing of the skeleton
(``pose_stgcn`` does). Blocks, for ``frozen_blocks``: the MLP, then the temporal part.
"""

from dataclasses import dataclass, field
from typing import Optional, Tuple

import torch
import torch.nn as nn

from registry import register_visual_backbone
from slt_plugins.data.pose_layouts import DEFAULT_LAYOUT
from slt_plugins.models.backbones import load_weights
from slt_plugins.models.backbones._pose_input import PoseBackbone
from slt_plugins.models.backbones.cnn_tconv import _temporal_conv, frames_then_temporal, pooled_lengths


@dataclass
class PoseTConvConfig:
    layout: str = field(default=DEFAULT_LAYOUT, metadata={
        "help": "keypoint layout of the input; set from the dataset's poses.lmdb when the model is built"})
    dims: int = field(default=3, metadata={"help": "coordinates per point (set from poses.lmdb)"})
    hidden_dim: int = field(default=256, metadata={"help": "width of the per-frame MLP"})
    output_dim: int = field(default=256, metadata={"help": "channels of the temporal convolutions and the output"})
    temporal_pools: int = field(default=2, metadata={"help": "max-pools over time: 2 gives T/4 as S3D does"})
    dropout: float = field(default=0.1, metadata={"help": "dropout after the per-frame MLP"})
    frozen_blocks: int = field(default=0, metadata={"help": "the first N blocks keep their weights (MLP, temporal)"})
    pretrained: Optional[str] = field(default=None, metadata={"help": "a state dict of this backbone to start from"})


@register_visual_backbone("pose_tconv", dataclass=PoseTConvConfig)
class PoseTConv(PoseBackbone):
    def __init__(self, cfg: PoseTConvConfig):
        super().__init__(cfg.layout, cfg.dims)
        if not 0 <= cfg.temporal_pools <= 2:
            raise ValueError(f"temporal_pools must be 0, 1 or 2, got {cfg.temporal_pools}")
        self.frame_mlp = nn.Sequential(
            nn.Linear(self.points * self.channels, cfg.hidden_dim), nn.ReLU(inplace=True),
            nn.Linear(cfg.hidden_dim, cfg.hidden_dim), nn.ReLU(inplace=True), nn.Dropout(cfg.dropout))
        self.temporal = nn.Sequential(*_temporal_conv(cfg.hidden_dim, cfg.output_dim, pool=cfg.temporal_pools >= 1),
                                      *_temporal_conv(cfg.output_dim, cfg.output_dim, pool=cfg.temporal_pools >= 2))
        self.output_dim, self.temporal_pools = cfg.output_dim, cfg.temporal_pools
        if cfg.pretrained:
            load_weights(self, cfg.pretrained, "a pose_tconv state dict")
        self.freeze_blocks([nn.ModuleList([self.input_norm, self.frame_mlp]), self.temporal], cfg.frozen_blocks)

    def forward(self, poses: torch.Tensor, lengths: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        self.check_input(poses)
        return frames_then_temporal(lambda x: self.frame_mlp(self.normalise(x).flatten(1)), self.temporal, poses,
                                    lengths)

    def output_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        return pooled_lengths(lengths, self.temporal_pools)
