"""Settings of how a model was trained and is meant to be evaluated, kept in its checkpoint.

fairseq-generate builds its task from its own command line before it reads the checkpoint, so an option that the
training config set (the input kind, the crop, the CTC beam of the glosses, the gloss clean-up) would fall back to
its default there, silently. A task mixing in :class:`CheckpointSettings` declares such options with the default
``None`` or ``""`` ("not given") and lists them with their defaults in ``checkpoint_settings``. When it starts it
fills in the defaults of those not given and records the values in its task state, which fairseq saves in every
checkpoint (``task_state``) and hands back to :meth:`FairseqTask.load_state_dict` whenever a checkpoint is loaded
with the task (``checkpoint_utils.load_model_ensemble_and_task``: fairseq-generate, fairseq-validate, bundles),
before the model is built. There the options the command line did not give take the checkpoint's values; a given
one wins.

Checkpoints saved before these records existed keep the command line's values and the defaults, as they did.
"""

import logging
from contextlib import nullcontext
from enum import Enum
from typing import Any, Dict, Mapping

from omegaconf import DictConfig, open_dict

logger = logging.getLogger(__name__)

STATE_KEY = "checkpoint_settings"


def _plain(value):
    """A config value as a plain Python value (fairseq's ChoiceEnum members are not safe to unpickle)."""
    return value.value if isinstance(value, Enum) else value


def saved_settings(state: Mapping, defaults: Mapping[str, Any]) -> Dict[str, Any]:
    """The settings a loaded checkpoint (``load_checkpoint_to_cpu``) was trained with: its task state's record, else
    its task config, else ``defaults``."""
    task_cfg = state["cfg"]["task"]
    recorded = (state.get("task_state") or {}).get(STATE_KEY) or {}
    out = {}
    for name, default in defaults.items():
        value = recorded.get(name)
        if value in (None, ""):
            value = _plain(task_cfg.get(name) if isinstance(task_cfg, (dict, DictConfig)) else getattr(task_cfg, name,
                                                                                                      None))
        out[name] = default if value in (None, "") else value
    return out


class CheckpointSettings:
    """Mixed into a FairseqTask: the options named in ``checkpoint_settings`` (option → default) come from the
    command line when given, else from the checkpoint loaded with the task, else their defaults."""

    checkpoint_settings: Dict[str, Any] = {}

    def init_checkpoint_settings(self) -> None:
        """Fill in the defaults of the settings not given; call once the task has its ``cfg`` and ``state``."""
        self._settings_not_given = {name for name in self.checkpoint_settings
                                    if getattr(self.cfg, name) in (None, "")}
        self._set_settings({name: self.checkpoint_settings[name] for name in self._settings_not_given}, force=True)

    def settings(self) -> Dict[str, Any]:
        """The values in force, by option name."""
        return {name: _plain(getattr(self.cfg, name)) for name in self.checkpoint_settings}

    def _set_settings(self, values: Mapping[str, Any], force: bool = False) -> None:
        with open_dict(self.cfg) if isinstance(self.cfg, DictConfig) else nullcontext():
            for name, value in values.items():
                setattr(self.cfg, name, value)
        self.state.merge_state_dict({STATE_KEY: self.settings()})  # what a checkpoint saved now records
        if values or force:
            self.checkpoint_settings_changed(set(values))

    def checkpoint_settings_changed(self, names) -> None:
        """Hook: forget what was derived from the settings ``names`` (an open store, a feature size)."""

    def load_state_dict(self, state_dict: Dict[str, Any]):
        super().load_state_dict(state_dict)
        recorded = state_dict.get(STATE_KEY) or {}
        adopted = {name: recorded[name] for name in self.checkpoint_settings
                   if name in self._settings_not_given and recorded.get(name) not in (None, "")}
        self._settings_not_given = set()  # the first checkpoint decides (an ensemble shares one task)
        self._set_settings({name: value for name, value in adopted.items() if value != getattr(self.cfg, name)})
        if adopted:
            logger.info("settings from the checkpoint (not given on the command line): "
                        + ", ".join(f"{name}={value}" for name, value in adopted.items()))

