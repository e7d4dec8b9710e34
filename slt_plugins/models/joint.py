"""Model ``joint``: Sign2Text — the Sign2Gloss encoder, a visual-language mapper, and the Gloss2Text translator.

    frames or features → sign encoder → gloss representation ─→ mapper ─→ mBART encoder → mBART decoder → text
                                                          └→ gloss logits (CTC)

The mapper's vectors take the place of gloss embeddings, followed by ``</s> [de_DGS]`` exactly as Gloss2Text's
source ends, and go through the translator's embedding scale, positions and LayerNorm. The encoder output carries the
gloss logits (``ctc_logits``, T'×B×V) beside mBART's, for the CTC term of the combined criterion and for gloss
decoding at generation.

Each side is shaped by its own options: ``--visual-args`` (the fields of ``s3d_encoder``) and ``--translator-arch``
with ``--translator-args`` (those of ``mbart_translator``). Started from checkpoints (``--sign2gloss-checkpoint``,
``--gloss2text-checkpoint``; task ``sign2text`` loads them when training starts), both sides take the checkpoints'
shapes, the two option strings override them (``"{'dropout': 0.3}"``), and the resolved options are saved in the
joint checkpoint, which therefore loads without the two files.

Without glosses (a dataset binarised with ``--no-glosses``) there is no Sign2Gloss checkpoint to start from: the
visual side is a backbone alone (``--visual-args "{'visual_backbone': 's3d', 'backbone_pretrained':
'S3D_kinetics400.pt'}"``, or from scratch), the translator an mBART (``--pretrained-mbart``: slt-prune-mbart's file
or a Hugging Face MBart folder, with ``--vocab``) or from scratch, and the model has no gloss classifier
(``gloss_classifier`` false, recorded in the checkpoint): its encoder output carries no CTC logits. Files read only
to initialise (``backbone_pretrained``, ``--pretrained-mbart``) are not read again when a trained checkpoint loads.

Parameters carry a ``param_group`` (``visual``, ``mapper``, ``translator``) for fairseq's ``composite`` optimizer:
a learning rate and schedule per group (SingleStream-SLT: 1e-3 for the visual side and the mapper, 1e-5 for mBART).
"""

import argparse
import ast
import dataclasses
import logging
import os
from argparse import Namespace
from types import SimpleNamespace
from dataclasses import dataclass, field
from typing import Dict, Optional

import torch
from fairseq import checkpoint_utils
from fairseq.dataclass import FairseqDataclass
from fairseq.models import (ARCH_CONFIG_REGISTRY, ARCH_MODEL_REGISTRY, FairseqEncoder, FairseqEncoderDecoderModel,
                            register_model)
from omegaconf import OmegaConf, open_dict

from fairseq_slt.registry import build_vl_mapper
from slt_plugins.models.mbart_translator import MBartTranslator, load_exactly
from slt_plugins.models.s3d_encoder import SignEncoder, SignEncoderConfig

logger = logging.getLogger(__name__)


@dataclass
class JointConfig(FairseqDataclass):
    sign2gloss_checkpoint: str = field(default="", metadata={
        "help": "a sign2gloss checkpoint: the sign encoder's shape and initial weights"})
    gloss2text_checkpoint: str = field(default="", metadata={
        "help": "a gloss2text checkpoint: the translator's shape and initial weights (same --vocab/data)"})
    visual_args: str = field(default="{}", metadata={
        "help": "sign encoder options (s3d_encoder's fields) as a dict literal, over the checkpoint's"})
    translator_arch: str = field(default="mbart_translator", metadata={
        "help": "translator arch (a gloss2text checkpoint brings its own)"})
    translator_args: str = field(default="{}", metadata={
        "help": "translator options (mbart_translator's) as a dict literal, over the checkpoint's, e.g. "
                "\"{'dropout': 0.3}\""})
    vl_mapper: str = field(default="mlp", metadata={
        "help": "visual-language mapper by registered name: mlp (SingleStream-SLT's), gloss_embedding, …"})
    vl_mapper_args: str = field(default="{}", metadata={"help": "mapper options as a dict literal"})
    pretrained_mbart: Optional[str] = field(default=None, metadata={
        "help": "without a gloss2text checkpoint: start the translator from an mBART, the file slt-prune-mbart wrote "
                "(train with --vocab set to its folder) or a Hugging Face MBart folder"})
    gloss_classifier: Optional[bool] = field(default=None, metadata={
        "help": "give the sign encoder a gloss classifier for CTC; default: when the dataset has glosses (a dataset "
                "binarised with --no-glosses has none to classify)"})


def _options(text: str, what: str) -> dict:
    try:
        value = ast.literal_eval(text or "{}")
    except (ValueError, SyntaxError) as e:
        raise ValueError(f"--{what}: not a dict literal ({e}): {text!r}") from None
    if not isinstance(value, dict):
        raise ValueError(f"--{what}: expected a dict literal such as \"{{'dropout': 0.1}}\", got {text!r}")
    return value


def _load_checkpoint(path: str, kind: str) -> Dict:
    if not os.path.isfile(path):
        raise FileNotFoundError(f"--{kind}-checkpoint {path}: no such file")
    return checkpoint_utils.load_checkpoint_to_cpu(path)


def _model_config(state: Dict) -> Dict:
    model_cfg = state["cfg"]["model"]
    return dict(vars(model_cfg)) if isinstance(model_cfg, Namespace) else OmegaConf.to_container(model_cfg)


def build_translator(model_cfg, vocabularies, source: str) -> MBartTranslator:
    """The Gloss2Text translator a checkpoint's model config describes (argparse or Hydra), with ``vocabularies``'
    dictionaries; ``source`` names the checkpoint in errors. The distillation teacher is built this way."""
    saved = dict(vars(model_cfg)) if isinstance(model_cfg, Namespace) else OmegaConf.to_container(model_cfg)
    arch = saved.get("arch") or saved.get("_name")
    if ARCH_MODEL_REGISTRY.get(arch) is not MBartTranslator:
        raise ValueError(f"{source}: arch {arch!r} is not a translator arch (train Gloss2Text with "
                         "--arch mbart_translator*)")
    names = translator_option_names(arch)
    args = Namespace(**{k: v for k, v in saved.items() if k in names})
    ARCH_CONFIG_REGISTRY[arch](args)
    return MBartTranslator.build_model(args, vocabularies)


def translator_option_names(arch: str) -> set:
    """What shapes a translator: the options of mbart_translator's parser and those its arch function sets."""
    parser = argparse.ArgumentParser()
    MBartTranslator.add_args(parser)
    args = Namespace()
    ARCH_CONFIG_REGISTRY[arch](args)
    return ({a.dest for a in parser._actions} | set(vars(args))) - {"help", "pretrained_mbart"}


def resolve_from_checkpoints(cfg: JointConfig) -> Dict[str, Dict]:
    """Write the shapes of the two checkpoints (with the explicit options on top) into ``cfg``, so that the joint
    checkpoint records them; returns the loaded checkpoints by kind, for :meth:`JointModel.load_from_checkpoints`
    (each file is read once)."""
    states = {}
    if cfg.sign2gloss_checkpoint:
        states["sign2gloss"] = _load_checkpoint(cfg.sign2gloss_checkpoint, "sign2gloss")
        fields = {f.name for f in dataclasses.fields(SignEncoderConfig)} - {"backbone_pretrained"}
        visual = {k: v for k, v in _model_config(states["sign2gloss"]).items() if k in fields}
        visual.update(_options(cfg.visual_args, "visual-args"))
        with open_dict(cfg):
            cfg.visual_args = repr(visual)
    if cfg.gloss2text_checkpoint:
        states["gloss2text"] = _load_checkpoint(cfg.gloss2text_checkpoint, "gloss2text")
        saved = _model_config(states["gloss2text"])
        arch = saved.get("arch") or saved.get("_name")
        if ARCH_MODEL_REGISTRY.get(arch) is not MBartTranslator:
            raise ValueError(f"--gloss2text-checkpoint {cfg.gloss2text_checkpoint}: arch {arch!r} is not a "
                             "translator arch (train Gloss2Text with --arch mbart_translator*)")
        names = translator_option_names(arch)
        translator = {k: v for k, v in saved.items() if k in names}
        translator.update(_options(cfg.translator_args, "translator-args"))
        with open_dict(cfg):
            cfg.translator_arch = arch
            cfg.translator_args = repr(translator)
    return states


def decide_gloss_classifier(cfg, has_glosses: bool, from_checkpoint: bool) -> None:
    """Record in ``cfg`` (and so in the checkpoint) whether the model has a gloss classifier: a new model has one when
    its dataset has glosses; a checkpoint saved before the choice was recorded always has one."""
    if cfg.gloss_classifier is None:
        with open_dict(cfg) if OmegaConf.is_config(cfg) else _nothing():
            cfg.gloss_classifier = has_glosses or from_checkpoint


def forget_initial_weight_files(cfg) -> None:
    """A model loaded from its own checkpoint brings its weights: drop the files that only initialised it (the
    backbone's pretrained weights, the mBART), so that decoding elsewhere does not look for them."""
    visual = _options(cfg.visual_args, "visual-args")
    with open_dict(cfg) if OmegaConf.is_config(cfg) else _nothing():
        if visual.pop("backbone_pretrained", None) is not None:
            cfg.visual_args = repr(visual)
        if getattr(cfg, "pretrained_mbart", None):
            cfg.pretrained_mbart = None


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


class JointEncoder(FairseqEncoder):
    """Sign encoder → mapper → the translator's encoder; returns mBART's encoder output plus the gloss logits."""

    def __init__(self, sign: SignEncoder, mapper: torch.nn.Module, text: FairseqEncoder, eos: int, source_lang: int):
        super().__init__(text.dictionary)
        self.sign = sign
        self.mapper = mapper
        self.text = text
        self.eos, self.source_lang = eos, source_lang
        self.placeholder = text.dictionary.unk()  # any non-padding id: its embedding is replaced by the mapper's

    def forward(self, frames=None, frame_lengths=None, features=None, feature_lengths=None, return_all_hiddens=False,
                poses=None, pose_lengths=None, **unused):
        sign = self.sign(frames=frames, frame_lengths=frame_lengths, features=features,
                         feature_lengths=feature_lengths, poses=poses, pose_lengths=pose_lengths)
        logits, padding_mask = sign.get("encoder_out"), sign["padding_mask"]  # T'×B×V (None: no classifier), B×T'
        mapped = self.mapper(sign["gloss_features"], logits.transpose(0, 1) if logits is not None else None)
        tokens, embeddings = self.append_source_tokens(mapped, padding_mask)
        out = self.text(tokens, return_all_hiddens=return_all_hiddens, token_embeddings=embeddings)
        if logits is not None:
            out["ctc_logits"] = [logits]
        out["ctc_padding_mask"] = [padding_mask]  # the clip's steps (T'), also without a classifier
        if "conv_logits" in sign:  # a sign encoder with a sequence model: the criterion may add ConvCTC
            out["ctc_conv_logits"] = [sign["conv_logits"]]
        return out

    def append_source_tokens(self, mapped: torch.Tensor, padding_mask: torch.Tensor):
        """B×T'×d vectors → B×(T'+2) ids and embeddings: a clip's vectors, then ``</s>`` and the language token."""
        lengths = (~padding_mask).sum(dim=1, keepdim=True)
        positions = torch.arange(mapped.size(1) + 2, device=mapped.device).unsqueeze(0)
        tokens = torch.full(positions.shape, self.text.padding_idx, dtype=torch.long, device=mapped.device)
        tokens = tokens.expand(mapped.size(0), -1).clone()
        visual = positions < lengths
        tokens[visual] = self.placeholder
        tokens[positions == lengths] = self.eos
        tokens[positions == lengths + 1] = self.source_lang
        embeddings = self.text.embed_tokens(tokens)
        mapped = torch.nn.functional.pad(mapped, (0, 0, 0, 2)).to(embeddings.dtype)
        return tokens, torch.where(visual.unsqueeze(-1), mapped, embeddings)

    def reorder_encoder_out(self, encoder_out, new_order):
        out = self.text.reorder_encoder_out(encoder_out, new_order)
        for key in ("ctc_logits", "ctc_conv_logits"):
            if key in encoder_out:
                out[key] = [x.index_select(1, new_order) for x in encoder_out[key]]
        out["ctc_padding_mask"] = [x.index_select(0, new_order) for x in encoder_out["ctc_padding_mask"]]
        return out

    def max_positions(self):
        return self.text.max_positions() - 2


@register_model("joint", dataclass=JointConfig)
class JointModel(FairseqEncoderDecoderModel):
    """Needs task ``sign2text`` (its CTC gloss dictionary, translation dictionaries and source language token)."""

    @classmethod
    def build_model(cls, cfg: JointConfig, task):
        classifier = cfg.gloss_classifier if cfg.gloss_classifier is not None else task.ctc_dict is not None
        if classifier and task.ctc_dict is None:
            raise ValueError(f"{task.cfg.data} has no glosses (binarised with --no-glosses), but the model has a gloss "
                             "classifier (it was trained with glosses); give it a dataset with glosses")
        visual = _options(cfg.visual_args, "visual-args")
        unknown = sorted(set(visual) - {f.name for f in dataclasses.fields(SignEncoderConfig)})
        if unknown:
            raise ValueError(f"--visual-args: {', '.join(unknown)} are not options of the sign encoder (s3d_encoder); "
                             f"valid: {', '.join(sorted(f.name for f in dataclasses.fields(SignEncoderConfig)))}")
        visual_cfg = SignEncoderConfig(**visual)
        ctc_dict = task.ctc_dict if classifier else None
        sign = SignEncoder(visual_cfg, ctc_dict, task.cfg.input, task.feature_dim, getattr(task, "pose_input", None))
        if ARCH_MODEL_REGISTRY.get(cfg.translator_arch) is not MBartTranslator:
            raise ValueError(f"--translator-arch {cfg.translator_arch}: not an mbart_translator arch")
        translator_options = _options(cfg.translator_args, "translator-args")
        valid = translator_option_names(cfg.translator_arch)
        unknown = sorted(set(translator_options) - valid)
        if unknown:
            raise ValueError(f"--translator-args: {', '.join(unknown)} are not options of the translator "
                             f"({cfg.translator_arch}); valid: {', '.join(sorted(valid))}")
        translator_args = Namespace(**translator_options)
        ARCH_CONFIG_REGISTRY[cfg.translator_arch](translator_args)
        vocabularies = SimpleNamespace(source_dictionary=task.gloss_dict, target_dictionary=task.text_dict,
                                       gloss_spellings=task.gloss_spellings)  # for --gloss-spelling-embeddings
        translator = MBartTranslator.build_model(translator_args, vocabularies)
        mapper = build_vl_mapper(cfg.vl_mapper, _options(cfg.vl_mapper_args, "vl-mapper-args"),
                                 input_dim=sign.output_dim, output_dim=translator_args.encoder_embed_dim,
                                 num_glosses=len(ctc_dict) if ctc_dict is not None else 0)
        encoder = JointEncoder(sign, mapper, translator.encoder, task.gloss_dict.eos(), task.source_lang_id)
        model = cls(encoder, translator.decoder)
        model.cfg = cfg
        model.stop_at_eos = translator.stop_at_eos  # how the translator's sentences end, for the generator
        model.__dict__["_translator"] = translator  # shares the encoder and decoder; not a submodule (no new keys)
        sizes = []
        for group, module in (("visual", sign), ("mapper", mapper), ("translator", translator)):
            for p in module.parameters():
                p.param_group = group
            sizes.append(f"{group} {sum(p.numel() for p in module.parameters()) / 1e6:.2f}M")
        logger.info(f"joint model: {', '.join(sizes)} parameters")
        return model

    def load_from_checkpoints(self, task, states: Dict[str, Dict]) -> None:
        """Copy the weights of the checkpoints :func:`resolve_from_checkpoints` read in (each side must match)."""
        if "sign2gloss" in states:
            state = _strip(states["sign2gloss"]["model"], "encoder.")
            if self.encoder.sign.backbone is None:  # trained on features: the backbone made them
                state = {k: v for k, v in state.items() if not k.startswith("backbone.")}
            self._load(self.encoder.sign, state, "sign2gloss")
        if "gloss2text" in states:
            state = states["gloss2text"]["model"]
            self._load(self.encoder.text, _strip(state, "encoder."), "gloss2text")
            self._load(self.decoder, _strip(state, "decoder."), "gloss2text")
            self.encoder.mapper.init_from_translator(task.ctc_dict, self.encoder.text.embed_tokens, task.gloss_dict)

    def load_pretrained_mbart(self, path: str) -> None:
        """The translator's weights from an mBART (see :meth:`MBartTranslator.load_pretrained_mbart`), when there is
        no Gloss2Text checkpoint to start from (a corpus without glosses)."""
        if self.cfg.gloss2text_checkpoint:
            raise ValueError("--pretrained-mbart and --gloss2text-checkpoint both give the translator's weights; pass "
                             "one")
        self.__dict__["_translator"].load_pretrained_mbart(path)

    @property
    def has_gloss_classifier(self) -> bool:
        return self.encoder.sign.head.classifier is not None

    def _load(self, module: torch.nn.Module, state: Dict, kind: str) -> None:
        path = getattr(self.cfg, f"{kind}_checkpoint")
        load_exactly(module, state, f"--{kind}-checkpoint {path}", "train it on the same dataset and vocabulary")
        logger.info(f"{kind} side initialised from {path}")

    def get_ctc_output(self, net_output):
        """(T'×B×V gloss logits, B×T' padding mask) of a forward pass."""
        extra = net_output[1]
        if "ctc_logits" not in extra:
            raise ValueError("this joint model has no gloss classifier (it was built for a dataset without glosses): "
                             "train it with --ctc-weight 0")
        return extra["ctc_logits"][0], extra["ctc_padding_mask"][0]

    def forward(self, prev_output_tokens, return_decoder_features: bool = False, **net_input):
        """``return_decoder_features`` also returns the decoder's last hidden states (``extra["decoder_features"]``),
        for distillation: through this forward, so that DistributedDataParallel sees the pass."""
        encoder_out = self.encoder(**net_input)
        if return_decoder_features:
            features, extra = self.decoder(prev_output_tokens, encoder_out=encoder_out, features_only=True)
            logits, extra["decoder_features"] = self.decoder.output_layer(features), features
        else:
            logits, extra = self.decoder(prev_output_tokens, encoder_out=encoder_out)
        for key in ("ctc_logits", "ctc_padding_mask", "ctc_conv_logits"):
            if key in encoder_out:
                extra[key] = encoder_out[key]
        return logits, extra


def _strip(state: dict, prefix: str) -> dict:
    return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
