"""conftest.run_script runs console scripts as forks of one process that imported torch, fairseq and the plugin
once (tests/script_server.py): a run must end as a fresh interpreter's run of the same command would."""

import os
import subprocess

import pytest

from conftest import BIN, REPO, run_script


def test_a_forked_run_gives_the_status_and_output_of_a_fresh_one(tmp_path, monkeypatch):
    monkeypatch.setenv("COLUMNS", "50")  # argparse wraps --help to it: the run sees the test's environment
    forked = run_script("slt-average-checkpoints", "--help", cwd=tmp_path)
    fresh = subprocess.run([os.path.join(BIN, "slt-average-checkpoints"), "--help"], cwd=tmp_path,
                           capture_output=True, text=True, timeout=600)
    assert (forked.returncode, forked.stdout, forked.stderr) == (fresh.returncode, fresh.stdout, fresh.stderr)
    assert forked.stdout.startswith("usage: slt-average-checkpoints")
    assert max(map(len, forked.stdout.splitlines())) <= 50
    failed = run_script("slt-average-checkpoints", "a.pt", "b.pt", "--out", "c.pt", check=False, cwd=tmp_path)
    assert failed.returncode == 2 and failed.stderr == "slt-average-checkpoints: error: a.pt: no such file\n"


def test_a_run_that_outlives_its_timeout_is_killed(tmp_path):
    os.mkfifo(tmp_path / "fifo")  # slt-score blocks reading a FIFO nobody writes
    with pytest.raises(subprocess.TimeoutExpired):
        run_script("slt-score", tmp_path / "fifo", timeout=3)
    assert run_script("slt-score", REPO + "/nope.txt", check=False).returncode != 0  # the server still answers
