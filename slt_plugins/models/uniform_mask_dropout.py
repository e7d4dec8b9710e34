"""Dropout whose mask comes from uniform random integers: the same dropout, drawn faster on a CPU.

On a CPU, torch's dropout draws its mask element by element with ``bernoulli_``. In a profile of the from-scratch
Phoenix Gloss2Text recipe on one core, ``bernoulli_`` took 17 % of each update, more than any matrix product but one.
Here each mask element is a 16-bit lane of torch's full-range 64-bit random integers (four elements per draw), kept
where the lane is at least p·2¹⁶, and the kept elements are scaled by 1/(1 − p): the same dropout, with p rounded to
a multiple of 2⁻¹⁶. For a 860×1024 activation the mask takes 1.45 ms on one core, against 4.3 ms as uniform floats
(``torch.rand(shape) >= p``, this module's first form) and more with ``bernoulli_``; forward and backward of the
dropout 4.1 ms against 8.7 as uniform floats. Other devices keep ``F.dropout``. The random stream differs from
torch's, so a seeded run with this dropout does not repeat one without it.
"""

import math

import torch
from fairseq.modules import FairseqDropout
from torch import nn

_EVERY_INT64 = {"from": -2 ** 63, "to": None}  # random_ over the whole int64 range: 64 uniform bits per draw


def keep_mask(shape, p: float) -> torch.Tensor:
    """A boolean mask of ``shape``, each element False with probability p (rounded to a multiple of 2⁻¹⁶)."""
    n = math.prod(shape)
    lanes = torch.empty((n + 3) // 4, dtype=torch.int64).random_(**_EVERY_INT64).view(torch.int16)[:n]
    return lanes.view(shape) >= dropped_lanes(p) - 2 ** 15  # a lane is uniform over [−2¹⁵, 2¹⁵)


def dropped_lanes(p: float) -> int:
    """How many of the 2¹⁶ lane values drop an element: p·2¹⁶ rounded, at least 1 and less than 2¹⁶ for 0 < p < 1."""
    return min(max(round(p * 2 ** 16), 1), 2 ** 16 - 1)


class UniformMaskDropout(FairseqDropout):
    def forward(self, x: torch.Tensor, inplace: bool = False) -> torch.Tensor:
        if x.device.type != "cpu" or not (0 < self.p < 1) or not (self.training or self.apply_during_inference):
            return super().forward(x, inplace)
        keep = keep_mask(x.shape, self.p)
        return x * keep.to(x.dtype).mul_(2 ** 16 / (2 ** 16 - dropped_lanes(self.p)))


def use_uniform_mask_dropout(model: nn.Module) -> int:
    """Replace each FairseqDropout in ``model`` by a UniformMaskDropout with its p, name and inference setting;
    returns how many were replaced. Dropout inside torch's attention kernel (the attention weights') stays torch's."""
    replaced = 0
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if type(child) is FairseqDropout:
                swapped = UniformMaskDropout(child.p, child.module_name)
                swapped.apply_during_inference = child.apply_during_inference
                setattr(parent, name, swapped)
                replaced += 1
    return replaced
