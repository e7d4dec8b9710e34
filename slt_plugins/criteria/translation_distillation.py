"""Criterion ``translation_distillation``: Sign2Text's loss plus what a frozen Gloss2Text teacher knows.

    loss = combined (CE on the text + λ·CTC on the glosses)
         + γ · KL(teacher ‖ student) over the next-token distributions
         + δ · feature(teacher, student) over the decoders' last hidden states

The teacher translates the reference glosses of the same batch (it reads what the student must recognise), and
both decoders are teacher-forced on the same target prefix, so their distributions and hidden states compare token
by token (padding excluded). KL is softened by ``kd_temperature`` and scaled by T² (the reference: 8, as VAC's
Dist); the features need equal widths, which holds for a student whose translator started from the teacher's
checkpoint (SingleStream-SLT's recipe). Both terms are means over the tokens and count once per utterance, against
the cross-entropy summed over each utterance's tokens: as the recognition terms (a mean over steps against CTC
summed per utterance), and as the reference at one utterance per batch (it adds means over the batch's tokens to a
cross-entropy summed over the batch); counted once per token, γ = δ = 1 would weigh as much as the cross-entropy
itself, a target length more. The reference found the dialogue teacher's terms hurt translation, so only this
teacher is used. The terms count from ``distill_start_epoch``. Needs ``--task sign2text`` and a ``joint`` student.
"""

from dataclasses import dataclass, field
from types import SimpleNamespace

import torch
from fairseq import metrics, utils
from fairseq.criterions import register_criterion
from fairseq.data import data_utils
from omegaconf import MISSING

from slt_plugins.criteria.combined import CombinedCriterion, CombinedCriterionConfig
from slt_plugins.data.dataset_meta import NoGlossesError
from slt_plugins.criteria.distillation_losses import feature_mse, posterior_kl
from slt_plugins.models.kd.frozen_teacher import FrozenTeachers, load_teacher
from slt_plugins.models.joint import build_translator


@dataclass
class TranslationDistillationConfig(CombinedCriterionConfig):
    gloss2text_teacher: str = field(default=MISSING, metadata={"help": "a Gloss2Text (mbart_translator) checkpoint"})
    kd_kl_weight: float = field(default=1.0, metadata={"help": "γ: KL to the teacher's next-token distributions"})
    kd_feature_weight: float = field(default=1.0, metadata={"help": "δ: distance to its decoder hidden states"})
    kd_temperature: float = field(default=8.0, metadata={
        "help": "softening temperature of the KL term (scaled by T²); the reference's is 8"})
    distill_start_epoch: int = field(default=1, metadata={
        "help": "the first epoch in which the teacher's terms count (before it the student learns alone)"})


@register_criterion("translation_distillation", dataclass=TranslationDistillationConfig)
class TranslationDistillationCriterion(CombinedCriterion):
    def __init__(self, task, sentence_avg, label_smoothing, gloss2text_teacher, kd_kl_weight=1.0,
                 kd_feature_weight=1.0, kd_temperature=8.0, distill_start_epoch=1, ctc_weight=1.0,
                 translation_weight=1.0, conv_ctc_weight=0.0, ignore_prefix_size=0, report_accuracy=False):
        super().__init__(task, sentence_avg, label_smoothing, ctc_weight, translation_weight, conv_ctc_weight,
                         ignore_prefix_size, report_accuracy)
        if task.ctc_dict is None:  # the teacher reads each utterance's reference glosses
            raise NoGlossesError(f"{task.cfg.data} has no glosses (binarised with --no-glosses), and the Gloss2Text "
                                 "teacher of translation_distillation reads them; use --criterion combined")
        self.kl_weight, self.feature_weight, self.temperature = kd_kl_weight, kd_feature_weight, kd_temperature
        self.start_epoch = distill_start_epoch
        self.checked = False
        vocabularies = SimpleNamespace(source_dictionary=task.gloss_dict, target_dictionary=task.text_dict)
        option = "--gloss2text-teacher"

        def build(model_cfg):
            return build_translator(model_cfg, vocabularies, f"{option} {gloss2text_teacher}")

        self.teachers = FrozenTeachers()
        self.teachers.add("gloss2text", load_teacher(gloss2text_teacher, build, option))

    def distilling(self) -> bool:
        return getattr(self.task, "epoch", 1) >= self.start_epoch

    def forward(self, model, sample, reduce=True):
        net_output = model(**sample["net_input"], return_decoder_features=True)
        features, prev_output_tokens = net_output[1]["decoder_features"], sample["net_input"]["prev_output_tokens"]
        loss, sample_size, logging_output = self.combined_loss(model, net_output, sample, reduce)
        if not self.distilling() and self.checked:
            return loss, sample_size, logging_output
        teacher = self.teachers.get("gloss2text", features)
        with torch.no_grad():
            src_tokens, src_lengths = self.teacher_source(sample)
            teacher_encoder_out = teacher.encoder(src_tokens.to(features.device), src_lengths.to(features.device))
            teacher_features, _ = teacher.decoder(prev_output_tokens, encoder_out=teacher_encoder_out,
                                                  features_only=True)
            teacher_logits = teacher.decoder.output_layer(teacher_features)
        padding_mask = sample["target"].eq(self.padding_idx)  # B×L
        kl = posterior_kl(net_output[0].transpose(0, 1), teacher_logits.transpose(0, 1), padding_mask,
                          self.temperature, blank=None)
        feature = feature_mse(features, teacher_features, padding_mask)
        self.checked = True  # the first batch runs the teacher even before distilling: a mismatch shows at once
        if not self.distilling():
            return loss, sample_size, logging_output
        # per utterance, as the recognition terms and the reference: each utterance's KL and feature distance (means
        # over its tokens) weigh as much as its summed cross-entropy, whatever fairseq divides by
        nsentences = logging_output["nsentences"]
        loss = loss + (self.kl_weight * kl + self.feature_weight * feature) * nsentences
        logging_output.update(loss=loss.data, kd_kl=kl.data * nsentences, kd_feature=feature.data * nsentences)
        return loss, sample_size, logging_output

    def teacher_source(self, sample):
        """The reference glosses of the batch as the teacher's source: its gloss ids, ``</s>`` and the language
        token, as Gloss2Text read them."""
        glosses = [self.task.encode_glosses(self.task.ctc_dict.string(row[:n]))
                   for row, n in zip(sample["gloss_target"].cpu(), sample["gloss_target_lengths"].tolist())]
        pad = self.task.gloss_dict.pad()
        return data_utils.collate_tokens(glosses, pad), torch.tensor([len(g) for g in glosses])

    @classmethod
    def reduce_metrics(cls, logging_outputs) -> None:
        super().reduce_metrics(logging_outputs)
        nsentences = utils.item(sum(log.get("nsentences", 0) for log in logging_outputs))
        for key in ("kd_kl", "kd_feature"):
            if any(key in log for log in logging_outputs):
                value = utils.item(sum(log.get(key, 0) for log in logging_outputs))
                metrics.log_scalar(key, value / max(nsentences, 1), nsentences, round=3)
