"""Visual-language mappers: the gloss representation of Sign2Gloss → input embeddings of the mBART encoder.

Chosen by name in the joint model (``--vl-mapper mlp|gloss_embedding``) from ``registry.VL_MAPPERS``. Every mapper
reads the visual head's output (gloss features B×T'×``input_dim`` and gloss logits B×T'×``num_glosses``) and
returns B×T'×``output_dim`` vectors that take the place of token embeddings. The translator multiplies them by its
embedding scale (√d for mBART), as it does its token embeddings: SingleStream-SLT scales the mapper's output by
√1024 before mBART's encoder for the same reason.

- ``mlp`` (SingleStream-SLT's mapper): Linear ``input_dim``→``hidden_dim``, ReLU, Linear →``output_dim`` on the
  gloss features (512→1024→1024 for S3D + mbart.cc25).
- ``gloss_embedding``: the gloss posteriors (softmax of the logits) times a ``num_glosses``×``output_dim`` matrix
  whose rows start as the translator's embeddings of the same glosses, so that at the start of training a
  confidently recognised gloss enters the encoder exactly as Gloss2Text saw it. Rows of the CTC blank and of glosses
  the translator does not know start at zero.
"""

import logging
from dataclasses import dataclass, field
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from fairseq.data import Dictionary

from fairseq_slt.registry import register_vl_mapper

logger = logging.getLogger(__name__)


@dataclass
class VLMapperConfig:
    input_dim: int = field(default=512, metadata={"help": "width of the gloss representation (the visual head)"})
    output_dim: int = field(default=1024, metadata={"help": "embedding width of the translator"})
    num_glosses: int = field(default=0, metadata={"help": "size of the CTC gloss vocabulary (the classifier)"})


class VLMapper(nn.Module):
    """``forward(gloss_features, gloss_logits) -> B×T'×output_dim``; ``init_from_translator`` may copy embeddings."""

    def init_from_translator(self, gloss_dict: Dictionary, embeddings: nn.Embedding, source_dict: Dictionary) -> int:
        """Start from the translator's token embeddings where the mapper has a use for them; returns the rows set."""
        return 0


@dataclass
class MlpMapperConfig(VLMapperConfig):
    hidden_dim: int = field(default=0, metadata={"help": "inner width (0: output_dim, as SingleStream-SLT)"})
    dropout: float = field(default=0.0, metadata={"help": "dropout after the ReLU"})


@register_vl_mapper("mlp", dataclass=MlpMapperConfig)
class MlpMapper(VLMapper):
    def __init__(self, cfg: MlpMapperConfig):
        super().__init__()
        hidden = cfg.hidden_dim or cfg.output_dim
        self.layers = nn.Sequential(nn.Linear(cfg.input_dim, hidden), nn.ReLU(), nn.Dropout(cfg.dropout),
                                    nn.Linear(hidden, cfg.output_dim))

    def forward(self, gloss_features: torch.Tensor, gloss_logits: Optional[torch.Tensor] = None) -> torch.Tensor:
        return self.layers(gloss_features)


@dataclass
class GlossEmbeddingMapperConfig(VLMapperConfig):
    temperature: float = field(default=1.0, metadata={"help": "softmax temperature of the gloss posteriors"})


@register_vl_mapper("gloss_embedding", dataclass=GlossEmbeddingMapperConfig)
class GlossEmbeddingMapper(VLMapper):
    def __init__(self, cfg: GlossEmbeddingMapperConfig):
        super().__init__()
        if cfg.num_glosses < 1:
            raise ValueError("vl_mapper 'gloss_embedding' reads gloss posteriors, and this model has no gloss "
                             "classifier (a dataset without glosses): use --vl-mapper mlp")
        self.temperature = cfg.temperature
        self.weight = nn.Parameter(torch.zeros(cfg.num_glosses, cfg.output_dim))
        nn.init.normal_(self.weight, std=cfg.output_dim ** -0.5)

    def forward(self, gloss_features: torch.Tensor, gloss_logits: Optional[torch.Tensor] = None) -> torch.Tensor:
        if gloss_logits is None:
            raise ValueError("vl_mapper 'gloss_embedding' reads the gloss logits")
        return F.softmax(gloss_logits.float() / self.temperature, dim=-1).type_as(self.weight) @ self.weight

    @torch.no_grad()
    def init_from_translator(self, gloss_dict: Dictionary, embeddings: nn.Embedding, source_dict: Dictionary) -> int:
        self.weight.zero_()
        found = 0
        for i, symbol in enumerate(gloss_dict.symbols):
            j = source_dict.index(symbol)
            if i >= gloss_dict.nspecial and j != source_dict.unk():
                # the vector the translator reads for that gloss (with --gloss-spelling-embeddings, more than its row)
                self.weight[i] = embeddings(torch.tensor(j))
                found += 1
        logger.info(f"gloss_embedding mapper: {found} of {len(gloss_dict) - gloss_dict.nspecial} glosses start from "
                    "the translator's embeddings")
        return found
