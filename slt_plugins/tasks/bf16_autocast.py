"""Mixed precision for training on CPUs: forward passes under ``torch.autocast`` with bfloat16.

fairseq's ``--amp`` autocasts on CUDA only and ``--bf16`` turns the weights themselves into bfloat16. On a CPU with
AVX512-BF16 or AMX, oneDNN multiplies bfloat16 matrices several times faster than float32 ones (4.6× for a
640×256 by 256×1024 product on one core of the machine this was written on; 1.66× the words per second when
training the Phoenix from-scratch Gloss2Text recipe there), so autocasting the forward pass speeds training up
while the weights, gradients, optimiser state and the loss (fairseq's log-softmax casts
to float32) stay in float32. bfloat16 keeps float32's exponent range, so no loss scaling is needed.

Training and its validation (loss and the BLEU decoding) run autocast; ``fairseq-generate`` decodes in float32.
"""

import logging
from dataclasses import dataclass, field

import torch
from fairseq.dataclass import FairseqDataclass

logger = logging.getLogger(__name__)


@dataclass
class Bf16AutocastConfig(FairseqDataclass):
    bf16_autocast: bool = field(
        default=False,
        metadata={"help": "run training's forward passes (and validation) under torch.autocast with bfloat16: "
                          "several times faster matrix products on CPUs with AVX512-BF16 or AMX; weights, "
                          "gradients and the loss stay float32"},
    )


def cpu_has_bf16_products():
    """True where the CPU multiplies bfloat16 natively (AVX512-BF16 or AMX), False where it does not, None where
    /proc/cpuinfo cannot tell (not Linux)."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line.split(":", 1)[1].split() for line in f if line.startswith("flags")), None)
    except OSError:
        return None
    return None if flags is None else bool({"avx512_bf16", "amx_bf16"} & set(flags))


def warn_if_slow(cfg) -> None:
    if cfg.bf16_autocast and not torch.cuda.is_available() and cpu_has_bf16_products() is False:
        logger.warning("--bf16-autocast: this CPU has neither AVX512-BF16 nor AMX, so its bfloat16 products may be "
                       "no faster than float32 ones, or slower; compare the words per second without it")


def _device_type(model) -> str:
    return next(model.parameters()).device.type


class _UnderAutocast:
    """A criterion called under autocast. fairseq's train_step runs the forward pass by calling the criterion and
    the backward pass after it, so handing it this wrapper autocasts exactly the forward."""

    def __init__(self, criterion, device_type: str):
        self.criterion, self.device_type = criterion, device_type

    def __call__(self, model, sample):
        with torch.autocast(self.device_type, dtype=torch.bfloat16):
            return self.criterion(model, sample)


class Bf16Autocast:
    """Mix into a FairseqTask (before it in the bases) whose config extends :class:`Bf16AutocastConfig`."""

    def train_step(self, sample, model, criterion, optimizer, update_num, ignore_grad=False):
        if self.cfg.bf16_autocast:
            criterion = _UnderAutocast(criterion, _device_type(model))
        return super().train_step(sample, model, criterion, optimizer, update_num, ignore_grad)

    def valid_step(self, sample, model, criterion):
        with torch.autocast(_device_type(model), dtype=torch.bfloat16, enabled=self.cfg.bf16_autocast):
            return super().valid_step(sample, model, criterion)
