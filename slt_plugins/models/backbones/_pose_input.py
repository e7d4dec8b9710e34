"""What the pose backbones share: their input (keypoints B×T×K×(D+1), confidence last) and its normalisation."""

import torch
import torch.nn as nn

from slt_plugins.data.pose_layouts import get_layout
from slt_plugins.models.backbones import VisualBackbone


class PoseBackbone(VisualBackbone):
    """A visual backbone that reads keypoints instead of frames: ``forward(poses, lengths)`` with ``poses`` float
    B×T×K×(D+1) of the layout the model was built for (its store's, :mod:`slt_plugins.data.pose_layouts`), zero
    beyond each length; the output contract is the RGB backbones' (B×T'×output_dim, T' = ⌈T/4⌉)."""

    input_kind = "poses"

    def __init__(self, layout: str, dims: int):
        super().__init__()
        self.layout = get_layout(layout)
        if dims < 2:
            raise ValueError(f"keypoints need at least 2 coordinates, got dims={dims}")
        self.points, self.channels = len(self.layout), dims + 1
        # per point and channel over the valid frames, as ST-GCN's data BatchNorm: the coordinates and confidences
        # of different points have different spreads
        self.input_norm = nn.BatchNorm1d(self.points * self.channels)

    def check_input(self, poses: torch.Tensor) -> None:
        if poses.dim() != 4 or tuple(poses.shape[2:]) != (self.points, self.channels):
            raise ValueError(f"{type(self).__name__} was built for {self.points} keypoints × {self.channels} "
                             f"channels (layout {self.layout.name!r}), got poses of shape {tuple(poses.shape)}")

    def normalise(self, poses: torch.Tensor) -> torch.Tensor:
        """N×K×C valid frames → N×K×C, normalised per point and channel."""
        return self.input_norm(poses.flatten(1)).view_as(poses)


def valid_steps(lengths: torch.Tensor, steps: int) -> torch.Tensor:
    """B×steps, True within each clip."""
    return torch.arange(steps, device=lengths.device) < lengths[:, None]
