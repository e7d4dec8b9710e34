"""Write an output folder atomically, and replace only what the tool itself wrote before.

The folder is built under a temporary sibling ``NAME.tmp-<pid>`` and swapped into place when complete:
``NAME`` → ``NAME.old-<pid>``, ``NAME.tmp-<pid>`` → ``NAME``, then the old copy is removed. The temporary folder
carries a marker file (:data:`MARKER`) that says which process made it and whether it is complete, and that goes
into ``NAME`` with it until the old copy is gone. A later run uses the markers to clean up only leftovers this
module made (a user's ``NAME.old-2024`` backup has no marker and stays) and to recover from a crash at any point of
the swap: a complete copy is put back in place, never deleted.

Before any work :func:`staging` refuses, with one line, an output folder that is the current folder, is or holds one
of the tool's inputs or lies inside one, and an existing folder that is not an earlier output of the same tool
(unless ``overwrite``).
"""

import json
import os
import re
import shutil
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterable, Optional

MARKER = ".slt-staging.json"


class OutputError(ValueError):
    """An output folder the tool must not write; the message names it and the fix."""


@dataclass(frozen=True)
class Owner:
    """How a tool recognises a folder it wrote before: a JSON file that every output of it holds, whose ``field``
    ends with ``value`` (``meta.json``'s ``"tool": "fairseq-slt 0.3 slt-binarise"``)."""

    tool: str  # the console script, for messages: slt-binarise
    file: str  # meta.json
    field: str  # tool
    value: str = ""  # the field's last word; default: the tool

    def wrote(self, folder: str) -> bool:
        try:
            with open(os.path.join(folder, self.file), encoding="utf-8") as f:
                value = json.load(f).get(self.field)
        except (OSError, ValueError, AttributeError):
            return False
        return isinstance(value, str) and value.split()[-1:] == [self.value or self.tool]


def _inside(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def check_output(out: str, owner: Owner, inputs: Iterable[str] = (), overwrite: bool = False) -> None:
    """Raise :class:`OutputError` unless ``out`` may be (re)placed by ``owner.tool``."""
    check_placement(out, inputs)
    check_existing(out, owner, overwrite)


def check_placement(out: str, inputs: Iterable[str] = ()) -> None:
    """``out`` is not the current folder nor holds it, and neither holds nor lies inside an input."""
    real = os.path.realpath(out)
    try:
        cwd = os.path.realpath(os.getcwd())
    except OSError:
        cwd = ""
    if cwd and _inside(cwd, real):
        raise OutputError(f"--out {out}: is the current folder or holds it; name a new folder for the output")
    for given in inputs:
        if not given:
            continue
        source = os.path.realpath(given)
        if source == real:
            raise OutputError(f"--out {out}: is the input {given}; choose a folder apart from the inputs")
        if _inside(source, real):
            raise OutputError(f"--out {out}: holds the input {given}; choose a folder apart from the inputs")
        if _inside(real, source):
            raise OutputError(f"--out {out}: lies inside the input {given}; choose a folder apart from the inputs")


def check_existing(out: str, owner: Owner, overwrite: bool = False) -> None:
    """An existing ``out`` is empty or an earlier output of ``owner.tool``, or ``overwrite`` says to replace it."""
    if not os.path.lexists(out) or overwrite:
        return
    if os.path.isdir(out) and not os.path.islink(out) and (not os.listdir(out) or owner.wrote(out)):
        return
    what = "a folder" if os.path.isdir(out) else "a file"
    raise OutputError(f"--out {out}: refusing to replace {what} that is not an earlier output of {owner.tool} "
                      f"(no {owner.file} of {owner.tool} in it); choose another folder, or pass --overwrite to "
                      "replace it")


# --- markers and recovery ----------------------------------------------------------------------------------------

def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True


def _finished(pid: int) -> bool:
    """The process that made a leftover is gone (this process's own leftovers come from an earlier call)."""
    return pid == os.getpid() or not _pid_alive(pid)


def _read_marker(folder: str) -> Optional[dict]:
    try:
        with open(os.path.join(folder, MARKER), encoding="utf-8") as f:
            marker = json.load(f)
    except (OSError, ValueError):
        return None
    return marker if isinstance(marker, dict) else None


def _write_marker(folder: str, marker: dict) -> None:
    path = os.path.join(folder, MARKER)
    with open(path + ".tmp", "w", encoding="utf-8") as f:
        json.dump(marker, f)
    os.replace(path + ".tmp", path)


def _remove(path: str) -> None:
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    elif os.path.lexists(path):
        os.remove(path)


def recover(out: str) -> None:
    """Clean up after killed runs on ``out``: finish a swap cut between its renames, remove this module's other
    leftovers, and leave every folder without a marker alone."""
    parent, name = os.path.split(os.path.abspath(out))
    out = os.path.join(parent, name)
    leftovers = []
    for entry in sorted(os.listdir(parent)):
        match = re.fullmatch(re.escape(name) + r"\.(tmp|old)-(\d+)", entry)
        if match and _finished(int(match.group(2))):
            leftovers.append((match.group(1), int(match.group(2)), os.path.join(parent, entry)))
    for kind, _, path in leftovers:
        if kind != "tmp":
            continue
        marker = _read_marker(path)
        if marker is None:
            if os.path.isdir(path) and not os.path.islink(path) and set(os.listdir(path)) <= {MARKER + ".tmp"}:
                shutil.rmtree(path)  # killed while writing its marker: nothing else in it, so nothing is lost
            continue  # not made here: leave it alone
        if marker.get("state") == "complete" and not os.path.lexists(out):
            os.rename(path, out)  # cut between the two renames: put the complete new copy in place
        else:
            shutil.rmtree(path)  # unfinished, or finished but never swapped in (OUT is still the earlier copy)
    current = _read_marker(out) if os.path.isdir(out) else None
    if current is None:
        return
    for kind, pid, path in leftovers:
        if kind == "old" and current.get("pid") == pid and current.get("replaces") == os.path.basename(path):
            _remove(path)  # the copy that OUT replaced; the swap ended before removing it
    pid = current.get("pid")
    if isinstance(pid, int) and _finished(pid):
        os.remove(os.path.join(out, MARKER))


# --- the context manager -----------------------------------------------------------------------------------------

@contextmanager
def staging(out: str, owner: Optional[Owner] = None, *, inputs: Iterable[str] = (), overwrite: bool = False):
    """A temporary sibling of ``out`` that replaces it only when the block completes.

    With an ``owner``, ``out`` is first checked (:func:`check_output`): ``inputs`` are the files and folders the
    tool reads, which the output may neither hold nor lie inside; an existing ``out`` must be empty or an earlier
    output of the same tool, unless ``overwrite``."""
    given, out = out, os.path.abspath(out)
    parent = os.path.dirname(out)
    if owner is not None:
        check_placement(given, inputs)
    os.makedirs(parent, exist_ok=True)
    recover(out)  # may put a complete copy back in place: before looking at what is there
    if owner is not None:
        check_existing(given, owner, overwrite)
    pid = os.getpid()
    tmp, old = f"{out}.tmp-{pid}", f"{out}.old-{pid}"
    for path in (tmp, old):
        if os.path.lexists(path):
            raise OutputError(f"{path}: in the way of the temporary copies of {out} and not made by this tool; "
                              "move it elsewhere")
    os.mkdir(tmp)
    tool = owner.tool if owner else ""
    try:
        _write_marker(tmp, {"tool": tool, "pid": pid, "state": "building"})
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    replaces = os.path.basename(old) if os.path.lexists(out) else None
    _write_marker(tmp, {"tool": tool, "pid": pid, "state": "complete", "replaces": replaces})
    if replaces:
        os.rename(out, old)
    os.rename(tmp, out)
    if replaces:
        _remove(old)
    os.remove(os.path.join(out, MARKER))
