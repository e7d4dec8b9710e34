"""Mixed precision for training on CPUs: forward passes under ``torch.autocast`` with bfloat16.

fairseq's ``--amp`` autocasts on CUDA only and ``--bf16`` turns the weights themselves into bfloat16. On a CPU with
AMX, oneDNN multiplies bfloat16 matrices several times faster than float32 ones (4.6× for a 640×256 by 256×1024
product on one core of the machine this was written on; 1.69× the updates per second when training the Phoenix
from-scratch Gloss2Text recipe there), so autocasting the forward pass speeds training up while the weights,
gradients, optimiser state and the loss (fairseq's log-softmax casts to float32) stay in float32. bfloat16 keeps
float32's exponent range, so no loss scaling is needed.

The CPU flags do not tell whether that holds: a virtual machine on a CPU with AMX may not expose it, and then
bfloat16 products run on AVX512-BF16 at 0.58× the float32 speed (the same product: 4.0 ms against 2.3 ms; the recipe's
updates at 0.69×). So before the first training step on a CPU, one product of that shape is timed in both types,
and where bfloat16 is not faster the option is switched off with a warning that gives both times. The option is
a speed option; on CUDA it always applies.

Training and its validation (loss and the BLEU decoding) run autocast; ``fairseq-generate`` decodes in float32.
"""

import logging
import time
from dataclasses import dataclass, field

import torch
from fairseq.dataclass import FairseqDataclass

logger = logging.getLogger(__name__)


@dataclass
class Bf16AutocastConfig(FairseqDataclass):
    bf16_autocast: bool = field(
        default=False,
        metadata={"help": "run training's forward passes (and validation) under torch.autocast with bfloat16: "
                          "several times faster matrix products on CUDA and on CPUs with AMX; weights, gradients "
                          "and the loss stay float32. On a CPU where a timed bfloat16 product is not faster than a "
                          "float32 one, it is switched off with a warning"},
    )


def time_cpu_products(shape=(640, 256, 1024), repeats=5):
    """(float32 ms, bfloat16 ms): the fastest of ``repeats`` products of an (m×k)·(k×n) ``shape`` on this CPU, with
    the threads torch has; about 50 ms in all."""
    m, k, n = shape
    own = torch.Generator().manual_seed(0)  # not the global generator: a seeded training's draws stay the same
    a, b = torch.randn(m, k, generator=own), torch.randn(k, n, generator=own)
    times = []
    for dtype in (torch.float32, torch.bfloat16):
        x, y = a.to(dtype), b.to(dtype)
        x @ y  # oneDNN picks and caches its kernel on the first call
        best = float("inf")
        for _ in range(repeats):
            started = time.perf_counter()
            x @ y
            best = min(best, time.perf_counter() - started)
        times.append(best * 1000)
    return tuple(times)


def cpu_bf16_is_faster() -> bool:
    """Whether bfloat16 products beat float32 ones on this CPU, measured; logs the times either way."""
    fp32, bf16 = time_cpu_products()
    if bf16 < fp32:
        logger.info(f"--bf16-autocast: a bfloat16 product takes {bf16:.2f} ms on this CPU, a float32 one "
                    f"{fp32:.2f} ms: forward passes in bfloat16")
        return True
    logger.warning(f"--bf16-autocast switched off: a bfloat16 product takes {bf16:.2f} ms on this CPU, a float32 "
                   f"one {fp32:.2f} ms (no AMX, or not exposed to this machine), so training runs in float32; set "
                   f"task.bf16_autocast=false to silence this")
    return False


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

    _bf16_autocast_on = None  # decided at the first step, where the model's device is known

    def bf16_autocast_on(self, model) -> bool:
        if not getattr(self.cfg, "bf16_autocast", False):  # a task config saved before the option existed
            return False
        if self._bf16_autocast_on is None:
            self._bf16_autocast_on = _device_type(model) != "cpu" or cpu_bf16_is_faster()
        return self._bf16_autocast_on

    def train_step(self, sample, model, criterion, optimizer, update_num, ignore_grad=False):
        if self.bf16_autocast_on(model):
            criterion = _UnderAutocast(criterion, _device_type(model))
        return super().train_step(sample, model, criterion, optimizer, update_num, ignore_grad)

    def valid_step(self, sample, model, criterion):
        with torch.autocast(_device_type(model), dtype=torch.bfloat16, enabled=self.bf16_autocast_on(model)):
            return super().valid_step(sample, model, criterion)
