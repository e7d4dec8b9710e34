"""Sequence models over the gloss representation: the temporal modelling of the distillation students, chosen by
name (``--sequence-model bilstm|transformer``) from ``registry.SEQUENCE_MODELS``.

VAC's recogniser puts a 2-layer BiLSTM (hidden 1024) after its temporal convolutions and trains both ends with CTC:
ConvCTC on the convolutional features, SeqCTC on the BiLSTM's. The distillation method swaps that BiLSTM for a
transformer encoder. Every sequence model reads B×T'×``input_dim`` features and a B×T' padding mask (True at
padding) and returns B×T'×``output_dim``; a clip's output never depends on the padding of its batch.
"""

from dataclasses import dataclass, field

import torch
import torch.nn as nn
from fairseq.modules import SinusoidalPositionalEmbedding

from fairseq_slt.registry import register_sequence_model


@dataclass
class BiLSTMConfig:
    input_dim: int = field(default=512, metadata={"help": "width of the features it reads"})
    hidden_dim: int = field(default=1024, metadata={"help": "output width: both directions together (VAC: 1024)"})
    layers: int = field(default=2, metadata={"help": "stacked BiLSTM layers (VAC: 2)"})
    dropout: float = field(default=0.1, metadata={"help": "dropout between the layers"})


@register_sequence_model("bilstm", dataclass=BiLSTMConfig)
class BiLSTM(nn.Module):
    """VAC's sequence model. Packed sequences: the backward direction of each clip starts at its own last step."""

    def __init__(self, cfg: BiLSTMConfig):
        super().__init__()
        if cfg.hidden_dim % 2:
            raise ValueError(f"bilstm hidden_dim must be even (two directions), got {cfg.hidden_dim}")
        self.lstm = nn.LSTM(cfg.input_dim, cfg.hidden_dim // 2, num_layers=cfg.layers, bidirectional=True,
                            batch_first=True, dropout=cfg.dropout if cfg.layers > 1 else 0.0)
        self.output_dim = cfg.hidden_dim

    def forward(self, x: torch.Tensor, padding_mask: torch.Tensor) -> torch.Tensor:
        lengths = (~padding_mask).sum(dim=1).cpu()
        packed = nn.utils.rnn.pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
        out, _ = self.lstm(packed)
        out, _ = nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=x.size(1))
        return out


@dataclass
class TransformerConfig:
    input_dim: int = field(default=512, metadata={"help": "width of the features it reads"})
    hidden_dim: int = field(default=512, metadata={"help": "model width and output width"})
    layers: int = field(default=2, metadata={"help": "encoder layers"})
    heads: int = field(default=8, metadata={"help": "attention heads"})
    ff_dim: int = field(default=2048, metadata={"help": "inner width of the feed-forward blocks"})
    dropout: float = field(default=0.1, metadata={"help": "dropout in the layers"})


@register_sequence_model("transformer", dataclass=TransformerConfig)
class TransformerSequenceModel(nn.Module):
    """A pre-LayerNorm transformer encoder with sinusoidal positions; attention never reads padded steps."""

    def __init__(self, cfg: TransformerConfig):
        super().__init__()
        self.input_projection = (nn.Linear(cfg.input_dim, cfg.hidden_dim) if cfg.input_dim != cfg.hidden_dim
                                 else nn.Identity())
        self.positions = SinusoidalPositionalEmbedding(cfg.hidden_dim, padding_idx=0)
        layer = nn.TransformerEncoderLayer(cfg.hidden_dim, cfg.heads, cfg.ff_dim, cfg.dropout, batch_first=True,
                                           norm_first=True)
        self.layers = nn.TransformerEncoder(layer, cfg.layers, enable_nested_tensor=False)
        self.layer_norm = nn.LayerNorm(cfg.hidden_dim)
        self.output_dim = cfg.hidden_dim

    def forward(self, x: torch.Tensor, padding_mask: torch.Tensor) -> torch.Tensor:
        h = self.input_projection(x) + self.positions((~padding_mask).long())
        h = self.layers(h, src_key_padding_mask=padding_mask)
        return self.layer_norm(h).masked_fill(padding_mask.unsqueeze(-1), 0.0)
