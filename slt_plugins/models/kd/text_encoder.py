"""A BERT-style text encoder (token embeddings, sinusoidal positions, pre-LayerNorm transformer layers), shared by
the teachers that read spoken-language text: the dialogue teacher (the preceding utterance) and the text→gloss
teacher (the utterance's own translation)."""

import math
from dataclasses import dataclass, field

import torch
import torch.nn as nn
from fairseq.data import Dictionary
from fairseq.modules import SinusoidalPositionalEmbedding


@dataclass
class TextEncoderConfig:
    text_embed_dim: int = field(default=256, metadata={"help": "width of the text encoder"})
    text_layers: int = field(default=2, metadata={"help": "transformer layers of the text encoder"})
    text_heads: int = field(default=4, metadata={"help": "attention heads of the text encoder"})
    text_ff_dim: int = field(default=1024, metadata={"help": "feed-forward width of the text encoder"})


class TextEncoder(nn.Module):
    """Token ids B×L (padded with the dictionary's pad) → B×L×dim, zero at padding."""

    def __init__(self, dictionary: Dictionary, dim: int, layers: int, heads: int, ff_dim: int, dropout: float):
        super().__init__()
        self.padding_idx = dictionary.pad()
        self.embed_tokens = nn.Embedding(len(dictionary), dim, padding_idx=self.padding_idx)
        nn.init.normal_(self.embed_tokens.weight, mean=0, std=dim**-0.5)
        nn.init.zeros_(self.embed_tokens.weight[self.padding_idx])
        self.scale = math.sqrt(dim)
        self.positions = SinusoidalPositionalEmbedding(dim, padding_idx=0)
        self.dropout = nn.Dropout(dropout)
        layer = nn.TransformerEncoderLayer(dim, heads, ff_dim, dropout, batch_first=True, norm_first=True)
        self.layers = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.layer_norm = nn.LayerNorm(dim)

    def forward(self, tokens: torch.Tensor):
        """Returns (B×L×dim features, B×L padding mask)."""
        padding_mask = tokens.eq(self.padding_idx)
        h = self.embed_tokens(tokens) * self.scale + self.positions((~padding_mask).long())
        h = self.layers(self.dropout(h), src_key_padding_mask=padding_mask)
        return self.layer_norm(h).masked_fill(padding_mask.unsqueeze(-1), 0.0), padding_mask


def masked_mean(x: torch.Tensor, padding_mask: torch.Tensor) -> torch.Tensor:
    """B×L×C → B×C, the mean over the valid steps."""
    valid = (~padding_mask).unsqueeze(-1).to(x.dtype)
    return (x * valid).sum(dim=1) / valid.sum(dim=1).clamp(min=1)
