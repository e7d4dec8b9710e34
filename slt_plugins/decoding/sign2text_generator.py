"""Generation for sign2text: text by fairseq's beam search, glosses by CTC decoding of the same encoder pass.

fairseq's ``SequenceGenerator`` runs the encoder once per batch (``forward_encoder``); the ensemble it drives here
keeps that output, so the gloss logits the joint encoder returned beside mBART's states are decoded afterwards
without a second pass. The glosses travel with the hypotheses :meth:`Sign2TextGenerator.generate` returns: each
hypothesis of an utterance holds its CTC gloss ids as ``glosses``. With several models the glosses come from the
first. A model without a gloss classifier (trained on a corpus without glosses) gives the text alone.

The beam search sizes its output by the input: ``--max-len-a`` multiplies the number of input steps (frames, or
feature vectors), as fairseq's speech models do.
"""

from typing import List

import torch
from fairseq.sequence_generator import EnsembleModel, SequenceGenerator

from slt_plugins.decoding.ctc_decoder import CTCSequenceGenerator


class _RememberingEnsemble(EnsembleModel):
    """fairseq's ensemble, keeping the last encoder outputs it computed."""

    last_encoder_outs = None

    def forward_encoder(self, net_input):
        self.last_encoder_outs = super().forward_encoder(net_input)
        return self.last_encoder_outs


class Sign2TextGenerator(SequenceGenerator):
    """``recognise_glosses``: decode the glosses too (off for validation BLEU, which scores text only)."""

    def __init__(self, models, tgt_dict, gloss_dict, gloss_beam: int = 1, recognise_glosses: bool = True, **kwargs):
        super().__init__(_RememberingEnsemble(models), tgt_dict, **kwargs)
        self.ctc = CTCSequenceGenerator(gloss_dict, beam=max(gloss_beam, 1)) if gloss_dict is not None else None
        # glosses need a gloss vocabulary (the dataset's) and a classifier (the first model's)
        self.recognise_glosses = recognise_glosses and self.ctc is not None and getattr(
            models[0], "has_gloss_classifier", True)

    @torch.no_grad()
    def generate(self, models, sample, **kwargs):
        # SequenceGenerator reads the batch size and input length from ``src_tokens``: give it the input steps
        net_input = sample["net_input"]
        lengths = next(net_input[k] for k in ("frame_lengths", "feature_lengths", "pose_lengths") if k in net_input)
        steps = torch.arange(int(lengths.max()), device=lengths.device).unsqueeze(0) < lengths.unsqueeze(1)
        src_tokens = torch.where(steps, self.unk, self.pad)
        sample = dict(sample, net_input=dict(net_input, src_tokens=src_tokens, src_lengths=lengths))
        hypos = super().generate(models, sample, **kwargs)
        if self.recognise_glosses:
            for nbest, glosses in zip(hypos, self.recognise()):
                for hypo in nbest:
                    hypo["glosses"] = glosses
        return hypos

    def recognise(self) -> List[torch.Tensor]:
        """The gloss ids of each utterance of the last batch, by CTC (greedy at beam 1, else prefix beam search)."""
        return [self.ctc.decode(lp)[0]["tokens"] for lp in self.gloss_posteriors()]

    def gloss_posteriors(self) -> List[torch.Tensor]:
        """Each utterance's T'×V CTC log-probabilities of the last batch over its valid steps (on the CPU)."""
        encoder_out = self.model.last_encoder_outs[0]
        log_probs = encoder_out["ctc_logits"][0].float().log_softmax(dim=-1).transpose(0, 1).cpu()  # B×T'×V
        lengths = (~encoder_out["ctc_padding_mask"][0]).sum(dim=1).tolist()
        return [lp[:n] for lp, n in zip(log_probs, lengths)]
