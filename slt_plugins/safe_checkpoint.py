"""Reading a checkpoint file without running code, or one line that says why not.

Every checkpoint this toolkit reads (fairseq's loader included, see :mod:`slt_plugins.compat.safe_checkpoint_loading`)
goes through :func:`load_checkpoint_file`: ``torch.load(weights_only=True)`` whatever torch's default is (and
whatever ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD`` says), with fairseq's plain types allow-listed
(:mod:`slt_plugins.compat.checkpoint_globals`). A file whose pickle names anything else, a truncated file and a file
that is no torch checkpoint at all raise :class:`CheckpointError`, whose message is the one line a tool prints.
"""

import pickle
import re

import torch


class CheckpointError(ValueError):
    """A file that is not a checkpoint this toolkit can load safely; the message names the file and why."""


def refusal_reason(error: BaseException) -> str:
    """Why torch.load refused a file, in one line."""
    text = str(error)
    refused = re.search(r"(?:unsupported global: GLOBAL|unsupported GLOBAL) ([\w.]+)", text, flags=re.I)
    if refused:
        return (f"its pickle calls {refused.group(1)}, which could run code: only tensors and plain data are "
                "accepted (torch.load weights_only=True)")
    if isinstance(error, EOFError) or "central directory" in text or "failed reading" in text:
        return "the file is truncated or damaged (an interrupted copy or download?); copy or export it again"
    if "Weights only load failed" in text:  # torch's other refusals: the line after its generic preamble
        lines = [line for line in text.splitlines()[1:] if line.strip() and "documentation" not in line]
        return f"torch.load(weights_only=True) refuses it ({lines[0].strip() if lines else 'unsupported content'})"
    first = text.splitlines()[0] if text else ""
    return f"{type(error).__name__}: {first[:200]}"


def load_checkpoint_file(path: str, what: str = "") -> dict:
    """``torch.load(path, map_location='cpu', weights_only=True)`` of a checkpoint dict, or CheckpointError."""
    label = f"{what} {path}" if what else path
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"{label}: no such file") from None
    except IsADirectoryError:
        raise CheckpointError(f"{label}: a folder, not a checkpoint file") from None
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, TypeError, AttributeError,
            OSError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{label}: not a checkpoint this toolkit can load safely: {refusal_reason(e)}") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"{label}: not a checkpoint this toolkit can load safely: it holds a "
                              f"{type(state).__name__}, not a checkpoint's dict")
    return state
