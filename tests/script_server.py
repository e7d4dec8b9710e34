"""Runs this venv's console scripts for the test suite as forks of one process that imported torch, fairseq and the
plugin once (``conftest.run_script`` starts it; ``SLT_TEST_FRESH_PROCESSES=1`` goes back to a new interpreter per
run).

Each run is still a process of its own, with its argv, environment, working folder, stdin (empty), stdout, stderr
and exit status, and runs the console script's own file as ``__main__``; what it does not pay again are the
imports, about 4 s of CPU per run (torch 1.3 s, fairseq 2.4 s), which the suite paid well over a hundred times. The
state a child starts from is the state a script meets after importing those modules: logging unconfigured (the
plugin undoes the ``basicConfig`` fairseq runs at import, as in every script run), the plugin imported from the
checkout, recorded as fairseq's ``--user-dir`` import of it would record it, and its one-line ``sys.excepthook``
installed (which reports an uncaught exception, as in a script run that imported the plugin).

Protocol: one JSON request per line on stdin (script, args, cwd, env, stdout and stderr file paths); the answer is
a line ``{"pid": …}`` when the child starts, then ``{"rc": …}`` when it ends (negative: killed by that signal).
"""

import atexit
import json
import os
import runpy
import sys


def preload(repo: str) -> None:
    sys.path.insert(0, repo)  # the checkout's plugin, as ``--user-dir slt_plugins`` run from the checkout imports it
    import torch  # noqa: F401
    import fairseq  # noqa: F401
    from fairseq import utils

    import slt_plugins  # noqa: F401
    sys.path.pop(0)
    # what fairseq's import_user_module records after importing the plugin: a later --user-dir of it is a no-op
    utils.import_user_module.memo = {os.path.join(repo, "slt_plugins")}


def child(request: dict) -> None:
    """Run the script as ``python SCRIPT ARGS`` would, then leave the process; never returns."""
    code = 1
    try:
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        for fd, path, flags in ((0, os.devnull, os.O_RDONLY), (1, request["stdout"], os.O_WRONLY | os.O_TRUNC),
                                (2, request["stderr"], os.O_WRONLY | os.O_TRUNC)):
            opened = os.open(path, flags)
            os.dup2(opened, fd)
            os.close(opened)
        script = request["script"]
        sys.argv = [script, *request["args"]]
        sys.path[0] = os.path.dirname(script)  # as for ``python SCRIPT``: the script's folder first
        try:
            runpy.run_path(script, run_name="__main__")
            code = 0
        except SystemExit as e:  # the interpreter's rules for sys.exit's argument
            if e.code is None:
                code = 0
            elif isinstance(e.code, int):
                code = e.code
            else:
                print(e.code, file=sys.stderr)
                code = 1
        except BaseException:  # noqa: B902  (uncaught: sys.excepthook reports it, as the interpreter's would; 1)
            sys.excepthook(*sys.exc_info())
            code = 1
        atexit._run_exitfuncs()
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code & 0xFF)


def main() -> None:
    preload(sys.argv[1])
    for line in sys.stdin:
        request = json.loads(line)
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            child(request)
        print(json.dumps({"pid": pid}), flush=True)
        _, status = os.waitpid(pid, 0)
        print(json.dumps({"rc": os.waitstatus_to_exitcode(status)}), flush=True)


if __name__ == "__main__":
    main()
