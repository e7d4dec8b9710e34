"""Progress bars of the command-line tools: on a terminal, and in a run that watches them through a pipe.

A tool's bar (binarising, feature extraction, translation) is drawn when stderr is a terminal and left out when it
is not (a log file or CI stays clean). ``SLT_PROGRESS=1`` in the environment draws it into a pipe as well: slt-demo
sets it for the tools it runs and reads their ``k/N`` counts back to keep its own status line alive.
"""

import os
import sys

from tqdm import tqdm

FORCE_VARIABLE = "SLT_PROGRESS"


def forced() -> bool:
    return os.environ.get(FORCE_VARIABLE, "") == "1"


def progress_bar(iterable=None, quiet: bool = False, **kwargs) -> tqdm:
    """tqdm on stderr: off with ``quiet``, forced on by ``SLT_PROGRESS=1``, else only on a terminal."""
    disable = True if quiet else (False if forced() else None)  # None: tqdm's own "only on a terminal"
    if forced():
        kwargs.setdefault("mininterval", 0.5)
    return tqdm(iterable, disable=disable, file=sys.stderr, **kwargs)
