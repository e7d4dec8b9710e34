"""Shared fixtures: the real data beside the checkout, and running the project's console scripts."""

import os
import re
import socket
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.dirname(sys.executable)
SHARED_DATA = os.environ.get("SLT_SHARED_DATA", os.path.join(REPO, "..", "shared", "data"))


def require_shared_data(path=SHARED_DATA, environ=os.environ):
    """``path`` if it is a folder; otherwise skip, or fail under ``CI=true``, where a missing data folder means the
    checks that read real data did not run and a green suite would say they passed."""
    if os.path.isdir(path):
        return path
    message = f"real data not found at {path} (set SLT_SHARED_DATA)"
    if environ.get("CI", "").lower() == "true":
        pytest.fail(f"{message}; CI=true needs it", pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def shared_data():
    """``../shared/data``: real Phoenix annotations, frames and a video (not shipped with the repository)."""
    return require_shared_data()


def run_script(name, *args, check=True, cwd=REPO, timeout=600):
    """Run a console script of this venv (fairseq-train, slt-binarise, …); returns the CompletedProcess."""
    cmd = [os.path.join(BIN, name), *map(str, args)]
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} exited {proc.returncode}\n--- stdout\n{proc.stdout[-4000:]}"
                             f"\n--- stderr\n{proc.stderr[-4000:]}")
    return proc


def load_bench(name):
    """A script of bench/ as a module (bench/ is no package), for testing its functions."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, os.path.join(REPO, "bench", f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def tiny_demo_bin(root):
    """A tiny generated demo corpus (12/4/5 clips of 32×32 frames) binarised into ``root/bin``; returns that path."""
    from tools.binarise import main as binarise_main
    from tools.make_demo_data import main as make_demo_data

    assert make_demo_data(["--out", str(root / "raw"), "--train", "12", "--dev", "4", "--test", "5",
                           "--frame-size", "32", "32", "--workers", "1"]) in (None, 0)
    assert binarise_main(["phoenix-2014t", "--annotations", str(root / "raw" / "annotations"), "--frames",
                          str(root / "raw" / "frames"), "--out", str(root / "bin"), "--frame-size", "0",
                          "--workers", "1"]) == 0
    return root / "bin"


#: the learnable corpus's glosses: two times, two regions, three weathers and an intensity, each a distinct sign
LEARNABLE_GLOSSES = ("HEUTE", "MORGEN", "NORD", "WEST", "REGEN", "WIND", "NEBEL", "STARK")


def learnable_demo_bin(root, train=24, dev=6, test=12):
    """A tiny demo corpus of 8 glosses (32×32 frames) that a tiny model learns in seconds, binarised into
    ``root/bin``; returns that path. The learning tests measure a trained model against an untrained one on it."""
    from tools.binarise import main as binarise_main
    from tools.make_demo_data import main as make_demo_data

    assert make_demo_data(["--out", str(root / "raw"), "--train", str(train), "--dev", str(dev), "--test", str(test),
                           "--frame-size", "32", "32", "--workers", "1", "--glosses", *LEARNABLE_GLOSSES]) in (None, 0)
    assert binarise_main(["phoenix-2014t", "--annotations", str(root / "raw" / "annotations"), "--frames",
                          str(root / "raw" / "frames"), "--out", str(root / "bin"), "--frame-size", "0",
                          "--workers", "1"]) == 0
    return root / "bin"


def free_port():
    """A TCP port nobody listens on, for a torch.distributed rendezvous."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def dataset_view(data, target):
    """A copy of the dataset folder's layout (links to its files) with a features/ folder of its own."""
    target.mkdir()
    for name in os.listdir(data):
        if name != "features":
            os.symlink(data / name, target / name)
    return target


def scored_glosses(out, data, subset="test"):
    """fairseq-generate's output of a Sign2Text model: its G- lines (by id, one per utterance whatever --nbest) and
    the run's gloss WER (the last ``Gloss WER so far`` line), checked against the WER recomputed here from those G-
    lines and the references of ``data``'s manifest (with the clean-up the run logged). Returns (WER, words)."""
    from slt_plugins.scoring.phoenix_cleanup import CLEANERS
    from slt_plugins.scoring.word_errors import WordErrorTally

    printed = re.findall(r"^G-(\d+)\t(.*)$", out, flags=re.M)
    recognised = dict((int(i), glosses) for i, glosses in printed)
    references = [line.split("\t")[3] for line in
                  (data / f"{subset}.tsv").read_text(encoding="utf-8").splitlines()[1:]]
    assert len(printed) == len(recognised) == len(references), (len(printed), len(recognised), len(references))
    clean = CLEANERS.get(re.search(r"glosses: CTC beam \d+, clean-up (\S+)", out).group(1), lambda x: x)
    expected = WordErrorTally()
    for i, ref in enumerate(references):
        expected.add(clean(ref).split(), clean(recognised[i]).split())
    final = list(re.finditer(r"^Gloss WER so far: (.*)$", out, flags=re.M))[-1]
    assert final.group(1) == str(expected), (final.group(1), str(expected))
    assert final.start() > list(re.finditer(r"^G-\d+\t", out, flags=re.M))[-1].start()  # the total comes last
    return expected.wer, expected.words
