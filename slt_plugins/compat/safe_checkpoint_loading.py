"""fairseq's checkpoint loader with ``weights_only=True`` passed explicitly, and its refusals as one line.

Fixes: ``fairseq.checkpoint_utils.load_checkpoint_to_cpu`` (fairseq-train ``--restore-file``, fairseq-generate,
every ``load_model_ensemble*``) calls ``torch.load`` without ``weights_only``: torch < 2.6, or any torch with
``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1`` set, then unpickles anything, so a hostile checkpoint ran code. Ours reads the
file with :func:`slt_plugins.safe_checkpoint.load_checkpoint_file` and then does what fairseq's does after its
``torch.load`` (the overrides, the OmegaConf config, ``_upgrade_state_dict``). A refused or truncated file raises
:class:`~slt_plugins.safe_checkpoint.CheckpointError`; left uncaught (fairseq-train, fairseq-generate), it is
printed as the program's one error line instead of a traceback.

Versions: fairseq 0.12.x (every release so far), any torch.
Removable when: fairseq passes ``weights_only=True`` itself and turns its refusal into a message;
``tests/test_hostile_models.py`` (the code-running checkpoint under ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1``) tells.
"""

import os
import sys

from slt_plugins.safe_checkpoint import CheckpointError, load_checkpoint_file


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


def _checkpoint_error(exc):
    """The CheckpointError an exception is, or was raised from (fairseq re-raises some as plain Exception)."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, CheckpointError):
            return exc
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None


def one_line_excepthook(previous):
    def hook(exc_type, exc, tb):
        error = _checkpoint_error(exc)
        if error is None:
            return previous(exc_type, exc, tb)
        print(f"{os.path.basename(sys.argv[0]) or 'python'}: error: {error}", file=sys.stderr)

    hook.one_line_checkpoint_errors = True
    return hook


def install() -> None:
    from fairseq import checkpoint_utils

    checkpoint_utils.load_checkpoint_to_cpu = load_checkpoint_to_cpu
    if not getattr(sys.excepthook, "one_line_checkpoint_errors", False):
        sys.excepthook = one_line_excepthook(sys.excepthook)
