"""The gloss→text translator: fairseq's mBART (pre-norm BART) sized as mbart.cc25, or small enough for a CPU.

``--pretrained-mbart FILE`` starts it from a checkpoint pruned to the dataset by ``slt-prune-mbart`` (read with
``--vocab`` pointing at the same folder, so that row i of the embedding is token i of the dictionary), or from a
Hugging Face MBart folder whose rows are the ``--vocab`` dictionary's tokens.

fairseq's own ``mbart_large`` arch leaves ``--encoder-normalize-before``/``--decoder-normalize-before`` off and
relies on the fine-tuning command line to switch them on; the mbart.cc25 weights need them, so our archs set them.
"""

import logging
import os

import torch
from fairseq.models import register_model, register_model_architecture
from fairseq.models.bart import BARTModel
from fairseq.models.bart.model import bart_large_architecture

from slt_plugins.models.gloss_spelling_embedding import GlossSpellingEmbedding
from slt_plugins.models.hf_mbart import HFMBartError, is_hf_mbart_folder, load_hf_mbart
from slt_plugins.models.uniform_mask_dropout import use_uniform_mask_dropout
from slt_plugins.safe_checkpoint import CheckpointError, load_checkpoint_file

logger = logging.getLogger(__name__)


def load_exactly(module: torch.nn.Module, state: dict, source: str, fix: str) -> None:
    """``module.load_state_dict(state)``, every parameter matched, or a one-line error naming ``source`` and ``fix``.
    A shared output projection is the embedding itself: a state without it is complete."""
    try:
        missing, unexpected = module.load_state_dict(state, strict=False)
    except RuntimeError as e:  # a shape differs
        raise ValueError(f"{source} does not fit the model: {str(e).splitlines()[-1].strip()}; {fix}") from None
    missing = [k for k in missing if not k.endswith("output_projection.weight")]
    if missing or unexpected:
        raise ValueError(f"{source} does not fit the model: missing {missing[:5]}, unexpected {unexpected[:5]}; {fix}")


@register_model("mbart_translator")
class MBartTranslator(BARTModel):
    """BART encoder-decoder that reads glosses (or, in the joint model, mapped visual features) and writes text."""

    @staticmethod
    def add_args(parser):
        BARTModel.add_args(parser)
        parser.add_argument("--pretrained-mbart", metavar="FILE", default=None,
                            help="model.pt written by slt-prune-mbart: initial weights (train with --vocab set to "
                                 "its folder)")
        parser.add_argument("--gloss-spelling-embeddings", action="store_true",
                            help="add to each gloss's embedding the mean text embedding of the words it spells "
                                 "(WETTER → wetter), so the two vocabularies share what they mean; for separate "
                                 "gloss and text vocabularies (training from scratch)")
        parser.add_argument("--source-embed-scale", type=float, default=None, metavar="S",
                            help="multiply the encoder's input embeddings by S instead of the arch's scale (sqrt(d), "
                                 "or 1 with --no-scale-embedding, which then holds for the decoder alone); SLRT "
                                 "scales its gloss embeddings and mapped features by sqrt(d_model) whatever its "
                                 "mBART config says, and slt-import-slrt sets S where the two differ")
        parser.add_argument("--stop-at-eos", action="store_true",
                            help="decoding ends a sentence at </s>: the model was trained on targets `words </s>` "
                                 "(Hugging Face's mBART fine-tuning, SLRT) instead of this toolkit's `words </s> "
                                 "[de_DE]`, whose language token otherwise ends it; decoding starts from the "
                                 "language token either way. Set by slt-import-slrt")
        parser.add_argument("--uniform-mask-dropout", action="store_true",
                            help="draw dropout masks as uniform numbers compared with p: the same dropout, about "
                                 "twice as fast on a CPU as torch's (a seeded run differs from one without it)")

    @classmethod
    def build_model(cls, args, task):
        if args.share_all_embeddings and task.source_dictionary != task.target_dictionary:
            # separate gloss and text vocabularies (training from scratch) cannot share one embedding table
            args.share_all_embeddings = False
        model = super().build_model(args, task)
        if getattr(args, "gloss_spelling_embeddings", False):
            if task.source_dictionary is task.target_dictionary or not hasattr(task, "gloss_spellings"):
                raise ValueError("--gloss-spelling-embeddings needs the gloss2text task with the dataset's own gloss "
                                 "and text vocabularies; a pruned mBART (--vocab) already shares one table")
            model.encoder.embed_tokens = GlossSpellingEmbedding(
                model.encoder.embed_tokens, model.decoder.embed_tokens, task.gloss_spellings())
        if getattr(args, "uniform_mask_dropout", False):
            use_uniform_mask_dropout(model)
        if getattr(args, "source_embed_scale", None) is not None:
            model.encoder.embed_scale = float(args.source_embed_scale)
        model.stop_at_eos = bool(getattr(args, "stop_at_eos", False))  # read by the task's build_generator
        return model

    def set_beam_size(self, beam):
        """Keep fairseq's plain reordering of encoder outputs in beam search. BART's "beamable" shortcut stays set in
        the layers after a search, so the next training batch (validation BLEU decodes between them) was folded as
        if it were beams; the shortcut saves little at these sentence lengths."""

    def load_pretrained_mbart(self, path: str) -> None:
        """Copy a (pruned) mBART checkpoint's weights in, or a Hugging Face MBart folder's (converted by
        :mod:`slt_plugins.models.hf_mbart`); every parameter must match, and so must the settings recorded with
        weights converted from HF (activation, embedding scale), or the error says which."""
        if os.path.isdir(path) and is_hf_mbart_folder(path):
            try:
                state, settings = load_hf_mbart(path)
            except HFMBartError as e:
                raise ValueError(f"--pretrained-mbart {e}") from None
        elif not os.path.isfile(path):
            raise FileNotFoundError(f"--pretrained-mbart {path}: no such file (make it with slt-prune-mbart)")
        else:
            checkpoint = load_checkpoint_file(path, "--pretrained-mbart")
            state, settings = checkpoint.get("model"), checkpoint.get("mbart_settings") or {}
            if not isinstance(state, dict) or "encoder.embed_tokens.weight" not in state:
                raise CheckpointError(f"--pretrained-mbart {path}: not an mBART checkpoint "
                                      "(no model.encoder.embed_tokens)")
        rows, vocab = state["encoder.embed_tokens.weight"].shape, len(self.encoder.dictionary)
        if rows[0] != vocab or rows[1] != self.args.encoder_embed_dim:
            raise ValueError(f"--pretrained-mbart {path}: embedding {tuple(rows)} but the model has {vocab} tokens × "
                             f"{self.args.encoder_embed_dim}; pass --vocab with the folder slt-prune-mbart wrote this "
                             "file into, and the arch it was trained with (mbart_translator for mbart.cc25)")
        for key, value in settings.items():
            if key.startswith("max_") or getattr(self.args, key, value) == value:
                continue  # positions: the table's shape says it, and load_exactly names the fix
            flag = "--" + key.replace("_", "-")
            fix = f"pass {flag} {value}" if not isinstance(value, bool) else f"{'pass' if value else 'drop'} {flag}"
            raise ValueError(f"--pretrained-mbart {path}: its weights need {key}={value!r} but the model has "
                             f"{getattr(self.args, key)!r}; {fix}")
        self.upgrade_state_dict_named(state, "")
        load_exactly(self, state, f"--pretrained-mbart {path}",
                     "use the arch and --max-source/target-positions it was trained with")
        logger.info(f"initialised from {path}")

    def upgrade_state_dict_named(self, state_dict, name):
        # BART's version reads ``args.task`` for a denoising-pretraining case; a model built from a Hydra config
        # (fairseq-hydra-train) has a TransformerConfig without that field, and loading its checkpoint failed
        if not hasattr(self.args, "task"):
            object.__setattr__(self.args, "task", "gloss2text")
        super().upgrade_state_dict_named(state_dict, name)


def _mbart_defaults(args):
    args.encoder_normalize_before = getattr(args, "encoder_normalize_before", True)
    args.decoder_normalize_before = getattr(args, "decoder_normalize_before", True)
    args.no_scale_embedding = getattr(args, "no_scale_embedding", False)
    args.layernorm_embedding = getattr(args, "layernorm_embedding", True)
    bart_large_architecture(args)


@register_model_architecture("mbart_translator", "mbart_translator")
def mbart_translator(args):
    """mbart.cc25: 12+12 layers, d=1024, 16 heads, FFN 4096, pre-norm, embedding LayerNorm."""
    _mbart_defaults(args)


@register_model_architecture("mbart_translator", "mbart_translator_large")
def mbart_translator_large(args):
    mbart_translator(args)


@register_model_architecture("mbart_translator", "mbart_translator_tiny")
def mbart_translator_tiny(args):
    """2+2 layers, d=64: for tests and the demo corpus on a CPU."""
    for side in ("encoder", "decoder"):
        setattr(args, f"{side}_embed_dim", getattr(args, f"{side}_embed_dim", 64))
        setattr(args, f"{side}_ffn_embed_dim", getattr(args, f"{side}_ffn_embed_dim", 128))
        setattr(args, f"{side}_layers", getattr(args, f"{side}_layers", 2))
        setattr(args, f"{side}_attention_heads", getattr(args, f"{side}_attention_heads", 4))
    _mbart_defaults(args)
