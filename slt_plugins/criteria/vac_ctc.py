"""Criterion ``vac_ctc``: VAC's recognition loss (visual alignment constraint), for ``--sequence-model`` encoders.

    loss = seq_ctc_weight · SeqCTC + conv_ctc_weight · ConvCTC + dist_weight · Dist  (+ nsp_weight · NSP)

SeqCTC is CTC on the sequence model's logits (``encoder_out``), ConvCTC on the head's (``conv_logits``): the
visual side must recognise glosses by itself instead of leaving the work to the BiLSTM. Dist pulls the conv
posteriors towards the (detached) sequence posteriors, softened with a temperature, blank excluded. A model whose
output has no ``conv_logits`` trains with SeqCTC alone; the dialogue teacher adds next-sentence prediction
(``nsp_logits``, ``nsp_target``). CTC is summed per utterance; with ``--sentence-avg`` (as our recipes) fairseq
divides by the batch size. Validation logs the greedy gloss ``wer``, so ``--best-checkpoint-metric wer`` works.
VAC's weights: SeqCTC 1, ConvCTC 1, Dist 25, temperature 8, with VAC's normalisation: CTC summed over an
utterance's steps and averaged over the batch, Dist (T²·KL, blank excluded) averaged over all steps. Dist's pull
against CTC therefore depends on the corpus: at random logits, 25·Dist moves the conv logits 0.07 times as hard as
ConvCTC with Phoenix's shapes (1,296 classes, ~50 steps) and 1.5 times on the demo's (32 classes, ~13 steps). Scale
the weight to the data: on the demo corpus even 1 cost dev WER, and its recipes use 0.
"""

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from fairseq import metrics, utils
from fairseq.criterions import FairseqCriterion, register_criterion
from fairseq.dataclass import FairseqDataclass
from omegaconf import II

from slt_plugins.criteria.distillation_losses import posterior_kl
from slt_plugins.criteria.gloss_errors import greedy_gloss_errors, log_gloss_wer


@dataclass
class VacCtcConfig(FairseqDataclass):
    seq_ctc_weight: float = field(default=1.0, metadata={"help": "CTC on the sequence model's logits"})
    conv_ctc_weight: float = field(default=1.0, metadata={"help": "CTC on the head's (conv) logits"})
    dist_weight: float = field(default=25.0, metadata={"help": "KL from the sequence to the conv posteriors"})
    dist_temperature: float = field(default=8.0, metadata={"help": "softening temperature of Dist"})
    nsp_weight: float = field(default=1.0, metadata={
        "help": "next-sentence prediction, for models that predict it (the dialogue teacher)"})
    sentence_avg: bool = II("optimization.sentence_avg")


def ctc_sum(logits: torch.Tensor, padding_mask: torch.Tensor, sample, blank: int) -> torch.Tensor:
    """CTC of T'×B×V logits against the gloss targets, summed over the batch; too-short clips count zero."""
    log_probs = utils.log_softmax(logits, dim=-1)
    with torch.backends.cudnn.flags(enabled=False):
        return F.ctc_loss(log_probs, sample["target"], (~padding_mask).long().sum(dim=1), sample["target_lengths"],
                          blank=blank, reduction="sum", zero_infinity=True)


@register_criterion("vac_ctc", dataclass=VacCtcConfig)
class VacCtcCriterion(FairseqCriterion):
    def __init__(self, cfg: VacCtcConfig, task):
        super().__init__(task)
        self.cfg = cfg
        self.blank = task.target_dictionary.bos()

    def forward(self, model, sample, reduce=True):
        net_output = model(**sample["net_input"])
        loss, sample_size, logging_output = self.recognition_loss(net_output, sample, model.training)
        return loss, sample_size, logging_output

    def recognition_loss(self, net_output, sample, training: bool):
        """The loss above, fairseq's sample size and the logging output of one batch (the distillation criterion
        adds its terms to these)."""
        nsentences = sample["target"].size(0)
        sample_size = nsentences if self.cfg.sentence_avg else sample["ntokens"]
        per_sentence = sample_size / nsentences  # a summed-per-utterance term × this, divided by sample_size: mean
        logits, padding_mask = net_output["encoder_out"], net_output["padding_mask"]
        seq_ctc = ctc_sum(logits, padding_mask, sample, self.blank)
        loss = self.cfg.seq_ctc_weight * seq_ctc * per_sentence
        logging_output = {"seq_ctc": seq_ctc.data, "ntokens": sample["ntokens"], "nsentences": nsentences,
                          "sample_size": sample_size}
        if "conv_logits" in net_output:
            conv_ctc = ctc_sum(net_output["conv_logits"], padding_mask, sample, self.blank)
            dist = posterior_kl(net_output["conv_logits"], logits, padding_mask, self.cfg.dist_temperature,
                                blank=self.blank)
            loss = loss + (self.cfg.conv_ctc_weight * conv_ctc + self.cfg.dist_weight * dist * nsentences) \
                * per_sentence
            logging_output.update(conv_ctc=conv_ctc.data, dist=dist.data * nsentences)
        if "nsp_logits" in net_output:
            nsp = F.cross_entropy(net_output["nsp_logits"].float(), net_output["nsp_target"], reduction="sum")
            loss = loss + self.cfg.nsp_weight * nsp * per_sentence
            correct = (net_output["nsp_logits"].argmax(dim=-1) == net_output["nsp_target"]).sum()
            logging_output.update(nsp=nsp.data, _nsp_correct=int(correct))
        logging_output["loss"] = loss.data
        if not training:
            logging_output["_gloss_errors"], logging_output["_gloss_words"] = greedy_gloss_errors(
                logits, (~padding_mask).sum(dim=1), sample["target"], sample["target_lengths"], self.blank)
        return loss, sample_size, logging_output

    @staticmethod
    def reduce_metrics(logging_outputs) -> None:
        def total(key):
            return utils.item(sum(log.get(key, 0) for log in logging_outputs))

        sample_size, nsentences = total("sample_size"), total("nsentences")
        metrics.log_scalar("loss", total("loss") / max(sample_size, 1) / math.log(2), sample_size, round=3)
        for key in ("seq_ctc", "conv_ctc", "dist", "nsp") + DISTILLATION_TERMS:
            if any(key in log for log in logging_outputs):
                metrics.log_scalar(key, total(key) / max(nsentences, 1) / math.log(2), nsentences, round=3)
        if any("_nsp_correct" in log for log in logging_outputs):
            metrics.log_scalar("nsp_accuracy", 100.0 * total("_nsp_correct") / max(nsentences, 1), nsentences,
                               round=2)
        log_gloss_wer(total)

    @staticmethod
    def logging_outputs_can_be_summed() -> bool:
        return True


# logged per utterance by the recognition distillation criterion, which extends this one
DISTILLATION_TERMS = ("fusion_kl", "fusion_feature", "text_kl", "text_feature")
