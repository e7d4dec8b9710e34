"""The gloss→text translator: fairseq's mBART (pre-norm BART) sized as mbart.cc25, or small enough for a CPU.

fairseq's own ``mbart_large`` arch leaves ``--encoder-normalize-before``/``--decoder-normalize-before`` off and
relies on the fine-tuning command line to switch them on; the mbart.cc25 weights need them, so our archs set them.
"""

from fairseq.models import register_model, register_model_architecture
from fairseq.models.bart import BARTModel
from fairseq.models.bart.model import bart_large_architecture


@register_model("mbart_translator")
class MBartTranslator(BARTModel):
    """BART encoder-decoder that reads glosses (or, in the joint model, mapped visual features) and writes text."""

    @classmethod
    def build_model(cls, args, task):
        if args.share_all_embeddings and task.source_dictionary != task.target_dictionary:
            # separate gloss and text vocabularies (training from scratch) cannot share one embedding table
            args.share_all_embeddings = False
        return super().build_model(args, task)

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
