"""Criterion ``combined``: Sign2Text's loss, weighted CTC on the glosses plus label-smoothed CE on the text.

    loss = translation_weight · CE_ls(text) + ctc_weight · CTC(glosses)

The text term is fairseq's ``label_smoothed_cross_entropy`` as it is (summed over tokens, so fairseq divides it by
the number of target tokens, or by the batch size with ``--sentence-avg``). The CTC term is summed per utterance
and scaled so that after fairseq's division it is the mean per utterance, as SingleStream-SLT weighs its
recognition loss. Logged apart: ``translation_loss`` (per token), ``ctc_loss`` (per utterance), both in base 2
like fairseq's losses, and in validation the greedy gloss ``wer`` (without any corpus clean-up: fairseq-generate's
is the one to report).

On a dataset without glosses (``slt-binarise --no-glosses``) only ``--ctc-weight 0`` is accepted, and the model (which
then has no gloss classifier) is trained on the text alone; ``ctc_loss`` and ``wer`` are not logged.
"""

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from fairseq import metrics, utils
from fairseq.criterions import register_criterion
from fairseq.criterions.label_smoothed_cross_entropy import (LabelSmoothedCrossEntropyCriterion,
                                                             LabelSmoothedCrossEntropyCriterionConfig)

from slt_plugins.criteria.gloss_errors import greedy_gloss_errors, log_gloss_wer
from slt_plugins.data.dataset_meta import NoGlossesError


@dataclass
class CombinedCriterionConfig(LabelSmoothedCrossEntropyCriterionConfig):
    ctc_weight: float = field(default=1.0, metadata={"help": "weight of the CTC loss on the glosses (0: text only)"})
    translation_weight: float = field(default=1.0, metadata={"help": "weight of the label-smoothed CE on the text"})
    conv_ctc_weight: float = field(default=0.0, metadata={
        "help": "with a --sequence-model sign encoder (a VAC student): weight of CTC on the head's conv logits; at 0 "
                "the head's classifier still joins the graph, which DistributedDataParallel needs"})


@register_criterion("combined", dataclass=CombinedCriterionConfig)
class CombinedCriterion(LabelSmoothedCrossEntropyCriterion):
    def __init__(self, task, sentence_avg, label_smoothing, ctc_weight=1.0, translation_weight=1.0,
                 conv_ctc_weight=0.0, ignore_prefix_size=0, report_accuracy=False):
        super().__init__(task, sentence_avg, label_smoothing, ignore_prefix_size, report_accuracy)
        self.ctc_weight = ctc_weight
        self.translation_weight = translation_weight
        self.conv_ctc_weight = conv_ctc_weight
        if task.ctc_dict is None:  # a dataset without glosses: nothing for CTC to learn from
            for name, weight in (("ctc-weight", ctc_weight), ("conv-ctc-weight", conv_ctc_weight)):
                if weight > 0:
                    raise NoGlossesError(f"{task.cfg.data} has no glosses (binarised with --no-glosses), so there is "
                                         f"no CTC target: pass --{name} 0")
        self.blank = task.ctc_dict.bos() if task.ctc_dict is not None else None

    def forward(self, model, sample, reduce=True):
        return self.combined_loss(model, model(**sample["net_input"]), sample, reduce)

    def combined_loss(self, model, net_output, sample, reduce=True):
        """The loss, fairseq's sample size and the logging output of one forward pass (``net_output``)."""
        translation_loss, nll_loss = self.compute_loss(model, net_output, sample, reduce=reduce)
        nsentences = sample["target"].size(0)
        sample_size = nsentences if self.sentence_avg else sample["ntokens"]

        loss = self.translation_weight * translation_loss
        if self.blank is None or (self.ctc_weight == 0 and "ctc_logits" not in net_output[1]):
            # text alone: no glosses in the data, or a model without a gloss classifier trained at weight 0
            return self._logged(loss, nll_loss, translation_loss, model, net_output, sample, sample_size, nsentences)
        logits, padding_mask = model.get_ctc_output(net_output)  # T'×B×V, B×T'
        log_probs = utils.log_softmax(logits, dim=-1)
        input_lengths = (~padding_mask).long().sum(dim=1)
        with torch.backends.cudnn.flags(enabled=False):
            ctc_loss = F.ctc_loss(log_probs, sample["gloss_target"], input_lengths, sample["gloss_target_lengths"],
                                  blank=self.blank, reduction="sum", zero_infinity=True)
        loss = loss + self.ctc_weight * ctc_loss * (sample_size / nsentences)
        if "ctc_conv_logits" in net_output[1]:
            conv_log_probs = utils.log_softmax(net_output[1]["ctc_conv_logits"][0], dim=-1)
            with torch.backends.cudnn.flags(enabled=False):
                conv_ctc = F.ctc_loss(conv_log_probs, sample["gloss_target"], input_lengths,
                                      sample["gloss_target_lengths"], blank=self.blank, reduction="sum",
                                      zero_infinity=True)
            loss = loss + self.conv_ctc_weight * conv_ctc * (sample_size / nsentences)

        logging_output = {"ctc_loss": ctc_loss.data}
        if not model.training:
            errors, words = greedy_gloss_errors(log_probs, input_lengths, sample["gloss_target"],
                                                sample["gloss_target_lengths"], self.blank)
            logging_output["_gloss_errors"], logging_output["_gloss_words"] = errors, words
        return self._logged(loss, nll_loss, translation_loss, model, net_output, sample, sample_size, nsentences,
                            logging_output)

    def _logged(self, loss, nll_loss, translation_loss, model, net_output, sample, sample_size, nsentences,
                extra=None):
        """(loss, sample size, logging output) with the terms every batch logs, and ``extra``."""
        logging_output = dict(extra or {}, **{
            "loss": loss.data,
            "nll_loss": nll_loss.data,
            "translation_loss": translation_loss.data,
            "ntokens": sample["ntokens"],
            "nsentences": nsentences,
            "sample_size": sample_size,
        })
        if self.report_accuracy:
            n_correct, total = self.compute_accuracy(model, net_output, sample)
            logging_output["n_correct"] = utils.item(n_correct.data)
            logging_output["total"] = utils.item(total.data)
        return loss, sample_size, logging_output

    @classmethod
    def reduce_metrics(cls, logging_outputs) -> None:
        super().reduce_metrics(logging_outputs)

        def total(key):
            return utils.item(sum(log.get(key, 0) for log in logging_outputs))

        ntokens, nsentences = total("ntokens"), total("nsentences")
        metrics.log_scalar("translation_loss", total("translation_loss") / max(ntokens, 1) / math.log(2), ntokens,
                           round=3)
        if any("ctc_loss" in log for log in logging_outputs):  # none without glosses
            metrics.log_scalar("ctc_loss", total("ctc_loss") / max(nsentences, 1) / math.log(2), nsentences,
                               round=3)
        log_gloss_wer(total)
