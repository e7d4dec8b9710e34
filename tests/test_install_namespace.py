"""The repository's tools/ and registry/ folders are installed as fairseq_slt.tools and fairseq_slt.registry, so that
installing the toolkit does not claim the generic top-level names `tools` and `registry` (a user's own `tools`
package must win)."""
import os
import subprocess
import sys


def _python(code, cwd):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True)


def test_tools_and_registry_live_under_the_project_namespace(tmp_path):
    out = _python("import fairseq_slt.tools.binarise, fairseq_slt.registry; print('ok')", tmp_path)
    assert out.stdout.strip() == "ok", out.stderr


def test_a_users_own_tools_package_is_not_shadowed(tmp_path):
    (tmp_path / "tools").mkdir()
    (tmp_path / "tools" / "__init__.py").write_text("MINE = True\n")
    out = _python("import tools; print(tools.MINE)", tmp_path)
    assert out.stdout.strip() == "True", out.stderr
    out = _python("import importlib.util; print(importlib.util.find_spec('tools'), importlib.util.find_spec('registry'))",
                  tmp_path / "tools")
    assert out.stdout.strip() == "None None", out.stdout + out.stderr
