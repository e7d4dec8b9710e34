"""Model ``dialogue_teacher``: recognition that also reads the dialogue scene — the sign stream plus the text of the
preceding utterance of the same recording — the first teacher of the multimodal distillation method.

    frames → sign encoder (backbone, head, sequence model) ─┐
    preceding utterance → BERT-style text encoder ──────────┴→ hybrid attention fusion (+ residual) → gloss logits
                                                                      └→ next-sentence prediction

Hybrid attention: each sign step attends at once over all sign steps and all context tokens (one attention over
the two modalities' keys), and the result is added to the sign stream (residual, LayerNorm, feed-forward), so the
teacher stays a sign recogniser that the context can only refine. Next-sentence prediction: in training, each
utterance's context is swapped for another utterance's with probability ``nsp_negative_rate`` in a second fusion
pass, and a classifier on its pooled fused and text features says whether the context really preceded it; the
gloss logits always come from the real context. Train it with ``--task sign2gloss
--text-inputs --criterion vac_ctc`` (SeqCTC on the fused logits, ConvCTC and Dist on the head, NSP).
"""

import logging
from dataclasses import dataclass, field

import torch
import torch.nn as nn
from fairseq.models import FairseqEncoder, FairseqEncoderModel, register_model, register_model_architecture

from slt_plugins.models.kd.text_encoder import TextEncoder, TextEncoderConfig, masked_mean
from slt_plugins.models.s3d_encoder import SignEncoder, SignEncoderConfig

logger = logging.getLogger(__name__)


@dataclass
class DialogueTeacherConfig(SignEncoderConfig, TextEncoderConfig):
    sequence_model: str = field(default="bilstm", metadata={"help": "sequence model of the sign stream"})
    fusion_heads: int = field(default=4, metadata={"help": "attention heads of the hybrid attention fusion"})
    nsp_negative_rate: float = field(default=0.5, metadata={
        "help": "training: the share of utterances whose context is swapped for another's (NSP negatives)"})


class HybridAttentionFusion(nn.Module):
    """Sign steps attend over [sign steps; context tokens]; residual and LayerNorm, then a residual feed-forward."""

    def __init__(self, dim: int, heads: int, dropout: float):
        super().__init__()
        self.attention = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
        self.attention_norm = nn.LayerNorm(dim)
        self.feed_forward = nn.Sequential(nn.Linear(dim, 2 * dim), nn.ReLU(), nn.Dropout(dropout),
                                          nn.Linear(2 * dim, dim))
        self.output_norm = nn.LayerNorm(dim)
        self.dropout = nn.Dropout(dropout)

    def forward(self, sign, sign_padding, text, text_padding):
        keys = torch.cat([sign, text], dim=1)
        attended, _ = self.attention(sign, keys, keys, key_padding_mask=torch.cat([sign_padding, text_padding], 1),
                                     need_weights=False)
        h = self.attention_norm(sign + self.dropout(attended))
        h = self.output_norm(h + self.dropout(self.feed_forward(h)))
        return h.masked_fill(sign_padding.unsqueeze(-1), 0.0)


class DialogueEncoder(FairseqEncoder):
    def __init__(self, cfg: DialogueTeacherConfig, gloss_dict, text_dict, input_kind: str, feature_dim=None,
                 pose_input=None):
        super().__init__(gloss_dict)
        if not cfg.sequence_model:
            raise ValueError("dialogue_teacher needs a --sequence-model (bilstm, transformer): its classifier reads "
                             "the fused sequence")
        self.sign = SignEncoder(cfg, gloss_dict, input_kind, feature_dim, pose_input)
        dim = self.sign.output_dim
        self.text = TextEncoder(text_dict, cfg.text_embed_dim, cfg.text_layers, cfg.text_heads, cfg.text_ff_dim,
                                cfg.dropout)
        self.text_projection = nn.Linear(cfg.text_embed_dim, dim) if cfg.text_embed_dim != dim else nn.Identity()
        self.fusion = HybridAttentionFusion(dim, cfg.fusion_heads, cfg.dropout)
        self.nsp_classifier = nn.Linear(2 * dim, 2)
        self.nsp_negative_rate = cfg.nsp_negative_rate

    def forward(self, context_tokens=None, **net_input):
        if context_tokens is None:
            raise ValueError("dialogue_teacher reads the preceding utterance: train and run it with --text-inputs")
        sign = self.sign(**net_input)
        text, text_padding = self.text(context_tokens)
        text = self.text_projection(text)
        fused = self.fusion(sign["gloss_features"], sign["padding_mask"], text, text_padding)
        # recognition always reads the real context; next-sentence prediction reads a second fusion in which, in
        # training, some contexts are swapped for another row's (the text encodings are swapped, not recomputed)
        swap = self.negatives(context_tokens)
        nsp_fused = fused
        if swap.any():
            text = torch.where(swap[:, None, None], text.roll(1, dims=0), text)
            text_padding = torch.where(swap[:, None], text_padding.roll(1, dims=0), text_padding)
            nsp_fused = self.fusion(sign["gloss_features"], sign["padding_mask"], text, text_padding)
        pooled = torch.cat([masked_mean(nsp_fused, sign["padding_mask"]), masked_mean(text, text_padding)], dim=-1)
        return {
            "encoder_out": self.sign.sequence_classifier(fused).transpose(0, 1),  # T'×B×V
            "conv_logits": sign["conv_logits"],
            "padding_mask": sign["padding_mask"],
            "gloss_features": fused,
            "nsp_logits": self.nsp_classifier(pooled),
            "nsp_target": (~swap).long(),  # 1: the context really preceded the utterance
        }

    def negatives(self, context_tokens: torch.Tensor) -> torch.Tensor:
        """B booleans: in training, which rows take the previous row's context (a negative) for next-sentence
        prediction; none outside training. A neighbour's context equal to the row's own (two first utterances, both
        empty) stays a positive."""
        batch = context_tokens.size(0)
        swap = torch.zeros(batch, dtype=torch.bool, device=context_tokens.device)
        if not self.training or batch < 2 or self.nsp_negative_rate <= 0:
            return swap
        swap = torch.rand(batch, device=context_tokens.device) < self.nsp_negative_rate
        return swap & ~(context_tokens.roll(1, dims=0) == context_tokens).all(dim=1)

    def reorder_encoder_out(self, encoder_out, new_order):
        batch_first = ("padding_mask", "gloss_features", "nsp_logits", "nsp_target")
        return {key: value.index_select(0 if key in batch_first else 1, new_order)
                for key, value in encoder_out.items()}


@register_model("dialogue_teacher", dataclass=DialogueTeacherConfig)
class DialogueTeacher(FairseqEncoderModel):
    @classmethod
    def build_model(cls, cfg: DialogueTeacherConfig, task):
        if not getattr(task.cfg, "text_inputs", False):
            raise ValueError("dialogue_teacher reads the preceding utterance: add --text-inputs (task.text_inputs)")
        encoder = DialogueEncoder(cfg, task.target_dictionary, task.text_inputs.dictionary, task.cfg.input,
                                  getattr(task, "feature_dim", None), getattr(task, "pose_input", None))
        logger.info(f"dialogue teacher: {sum(p.numel() for p in encoder.parameters()) / 1e6:.2f}M parameters")
        return cls(encoder)

    def forward(self, **net_input):
        return self.encoder(**net_input)


@register_model_architecture("dialogue_teacher", "dialogue_teacher_resnet18")
def dialogue_teacher_resnet18(cfg):
    """The VAC recogniser (ResNet18, temporal convolutions, BiLSTM 1024) with a 2-layer 256-wide text encoder."""
    cfg.visual_backbone = getattr(cfg, "visual_backbone", "resnet18")
    cfg.sequence_args = getattr(cfg, "sequence_args", "{'hidden_dim': 1024, 'layers': 2}")


@register_model_architecture("dialogue_teacher", "dialogue_teacher_tiny")
def dialogue_teacher_tiny(cfg):
    """A 64-wide CNN sign stream with a one-layer BiLSTM and a 32-wide text encoder: CPU tests and the demo."""
    cfg.visual_backbone = getattr(cfg, "visual_backbone", "cnn_tconv")
    cfg.backbone_args = getattr(cfg, "backbone_args", "{'output_dim': 64}")
    cfg.head_dim = getattr(cfg, "head_dim", 64)
    cfg.head_ff_dim = getattr(cfg, "head_ff_dim", 128)
    cfg.sequence_args = getattr(cfg, "sequence_args", "{'hidden_dim': 64, 'layers': 1}")
    cfg.text_embed_dim = getattr(cfg, "text_embed_dim", 32)
    cfg.text_layers = getattr(cfg, "text_layers", 1)
    cfg.text_heads = getattr(cfg, "text_heads", 2)
    cfg.text_ff_dim = getattr(cfg, "text_ff_dim", 64)
    cfg.fusion_heads = getattr(cfg, "fusion_heads", 2)
