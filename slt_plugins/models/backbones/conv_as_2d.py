"""3-D convolutions and max-pools that run as 2-D ones on channels-last tensors: S3D's fast path on a CPU.

S3D factors its 3-D kernels into 1×k×k over space and k×1×1 over time. On a B×C×T×H×W tensor stored channels last
(``torch.channels_last_3d``: B×T×H×W×C in memory), both are 2-D operations on free views of the same memory:

- over space, the frames B·T×C×H×W (channels last) with the k×k kernel;
- over time, B×C×T×(H·W) (channels last as well) with a k×1 kernel.

oneDNN's and ATen's 2-D kernels are far better tuned on a CPU than their 3-D ones (a 3×3×3 max-pool as two 2-D
pools runs several times faster), and the arithmetic is the same: a 2-D convolution sums the same products as the
3-D one, only perhaps in another order, and a max over a box is the max over time of the maxima over space (a tie
goes to the same element, the first in time and then in the frame, so the gradients match as well).
The layers keep their ``nn.Conv3d`` / ``nn.MaxPool3d`` parameters and state-dict keys, so checkpoints load
unchanged; a tensor in any other layout or off the CPU, or a kernel that mixes space and time, takes the plain 3-D
path.
"""

from typing import Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.modules.utils import _triple


def runs_as_2d(x: torch.Tensor) -> bool:
    """A channels-last tensor on a CPU: what the 2-D path is for (on a GPU, cuDNN's 3-D kernels are left alone)."""
    return x.device.type == "cpu" and x.dim() == 5 and x.is_contiguous(memory_format=torch.channels_last_3d)


def as_frames(x: torch.Tensor) -> torch.Tensor:
    """B×C×T×H×W channels last → B·T×C×H×W channels last, a view."""
    batch, channels, time, height, width = x.shape
    # through the B×T×H×W×C order in memory, so that even the stride of a batch of 1 is the channels-last one
    # (ATen picks a convolution's output layout from the strides, a batch of 1 included)
    return x.permute(0, 2, 3, 4, 1).reshape(batch * time, height, width, channels).permute(0, 3, 1, 2)


def from_frames(x: torch.Tensor, batch: int) -> torch.Tensor:
    frames, channels, height, width = x.shape
    return x.permute(0, 2, 3, 1).reshape(batch, frames // batch, height, width, channels).permute(0, 4, 1, 2, 3)


def as_time_rows(x: torch.Tensor) -> torch.Tensor:
    """B×C×T×H×W channels last → B×C×T×(H·W) channels last, a view."""
    batch, channels, time, height, width = x.shape
    rows = x.permute(0, 2, 3, 4, 1).reshape(batch * time, height * width, channels)
    return rows.view(batch, time, height * width, channels).permute(0, 3, 1, 2)


def from_time_rows(x: torch.Tensor, height: int, width: int) -> torch.Tensor:
    batch, channels, time, _ = x.shape
    return x.permute(0, 2, 3, 1).reshape(batch, time, height, width, channels).permute(0, 4, 1, 2, 3)


def spatial(value: Tuple[int, int, int]) -> Tuple[int, int]:
    return value[1], value[2]


def temporal(value: Tuple[int, int, int], across: int = 1) -> Tuple[int, int]:
    """The time part of a 3-D kernel, stride (``across`` = 1) or padding (``across`` = 0) as a 2-D one."""
    return value[0], across


class Conv3dAs2d(nn.Conv3d):
    """``nn.Conv3d`` whose 1×k×k (over space) and k×1×1 (over time) kernels run as 2-D convolutions on a
    channels-last input."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not runs_as_2d(x) or self.groups != 1 or self.dilation != (1, 1, 1) or \
                self.padding_mode != "zeros" or isinstance(self.padding, str):
            return super().forward(x)
        (kt, kh, kw), (st, sh, sw), (pt, ph, pw) = self.kernel_size, self.stride, self.padding
        if (kt, st, pt) == (1, 1, 0):  # over space (1×1×1 included): the frames
            y = F.conv2d(as_frames(x), self.weight.squeeze(2), self.bias, (sh, sw), (ph, pw))
            return from_frames(y, x.size(0))
        if (kh, kw, sh, sw, ph, pw) == (1, 1, 1, 1, 0, 0):  # over time: each pixel's row of frames
            y = F.conv2d(as_time_rows(x), self.weight.squeeze(4), self.bias, (st, 1), (pt, 0))
            return from_time_rows(y, x.size(3), x.size(4))
        return super().forward(x)


class MaxPool3dAs2d(nn.MaxPool3d):
    """``nn.MaxPool3d`` as a 2-D max-pool over space, then one over time, on a channels-last input."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not runs_as_2d(x) or self.ceil_mode or self.return_indices or _triple(self.dilation) != (1, 1, 1):
            return super().forward(x)
        kernel, stride, padding = _triple(self.kernel_size), _triple(self.stride or self.kernel_size), \
            _triple(self.padding)
        if spatial(kernel) != (1, 1) or spatial(stride) != (1, 1):
            x = from_frames(F.max_pool2d(as_frames(x), spatial(kernel), spatial(stride), spatial(padding)), x.size(0))
        if kernel[0] != 1 or stride[0] != 1:
            x = from_time_rows(F.max_pool2d(as_time_rows(x), temporal(kernel), temporal(stride), temporal(padding, 0)),
                               x.size(3), x.size(4))
        return x
