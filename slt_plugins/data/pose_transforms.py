"""Augmentation of keypoint clips (``--input poses``), the counterpart of :mod:`video_transforms` for poses.

Training: temporal rescaling as for frames (a random factor of the frame count, frames dropped or repeated), one
random affine map of the x-y plane per clip (rotation, scale per axis, shear), and keypoint dropout (a point hidden
in a frame: coordinates and confidence 0, as when MediaPipe misses it). Evaluation: every frame. Both round the
frame count up to a multiple of 4, the backbones' stride. Points not detected (confidence 0) stay at 0.
"""

import math
from dataclasses import dataclass
from typing import Optional, Tuple

import numpy as np
import torch

from slt_plugins.data.video_transforms import ClipTransform, ClipTransformConfig


@dataclass(frozen=True)
class PoseTransformConfig:
    min_frames: int = 4
    frame_multiple: int = 4
    temporal_scale: Tuple[float, float] = (0.5, 1.5)
    rotation: float = 15.0  # degrees, either way
    scale: Tuple[float, float] = (0.8, 1.2)  # per axis
    shear: float = 0.15  # x += shear·y and y += shear'·x, |shear| up to this
    point_dropout: float = 0.05  # chance that a point is hidden in a frame


def affine_matrix(rng: np.random.Generator, cfg: PoseTransformConfig) -> np.ndarray:
    """2×2: rotation · shear · scale, drawn once per clip."""
    angle = math.radians(rng.uniform(-cfg.rotation, cfg.rotation))
    rotation = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    shear = np.array([[1.0, rng.uniform(-cfg.shear, cfg.shear)], [rng.uniform(-cfg.shear, cfg.shear), 1.0]])
    return rotation @ shear @ np.diag(rng.uniform(*cfg.scale, size=2))


class PoseTransform:
    """Augments (``train``) or passes one clip of keypoints T×K×(D+1) (confidence last); see the module docstring."""

    def __init__(self, cfg: PoseTransformConfig, train: bool):
        self.cfg = cfg
        self.train = train
        self._frames = ClipTransform(ClipTransformConfig(min_frames=cfg.min_frames, frame_multiple=cfg.frame_multiple,
                                                         temporal_scale=cfg.temporal_scale), train)

    def __call__(self, poses: np.ndarray, rng: Optional[np.random.Generator] = None) -> torch.Tensor:
        """float T×K×C → float32 T'×K×C."""
        poses = poses[self._frames.frame_indices(len(poses), rng)].astype(np.float32)
        if self.train:
            visible = poses[..., -1] > 0
            if self.cfg.point_dropout > 0:
                visible &= rng.random(visible.shape) >= self.cfg.point_dropout
            poses[..., :2] = poses[..., :2] @ affine_matrix(rng, self.cfg).T.astype(np.float32)
            poses[~visible] = 0.0
        return torch.from_numpy(np.ascontiguousarray(poses))
