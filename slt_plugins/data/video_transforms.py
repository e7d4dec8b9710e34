"""Clip-level augmentation of sign videos, as in SLRT (TwoStreamNetwork).

Training: temporal rescaling (a random factor in [0.5, 1.5] of the frame count, frames dropped or repeated at
random) and a random resized crop (area 0.7–1, aspect 0.75–1.3), the same crop for every frame of a clip.
Evaluation: every frame and a centre crop. Both round the frame count up to a multiple of 4, the S3D stride.

The work is split in two so that a store decodes only the frames that survive: :meth:`ClipTransform.frame_indices`
needs only the clip length, :meth:`ClipTransform.__call__` crops and resizes the decoded frames. Randomness comes
from a numpy Generator seeded per item (:func:`item_rng`), so data-loader workers draw the same augmentation as a
single process would; training needs one, evaluation none.
"""

import math
from dataclasses import dataclass
from typing import NamedTuple, Optional, Tuple

import numpy as np
import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class ClipTransformConfig:
    crop_size: int = 224
    min_frames: int = 4
    frame_multiple: int = 4  # S3D pools time by 4
    temporal_scale: Tuple[float, float] = (0.5, 1.5)
    crop_area: Tuple[float, float] = (0.7, 1.0)  # fraction of the frame's area
    crop_aspect: Tuple[float, float] = (0.75, 1.3)  # width / height


class Box(NamedTuple):
    top: int
    left: int
    height: int
    width: int


def item_rng(seed: int, epoch: int, index: int, *stream: int) -> np.random.Generator:
    """The augmentation randomness of one item: the same in any worker, different in every epoch. ``stream`` names
    another, independent sequence for the same item (a second kind of draw that must not shift the first)."""
    return np.random.default_rng([seed, epoch, index, *stream])


def round_up(n: int, multiple: int) -> int:
    return -(-n // multiple) * multiple


class ClipTransform:
    """Augments (``train``) or normalises one clip; see the module docstring."""

    def __init__(self, cfg: ClipTransformConfig, train: bool):
        self.cfg = cfg
        self.train = train

    def frame_indices(self, n_frames: int, rng: Optional[np.random.Generator] = None) -> np.ndarray:
        """Sorted indices of the frames that make the output clip, repeats included (int64, never empty)."""
        if n_frames < 1:
            raise ValueError(f"a clip needs at least one frame, got {n_frames}")
        cfg = self.cfg
        if not self.train:
            length = round_up(max(n_frames, cfg.min_frames), cfg.frame_multiple)
            return np.minimum(np.arange(length), n_frames - 1)  # pad by repeating the last frame
        length = round(rng.uniform(*cfg.temporal_scale) * n_frames)
        length = round_up(max(length, cfg.min_frames, 1), cfg.frame_multiple)
        if length <= n_frames:
            chosen = rng.choice(n_frames, size=length, replace=False)
        else:
            chosen = np.concatenate([np.arange(n_frames), rng.integers(0, n_frames, length - n_frames)])
        return np.sort(chosen)

    def crop_box(self, height: int, width: int, rng: Optional[np.random.Generator] = None) -> Box:
        """The region of the frame that becomes the crop_size × crop_size output."""
        if self.train:
            return random_resized_box(height, width, rng, self.cfg.crop_area, self.cfg.crop_aspect)
        side = min(self.cfg.crop_size, height, width)  # frames smaller than the crop: resize up
        return Box((height - side) // 2, (width - side) // 2, side, side)

    def __call__(self, frames: np.ndarray, rng: Optional[np.random.Generator] = None) -> torch.Tensor:
        """uint8 T×H×W×3 → uint8 T×3×crop×crop, channels last in memory (see :func:`crop_resize`)."""
        return crop_resize(frames, self.crop_box(frames.shape[1], frames.shape[2], rng), self.cfg.crop_size)


def random_resized_box(height: int, width: int, rng: np.random.Generator,
                       area: Tuple[float, float], aspect: Tuple[float, float]) -> Box:
    """torchvision's RandomResizedCrop draw, with a numpy Generator; the whole frame if 10 draws do not fit."""
    log_aspect = (math.log(aspect[0]), math.log(aspect[1]))
    for _ in range(10):
        target_area = height * width * rng.uniform(*area)
        ratio = math.exp(rng.uniform(*log_aspect))
        w = round(math.sqrt(target_area * ratio))
        h = round(math.sqrt(target_area / ratio))
        if 0 < w <= width and 0 < h <= height:
            return Box(int(rng.integers(0, height - h + 1)), int(rng.integers(0, width - w + 1)), h, w)
    return Box(0, 0, height, width)


def crop_resize(frames: np.ndarray, box: Box, size: int) -> torch.Tensor:
    """Crops every frame to ``box`` and resizes the whole clip at once (bilinear, antialiased, in uint8).

    The result keeps the frames' memory layout, channels last (T×H×W×3 in memory, seen as T×3×H×W): uint8
    resizing is twice as fast on it, and putting the channels first would cost a copy as long as the resizing,
    only for a 3-D convolution to want channels last again (cuDNN's channels_last_3d)."""
    clip = torch.from_numpy(frames).permute(0, 3, 1, 2)
    clip = clip[:, :, box.top: box.top + box.height, box.left: box.left + box.width]
    if (box.height, box.width) != (size, size):
        clip = F.interpolate(clip, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    return clip
