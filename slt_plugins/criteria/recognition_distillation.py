"""Criterion ``recognition_distillation``: VAC's loss for the student plus what two frozen teachers know.

    loss = SeqCTC + ConvCTC + Dist                                                  (vac_ctc, the student alone)
         + β · KL(fusion teacher ‖ student) + γ · feature(fusion teacher, student)  (dialogue_teacher)
         + δ · KL(text teacher ‖ student)   + ε · feature(text teacher, student)    (text2gloss_teacher)

KL compares the gloss posteriors of the student's sequence logits with the teacher's at every valid step, softened
by ``kd_temperature``, blank excluded (as VAC's Dist); feature is the mean squared distance between the student's
sequence features and the teacher's (equal widths needed). The teachers run on the same batch: the dialogue teacher
on the same frames and the preceding utterance, the text teacher on the translation over the student's own output
steps. The student starts learning from them at ``distill_start_epoch`` (before it, only its own loss: the
reference starts the student at epoch 30 of teacher training); a teacher whose checkpoint is not given, or whose
weights are 0, is not loaded. Needs ``--task sign2gloss --text-inputs``.
"""

from dataclasses import dataclass, field
from typing import Optional

import torch
from fairseq.criterions import register_criterion

from slt_plugins.criteria.distillation_losses import feature_mse, posterior_kl
from slt_plugins.criteria.vac_ctc import VacCtcConfig, VacCtcCriterion
from slt_plugins.models.kd.frozen_teacher import FrozenTeachers, load_teacher


@dataclass
class RecognitionDistillationConfig(VacCtcConfig):
    fusion_teacher: Optional[str] = field(default=None, metadata={"help": "a dialogue_teacher checkpoint"})
    text_teacher: Optional[str] = field(default=None, metadata={"help": "a text2gloss_teacher checkpoint"})
    fusion_kl_weight: float = field(default=1.0, metadata={"help": "β: KL to the dialogue teacher's posteriors"})
    fusion_feature_weight: float = field(default=1.0, metadata={"help": "γ: distance to its fused features"})
    text_kl_weight: float = field(default=1.0, metadata={"help": "δ: KL to the text→gloss teacher's posteriors"})
    text_feature_weight: float = field(default=1.0, metadata={"help": "ε: distance to its features"})
    kd_temperature: float = field(default=8.0, metadata={"help": "softening temperature of the KL terms"})
    kd_exclude_blank: bool = field(default=True, metadata={"help": "leave the CTC blank out of the KL terms"})
    distill_start_epoch: int = field(default=1, metadata={
        "help": "the first epoch in which the teachers' terms count (before it the student learns alone)"})


@register_criterion("recognition_distillation", dataclass=RecognitionDistillationConfig)
class RecognitionDistillationCriterion(VacCtcCriterion):
    TEACHERS = (  # (name, checkpoint option, model it must be, KL weight, feature weight)
        ("fusion", "fusion_teacher", "dialogue_teacher", "fusion_kl_weight", "fusion_feature_weight"),
        ("text", "text_teacher", "text2gloss_teacher", "text_kl_weight", "text_feature_weight"),
    )

    def __init__(self, cfg: RecognitionDistillationConfig, task):
        super().__init__(cfg, task)
        if not getattr(task.cfg, "text_inputs", False):
            raise ValueError("recognition_distillation: the teachers read text; add --text-inputs (task.text_inputs)")
        self.teachers = FrozenTeachers()
        self.checked = False
        for name, option, model_name, kl, feature in self.TEACHERS:
            path = getattr(cfg, option)
            if path and (getattr(cfg, kl) or getattr(cfg, feature)):
                self.teachers.add(name, load_teacher(path, lambda c: task.build_model(c, from_checkpoint=True),
                                                     f"--{option.replace('_', '-')}", [model_name]))

    def distilling(self) -> bool:
        return getattr(self.task, "epoch", 1) >= self.cfg.distill_start_epoch

    def forward(self, model, sample, reduce=True):
        net_output = model(**sample["net_input"])
        loss, sample_size, logging_output = self.recognition_loss(net_output, sample, model.training)
        distilling = self.distilling()
        if not distilling and self.checked:
            return loss, sample_size, logging_output
        nsentences = logging_output["nsentences"]
        padding_mask = net_output["padding_mask"]
        for name, _, _, kl_weight, feature_weight in self.TEACHERS:
            if name not in self.teachers:
                continue
            teacher = self.teachers.get(name, padding_mask)
            dtype = next(teacher.parameters()).dtype
            with torch.no_grad():
                out = teacher(**{k: v.to(dtype) if torch.is_floating_point(v) else v  # --fp16 halves the batch
                                 for k, v in self.teacher_input(name, sample, padding_mask).items()})
            kl = posterior_kl(net_output["encoder_out"], out["encoder_out"], padding_mask, self.cfg.kd_temperature,
                              blank=self.blank if self.cfg.kd_exclude_blank else None)
            feature = feature_mse(net_output["gloss_features"], out["gloss_features"], padding_mask)
            if not distilling:  # the first batch runs the teachers even before distilling: a mismatch shows at once
                continue
            # a mean per step × sample_size: after fairseq divides by sample_size, the mean per step
            loss = loss + (getattr(self.cfg, kl_weight) * kl + getattr(self.cfg, feature_weight) * feature) \
                * sample_size
            logging_output[f"{name}_kl"] = kl.data * nsentences
            logging_output[f"{name}_feature"] = feature.data * nsentences
        self.checked = True
        logging_output["loss"] = loss.data
        return loss, sample_size, logging_output

    @staticmethod
    def teacher_input(name: str, sample, padding_mask: torch.Tensor):
        """The dialogue teacher sees the student's inputs; the text teacher the translation over the student's
        output steps."""
        net_input = sample["net_input"]
        if name == "fusion":
            return net_input
        return {"text_tokens": net_input["text_tokens"], "steps": (~padding_mask).long().sum(dim=1)}
