"""The tests that read ../shared/data skip where it is missing, except under CI=true, where they fail: a CI run
without the data must not pass as if the real-data checks had run."""

import os
import subprocess
import sys

from conftest import REPO

REAL_DATA_TEST = "tests/test_binarise.py::test_shared_phoenix_annotations_only"


def run_real_data_test(tmp_path, ci):
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    env["SLT_SHARED_DATA"] = str(tmp_path / "missing")
    if ci is not None:
        env["CI"] = ci
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", REAL_DATA_TEST],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=300)


def test_missing_shared_data_skips_locally_and_fails_under_ci(tmp_path):
    local = run_real_data_test(tmp_path, ci=None)
    assert local.returncode == 0 and "1 skipped" in local.stdout, local.stdout[-2000:]
    assert f"real data not found at {tmp_path / 'missing'}" in local.stdout
    ci = run_real_data_test(tmp_path, ci="true")
    assert ci.returncode == 1 and "1 error" in ci.stdout, ci.stdout[-2000:]
    assert "CI=true needs it" in ci.stdout
