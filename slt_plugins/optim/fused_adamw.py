"""Optimizer ``fused_adamw``: fairseq's Adam update as torch's fused AdamW kernel, for training on a CPU.

fairseq's ``adam`` is already AdamW (its weight decay is decoupled: p ← p − lr·wd·p), but off CUDA it steps with a
Python loop of five tensor operations per parameter. For tensors of the from-scratch Phoenix Gloss2Text recipe's
shapes (132 tensors, 6.3 M parameters) that loop took 24.5 ms a step on one core; torch's fused AdamW kernel
(``torch.optim.AdamW(fused=True)``, CPU and CUDA) did the same step in 9.4 ms. In the recipe's training the
update went from 313 to 305 ms (``bench/g2t_train_speed.py``). The update is the same rule; the
one difference is where ε enters: fairseq divides by √v + ε and scales the step by √(1 − β₂ᵗ), torch divides by
√v / √(1 − β₂ᵗ) + ε, which differs only where √v is near ε.
"""

from dataclasses import dataclass, field
from typing import Any, List

import torch
from fairseq.dataclass import FairseqDataclass
from fairseq.optim import FairseqOptimizer, register_optimizer
from fairseq.optim.adam import FairseqAdam
from omegaconf import II


@dataclass
class FusedAdamWConfig(FairseqDataclass):
    adam_betas: Any = field(default=(0.9, 0.999), metadata={"help": "Adam's betas, as fairseq's adam takes them"})
    adam_eps: float = field(default=1e-8, metadata={"help": "Adam's epsilon"})
    weight_decay: float = field(default=0.0, metadata={"help": "decoupled weight decay, as fairseq's adam applies it"})
    lr: List[float] = II("optimization.lr")


@register_optimizer("fused_adamw", dataclass=FusedAdamWConfig)
class FusedAdamW(FairseqAdam):
    """fairseq's ``adam`` with torch's fused kernel in place of its loop: its settings are read as ``adam`` reads
    them (``FairseqAdam.optimizer_config``), and its ``average_params`` works on the same state names."""

    def __init__(self, cfg: FusedAdamWConfig, params):
        FairseqOptimizer.__init__(self, cfg)  # not FairseqAdam's: it would build fairseq's own Adam
        self._optimizer = torch.optim.AdamW(params, fused=True, **self.optimizer_config)
