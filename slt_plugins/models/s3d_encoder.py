"""Model ``s3d_encoder``: Sign2Gloss — a visual backbone, the visual head, a gloss classifier trained with CTC.

The backbone is chosen by name from the project's registry (``--visual-backbone s3d|cnn_tconv|resnet18|…``). With
``--sequence-model bilstm|transformer`` a sequence model follows the head: VAC's recogniser and the students of the
distillation method, whose output then also carries the head's ``conv_logits`` (T'×B×V) for ConvCTC. On
pre-extracted features (task option ``--input features``) no backbone is built and the head reads the features. On
keypoints (``--input poses``) the backbone is a pose backbone (``pose_tconv``, ``pose_stgcn``), told the store's
layout and coordinate count; everything after it is the same. Without a gloss dictionary (Sign2Text on a corpus
without glosses) the encoder has no classifier: it gives the gloss representation alone, and its output has no
``encoder_out`` logits.
The output follows fairseq's CTC models (wav2vec 2.0): ``encoder_out`` holds T'×B×V logits and ``padding_mask``
B×T', so fairseq's ``ctc`` criterion and our CTC generator read it as they are.
"""

import ast
import logging
from dataclasses import dataclass, field
from typing import Optional

import torch
from fairseq.dataclass import FairseqDataclass
from fairseq.models import FairseqEncoder, FairseqEncoderModel, register_model, register_model_architecture

from fairseq_slt.registry import build_sequence_model, build_visual_backbone
from slt_plugins.models.visual_head import VisualHead

logger = logging.getLogger(__name__)


@dataclass
class SignEncoderConfig(FairseqDataclass):
    visual_backbone: str = field(
        default="s3d", metadata={"help": "registered visual backbone (s3d, cnn_tconv, resnet18, …)"}
    )
    backbone_pretrained: Optional[str] = field(
        default=None, metadata={"help": "backbone weights to start from, e.g. S3D_kinetics400.pt"})
    backbone_frozen_blocks: Optional[int] = field(
        default=None, metadata={"help": "freeze the backbone's first N blocks (default: the backbone's own)"})
    backbone_args: str = field(
        default="{}", metadata={"help": "further backbone options as a dict literal, e.g. \"{'output_dim': 128}\""})
    head_dim: int = field(default=512, metadata={"help": "width of the gloss representation"})
    head_ff_dim: int = field(default=2048, metadata={"help": "inner width of the temporal conv block"})
    head_kernel_size: int = field(default=3, metadata={"help": "temporal kernel of the conv block"})
    dropout: float = field(default=0.1, metadata={"help": "dropout in the visual head"})
    head_positions: str = field(default="fairseq", metadata={
        "help": "sinusoidal positions of the visual head: fairseq (sin and cos halves, from padding_idx + 1) or "
                "opennmt (SLRT's: sin and cos interleaved, from 0; set by slt-import-slrt)"})
    sequence_model: Optional[str] = field(default=None, metadata={
        "help": "a registered sequence model after the head (bilstm, transformer): VAC's recogniser and the "
                "distillation students; its logits are then the output and the head's are the 'conv' logits"})
    sequence_args: str = field(default="{}", metadata={
        "help": "options of the sequence model as a dict literal, e.g. \"{'hidden_dim': 1024, 'layers': 2}\""})


def lengths_to_mask(lengths: torch.Tensor, max_len: int) -> torch.Tensor:
    """B×max_len, True at padding."""
    return torch.arange(max_len, device=lengths.device).unsqueeze(0) >= lengths.unsqueeze(1)


class SignEncoder(FairseqEncoder):
    """Frames (uint8 B×T×3×H×W) or features (B×T'×C) → gloss representation and gloss logits (none when
    ``dictionary`` is None: no glosses to classify)."""

    def __init__(self, cfg: SignEncoderConfig, dictionary, input_kind: str, feature_dim: Optional[int] = None,
                 pose_input: Optional[dict] = None):
        super().__init__(dictionary)
        self.backbone = None
        if input_kind not in ("frames", "features", "poses"):
            raise ValueError(f"the sign encoder reads frames, features or poses, not --input {input_kind}")
        if input_kind in ("frames", "poses"):
            options = ast.literal_eval(cfg.backbone_args or "{}")
            if cfg.backbone_pretrained:
                options["pretrained"] = cfg.backbone_pretrained
            if cfg.backbone_frozen_blocks is not None:
                options["frozen_blocks"] = cfg.backbone_frozen_blocks
            if input_kind == "poses":  # the store's layout decides the backbone's input (and its graph)
                options.update(layout=pose_input["layout"], dims=pose_input["dims"])
            self.backbone = build_visual_backbone(cfg.visual_backbone, options)
            if getattr(self.backbone, "input_kind", "frames") != input_kind:
                raise ValueError(f"--visual-backbone {cfg.visual_backbone} reads "
                                 f"{getattr(self.backbone, 'input_kind', 'frames')}, not --input {input_kind}; "
                                 + ("choose pose_tconv or pose_stgcn" if input_kind == "poses" else
                                    "choose s3d, cnn_tconv or resnet18"))
            feature_dim = self.backbone.output_dim
        classes = len(dictionary) if dictionary is not None else 0
        self.head = VisualHead(feature_dim, classes, cfg.head_dim, cfg.head_ff_dim, cfg.head_kernel_size,
                               cfg.dropout, getattr(cfg, "head_positions", "fairseq"))
        self.sequence = self.sequence_classifier = None
        self.output_dim = cfg.head_dim
        if cfg.sequence_model:
            options = ast.literal_eval(cfg.sequence_args or "{}")
            self.sequence = build_sequence_model(cfg.sequence_model, options, input_dim=cfg.head_dim)
            if classes:
                self.sequence_classifier = torch.nn.Linear(self.sequence.output_dim, classes)
            self.output_dim = self.sequence.output_dim

    def visual_features(self, frames: torch.Tensor, frame_lengths: torch.Tensor):
        """The backbone's output for frames (uint8 or float in [0, 1]): B×T'×C and the valid lengths T'. This is
        what slt-extract-features stores, so that training on features sees what training on frames saw."""
        if self.backbone is None:
            raise ValueError("this model was built for pre-extracted features (--input features), got frames")
        return self.backbone(frames, frame_lengths)  # each backbone converts the frames it uses (unit_range)

    def pose_features(self, poses: torch.Tensor, pose_lengths: torch.Tensor):
        """The pose backbone's output for keypoints B×T×K×(D+1): B×T'×C and T' (what slt-extract-features stores)."""
        if self.backbone is None or getattr(self.backbone, "input_kind", "frames") != "poses":
            raise ValueError("this model was not built for keypoints (--input poses)")
        return self.backbone(poses.float(), pose_lengths)

    def forward(self, frames=None, frame_lengths=None, features=None, feature_lengths=None, poses=None,
                pose_lengths=None, **unused):
        if poses is not None:
            x, lengths = self.pose_features(poses, pose_lengths)
        elif frames is not None:
            x, lengths = self.visual_features(frames, frame_lengths)
        elif features is not None:
            x, lengths = features, feature_lengths
        else:
            raise ValueError("the sign encoder needs frames, features or poses in net_input")
        padding_mask = lengths_to_mask(lengths, x.size(1))
        gloss_features, logits = self.head(x, padding_mask)
        out = {}
        if self.sequence is not None:
            if logits is not None:  # VAC's ConvCTC reads the head, SeqCTC the sequence model
                out["conv_logits"] = logits.transpose(0, 1)
            gloss_features = self.sequence(gloss_features, padding_mask)
            logits = self.sequence_classifier(gloss_features) if self.sequence_classifier is not None else None
        if logits is not None:
            out["encoder_out"] = logits.transpose(0, 1)  # T'×B×V, as fairseq's CTC criterion reads it
        out.update({
            "padding_mask": padding_mask,
            "gloss_features": gloss_features,  # B×T'×output_dim: what the mapper reads and distillation compares
        })
        return out

    def reorder_encoder_out(self, encoder_out, new_order):
        batch_first = ("padding_mask", "gloss_features")
        return {key: value.index_select(0 if key in batch_first else 1, new_order)
                for key, value in encoder_out.items()}


@register_model("s3d_encoder", dataclass=SignEncoderConfig)
class SignToGlossModel(FairseqEncoderModel):
    @classmethod
    def build_model(cls, cfg: SignEncoderConfig, task):
        encoder = SignEncoder(cfg, task.target_dictionary, task.cfg.input, getattr(task, "feature_dim", None),
                              getattr(task, "pose_input", None))
        n_params = sum(p.numel() for p in encoder.parameters())
        logger.info(f"sign encoder: {cfg.visual_backbone if encoder.backbone else 'features'} → head "
                    f"{cfg.head_dim}; {n_params / 1e6:.2f}M parameters")
        return cls(encoder)

    def forward(self, **net_input):
        return self.encoder(**net_input)


def s3d_encoder(cfg):
    """SingleStream-SLT's Sign2Gloss: S3D blocks 1–4 (832), head 512 with a 2048-wide conv block. (The arch
    ``s3d_encoder`` itself is registered by ``register_model`` with these dataclass defaults.)"""
    cfg.visual_backbone = getattr(cfg, "visual_backbone", "s3d")
    cfg.head_dim = getattr(cfg, "head_dim", 512)
    cfg.head_ff_dim = getattr(cfg, "head_ff_dim", 2048)


@register_model_architecture("s3d_encoder", "s3d_encoder_tiny")
def s3d_encoder_tiny(cfg):
    """A per-frame CNN with temporal convolutions and a 64-wide head: trains on 2 CPU cores in minutes."""
    cfg.visual_backbone = getattr(cfg, "visual_backbone", "cnn_tconv")
    cfg.backbone_args = getattr(cfg, "backbone_args", "{'output_dim': 64}")
    cfg.head_dim = getattr(cfg, "head_dim", 64)
    cfg.head_ff_dim = getattr(cfg, "head_ff_dim", 128)
    s3d_encoder(cfg)


@register_model_architecture("s3d_encoder", "vac_resnet18_bilstm")
def vac_resnet18_bilstm(cfg):
    """VAC's recogniser: ResNet18 per frame, temporal convolutions K5-P2-K5-P2 (1024), a 2-layer BiLSTM (1024);
    the head (512) between them gives the conv logits of ConvCTC. Train it with ``--criterion vac_ctc``."""
    cfg.visual_backbone = getattr(cfg, "visual_backbone", "resnet18")
    cfg.sequence_model = getattr(cfg, "sequence_model", "bilstm")
    cfg.sequence_args = getattr(cfg, "sequence_args", "{'hidden_dim': 1024, 'layers': 2}")
    s3d_encoder(cfg)


@register_model_architecture("s3d_encoder", "vac_resnet18_transformer")
def vac_resnet18_transformer(cfg):
    """The distillation method's transformer student: as ``vac_resnet18_bilstm`` with 2 transformer layers."""
    cfg.sequence_model = getattr(cfg, "sequence_model", "transformer")
    cfg.sequence_args = getattr(cfg, "sequence_args", "{'hidden_dim': 512, 'layers': 2, 'heads': 8}")
    vac_resnet18_bilstm(cfg)


@register_model_architecture("s3d_encoder", "pose_tconv_tiny")
def pose_tconv_tiny(cfg):
    """Keypoints (``--input poses``) through ``pose_tconv`` (MLP 64 wide) and a 64-wide head: the tests' and demo's
    pose model."""
    cfg.visual_backbone = getattr(cfg, "visual_backbone", "pose_tconv")
    cfg.backbone_args = getattr(cfg, "backbone_args", "{'hidden_dim': 64, 'output_dim': 64}")
    s3d_encoder_tiny(cfg)


@register_model_architecture("s3d_encoder", "pose_stgcn_tiny")
def pose_stgcn_tiny(cfg):
    """Keypoints through a small ``pose_stgcn`` (three blocks of 16, 32, 64 channels) and a 64-wide head."""
    cfg.visual_backbone = getattr(cfg, "visual_backbone", "pose_stgcn")
    cfg.backbone_args = getattr(cfg, "backbone_args", "{'channels': [16, 32, 64], 'strides': [1, 2, 2], "
                                                      "'temporal_kernel': 5}")
    s3d_encoder_tiny(cfg)
