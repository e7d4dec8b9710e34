"""The toolkit's own errors, uncaught in a fairseq entry point, printed as the one line they are.

Fixes: fairseq-train and fairseq-generate let every exception end the process with a traceback. The errors this
toolkit raises for a bad file (:class:`~slt_plugins.safe_checkpoint.CheckpointError`,
:class:`~slt_plugins.data.lmdb_store.StoreError`, :class:`~slt_plugins.data.video_io.ClipReadError`,
:class:`~slt_plugins.data.dataset_meta.NoGlossesError`) already name the file, the reason and the fix: when one
of them (or an exception raised from one, as fairseq re-raises some) reaches the top, ``sys.excepthook`` prints
``PROGRAM: error: MESSAGE`` and the exit status is 1, as for any uncaught exception. One raised in a data-loader
worker comes back with the worker's traceback in its message: only its last line is kept. Every other exception
keeps its traceback.

Versions: fairseq 0.12.x (``fairseq_cli/*.py`` catch nothing), any torch.
Removable when: fairseq's entry points report exceptions of a declared user-error type in one line themselves.
"""

import os
import re
import sys

ONE_LINE_ERRORS = ()  # filled by install(): the classes are imported there, after fairseq


def toolkit_error(exc):
    """The toolkit error an exception is, or was raised from; None when there is none."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, ONE_LINE_ERRORS):
            return exc
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None


def one_line(error) -> str:
    text = str(error)
    if "Original Traceback" in text:  # re-raised by a DataLoader from a worker: "…\nmodule.StoreError: message"
        last = [line for line in text.splitlines() if line.strip()][-1]
        text = re.sub(r"^[\w.]*Error: ", "", last)
    return text.splitlines()[0] if text else type(error).__name__


def one_line_excepthook(previous):
    def hook(exc_type, exc, tb):
        error = toolkit_error(exc)
        if error is None:
            return previous(exc_type, exc, tb)
        print(f"{os.path.basename(sys.argv[0]) or 'python'}: error: {one_line(error)}", file=sys.stderr)

    hook.prints_toolkit_errors_in_one_line = True
    return hook


def install() -> None:
    global ONE_LINE_ERRORS
    from slt_plugins.data.dataset_meta import NoGlossesError
    from slt_plugins.data.lmdb_store import StoreError
    from slt_plugins.data.video_io import ClipReadError
    from slt_plugins.safe_checkpoint import CheckpointError

    ONE_LINE_ERRORS = (CheckpointError, StoreError, ClipReadError, NoGlossesError)
    if not getattr(sys.excepthook, "prints_toolkit_errors_in_one_line", False):
        sys.excepthook = one_line_excepthook(sys.excepthook)
