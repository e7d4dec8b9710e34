"""``pose_tconv``: keypoints → a per-frame MLP → VAC's temporal convolutions (K5-P2-K5-P2), T/4 steps out; and
``pose_bilstm``, the plain baseline: the raw keypoints into a BiLSTM, pooled to T/4.

The plain pose counterpart of ``cnn_tconv``: every frame's keypoints (normalised per point and channel) flattened
through two fully connected layers, then the same temporal part. Small and fast; it knows nothing of the skeleton
(``pose_stgcn`` does). Blocks, for ``frozen_blocks``: the MLP, then the temporal part.
"""

from dataclasses import dataclass, field
from typing import Optional, Tuple

import torch
import torch.nn as nn

from fairseq_slt.registry import register_visual_backbone
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


@dataclass
class PoseBiLSTMConfig:
    layout: str = field(default=DEFAULT_LAYOUT, metadata={"help": "keypoint layout (set from poses.lmdb)"})
    dims: int = field(default=3, metadata={"help": "coordinates per point (set from poses.lmdb)"})
    hidden_dim: int = field(default=128, metadata={"help": "hidden size of each direction"})
    layers: int = field(default=2)
    frozen_blocks: int = field(default=0)
    pretrained: Optional[str] = field(default=None)


@register_visual_backbone("pose_bilstm", dataclass=PoseBiLSTMConfig)
class PoseBiLSTM(PoseBackbone):
    """The plain baseline of keypoint recognisers: each frame's raw keypoints (normalised per point and channel)
    straight into a bidirectional LSTM, then two max-pools over time (T/4, the backbones' contract)."""

    def __init__(self, cfg: PoseBiLSTMConfig):
        super().__init__(cfg.layout, cfg.dims)
        self.lstm = nn.LSTM(self.points * self.channels, cfg.hidden_dim, cfg.layers, batch_first=True,
                            bidirectional=True)
        self.pool = nn.MaxPool1d(2, ceil_mode=True)
        self.output_dim = 2 * cfg.hidden_dim
        if cfg.pretrained:
            load_weights(self, cfg.pretrained, "a pose_bilstm state dict")
        self.freeze_blocks([self.lstm], cfg.frozen_blocks)

    def forward(self, poses: torch.Tensor, lengths: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        self.check_input(poses)
        valid = torch.arange(poses.size(1), device=poses.device) < lengths[:, None]
        x = torch.zeros(poses.shape[:2] + (self.points * self.channels,), device=poses.device, dtype=poses.dtype)
        x[valid] = self.normalise(poses[valid]).flatten(1)
        packed = nn.utils.rnn.pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
        x, _ = nn.utils.rnn.pad_packed_sequence(self.lstm(packed)[0], batch_first=True, total_length=poses.size(1))
        x = x.transpose(1, 2)
        for _ in range(2):  # the steps beyond a clip never win a max (as ceil_mode's padding), then are zero
            beyond = lambda n: torch.arange(x.size(2), device=x.device) >= n[:, None, None]  # noqa: E731
            x = self.pool(x.masked_fill(beyond(lengths), float("-inf")))
            lengths = (lengths + 1) // 2
            x = x.masked_fill(beyond(lengths), 0.0)
        return x.transpose(1, 2), lengths

    def output_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        return pooled_lengths(lengths, 2)
