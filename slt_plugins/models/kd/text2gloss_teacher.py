"""Model ``text2gloss_teacher``: glosses from the spoken-language translation alone, on the clip's time axis — the
second recognition teacher of the multimodal distillation method.

A student is distilled step by step (KL between gloss posteriors, distance between features), so this teacher
speaks on the student's time axis: it reads the translation with a text encoder, and T' query slots (one per output
step of the visual side: ⌈frames / time_reduction⌉ in its own training, the student's steps in distillation) attend
to the text through transformer decoder layers without a causal mask. Each slot knows its absolute step and its
relative place in the clip; CTC over the slots learns where each gloss falls. It sees no video, so it knows the
glosses (from the text) but not the signer's timing: the complement of the dialogue teacher.
Train it with ``--task sign2gloss --input lengths --text-inputs --criterion vac_ctc`` (no frames are read).
"""

import logging
import math
from dataclasses import dataclass, field
from typing import Optional

import torch
import torch.nn as nn
from fairseq.dataclass import FairseqDataclass
from fairseq.models import FairseqEncoder, FairseqEncoderModel, register_model, register_model_architecture

from slt_plugins.models.kd.text_encoder import TextEncoder
from slt_plugins.models.s3d_encoder import lengths_to_mask

logger = logging.getLogger(__name__)


@dataclass
class Text2GlossTeacherConfig(FairseqDataclass):
    embed_dim: int = field(default=512, metadata={"help": "width of the model and of its gloss features"})
    encoder_layers: int = field(default=2, metadata={"help": "text encoder layers"})
    decoder_layers: int = field(default=2, metadata={"help": "layers of the query slots (self + cross attention)"})
    heads: int = field(default=8, metadata={"help": "attention heads"})
    ff_dim: int = field(default=2048, metadata={"help": "feed-forward width"})
    dropout: float = field(default=0.1, metadata={"help": "dropout"})
    time_reduction: int = field(default=4, metadata={
        "help": "frames per output step of the visual side it will teach (4 for S3D, ResNet18 and cnn_tconv)"})


def sinusoid(positions: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal embeddings of (possibly fractional) positions: ... → ...×dim."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=positions.device) / max(half - 1, 1))
    angles = positions.float().unsqueeze(-1) * freqs
    return torch.cat([angles.sin(), angles.cos()], dim=-1)


class Text2GlossEncoder(FairseqEncoder):
    def __init__(self, cfg: Text2GlossTeacherConfig, gloss_dict, text_dict):
        super().__init__(gloss_dict)
        if cfg.embed_dim % 2:
            raise ValueError(f"text2gloss_teacher embed_dim must be even, got {cfg.embed_dim}")
        self.text = TextEncoder(text_dict, cfg.embed_dim, cfg.encoder_layers, cfg.heads, cfg.ff_dim, cfg.dropout)
        self.slot_projection = nn.Linear(2 * cfg.embed_dim, cfg.embed_dim)
        layer = nn.TransformerDecoderLayer(cfg.embed_dim, cfg.heads, cfg.ff_dim, cfg.dropout, batch_first=True,
                                           norm_first=True)
        self.slots = nn.TransformerDecoder(layer, cfg.decoder_layers)
        self.layer_norm = nn.LayerNorm(cfg.embed_dim)
        self.classifier = nn.Linear(cfg.embed_dim, len(gloss_dict))
        self.embed_dim, self.time_reduction = cfg.embed_dim, cfg.time_reduction

    def forward(self, text_tokens=None, frame_lengths=None, steps: Optional[torch.Tensor] = None, **unused):
        """``steps`` (B) fixes the output lengths (distillation passes the student's); otherwise they follow from
        ``frame_lengths``."""
        if text_tokens is None:
            raise ValueError("text2gloss_teacher reads the translation: train and run it with --text-inputs")
        if steps is None:
            if frame_lengths is None:
                raise ValueError("text2gloss_teacher needs frame_lengths or steps to know the clip's time axis")
            steps = (frame_lengths + self.time_reduction - 1) // self.time_reduction
        text, text_padding = self.text(text_tokens)
        padding_mask = lengths_to_mask(steps, int(steps.max()))
        t = torch.arange(padding_mask.size(1), device=text.device).unsqueeze(0).expand_as(padding_mask)
        relative = (t + 0.5) / steps.unsqueeze(1).clamp(min=1) * 100.0  # 0-100 over every clip, whatever its length
        slots = self.slot_projection(torch.cat([sinusoid(t, self.embed_dim), sinusoid(relative, self.embed_dim)], -1))
        h = self.slots(slots, text, tgt_key_padding_mask=padding_mask, memory_key_padding_mask=text_padding)
        features = self.layer_norm(h).masked_fill(padding_mask.unsqueeze(-1), 0.0)
        return {
            "encoder_out": self.classifier(features).transpose(0, 1),  # T'×B×V
            "padding_mask": padding_mask,
            "gloss_features": features,
        }

    def reorder_encoder_out(self, encoder_out, new_order):
        return {key: value.index_select(1 if key == "encoder_out" else 0, new_order)
                for key, value in encoder_out.items()}


@register_model("text2gloss_teacher", dataclass=Text2GlossTeacherConfig)
class Text2GlossTeacher(FairseqEncoderModel):
    @classmethod
    def build_model(cls, cfg: Text2GlossTeacherConfig, task):
        if not getattr(task.cfg, "text_inputs", False):
            raise ValueError("text2gloss_teacher reads the translation: add --text-inputs (task.text_inputs)")
        encoder = Text2GlossEncoder(cfg, task.target_dictionary, task.text_inputs.dictionary)
        logger.info(f"text→gloss teacher: {sum(p.numel() for p in encoder.parameters()) / 1e6:.2f}M parameters")
        return cls(encoder)

    def forward(self, **net_input):
        return self.encoder(**net_input)


@register_model_architecture("text2gloss_teacher", "text2gloss_teacher_tiny")
def text2gloss_teacher_tiny(cfg):
    """64 wide, one layer each side: trains on 2 CPU cores in seconds."""
    cfg.embed_dim = getattr(cfg, "embed_dim", 64)
    cfg.encoder_layers = getattr(cfg, "encoder_layers", 1)
    cfg.decoder_layers = getattr(cfg, "decoder_layers", 1)
    cfg.heads = getattr(cfg, "heads", 4)
    cfg.ff_dim = getattr(cfg, "ff_dim", 128)
