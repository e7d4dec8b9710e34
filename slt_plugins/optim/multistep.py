"""Learning-rate scheduler ``multistep``: the rate drops by ``gamma`` once each milestone's epochs are done.

VAC and the distillation method train with step decays at fixed epochs (VAC: ×0.2 at 40 and 60; the student: at
50, 70 and 90). fairseq's ``manual`` scheduler can express that on the command line only (it has no dataclass, so a
Hydra config cannot select it), and ``step`` decays periodically by updates. This is torch's MultiStepLR by epoch,
as a fairseq scheduler: milestones [40, 60] keep the base rate for 40 full epochs, so fairseq's epochs 41–60
(counted from 1) run at ×gamma and 61 on at ×gamma², as torch counts them from 0.
"""

from dataclasses import dataclass, field
from typing import List

from fairseq.dataclass import FairseqDataclass
from fairseq.optim.lr_scheduler import FairseqLRScheduler, register_lr_scheduler
from omegaconf import II


@dataclass
class MultiStepLRScheduleConfig(FairseqDataclass):
    milestones: List[int] = field(default_factory=lambda: [40, 60], metadata={
        "help": "after this many epochs the learning rate is multiplied by gamma (torch's MultiStepLR)"})
    gamma: float = field(default=0.2, metadata={"help": "the factor of each drop"})
    lr: List[float] = II("optimization.lr")


@register_lr_scheduler("multistep", dataclass=MultiStepLRScheduleConfig)
class MultiStepLRSchedule(FairseqLRScheduler):
    def __init__(self, cfg: MultiStepLRScheduleConfig, optimizer):
        super().__init__(cfg, optimizer)
        if len(cfg.lr) > 1:
            raise ValueError("multistep takes one learning rate (--lr); use update_freq for several")
        self.base_lr = cfg.lr[0]
        self.optimizer.set_lr(self.base_lr)

    def lr_at(self, epoch: int) -> float:
        """``epoch`` counted from 1, as fairseq does."""
        return self.base_lr * self.cfg.gamma ** sum(epoch > m for m in self.cfg.milestones)

    def step_begin_epoch(self, epoch):
        self.optimizer.set_lr(self.lr_at(epoch))
        return self.optimizer.get_lr()

    def step(self, epoch, val_loss=None):
        super().step(epoch, val_loss)
        return self.optimizer.get_lr()

    def step_update(self, num_updates):
        return self.optimizer.get_lr()
