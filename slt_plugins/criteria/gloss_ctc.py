"""Criterion ``gloss_ctc``: fairseq's ``ctc`` with defaults for gloss sequences.

fairseq's ``ctc`` already fits our models (``encoder_out`` T×B×V, ``padding_mask``) and logs ``wer`` in
validation, so ``--best-checkpoint-metric wer`` works. Its defaults are made for characters, though: with
``--post-process letter`` glosses would be glued into one word before WER is counted. ``gloss_ctc`` is the same
criterion with gloss-level WER and infinite losses zeroed (a clip shorter than its gloss sequence after the T/4
stride). SingleStream-SLT divides the summed loss by the number of utterances: ``--sentence-avg``
(``optimization.sentence_avg``), which this criterion reads as fairseq's does.
"""

from dataclasses import dataclass, field

from fairseq.criterions import register_criterion
from fairseq.criterions.ctc import CtcCriterion, CtcCriterionConfig


@dataclass
class GlossCtcConfig(CtcCriterionConfig):
    post_process: str = field(default="none", metadata={"help": "glosses are whole tokens: nothing to join"})
    zero_infinity: bool = field(default=True, metadata={"help": "zero the loss of clips too short for CTC"})


@register_criterion("gloss_ctc", dataclass=GlossCtcConfig)
class GlossCtcCriterion(CtcCriterion):
    pass
