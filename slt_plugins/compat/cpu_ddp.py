"""DistributedDataParallel without ``device_ids`` for a model on the CPU.

Fixes: fairseq wraps every model in ``DistributedDataParallel(device_ids=[device_id])``; torch >= 2.0 refuses
``device_ids`` for a CPU module, so multi-process training on the CPU (gloo, ``--cpu --distributed-world-size N``)
failed at start. The CPU case gets no device ids; a GPU model is wrapped exactly as before.

Versions: fairseq 0.12.x with torch >= 2.0.
Removable when: ``fairseq.models.distributed_fairseq_model.DistributedFairseqModel`` passes ``device_ids`` only for
CUDA modules (the two-rank CPU training test then passes without this module).
"""

import torch


class CpuAwareDistributedDataParallel(torch.nn.parallel.DistributedDataParallel):
    def __init__(self, module, device_ids=None, output_device=None, **kwargs):
        if all(p.device.type == "cpu" for p in module.parameters()):
            device_ids = output_device = None
        super().__init__(module, device_ids=device_ids, output_device=output_device, **kwargs)


def install() -> None:
    from fairseq.models import distributed_fairseq_model

    distributed_fairseq_model.DistributedDataParallel = CpuAwareDistributedDataParallel
