"""fairseq's checkpoint loader with ``weights_only=True`` passed explicitly, and its refusals as one line.

Fixes: ``fairseq.checkpoint_utils.load_checkpoint_to_cpu`` (fairseq-train ``--restore-file``, fairseq-generate,
every ``load_model_ensemble*``) calls ``torch.load`` without ``weights_only``: torch < 2.6, or any torch with
``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1`` set, then unpickles anything, so a hostile checkpoint ran code. Ours reads the
file with :func:`slt_plugins.safe_checkpoint.load_checkpoint_file` and then does what fairseq's does after its
``torch.load`` (the overrides, the OmegaConf config, ``_upgrade_state_dict``). A refused or truncated file raises
:class:`~slt_plugins.safe_checkpoint.CheckpointError`; left uncaught (fairseq-train, fairseq-generate), it is
printed as the program's one error line (:mod:`one_line_errors`).

Versions: fairseq 0.12.x (every release so far), any torch.
Removable when: fairseq passes ``weights_only=True`` itself and turns its refusal into a message;
``tests/test_hostile_models.py`` (the code-running checkpoint under ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1``) tells.
"""

from slt_plugins.safe_checkpoint import load_checkpoint_file


def load_checkpoint_to_cpu(path, arg_overrides=None, load_on_all_ranks=False):
    """fairseq's ``load_checkpoint_to_cpu`` for local files (omegaconf >= 2.2), reading with weights_only=True."""
    from fairseq import checkpoint_utils
    from fairseq.dataclass.utils import overwrite_args_by_name
    from fairseq.file_io import PathManager
    from omegaconf import OmegaConf

    state = load_checkpoint_file(PathManager.get_local_path(path))
    if state.get("args") is not None and arg_overrides is not None:
        for name, value in arg_overrides.items():
            setattr(state["args"], name, value)
    if state.get("cfg") is not None:
        state["cfg"] = OmegaConf.create(state["cfg"], flags={"allow_objects": True})
        if arg_overrides is not None:
            overwrite_args_by_name(state["cfg"], arg_overrides)
    return checkpoint_utils._upgrade_state_dict(state)


def install() -> None:
    from fairseq import checkpoint_utils

    checkpoint_utils.load_checkpoint_to_cpu = load_checkpoint_to_cpu
