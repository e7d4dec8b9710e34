"""Visual backbones: video frames → a feature sequence, chosen by name (``--visual-backbone s3d``).

Each backbone is a :class:`VisualBackbone` registered with ``@register_visual_backbone(name, dataclass=Config)``
and built with ``registry.build_visual_backbone(name, cfg_or_namespace)``. What an encoder may rely on:

- ``output_dim: int`` — channels of the features;
- ``forward(frames, lengths) -> (features, output_lengths)``: ``frames`` B×T×3×H×W, uint8 (0–255, as the dataset
  gives them) or float in [0, 1] (:func:`unit_range` turns either into the second), and ``lengths`` the valid frame
  counts (LongTensor B); ``features`` B×T'×output_dim, spatially average-pooled, and the valid
  output lengths T' per clip. The backbone applies its own input normalisation, since that belongs to its
  pretrained weights;
- ``output_lengths(lengths)`` — T' computed exactly from the layers' strides and padding, so the encoder can mark
  outputs beyond a clip's end as padding;
- config fields ``pretrained`` (a weights file to start from) and ``frozen_blocks`` (the first N blocks keep their
  weights, and their BatchNorm statistics even while the model trains), plus the backbone's own.

Backbones: ``s3d`` (S3D blocks 1–4 with Kinetics-400 weights, SLRT's choice), ``cnn_tconv`` (a small 2D CNN with
temporal convolutions, for CPU runs) and ``resnet18`` (ResNet18 per frame with torchvision's ImageNet weights, then
the same temporal convolutions: VAC's visual part).
"""

import logging
import pickle
from collections.abc import Mapping
from typing import List, Sequence

import torch
import torch.nn as nn

from slt_plugins.safe_checkpoint import CheckpointError, refusal_reason

logger = logging.getLogger(__name__)


def unit_range(frames: torch.Tensor) -> torch.Tensor:
    """uint8 frames → float in [0, 1]; float frames as they are. A backbone calls it on the frames it uses, after
    it has dropped padding and skipped frames, so that no float copy of the whole padded batch is made (4× the
    memory of the uint8 one; ~2 % of the demo's update time)."""
    return frames.float().div_(255.0) if frames.dtype == torch.uint8 else frames


class VisualBackbone(nn.Module):
    """The interface above, and the frozen-block bookkeeping both backbones share."""

    output_dim: int

    def __init__(self):
        super().__init__()
        self._frozen_blocks: List[nn.Module] = []  # a plain list: the blocks stay registered where they live

    def output_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def freeze_blocks(self, blocks: Sequence[nn.Module], count: int) -> None:
        """Stop training the first ``count`` of ``blocks``: no gradients, BatchNorm in eval mode for good."""
        if not 0 <= count <= len(blocks):
            raise ValueError(f"frozen_blocks={count}, but this {type(self).__name__} has {len(blocks)} blocks")
        self._frozen_blocks = list(blocks[:count])
        for block in self._frozen_blocks:
            block.requires_grad_(False)
        self.train(self.training)

    def train(self, mode: bool = True):
        super().train(mode)
        for block in self._frozen_blocks:
            block.eval()
        return self


def load_weights(module: nn.Module, path: str, kind: str) -> None:
    """Load into ``module`` the tensors it has from the state dict in ``path``, ignoring the file's other keys
    (layers it does not build) and DataParallel's ``module.`` prefix. A missing or misshapen tensor is an error
    that names the file: ``kind`` says what the file should have been ("an S3D Kinetics-400 state dict")."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError) as err:  # a pickle that would run code, a truncated file
        raise CheckpointError(f"{path} is not {kind}: {refusal_reason(err)}") from None
    if not isinstance(state, Mapping):
        raise ValueError(f"{path} is not {kind}: it holds a {type(state).__name__}, not names → tensors")
    state = {key.removeprefix("module."): value for key, value in state.items()}

    own = module.state_dict()
    needed = [key for key in own if not key.endswith("num_batches_tracked")]  # older files lack these counters
    missing = [key for key in needed if key not in state]
    misshapen = [
        f"{key} is {_shape(state[key])}, expected {tuple(own[key].shape)}"
        for key in needed
        if key in state and _shape(state[key]) != tuple(own[key].shape)
    ]
    if missing or misshapen:
        problems = ([f"missing {_few(missing)}"] if missing else []) + ([_few(misshapen)] if misshapen else [])
        raise ValueError(f"{path} is not {kind}: {'; '.join(problems)}")

    loaded = {key: state[key] for key in own if key in state}
    module.load_state_dict(loaded)  # strict; BatchNorm fills in a missing num_batches_tracked
    ignored = sorted(set(state) - set(loaded))
    logger.info(
        f"loaded {len(loaded)} tensors of {kind} from {path}"
        + (f"; ignored {len(ignored)} of layers not built ({_few(ignored)})" if ignored else "")
    )


def _shape(value):
    return tuple(value.shape) if torch.is_tensor(value) else type(value).__name__


def _few(items: List[str], count: int = 3) -> str:
    more = f" … ({len(items)} in all)" if len(items) > count else ""
    return ", ".join(items[:count]) + more


# last, so that the modules find VisualBackbone and load_weights here when they import them
from slt_plugins._submodules import import_submodules  # noqa: E402

import_submodules(__name__, __path__)
