"""Shared fixtures: the real data beside the checkout, and running the project's console scripts."""

import atexit
import json
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading

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


class ScriptServer:
    """The client of ``script_server.py``: console scripts run as forks of one process that imported torch, fairseq
    and the plugin once (each run its own process all the same; see that module). Started at the first run."""

    def __init__(self):
        self.lock = threading.Lock()
        self.process = subprocess.Popen([sys.executable, os.path.join(REPO, "tests", "script_server.py"), REPO],
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=REPO)
        self.answers = queue.Queue()  # the server's answer lines, read as they come (None: it ended)
        threading.Thread(target=self._read, daemon=True).start()
        atexit.register(self.close)

    def _read(self):
        for line in self.process.stdout:
            self.answers.put(json.loads(line))
        self.answers.put(None)

    def close(self):
        if self.process.poll() is None:
            self.process.stdin.close()
            self.process.wait(timeout=60)

    def answer(self, timeout):
        """The server's next answer, or None after ``timeout`` seconds."""
        try:
            found = self.answers.get(timeout=max(timeout, 0))
        except queue.Empty:
            return None
        if found is None:
            raise RuntimeError("the script server ended")
        return found

    def run(self, cmd, cwd, timeout):
        with self.lock, tempfile.TemporaryDirectory() as tmp:
            out, err = os.path.join(tmp, "stdout"), os.path.join(tmp, "stderr")
            for path in (out, err):
                open(path, "w").close()
            request = {"script": cmd[0], "args": cmd[1:], "cwd": str(cwd), "env": dict(os.environ), "stdout": out,
                       "stderr": err}
            self.process.stdin.write(json.dumps(request) + "\n")
            self.process.stdin.flush()
            pid = self.answer(600)["pid"]  # the first waits for the server's imports
            done = self.answer(timeout)
            if done is None:  # as subprocess.run: kill the run (the server reaps it), then raise
                os.kill(pid, signal.SIGKILL)
                self.answer(60)
                raise subprocess.TimeoutExpired(cmd, timeout)
            with open(out, encoding="utf-8", errors="replace") as o, open(err, encoding="utf-8", errors="replace") as e:
                return subprocess.CompletedProcess(cmd, done["rc"], o.read(), e.read())


_SERVER = []  # the session's ScriptServer, once started


def _forks_scripts(path) -> bool:
    if os.environ.get("SLT_TEST_FRESH_PROCESSES") == "1" or not sys.platform.startswith("linux"):
        return False  # (macOS: a fork of a process that imported torch may crash in the Objective-C runtime)
    with open(path, "rb") as f:
        first = f.readline()
    return first.startswith(b"#!") and b"python" in first  # a Python console script


class BackwardOnly:
    """The one optimiser method a task's ``train_step`` calls, for tests that call it directly."""

    @staticmethod
    def backward(loss):
        loss.backward()


def train_step_without_and_with_bf16(task, sample, model, criterion, after_step=lambda: None):
    """``task.train_step`` on one sample with ``task.cfg.bf16_autocast`` off, then on, with the same dropout masks:
    {False: (loss, gradients), True: (…)}. Asserts that the loss, every weight and every gradient stay float32 both
    times; ``after_step()`` runs after each (a validation step, say). The option is off again afterwards."""
    import torch

    results = {}
    for autocast in (False, True):
        task.cfg.bf16_autocast = autocast
        model.zero_grad()
        torch.manual_seed(1)  # the same dropout masks
        loss, _, _ = task.train_step(sample, model, criterion, BackwardOnly, update_num=0)
        results[autocast] = (loss.detach(), [p.grad.clone() for p in model.parameters() if p.grad is not None])
        assert loss.dtype == torch.float32
        assert all(p.dtype == p.grad.dtype == torch.float32 for p in model.parameters() if p.grad is not None)
        after_step()
    task.cfg.bf16_autocast = False
    return results


def run_script(name, *args, check=True, cwd=REPO, timeout=600):
    """Run a console script of this venv (fairseq-train, slt-binarise, …); returns the CompletedProcess. The run is
    a fork of a process that imported torch, fairseq and the plugin once (tests/script_server.py), unless
    ``SLT_TEST_FRESH_PROCESSES=1``: then it starts a new interpreter, as a user's shell does."""
    cmd = [os.path.join(BIN, name), *map(str, args)]
    if _forks_scripts(cmd[0]):
        if not _SERVER:
            _SERVER.append(ScriptServer())
        proc = _SERVER[0].run(cmd, cwd, timeout)
    else:
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
    from fairseq_slt.tools.binarise import main as binarise_main
    from fairseq_slt.tools.make_demo_data import main as make_demo_data

    assert make_demo_data(["--out", str(root / "raw"), "--train", "12", "--dev", "4", "--test", "5",
                           "--frame-size", "32", "32", "--workers", "1"]) in (None, 0)
    assert binarise_main(["phoenix-2014t", "--annotations", str(root / "raw" / "annotations"), "--frames",
                          str(root / "raw" / "frames"), "--out", str(root / "bin"), "--frame-size", "0",
                          "--workers", "1"]) == 0
    return root / "bin"


#: the learnable corpus's glosses: two times, two regions, three weathers and an intensity, each a distinct sign
LEARNABLE_GLOSSES = ("HEUTE", "MORGEN", "NORD", "WEST", "REGEN", "WIND", "NEBEL", "STARK")


#: fairseq-train's options shared by the tiny checkpoints
TINY_TRAIN = ["--user-dir", "slt_plugins", "--optimizer", "adam", "--batch-size", "4", "--valid-subset", "dev",
              "--no-progress-bar", "--num-workers", "0", "--no-epoch-checkpoints", "--log-format", "simple"]


def mark_every_reference(data):
    """Start each utterance's glosses with the Phoenix marker ``__ON__`` (and give it a dictionary row), so that the
    Phoenix clean-up visibly changes the references: one gloss fewer per utterance."""
    for split in ("train", "dev", "test"):
        path = data / f"{split}.tsv"
        lines = path.read_text(encoding="utf-8").splitlines()
        rows = [line.split("\t") for line in lines[1:]]
        for row in rows:
            row[3] = "__ON__ " + row[3]
        path.write_text("\n".join([lines[0]] + ["\t".join(r) for r in rows]) + "\n", encoding="utf-8")
    with open(data / "dict.gloss.txt", "a", encoding="utf-8") as f:
        f.write("__ON__ 21\n")


@pytest.fixture(scope="session")
def tiny_trained(tmp_path_factory):
    """The tiny demo corpus (:func:`tiny_demo_bin`, each reference marked with ``__ON__``: see
    :func:`mark_every_reference`) with a Sign2Gloss and a Gloss2Text checkpoint of 3 updates each, made once per
    session for the tests that need a corpus and real checkpoints but not what they learnt. Tests only read them:
    one that adds files to the dataset works on a :func:`dataset_view` (which leaves ``features/`` out)."""
    root = tmp_path_factory.mktemp("tiny_trained")
    data = tiny_demo_bin(root)
    mark_every_reference(data)
    run_script("fairseq-train", data, *TINY_TRAIN, "--task", "sign2gloss", "--arch", "s3d_encoder_tiny",
               "--crop-size", "32", "--criterion", "gloss_ctc", "--lr", "2e-3", "--max-update", "3",
               "--save-dir", root / "s2g")
    run_script("fairseq-train", data, *TINY_TRAIN, "--task", "gloss2text", "--arch", "mbart_translator_tiny",
               "--criterion", "label_smoothed_cross_entropy", "--lr", "1e-3", "--max-update", "3",
               "--save-dir", root / "g2t")
    return {"root": root, "data": data, "s2g": root / "s2g" / "checkpoint_last.pt",
            "g2t": root / "g2t" / "checkpoint_last.pt"}


def learnable_demo_bin(root, train=24, dev=6, test=12):
    """A tiny demo corpus of 8 glosses (32×32 frames) that a tiny model learns in seconds, binarised into
    ``root/bin``; returns that path. The learning tests measure a trained model against an untrained one on it."""
    from fairseq_slt.tools.binarise import main as binarise_main
    from fairseq_slt.tools.make_demo_data import main as make_demo_data

    assert make_demo_data(["--out", str(root / "raw"), "--train", str(train), "--dev", str(dev), "--test", str(test),
                           "--frame-size", "32", "32", "--workers", "1", "--glosses", *LEARNABLE_GLOSSES]) in (None, 0)
    assert binarise_main(["phoenix-2014t", "--annotations", str(root / "raw" / "annotations"), "--frames",
                          str(root / "raw" / "frames"), "--out", str(root / "bin"), "--frame-size", "0",
                          "--workers", "1"]) == 0
    return root / "bin"


def gloss_free_demo_bin(root, train=24, dev=6, test=12):
    """The learnable corpus (same glosses, seed and sizes: the same clips and texts) written and binarised as a corpus
    without glosses (How2Sign-style TSVs, ``--no-glosses``) into ``root/bin``; returns that path."""
    from fairseq_slt.tools.binarise import main as binarise_main
    from fairseq_slt.tools.make_demo_data import main as make_demo_data

    assert make_demo_data(["--out", str(root / "raw"), "--train", str(train), "--dev", str(dev), "--test", str(test),
                           "--frame-size", "32", "32", "--workers", "1", "--glosses", *LEARNABLE_GLOSSES,
                           "--no-glosses"]) in (None, 0)
    manifests = [f"--manifest={split}={root / 'raw' / 'annotations' / f'{split}.tsv'}" for split in ("train", "dev",
                                                                                                     "test")]
    assert binarise_main(["tsv", "--no-glosses", *manifests, "--out", str(root / "bin"), "--frame-size", "0",
                          "--language", "de", "--workers", "1"]) == 0
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
