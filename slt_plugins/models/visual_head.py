"""The visual head of Sign2Gloss: backbone features → gloss representation (T'×512) → gloss logits.

Projection block (Linear, BatchNorm over the valid frames only, ReLU), sinusoidal positions, then a temporal
convolution block (two Conv1d with kernel 3 around a ReLU, residual, LayerNorm), as in SingleStream-SLT. The gloss
representation is what the visual-language mapper reads in Sign2Text; the classifier feeds CTC. A head built with no
gloss classes (``num_classes=0``: a corpus without glosses) has no classifier and returns no logits.

Two sinusoidal tables (``positions``), which give different logits for the same weights:

- ``fairseq`` (default, what models trained here use): fairseq's ``SinusoidalPositionalEmbedding``, the sin half and
  the cos half concatenated, frequencies ``10000^(-i/(d/2-1))``, positions counted from ``padding_idx + 1``.
- ``opennmt``: SLRT's ``PositionalEncoding`` (from OpenNMT-py): sin and cos interleaved (even channels sin, odd cos),
  frequencies ``10000^(-2i/d)``, positions counted from 0. ``slt-import-slrt`` sets it for SLRT's checkpoints.

Padded steps are zeroed before each convolution, so a clip's output does not depend on what it is batched with.
SLRT's head leaves them in (its BatchNorm normalises them in evaluation), which changes the last valid steps of a
shorter clip in a padded batch; on a lone clip, or on the valid steps of the longest, the two compute the same.
"""

import math

from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from fairseq.modules import SinusoidalPositionalEmbedding


class MaskedBatchNorm1d(nn.BatchNorm1d):
    """BatchNorm over the valid (non-padding) time steps of a B×T×C batch: padded frames neither shift the
    batch statistics nor the running averages."""

    def forward(self, x: torch.Tensor, padding_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        if padding_mask is None:
            return super().forward(x.reshape(-1, x.size(-1))).view_as(x)
        valid = ~padding_mask
        out = torch.zeros_like(x)
        out[valid] = super().forward(x[valid])
        return out


class TemporalConvBlock(nn.Module):
    """Position-wise feed-forward made of two Conv1d over time (pre-LayerNorm, residual)."""

    def __init__(self, dim: int, ff_dim: int, kernel_size: int = 3, dropout: float = 0.1):
        super().__init__()
        self.layer_norm = nn.LayerNorm(dim, eps=1e-6)
        self.conv_in = nn.Conv1d(dim, ff_dim, kernel_size, padding=kernel_size // 2)
        self.conv_out = nn.Conv1d(ff_dim, dim, kernel_size, padding=kernel_size // 2)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, padding_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        h = self.dropout(F.relu(self.conv_in(self._mask(self.layer_norm(x), padding_mask).transpose(1, 2))))
        h = self.conv_out(self._mask(h.transpose(1, 2), padding_mask).transpose(1, 2))
        return x + self.dropout(h).transpose(1, 2)

    @staticmethod
    def _mask(h: torch.Tensor, padding_mask: Optional[torch.Tensor]) -> torch.Tensor:
        """Zero the padded steps before a kernel reads them, so valid steps see what a lone clip would."""
        return h if padding_mask is None else h.masked_fill(padding_mask.unsqueeze(-1), 0.0)


class InterleavedPositions(nn.Module):
    """OpenNMT-py's (and SLRT's) sinusoidal encoding: ``pe[p, 2i] = sin(p·w_i)``, ``pe[p, 2i+1] = cos(p·w_i)``,
    ``w_i = 10000^(-2i/d)``, positions p = 0, 1, … from each clip's first step. Computed, not stored."""

    def __init__(self, dim: int):
        super().__init__()
        if dim % 2:
            raise ValueError(f"interleaved sin/cos positions need an even width, got {dim}")
        self.dim = dim

    def forward(self, valid: torch.Tensor) -> torch.Tensor:
        """valid: B×T (1 = a clip's step) → T×dim table, broadcast over the batch (clips are right-padded)."""
        steps = torch.arange(valid.size(1), dtype=torch.float, device=valid.device).unsqueeze(1)
        rates = torch.exp(torch.arange(0, self.dim, 2, dtype=torch.float, device=valid.device)
                          * -(math.log(10000.0) / self.dim))
        table = torch.zeros(valid.size(1), self.dim, device=valid.device)
        table[:, 0::2] = torch.sin(steps * rates)
        table[:, 1::2] = torch.cos(steps * rates)
        return table.unsqueeze(0)


POSITIONS = ("fairseq", "opennmt")


class VisualHead(nn.Module):
    def __init__(self, input_dim: int, num_classes: int, dim: int = 512, ff_dim: int = 2048, kernel_size: int = 3,
                 dropout: float = 0.1, positions: str = "fairseq"):
        super().__init__()
        if positions not in POSITIONS:
            raise ValueError(f"head positions {positions!r}: expected one of {', '.join(POSITIONS)}")
        self.projection = nn.Linear(input_dim, dim)
        self.batch_norm = MaskedBatchNorm1d(dim)
        self.positions = (SinusoidalPositionalEmbedding(dim, padding_idx=0) if positions == "fairseq"
                          else InterleavedPositions(dim))
        self.dropout = nn.Dropout(dropout)
        self.temporal_conv = TemporalConvBlock(dim, ff_dim, kernel_size, dropout)
        self.layer_norm = nn.LayerNorm(dim, eps=1e-6)
        self.classifier = nn.Linear(dim, num_classes) if num_classes > 0 else None

    def forward(self, x: torch.Tensor, padding_mask: torch.Tensor):
        """x: B×T'×input_dim, padding_mask: B×T' (True = padding) → (gloss features B×T'×dim, logits B×T'×V or
        None without a classifier)."""
        h = F.relu(self.batch_norm(self.projection(x), padding_mask))
        h = h + self.positions((~padding_mask).long())  # fairseq counts positions over the non-padding steps
        h = self.temporal_conv(self.dropout(h), padding_mask)
        features = self.layer_norm(h)
        return features, self.classifier(features) if self.classifier is not None else None
