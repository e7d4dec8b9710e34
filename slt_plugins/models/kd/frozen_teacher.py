"""Teachers enter a distillation run frozen, from their checkpoints, and stay out of the student's checkpoint.

A teacher is built by the student's task (same dataset, dictionaries and input kind) from the configuration saved
in its checkpoint, loaded exactly, put in eval mode for good (dropout off, BatchNorm statistics fixed) and stripped
of gradients. :class:`FrozenTeachers` keeps them outside the criterion's module tree, so fairseq neither trains nor
saves them; they follow the student to its device on first use.
"""

import logging
from contextlib import nullcontext
from typing import Callable, Dict

import torch
from fairseq import checkpoint_utils
from fairseq.models import ARCH_MODEL_REGISTRY, MODEL_REGISTRY
from omegaconf import DictConfig, open_dict

from slt_plugins.safe_checkpoint import CheckpointError

logger = logging.getLogger(__name__)


def load_teacher(path: str, build: Callable, option: str, expected_models=None) -> torch.nn.Module:
    """``build(model_cfg)`` makes the model; ``expected_models`` (registered names) guards against a wrong file."""
    try:
        state = checkpoint_utils.load_checkpoint_to_cpu(path)
    except FileNotFoundError:
        raise FileNotFoundError(f"{option} {path}: no such checkpoint") from None
    except CheckpointError as e:  # the safe loader names the file, not the option it came from
        raise CheckpointError(f"{option} {e}") from None
    model_cfg = state["cfg"].model
    name = getattr(model_cfg, "_name", None) or getattr(model_cfg, "arch", None)
    if expected_models and ARCH_MODEL_REGISTRY.get(name) not in [MODEL_REGISTRY[m] for m in expected_models]:
        raise ValueError(f"{option} {path}: a {name!r} checkpoint, expected {' or '.join(expected_models)}")
    if getattr(model_cfg, "backbone_pretrained", None):  # its weights are in the checkpoint: do not read that file
        with open_dict(model_cfg) if isinstance(model_cfg, DictConfig) else nullcontext():
            model_cfg.backbone_pretrained = None
    model = build(model_cfg)
    fix = "train the teacher on the same binarised dataset (dictionaries and input kind)"
    try:
        result = model.load_state_dict(state["model"], strict=False)
    except RuntimeError as e:  # misshapen tensors: another vocabulary, most likely
        raise ValueError(f"{option} {path} does not fit the model it describes on this dataset: "
                         f"{str(e).splitlines()[-1].strip()}; {fix}") from None
    if result.missing_keys or result.unexpected_keys:
        raise ValueError(f"{option} {path} does not fit the model it describes on this dataset (missing "
                         f"{result.missing_keys[:3]}, unexpected {result.unexpected_keys[:3]}): {fix}")
    model.eval().requires_grad_(False)
    logger.info(f"{option}: frozen {name} teacher from {path} "
                f"({sum(p.numel() for p in model.parameters()) / 1e6:.2f}M parameters)")
    return model


class FrozenTeachers:
    """name → frozen model; not an nn.Module, so a criterion holding it has no teacher parameters."""

    def __init__(self):
        self._models: Dict[str, torch.nn.Module] = {}

    def add(self, name: str, model: torch.nn.Module) -> None:
        self._models[name] = model

    def __contains__(self, name: str) -> bool:
        return name in self._models

    def get(self, name: str, like: torch.Tensor) -> torch.nn.Module:
        """The teacher, moved to the device of ``like`` (a tensor of the student's batch) if it is elsewhere."""
        model = self._models[name]
        if next(model.parameters()).device != like.device:
            model.to(like.device)
        return model
