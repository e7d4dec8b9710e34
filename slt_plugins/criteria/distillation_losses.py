"""The terms of knowledge distillation between gloss posteriors and between features, over padded sequences.

Both are means over the valid (non-padding) steps, so a batch of long clips weighs as much per step as one of
short clips, and padding never leaks in. The criteria scale them to fairseq's sample size.
"""

from typing import Optional

import torch
import torch.nn.functional as F


def posterior_kl(student_logits: torch.Tensor, teacher_logits: torch.Tensor, padding_mask: torch.Tensor,
                 temperature: float = 1.0, blank: Optional[int] = 0) -> torch.Tensor:
    """KL(teacher ‖ student) of the temperature-softened distributions, times T², mean over valid steps.

    Logits are T×B×V (the layout of ``encoder_out``), ``padding_mask`` B×T (True at padding). With ``blank`` an
    index, that class is removed and the rest renormalised, as in VAC's Dist loss: blank dominates CTC posteriors,
    and matching it would teach little about which gloss is being signed. The teacher side gets no gradient.
    T² keeps the gradient's scale independent of the temperature (Hinton et al.).
    """
    if student_logits.shape != teacher_logits.shape:
        raise ValueError(f"student logits {tuple(student_logits.shape)} and teacher logits "
                         f"{tuple(teacher_logits.shape)} differ: both must be T×B×V over the same glosses and steps")
    if blank is not None:
        keep = [i for i in range(student_logits.size(-1)) if i != blank]
        index = torch.tensor(keep, device=student_logits.device)
        student_logits, teacher_logits = student_logits.index_select(-1, index), teacher_logits.index_select(-1, index)
    log_student = F.log_softmax(student_logits.float() / temperature, dim=-1)
    log_teacher = F.log_softmax(teacher_logits.detach().float() / temperature, dim=-1)
    per_step = (log_teacher.exp() * (log_teacher - log_student)).sum(dim=-1)  # T×B
    valid = ~padding_mask.transpose(0, 1)
    return per_step[valid].sum() / valid.sum().clamp(min=1) * temperature**2


def feature_mse(student: torch.Tensor, teacher: torch.Tensor, padding_mask: torch.Tensor) -> torch.Tensor:
    """Mean squared distance of B×T×C features over the valid steps (mean over channels); no gradient to the
    teacher."""
    if student.shape != teacher.shape:
        raise ValueError(f"student features {tuple(student.shape)} and teacher features {tuple(teacher.shape)} "
                         "differ: give the student the teacher's width (the sequence model's hidden_dim)")
    valid = ~padding_mask
    per_step = (student.float() - teacher.detach().float()).pow(2).mean(dim=-1)  # B×T
    return per_step[valid].sum() / valid.sum().clamp(min=1)
