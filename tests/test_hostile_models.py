"""Hostile and damaged models, checkpoints and stores: every entry point refuses each with one line, runs no code
and loses nothing.

A table anyone can extend: a case is (name, builder, command, expected). The builder makes the hostile file(s) from
a tiny trained world (dataset, checkpoint, bundle) and returns the names the command's ``{placeholders}`` use; the
command runs as a console script; ``expected`` is a piece of the one error line it must print on stderr. Every case
also checks: a non-zero exit, no traceback, no marker file (the code-running pickle never ran).

The code-running checkpoint is read under ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1``, which makes torch's default loads
unpickle anything, as torch < 2.6 does: only a load that passes ``weights_only=True`` itself is safe.
"""

import os
import shutil
from typing import Callable, Dict, List, NamedTuple

import numpy as np
import pytest
import torch

from conftest import run_script, tiny_demo_bin

S2G = ["--user-dir", "slt_plugins", "--task", "sign2gloss", "--arch", "s3d_encoder_tiny", "--crop-size", "32",
       "--criterion", "gloss_ctc", "--optimizer", "adam", "--lr", "1e-3", "--batch-size", "4", "--num-workers", "0",
       "--no-progress-bar", "--valid-subset", "dev", "--no-epoch-checkpoints", "--best-checkpoint-metric", "wer"]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A tiny binarised corpus, a Sign2Gloss checkpoint after one update and its bundle."""
    root = tmp_path_factory.mktemp("world")
    data = tiny_demo_bin(root)
    run_script("fairseq-train", data, *S2G, "--max-update", "1", "--save-dir", root / "s2g", "--disable-validation")
    checkpoint = root / "s2g" / "checkpoint_last.pt"
    run_script("slt-export", "--checkpoint", checkpoint, "--out", root / "bundle")
    return {"root": root, "data": data, "checkpoint": checkpoint, "bundle": root / "bundle"}


class RunsCode:
    """Unpickling this runs a shell command that creates ``marker``."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return os.system, (f"touch '{self.marker}'",)


def code_running_checkpoint(path, marker):
    torch.save({"model": {"w": torch.ones(2)}, "cfg": None, "payload": RunsCode(marker)}, path)
    return path


def truncated_copy(src, dst):
    data = open(src, "rb").read()
    open(dst, "wb").write(data[: len(data) // 2])
    return dst


def bundle_with_model(world, tmp, make_model):
    bundle = tmp / "bundle"
    shutil.copytree(world["bundle"], bundle)
    make_model(bundle / "model.pt")
    return bundle


def mbart_dir_with_model(tmp, make_model):
    folder = tmp / "mbart"
    folder.mkdir()
    make_model(folder / "model.pt")
    (folder / "dict.txt").write_text("a 1\n")
    (folder / "sentence.bpe.model").write_bytes(b"not used: the checkpoint is refused first")
    return folder


def evil(world, tmp):
    return {"evil": code_running_checkpoint(tmp / "evil.pt", tmp / "MARKER")}


class Case(NamedTuple):
    name: str
    build: Callable[[dict, "os.PathLike"], Dict[str, object]]
    command: List[str]
    expected: str


REFUSED = "not a checkpoint this toolkit can load safely: its pickle calls posix.system, which could run code"
TRUNCATED = "not a checkpoint this toolkit can load safely: the file is truncated or damaged"

CASES = [
    # a checkpoint whose pickle would run code, at every entry point that reads checkpoints (issue 26)
    Case("restore-file runs no code", evil,
         ["fairseq-train", "{data}", *S2G, "--restore-file", "{evil}", "--save-dir", "{tmp}/ck", "--max-update", "2"],
         "fairseq-train: error: {evil}: " + REFUSED),
    Case("generate runs no code", evil,
         ["fairseq-generate", "{data}", "--user-dir", "slt_plugins", "--task", "sign2gloss", "--path", "{evil}",
          "--gen-subset", "dev", "--crop-size", "32", "--num-workers", "0"],
         "fairseq-generate: error: {evil}: " + REFUSED),
    Case("translate runs no code",
         lambda w, t: {"bundle": bundle_with_model(w, t, lambda p: code_running_checkpoint(p, t / "MARKER"))},
         ["slt-translate", "--model", "{bundle}", "{data}/frames.lmdb:anything"],
         "slt-translate: {bundle}/model.pt: " + REFUSED),
    Case("export runs no code", evil, ["slt-export", "--checkpoint", "{evil}", "--out", "{tmp}/out"],
         "{evil}: " + REFUSED),
    Case("average runs no code", evil,
         ["slt-average-checkpoints", "{checkpoint}", "{evil}", "--out", "{tmp}/avg.pt"],
         "slt-average-checkpoints: error: {evil}: " + REFUSED),
    Case("prune runs no code",
         lambda w, t: {"mbart": mbart_dir_with_model(t, lambda p: code_running_checkpoint(p, t / "MARKER"))},
         ["slt-prune-mbart", "--mbart-dir", "{mbart}", "--data", "{data}", "--out", "{tmp}/pruned"],
         "slt-prune-mbart: error: {mbart}/model.pt: " + REFUSED),
    Case("extract-features runs no code", evil, ["slt-extract-features", "--checkpoint", "{evil}", "--data", "{data}"],
         "slt-extract-features: {evil}: " + REFUSED),
    # damaged checkpoints (issue 25 item 8)
    Case("truncated bundle model",
         lambda w, t: {"bundle": bundle_with_model(w, t, lambda p: truncated_copy(w["checkpoint"], p))},
         ["slt-translate", "--model", "{bundle}", "{data}/frames.lmdb:anything"],
         "slt-translate: {bundle}/model.pt: " + TRUNCATED),
    Case("truncated checkpoint to generate", lambda w, t: {"cut": truncated_copy(w["checkpoint"], t / "cut.pt")},
         ["fairseq-generate", "{data}", "--user-dir", "slt_plugins", "--task", "sign2gloss", "--path", "{cut}",
          "--gen-subset", "dev", "--crop-size", "32", "--num-workers", "0"],
         "fairseq-generate: error: {cut}: " + TRUNCATED),
    Case("truncated checkpoint to average", lambda w, t: {"cut": truncated_copy(w["checkpoint"], t / "cut.pt")},
         ["slt-average-checkpoints", "{checkpoint}", "{cut}", "--out", "{tmp}/avg.pt"],
         "slt-average-checkpoints: error: {cut}: " + TRUNCATED),
    # slt-average-checkpoints (issue 25 items 7 and 8)
    Case("average onto one of its inputs", lambda w, t: {"copy": shutil.copy(w["checkpoint"], t / "b.pt")},
         ["slt-average-checkpoints", "{checkpoint}", "{copy}", "--out", "{copy}"],
         "slt-average-checkpoints: error: --out {copy} is one of the checkpoints to average"),
    Case("average checkpoints of different shapes", lambda w, t: {"other": reshaped_checkpoint(w, t / "other.pt")},
         ["slt-average-checkpoints", "{checkpoint}", "{other}", "--out", "{tmp}/avg.pt"],
         "slt-average-checkpoints: error: {other}: parameter encoder.head.classifier.weight is (3, 64) but"),
]


def reshaped_checkpoint(world, path):
    state = torch.load(world["checkpoint"], weights_only=True)
    key = "encoder.head.classifier.weight"
    assert key in state["model"], sorted(state["model"])
    state["model"][key] = torch.zeros(3, 64)
    torch.save(state, path)
    return path


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_hostile_input_is_one_line_and_runs_no_code(case, world, tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")  # torch's default loads then run any pickle
    names = {**world, "tmp": tmp_path, **case.build(world, tmp_path)}
    before = {p: os.path.getmtime(p) for p in (world["checkpoint"],)}
    proc = run_script(*[part.format(**names) for part in case.command], check=False, timeout=300)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    expected = case.expected.format(**names)
    assert proc.returncode != 0, proc.stdout[-2000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert any(expected in line for line in lines), f"expected {expected!r} in\n{proc.stderr[-3000:]}"
    errors = [line for line in lines if "error" in line.lower() or line.startswith(case.command[0])]
    assert len(errors) == 1, proc.stderr[-3000:]
    assert not (tmp_path / "MARKER").exists(), "the checkpoint's pickle ran code"
    assert {p: os.path.getmtime(p) for p in before} == before
