"""Write an output folder atomically: build it under a temporary sibling name, rename it into place at the end."""

import os
import re
import shutil
from contextlib import contextmanager


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextmanager
def staging(out: str):
    """A temporary sibling of ``out`` that replaces it only when the block completes."""
    out = os.path.abspath(out)
    parent, name = os.path.split(out)
    os.makedirs(parent, exist_ok=True)
    for stale in os.listdir(parent):  # leftovers of killed runs
        match = re.fullmatch(re.escape(name) + r"\.(?:tmp|old)-(\d+)", stale)
        if match and not _pid_alive(int(match.group(1))):
            shutil.rmtree(os.path.join(parent, stale), ignore_errors=True)
    tmp, old = f"{out}.tmp-{os.getpid()}", f"{out}.old-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if os.path.exists(out):
        os.rename(out, old)
    os.rename(tmp, out)
    shutil.rmtree(old, ignore_errors=True)
