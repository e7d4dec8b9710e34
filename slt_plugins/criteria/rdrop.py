"""Criterion ``rdrop_label_smoothed_cross_entropy``: label-smoothed CE with R-Drop (Liang et al., NeurIPS 2021).

Each training batch passes through the model twice (as one batch of twice the size), under two dropout masks, and
the two output distributions are pulled together:

    loss = CE_ls(pass 1) + CE_ls(pass 2) + α · (KL(p1 ‖ p2) + KL(p2 ‖ p1)) / 2,   summed over target tokens

and divided by the tokens of both passes, so ``loss`` and ``nll_loss`` read per token as in plain training. On a
corpus as small as Phoenix-2014T's 7 096 sentences the model otherwise overfits within a few epochs.

fairseq ships ``label_smoothed_cross_entropy_with_rdrop``, but it doubles the batch's tensors in place and in
validation too, so a task that decodes the batch after the loss (``--eval-bleu``) read twice the sources for its
targets and failed. Here the doubled batch is a copy, and validation (dropout off, so p1 = p2) computes the plain
loss. The KL term and the logged metrics are fairseq's (``compute_kl_loss``, its criterion's ``reduce_metrics``).
"""

from dataclasses import dataclass, field

import torch
from fairseq import utils
from fairseq.criterions import register_criterion
from fairseq.criterions.label_smoothed_cross_entropy import (LabelSmoothedCrossEntropyCriterion,
                                                             LabelSmoothedCrossEntropyCriterionConfig)
from fairseq.criterions.label_smoothed_cross_entropy_with_rdrop import (RdropLabelSmoothedCrossEntropyCriterion,
                                                                        compute_kl_loss)


@dataclass
class RDropConfig(LabelSmoothedCrossEntropyCriterionConfig):
    rdrop_alpha: float = field(default=5.0, metadata={
        "help": "weight α of the symmetric KL between the two dropout passes (the R-Drop paper's translation value "
                "is 5); 0: plain label-smoothed CE, one pass"})


@register_criterion("rdrop_label_smoothed_cross_entropy", dataclass=RDropConfig)
class RDropLabelSmoothedCrossEntropy(LabelSmoothedCrossEntropyCriterion):
    def __init__(self, task, sentence_avg, label_smoothing, rdrop_alpha=5.0, ignore_prefix_size=0,
                 report_accuracy=False):
        super().__init__(task, sentence_avg, label_smoothing, ignore_prefix_size, report_accuracy)
        self.rdrop_alpha = rdrop_alpha

    def forward(self, model, sample, reduce=True):
        if not (model.training and self.rdrop_alpha > 0):
            return super().forward(model, sample, reduce)
        net_input = {k: torch.cat([v, v]) if torch.is_tensor(v) else v for k, v in sample["net_input"].items()}
        target = sample["target"]
        doubled = dict(sample, net_input=net_input, target=torch.cat([target, target]),
                       ntokens=2 * sample["ntokens"])
        net_output = model(**net_input)
        loss, nll_loss = self.compute_loss(model, net_output, doubled, reduce=reduce)
        kl = compute_kl_loss(model, net_output, pad_mask=target.reshape(-1, 1).eq(self.padding_idx), reduce=reduce)
        loss = loss + self.rdrop_alpha * kl
        sample_size = doubled["target"].size(0) if self.sentence_avg else doubled["ntokens"]
        logging_output = {
            "loss": loss.data,
            "nll_loss": nll_loss.data,
            "rdrop_kl_loss": kl.data,
            "ntokens": doubled["ntokens"],
            "nsentences": doubled["target"].size(0),
            "sample_size": sample_size,
        }
        if self.report_accuracy:
            n_correct, total = self.compute_accuracy(model, net_output, doubled)
            logging_output["n_correct"] = utils.item(n_correct.data)
            logging_output["total"] = utils.item(total.data)
        return loss, sample_size, logging_output

    @classmethod
    def reduce_metrics(cls, logging_outputs) -> None:
        RdropLabelSmoothedCrossEntropyCriterion.reduce_metrics(logging_outputs)  # CE metrics and rdrop_kl_loss
