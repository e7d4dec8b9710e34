"""``pose_stgcn``: a spatial-temporal graph convolution network over the skeleton (ST-GCN, Yan et al. 2018), as the
keypoint streams of MSKA-SLT and TwoStream-SLT use, with the RGB backbones' output contract (T/4 steps).

The graph is the layout's bones (:mod:`slt_plugins.data.pose_layouts`) with ST-GCN's *spatial* partition: for each
point, itself, its neighbours nearer the root and those farther (hop distance from the first point of each
connected part of the skeleton), each subset with its own weights and normalised by in-degree, and a learnt
importance per edge. A block is that graph convolution, a temporal convolution (stride 1 or 2), BatchNorm, ReLU
and a residual. The last block's channels are averaged over the points, giving B×T'×output_dim. Each block is a
block for ``frozen_blocks``.
"""

from collections import deque
from dataclasses import dataclass, field
from typing import List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn as nn

from fairseq_slt.registry import register_visual_backbone
from slt_plugins.data.pose_layouts import DEFAULT_LAYOUT, PoseLayout
from slt_plugins.models.backbones import load_weights
from slt_plugins.models.backbones._pose_input import PoseBackbone, valid_steps


@dataclass
class PoseSTGCNConfig:
    layout: str = field(default=DEFAULT_LAYOUT, metadata={
        "help": "keypoint layout of the input; set from the dataset's poses.lmdb when the model is built"})
    dims: int = field(default=3, metadata={"help": "coordinates per point (set from poses.lmdb)"})
    channels: List[int] = field(default_factory=lambda: [64, 64, 128, 128, 256],
                                metadata={"help": "output channels of the blocks"})
    strides: List[int] = field(default_factory=lambda: [1, 1, 2, 1, 2], metadata={
        "help": "temporal stride of each block (1 or 2); their product must be 4 (T/4 out)"})
    temporal_kernel: int = field(default=9, metadata={"help": "odd temporal kernel of each block (ST-GCN: 9)"})
    dropout: float = field(default=0.1)
    frozen_blocks: int = field(default=0, metadata={"help": "the first N blocks keep their weights"})
    pretrained: Optional[str] = field(default=None, metadata={"help": "a state dict of this backbone to start from"})


def spatial_partition(layout: PoseLayout) -> np.ndarray:
    """3×K×K adjacency of ST-GCN's spatial partition (self, centripetal, centrifugal), each column-normalised:
    ``A[p, j, i]`` weighs point j's features in point i's output."""
    k = len(layout)
    neighbours = [[] for _ in range(k)]
    for a, b in layout.bones:
        neighbours[a].append(b)
        neighbours[b].append(a)
    hops = [-1] * k
    for root in range(k):  # one root per connected part (the first point of it in layout order)
        if hops[root] >= 0:
            continue
        hops[root], queue = 0, deque([root])
        while queue:
            node = queue.popleft()
            for other in neighbours[node]:
                if hops[other] < 0:
                    hops[other] = hops[node] + 1
                    queue.append(other)
    adjacency = np.zeros((3, k, k), dtype=np.float32)
    for i in range(k):
        adjacency[0, i, i] = 1.0
        for j in neighbours[i]:
            adjacency[0 if hops[j] == hops[i] else 1 if hops[j] < hops[i] else 2, j, i] = 1.0
    degree = adjacency.sum(axis=(0, 1))  # in-degree of each point over all subsets
    return adjacency / degree[None, None, :]


class STGCNBlock(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, stride: int, kernel: int, partitions: int,
                 dropout: float):
        super().__init__()
        self.partitions, self.stride = partitions, stride
        self.spatial = nn.Conv2d(in_channels, out_channels * partitions, 1)
        self.spatial_norm = nn.Sequential(nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True))
        self.temporal = nn.Sequential(
            nn.Conv2d(out_channels, out_channels, (kernel, 1), stride=(stride, 1), padding=(kernel // 2, 0)),
            nn.BatchNorm2d(out_channels), nn.Dropout(dropout, inplace=True))
        if in_channels == out_channels and stride == 1:
            self.residual = nn.Identity()
        else:
            self.residual = nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, stride=(stride, 1)),
                                          nn.BatchNorm2d(out_channels))

    def forward(self, x: torch.Tensor, adjacency: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """x: B×C×T×K, zero beyond each clip; adjacency: P×K×K (importance applied); valid: B×1×T×1."""
        b, _, t, k = x.shape
        y = self.spatial(x).view(b, self.partitions, -1, t, k)
        y = torch.einsum("bpctj,pji->bcti", y, adjacency)
        # zero beyond each clip before the temporal convolution, as the clip alone would pad it
        y = self.spatial_norm(y) * valid
        return torch.relu(self.temporal(y) + self.residual(x))


@register_visual_backbone("pose_stgcn", dataclass=PoseSTGCNConfig)
class PoseSTGCN(PoseBackbone):
    def __init__(self, cfg: PoseSTGCNConfig):
        super().__init__(cfg.layout, cfg.dims)
        if len(cfg.channels) != len(cfg.strides) or not cfg.channels:
            raise ValueError(f"pose_stgcn: {len(cfg.channels)} channels for {len(cfg.strides)} strides")
        if sorted(set(cfg.strides)) not in ([1], [2], [1, 2]) or int(np.prod(cfg.strides)) != 4:
            raise ValueError(f"pose_stgcn: strides {cfg.strides} must be 1 or 2 and multiply to 4 (T/4 steps)")
        if cfg.temporal_kernel % 2 != 1:
            raise ValueError(f"pose_stgcn: temporal_kernel must be odd, got {cfg.temporal_kernel}")
        adjacency = torch.from_numpy(spatial_partition(self.layout))
        self.register_buffer("adjacency", adjacency)
        widths = [self.channels, *cfg.channels]
        self.blocks = nn.ModuleList(
            STGCNBlock(a, b, s, cfg.temporal_kernel, len(adjacency), cfg.dropout)
            for a, b, s in zip(widths, widths[1:], cfg.strides))
        # ST-GCN's learnt edge importance, one mask per block (ones: the graph as it is)
        self.edge_importance = nn.ParameterList(nn.Parameter(torch.ones_like(adjacency)) for _ in self.blocks)
        self.strides: Sequence[int] = tuple(cfg.strides)
        self.output_dim = cfg.channels[-1]
        if cfg.pretrained:
            load_weights(self, cfg.pretrained, "a pose_stgcn state dict")
        self.freeze_blocks(list(self.blocks), cfg.frozen_blocks)
        for block, importance in zip(self.blocks[:cfg.frozen_blocks], self.edge_importance):
            importance.requires_grad_(False)

    def forward(self, poses: torch.Tensor, lengths: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        self.check_input(poses)
        valid = valid_steps(lengths, poses.size(1))
        x = torch.zeros_like(poses)
        x[valid] = self.normalise(poses[valid])  # padding stays zero and out of the statistics
        x = x.permute(0, 3, 1, 2).contiguous()  # B×C×T×K
        out_lengths = lengths
        for block, importance, stride in zip(self.blocks, self.edge_importance, self.strides):
            x = block(x, self.adjacency * importance, valid_steps(out_lengths, x.size(2))[:, None, :, None])
            out_lengths = (out_lengths + stride - 1) // stride
            # zero the steps beyond each clip, as the clip alone would see them (the convolutions' zero padding)
            x = x * valid_steps(out_lengths, x.size(2))[:, None, :, None]
        return x.mean(dim=3).transpose(1, 2), out_lengths

    def output_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        for stride in self.strides:
            lengths = (lengths + stride - 1) // stride
        return lengths
