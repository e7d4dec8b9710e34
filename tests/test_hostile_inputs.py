"""Hostile and clumsy inputs: each is refused with one line that names the file and the row (or the folder) and the
fix, and nothing the user had is lost or written outside the output folder.

``HOSTILE`` is a table anyone can extend: a builder that writes the input under a fresh folder (the current folder
while the command runs), the command's arguments, and a regular expression the single error line must match;
optionally a check of what must be left as it was. The tests after the table cover what a line cannot show: which
duplicate ``--skip-invalid`` keeps, and the recovery of a run killed at each point of the output swap.
"""

import contextlib
import io
import json
import os
import pickle
import re
import subprocess
import sys
from dataclasses import dataclass
from typing import Callable, List, Optional

import numpy as np
import pytest
from PIL import Image

from conftest import REPO
from slt_plugins.data.manifest import read_manifest

PHOENIX_HEADER = "name|video|start|end|speaker|orth|translation"
TSV_HEADER = "id\tvideo\tgloss\ttext\tsigner"


# --- builders ----------------------------------------------------------------------------------------------------

def frames(folder, n=3, seed=0):
    os.makedirs(folder, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(1, n + 1):
        Image.fromarray(rng.integers(0, 255, (24, 32, 3), dtype=np.uint8)).save(f"{folder}/images{i:04d}.png")


def phoenix(root, rows=None, raw: bytes = b"", split="train"):
    """``root/corpus/ann/PHOENIX-2014-T.<split>.corpus.csv`` with frames under ``root/corpus/frames``; ``raw`` is
    appended as it is (bytes, to write what is not UTF-8)."""
    ann, frame_root = root / "corpus" / "ann", root / "corpus" / "frames"
    os.makedirs(ann, exist_ok=True)
    if rows is None:
        rows = [("rec-1", "Signer01", "REGEN", "regen"), ("rec-2", "Signer01", "SONNE", "sonne")]
    lines = [PHOENIX_HEADER] + [f"{n}|{n}/1/*.png|-1|-1|{s}|{g}|{t}" for n, s, g, t in rows]
    for name, *_ in rows:
        if "\t" not in name and "/" not in name:
            frames(frame_root / split / name)
    (ann / f"PHOENIX-2014-T.{split}.corpus.csv").write_bytes(("\n".join(lines) + "\n").encode("utf-8") + raw)


def tsv(root, *rows: str, name="c.tsv", raw: bytes = b""):
    """``root/name``: a TSV with the given rows after the header (columns id video gloss text signer [split])."""
    header = TSV_HEADER + ("\tsplit" if rows and rows[0].count("\t") == 5 else "")
    (root / name).write_bytes(("\n".join([header, *rows]) + "\n").encode("utf-8") + raw)


def csl_daily(root, info=None, splits="name|split\nS1|train\nS2|dev\n", raw_pickle: Optional[bytes] = None,
              raw_splits: bytes = b""):
    ann = root / "sentence_label"
    ann.mkdir(exist_ok=True)
    if info is None:
        info = {"info": [{"name": "S1", "length": 3, "label_gloss": ["他"], "label_char": ["他"], "signer": 1},
                         {"name": "S2", "length": 3, "label_gloss": ["你"], "label_char": ["你"], "signer": 2}]}
    (ann / "csl2020ct_v2.pkl").write_bytes(raw_pickle if raw_pickle is not None else pickle.dumps(info))
    (ann / "split_1.txt").write_bytes(splits.encode("utf-8") + raw_splits)


def a_folder_of_the_user(path, name="thesis.tex"):
    os.makedirs(path, exist_ok=True)
    (path / name).write_text("years of work")


def unchanged(*paths: str, content="years of work"):
    def check(root):
        for p in paths:
            assert (root / p).read_text() == content, f"{p} was changed or removed"
    return check


def written_nowhere_but(*allowed: str):
    """No manifest (``*.tsv``) beside the input ``c.tsv`` but in the allowed folders, even above the work folder:
    the split name must not choose the path."""
    def check(root):
        inside = [root / folder for folder in allowed]
        stray = [str(p) for p in root.parent.rglob("*.tsv")
                 if p != root / "c.tsv" and not any(folder in p.parents for folder in inside)]
        assert not stray, f"written outside --out: {stray}"
    return check


# --- the table ---------------------------------------------------------------------------------------------------

@dataclass
class Hostile:
    build: Callable  # (root) -> None: writes the input under root, the current folder while the command runs
    command: List[str]  # console script, then its arguments (relative to root)
    message: str  # a regular expression the one error line must match
    check: Optional[Callable] = None  # (root) -> None: what must be left as it was


BIN = ["slt-binarise"]
PHOENIX = [*BIN, "phoenix-2014t", "--annotations", "corpus/ann", "--frames", "corpus/frames"]
HOSTILE = {
    # item 1: a value of the annotations chooses where files are written
    "tsv split column ../../evil": Hostile(
        lambda r: (frames(r / "clips" / "a"), tsv(r, "a\tclips/a\tA\ta\tS\t../../evil")),
        [*BIN, "tsv", "--manifest", "c.tsv", "--out", "bin"],
        r"c\.tsv, row 2: split '\.\./\.\./evil' is not a plain name", written_nowhere_but("bin")),
    "tsv split column an absolute path": Hostile(
        lambda r: (frames(r / "clips" / "a"), a_folder_of_the_user(r / "mine", "train.tsv"),
                   tsv(r, f"a\tclips/a\tA\ta\tS\t{r / 'mine' / 'train'}")),
        [*BIN, "tsv", "--manifest", "c.tsv", "--out", "bin"],
        r"c\.tsv, row 2: split '/.*/mine/train' is not a plain name", unchanged("mine/train.tsv")),
    "tsv split named like the list of skipped rows": Hostile(
        lambda r: (frames(r / "clips" / "a"), tsv(r, "a\tclips/a\tA\ta\tS\tskipped")),
        [*BIN, "tsv", "--manifest", "c.tsv", "--out", "bin"], r"c\.tsv, row 2: split 'skipped' is reserved"),
    "--manifest SPLIT= with a path": Hostile(
        lambda r: (frames(r / "clips" / "a"), tsv(r, "a\tclips/a\tA\ta\tS")),
        [*BIN, "tsv", "--manifest", "../evil=c.tsv", "--out", "bin"],
        r"--manifest \.\./evil=c\.tsv: split '\.\./evil' is not a plain name"),
    "csl-daily split_1.txt with a path": Hostile(
        lambda r: csl_daily(r, splits="name|split\nS1|train\nS2|../../dev\n"),
        [*BIN, "csl-daily", "--annotations", "sentence_label", "--out", "bin"],
        r"split_1\.txt, row 3: split '\.\./\.\./dev' is not a plain name"),
    "phoenix name with a slash": Hostile(
        lambda r: phoenix(r, [("rec-1", "S", "A", "a"), ("../../rec-2", "S", "B", "b")]),
        [*PHOENIX, "--out", "bin"],
        r"train\.corpus\.csv, row 3: id '\.\./\.\./rec-2' is not a plain name: .*'/'"),
    "phoenix video column leading out of the frames": Hostile(
        lambda r: (phoenix(r, [("rec-1", "S", "A", "a")]), frames(r / "elsewhere" / "1"),
                   (r / "corpus" / "ann" / "PHOENIX-2014-T.train.corpus.csv").write_text(
                       f"{PHOENIX_HEADER}\nrec-9|../../../elsewhere/1/*.png|-1|-1|S|A|a\n")),
        [*PHOENIX, "--out", "bin"], r"train\.corpus\.csv, row 2: corpus/frames/train/rec-9: no such frame folder"),
    # item 2: --out may replace only an earlier output of the same tool, and never hold or lie in an input
    "--out . (the current folder)": Hostile(
        lambda r: (phoenix(r), a_folder_of_the_user(r)),
        [*PHOENIX, "--out", "."], r"--out \.: is the current folder or holds it", unchanged("thesis.tex")),
    "--out the corpus folder": Hostile(
        lambda r: phoenix(r), [*PHOENIX, "--out", "corpus"], r"--out corpus: holds the input corpus/ann",
        lambda r: read_manifest_free(r / "corpus" / "ann" / "PHOENIX-2014-T.train.corpus.csv")),
    "--out inside the frames": Hostile(
        lambda r: phoenix(r), [*PHOENIX, "--out", "corpus/frames/bin"],
        r"--out corpus/frames/bin: lies inside the input corpus/frames"),
    "--out a folder of the user": Hostile(
        lambda r: (phoenix(r), a_folder_of_the_user(r / "bin")), [*PHOENIX, "--out", "bin"],
        r"--out bin: refusing to replace a folder that is not an earlier output of slt-binarise \(no meta\.json .*"
        r"pass --overwrite", unchanged("bin/thesis.tex")),
    "--out a file": Hostile(
        lambda r: (phoenix(r), (r / "notes").write_text("years of work")), [*PHOENIX, "--out", "notes"],
        r"--out notes: refusing to replace a file", unchanged("notes")),
    "--out the output of another tool": Hostile(
        lambda r: (phoenix(r), a_folder_of_the_user(r / "bin"),
                   (r / "bin" / "meta.json").write_text('{"tool": "fairseq-slt 0.1 slt-prune-mbart"}')),
        [*PHOENIX, "--out", "bin"], r"not an earlier output of slt-binarise", unchanged("bin/thesis.tex")),
    "tsv --out holding a video": Hostile(
        lambda r: (frames(r / "clips" / "a"), tsv(r / "clips", "a\ta\tA\ta\tS")),
        [*BIN, "tsv", "--manifest", "clips/c.tsv", "--out", "clips/a"], r"--out clips/a: is the input .*clips/a"),
    "demo data --out .": Hostile(
        a_folder_of_the_user, ["slt-make-demo-data", "--out", ".", "--train", "4", "--dev", "1", "--test", "1"],
        r"--out \.: is the current folder or holds it", unchanged("thesis.tex")),
    "demo data --out a folder of the user": Hostile(
        lambda r: a_folder_of_the_user(r / "corpus"),
        ["slt-make-demo-data", "--out", "corpus", "--train", "4", "--dev", "1", "--test", "1"],
        r"--out corpus: refusing to replace a folder that is not an earlier output of slt-make-demo-data",
        unchanged("corpus/thesis.tex")),
    "export --out a folder of the user": Hostile(
        lambda r: ((r / "checkpoint.pt").write_bytes(b"x"), a_folder_of_the_user(r / "bundle")),
        ["slt-export", "--checkpoint", "checkpoint.pt", "--out", "bundle"],
        r"--out bundle: refusing to replace a folder that is not an earlier output of slt-export \(no bundle\.json",
        unchanged("bundle/thesis.tex")),
    "export --out the checkpoint's folder": Hostile(
        lambda r: (r / "ckpt").mkdir() or (r / "ckpt" / "checkpoint.pt").write_text("years of work"),
        ["slt-export", "--checkpoint", "ckpt/checkpoint.pt", "--out", "ckpt"],
        r"--out ckpt: holds the input ckpt/checkpoint\.pt", unchanged("ckpt/checkpoint.pt")),
    "prune-mbart --out the dataset": Hostile(
        lambda r: (a_folder_of_the_user(r / "bin", "train.tsv"), a_folder_of_the_user(r / "mbart", "model.pt"),
                   (r / "mbart" / "dict.txt").touch(), (r / "mbart" / "sentence.bpe.model").touch(),
                   (r / "bin" / "meta.json").write_text('{"tool": "fairseq-slt 0.1 slt-binarise"}')),
        ["slt-prune-mbart", "--mbart-dir", "mbart", "--data", "bin", "--out", "bin"],
        r"--out bin: refusing to replace a folder that is not an earlier output of slt-prune-mbart",
        unchanged("bin/train.tsv")),
    # item 8: tracebacks where one line was promised
    "phoenix csv not UTF-8": Hostile(
        lambda r: phoenix(r, raw=b"rec-3|rec-3/1/*.png|-1|-1|S|REGEN|k\xe4lter\n"), [*PHOENIX, "--out", "bin"],
        r"PHOENIX-2014-T\.train\.corpus\.csv, row 4: line 4 is not UTF-8 \(byte 0xe4 at column 36\)"),
    "tsv not UTF-8": Hostile(
        lambda r: (frames(r / "clips" / "a"), tsv(r, "a\tclips/a\tA\ta\tS", raw=b"b\tclips/a\tB\t\xff\tS\n")),
        [*BIN, "tsv", "--manifest", "c.tsv", "--out", "bin"], r"c\.tsv, row 3: line 3 is not UTF-8 \(byte 0xff"),
    "tsv header not UTF-8": Hostile(
        lambda r: (r / "c.tsv").write_bytes(b"id\tvid\xe9o\tgloss\ttext\tsigner\n"),
        [*BIN, "tsv", "--manifest", "c.tsv", "--out", "bin"], r"c\.tsv, row 1: line 1 is not UTF-8"),
    "csl-daily split_1.txt not UTF-8": Hostile(
        lambda r: csl_daily(r, raw_splits=b"S3|tr\xe4in\n"),
        [*BIN, "csl-daily", "--annotations", "sentence_label", "--out", "bin"],
        r"split_1\.txt, row 4: line 4 is not UTF-8"),
    "id too long for an LMDB key": Hostile(
        lambda r: (frames(r / "clips" / "a"), tsv(r, f"{'x' * 300}ü{'y' * 300}\tclips/a\tA\ta\tS")),
        [*BIN, "tsv", "--manifest", "c.tsv", "--out", "bin"],
        r"c\.tsv, row 2: id 'xxx.*' is 602 bytes in UTF-8, more than the 511 of an LMDB key; shorten it"),
    "tab inside a phoenix id": Hostile(
        lambda r: phoenix(r, [("rec-1", "S", "A", "a"), ("rec\t2", "S", "B", "b")]), [*PHOENIX, "--out", "bin"],
        r"PHOENIX-2014-T\.train\.corpus\.csv, row 3: id 'rec\\t2' has a tab or another control character"),
    "tab inside a phoenix signer": Hostile(
        lambda r: phoenix(r, [("rec-1", "Signer\t01", "A", "a")]), [*PHOENIX, "--out", "bin"],
        r"PHOENIX-2014-T\.train\.corpus\.csv, row 2: signer 'Signer\\t01' has a tab or another control character"),
    "tab inside a csl-daily name": Hostile(
        lambda r: csl_daily(r, {"info": [{"name": "S\t1", "label_gloss": ["他"], "label_char": ["他"]}]},
                            splits="name|split\nS\t1|train\n"),
        [*BIN, "csl-daily", "--annotations", "sentence_label", "--out", "bin"],
        r"csl2020ct_v2\.pkl, entry 0: id 'S\\t1' has a tab or another control character"),
    "csl-daily pickle of a list": Hostile(
        lambda r: csl_daily(r, [1, 2, 3]), [*BIN, "csl-daily", "--annotations", "sentence_label", "--out", "bin"],
        r"csl2020ct_v2\.pkl: not CSL-Daily's annotation pickle \(of type list, expected a dict with a list 'info'"),
    "csl-daily info of the wrong type": Hostile(
        lambda r: csl_daily(r, {"info": {"name": "S1"}}),
        [*BIN, "csl-daily", "--annotations", "sentence_label", "--out", "bin"],
        r"csl2020ct_v2\.pkl: not CSL-Daily's annotation pickle \(its 'info' is of type dict, expected a list"),
    "csl-daily entry of the wrong type": Hostile(
        lambda r: csl_daily(r, {"info": ["S1"]}),
        [*BIN, "csl-daily", "--annotations", "sentence_label", "--out", "bin"],
        r"csl2020ct_v2\.pkl, entry 0: of type str, expected a dict with name, label_gloss, label_char"),
    "csl-daily glosses of the wrong type": Hostile(
        lambda r: csl_daily(r, {"info": [{"name": "S1", "label_gloss": 7, "label_char": ["他"]}]}),
        [*BIN, "csl-daily", "--annotations", "sentence_label", "--out", "bin"],
        r"csl2020ct_v2\.pkl, entry 0: label_gloss is of type int, expected a list of strings"),
    "csl-daily pickle truncated": Hostile(
        lambda r: csl_daily(r, raw_pickle=pickle.dumps({"info": list(range(100))})[:30]),
        [*BIN, "csl-daily", "--annotations", "sentence_label", "--out", "bin"],
        r"csl2020ct_v2\.pkl: not CSL-Daily's annotation pickle \("),
}


def read_manifest_free(path):
    assert path.read_text(encoding="utf-8").startswith(PHOENIX_HEADER), f"{path} was changed or removed"


def run_in_process(command: List[str]):
    """A console script's main() in this process (each console script costs seconds of imports); returns
    (exit status, stdout, stderr)."""
    from fairseq_slt.tools.binarise import main as binarise_main
    from fairseq_slt.tools.export import main as export_main
    from fairseq_slt.tools.make_demo_data import main as demo_main
    from fairseq_slt.tools.prune_mbart import main as prune_main

    mains = {"slt-binarise": binarise_main, "slt-make-demo-data": demo_main, "slt-export": export_main,
             "slt-prune-mbart": prune_main}
    extra = ["--workers", "1"] if command[0] in ("slt-binarise", "slt-make-demo-data") else []
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            rc = mains[command[0]]([*command[1:], *extra])
        except SystemExit as e:  # sys.exit("message"), as the interpreter would print it
            rc = e.code if isinstance(e.code, int) else 1
            if not isinstance(e.code, int) and e.code is not None:
                print(e.code, file=sys.stderr)
    return rc or 0, out.getvalue(), err.getvalue()


@pytest.mark.parametrize("case", list(HOSTILE))
def test_hostile_input_is_one_line_and_loses_nothing(case, tmp_path, monkeypatch):
    hostile = HOSTILE[case]
    root = tmp_path / "work"
    root.mkdir()
    hostile.build(root)
    monkeypatch.chdir(root)
    rc, stdout, stderr = run_in_process(hostile.command)
    if hostile.check:  # first: what was lost matters more than the message
        hostile.check(root)
    lines = stderr.strip().splitlines()
    assert rc != 0 and len(lines) == 1, f"exit {rc}, expected one error line, got:\n{stderr}"
    assert re.search(hostile.message, lines[0]), f"{lines[0]!r} does not match {hostile.message!r}"


# --- item 2: what --overwrite allows ------------------------------------------------------------------------------

def test_overwrite_replaces_a_folder_of_the_user_and_a_rerun_replaces_its_own_output(tmp_path, monkeypatch):
    phoenix(tmp_path)
    a_folder_of_the_user(tmp_path / "bin")
    monkeypatch.chdir(tmp_path)
    rc, _, err = run_in_process([*PHOENIX, "--out", "bin", "--overwrite"])
    assert rc == 0, err
    assert sorted(os.listdir(tmp_path / "bin")) == ["dict.gloss.txt", "dict.text.txt", "frames.lmdb", "meta.json",
                                                    "spm.model", "train.tsv"]
    rc, _, err = run_in_process([*PHOENIX, "--out", "bin"])  # its own earlier output: replaced without asking
    assert rc == 0, err
    assert sorted(os.listdir(tmp_path)) == ["bin", "corpus"]


def test_overwrite_lets_the_demo_generator_replace_a_folder_of_the_user(tmp_path, monkeypatch):
    a_folder_of_the_user(tmp_path / "corpus")
    monkeypatch.chdir(tmp_path)
    rc, _, err = run_in_process(["slt-make-demo-data", "--out", "corpus", "--train", "4", "--dev", "1", "--test", "1",
                                 "--frame-size", "16", "16", "--overwrite"])
    assert rc == 0, err
    assert sorted(os.listdir(tmp_path / "corpus")) == ["annotations", "demo_data.json", "frames", "poses"]


# --- item 6: duplicates are decided after validity ----------------------------------------------------------------

def test_a_duplicate_whose_other_copy_is_invalid_keeps_the_valid_copy(tmp_path, monkeypatch):
    # rec-1 twice in train (both valid: the first is kept); rec-2 copied into dev without frames, and dev's file
    # is read before train's
    phoenix(tmp_path, [("rec-1", "S", "REGEN", "regen"), ("rec-2", "S", "SONNE", "sonne"), ("rec-1", "S", "A", "a")])
    (tmp_path / "corpus" / "ann" / "PHOENIX-2014-T.dev.corpus.csv").write_text(
        f"{PHOENIX_HEADER}\nrec-2|rec-2/1/*.png|-1|-1|S|SONNE|sonne\n")
    monkeypatch.chdir(tmp_path)
    rc, _, err = run_in_process([*PHOENIX, "--out", "bin", "--skip-invalid"])
    assert rc == 0, err
    assert [(r.id, r.gloss) for r in read_manifest(tmp_path / "bin" / "train.tsv")] == [("rec-1", "REGEN"),
                                                                                         ("rec-2", "SONNE")]
    assert not (tmp_path / "bin" / "dev.tsv").exists()
    skipped = (tmp_path / "bin" / "skipped.tsv").read_text().splitlines()
    assert skipped[0].split("\t") == ["id", "where", "reason", "kept"]
    rows = {row.split("\t")[1]: row.split("\t") for row in skipped[1:]}
    assert sorted(rows) == ["corpus/ann/PHOENIX-2014-T.dev.corpus.csv, row 2",
                            "corpus/ann/PHOENIX-2014-T.train.corpus.csv, row 4"]
    dev = rows["corpus/ann/PHOENIX-2014-T.dev.corpus.csv, row 2"]
    assert dev[0] == "rec-2" and "no such frame folder" in dev[2]
    assert dev[3] == "corpus/ann/PHOENIX-2014-T.train.corpus.csv, row 3"
    again = rows["corpus/ann/PHOENIX-2014-T.train.corpus.csv, row 4"]
    assert again[0] == "rec-1" and "duplicate id 'rec-1'" in again[2]
    assert again[3] == "corpus/ann/PHOENIX-2014-T.train.corpus.csv, row 2"


def test_skipped_tsv_keeps_its_columns_when_an_id_holds_a_tab(tmp_path, monkeypatch):
    phoenix(tmp_path, [("rec-1", "S", "REGEN", "regen"), ("rec\t2", "S", "SONNE", "sonne")])
    monkeypatch.chdir(tmp_path)
    rc, _, err = run_in_process([*PHOENIX, "--out", "bin", "--skip-invalid"])
    assert rc == 0, err
    header, row = (tmp_path / "bin" / "skipped.tsv").read_text().splitlines()
    assert row.split("\t")[0] == "rec\\t2" and len(row.split("\t")) == len(header.split("\t")) == 4


def test_without_skip_invalid_a_duplicate_still_stops_the_run(tmp_path, monkeypatch):
    phoenix(tmp_path)
    (tmp_path / "corpus" / "ann" / "PHOENIX-2014-T.dev.corpus.csv").write_text(
        f"{PHOENIX_HEADER}\nrec-2|rec-2/1/*.png|-1|-1|S|SONNE|sonne\n")
    monkeypatch.chdir(tmp_path)
    rc, _, err = run_in_process([*PHOENIX, "--out", "bin"])
    (line,) = err.strip().splitlines()
    assert rc == 2 and re.search(r"train\.corpus\.csv, row 3: duplicate id 'rec-2' \(first at .*dev\.corpus\.csv, "
                                 r"row 2\).*--skip-invalid", line)


# --- item 3: cleaning up only what the tool made, and a swap recoverable at every point ---------------------------

def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_users_folder_named_like_a_leftover_is_kept(tmp_path, monkeypatch):
    phoenix(tmp_path)
    pid = dead_pid()
    for kind in ("old", "tmp"):
        a_folder_of_the_user(tmp_path / f"bin.{kind}-{pid}")
    monkeypatch.chdir(tmp_path)
    for _ in range(2):  # the first run creates bin, the second replaces it
        rc, _, err = run_in_process([*PHOENIX, "--out", "bin"])
        assert rc == 0, err
    unchanged(f"bin.old-{pid}/thesis.tex", f"bin.tmp-{pid}/thesis.tex")(tmp_path)
    assert sorted(os.listdir(tmp_path)) == ["bin", f"bin.old-{pid}", f"bin.tmp-{pid}", "corpus"]


CRASH = """
import os, sys
real = os.rename
calls = []
def rename(src, dst):
    real(src, dst)
    if os.path.basename(dst).startswith("bin"):
        calls.append(dst)
        if len(calls) == int(sys.argv[1]):
            os._exit(9)  # killed right after this rename
os.rename = rename
import shutil
real_rmtree = shutil.rmtree
def rmtree(path, *a, **k):
    if int(sys.argv[1]) == 3 and ".old-" in str(path):
        os.remove(os.path.join(path, "train.tsv"))  # killed half-way through removing the old copy
        os._exit(9)
    real_rmtree(path, *a, **k)
shutil.rmtree = rmtree
from fairseq_slt.tools.binarise import main
main(sys.argv[2:])
"""


@pytest.mark.parametrize("point", [1, 2, 3], ids=["after OUT→old", "after tmp→OUT", "removing old"])
def test_a_run_killed_during_the_swap_is_recovered_by_a_later_failing_run(tmp_path, monkeypatch, point):
    phoenix(tmp_path, [("rec-1", "S", "REGEN", "regen"), ("rec-2", "S", "SONNE", "sonne")])
    monkeypatch.chdir(tmp_path)
    assert run_in_process([*PHOENIX, "--out", "bin", "--frame-size", "0"])[0] == 0  # the earlier output
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([REPO, os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.run([sys.executable, "-c", CRASH, str(point), *PHOENIX[1:], "--out", "bin", "--workers", "1",
                           "--frame-size", "16"], env=env, capture_output=True, text=True)
    assert proc.returncode == 9, proc.stderr
    pid = _pid(tmp_path)
    leftovers = sorted(p for p in os.listdir(tmp_path) if p.startswith("bin"))
    assert leftovers == {1: [f"bin.old-{pid}", f"bin.tmp-{pid}"], 2: ["bin", f"bin.old-{pid}"],
                         3: ["bin", f"bin.old-{pid}"]}[point]

    # a later run that fails (a clip is unreadable) puts the complete new copy in place and cleans up
    (tmp_path / "corpus" / "frames" / "train" / "rec-2" / "images0002.png").write_bytes(b"not a png")
    rc, _, err = run_in_process([*PHOENIX, "--out", "bin"])
    assert rc == 2 and "images0002.png" in err
    assert sorted(os.listdir(tmp_path)) == ["bin", "corpus"]
    assert json.loads((tmp_path / "bin" / "meta.json").read_text())["frames"]["shorter_side"] == 16  # the new one
    assert [r.id for r in read_manifest(tmp_path / "bin" / "train.tsv")] == ["rec-1", "rec-2"]
    assert not (tmp_path / "bin" / ".slt-staging.json").exists()


def _pid(root) -> int:
    (name,) = {p.split("-")[-1] for p in os.listdir(root) if re.fullmatch(r"bin\.(old|tmp)-\d+", p)}
    return int(name)


# --- slt-extract-features: --name is a plain name -------------------------------------------------------------------

def test_extract_features_name_must_be_a_plain_name(tmp_path, capsys):
    from fairseq_slt.tools.extract_features import main

    with pytest.raises(SystemExit) as exit_info:
        main(["--checkpoint", "x.pt", "--data", str(tmp_path), "--name", "../../evil"])
    assert exit_info.value.code == 2
    assert "argument --name: '../../evil' is not a plain name" in capsys.readouterr().err.strip().splitlines()[-1]
    assert main(["--checkpoint", str(tmp_path / "x.pt"), "--data", str(tmp_path)]) == 1  # no --name: the default
    assert "x.pt: no such file" in capsys.readouterr().err


def test_extract_features_keeps_a_folder_of_the_user_where_the_store_goes(tiny_trained, tmp_path):
    from conftest import dataset_view, run_script

    data = dataset_view(tiny_trained["data"], tmp_path / "data")
    a_folder_of_the_user(data / "features" / "cnn_tconv.lmdb")
    proc = run_script("slt-extract-features", "--checkpoint", tiny_trained["s2g"], "--data", data, "--num-workers",
                      "0", "--quiet", check=False)
    assert proc.returncode == 1 and proc.stderr.strip().splitlines()[-1].endswith(
        "features/cnn_tconv.lmdb: exists and is not a feature store (no data.mdb); choose another --name, or pass "
        "--overwrite to replace it")
    unchanged("features/cnn_tconv.lmdb/thesis.tex")(data)


def test_a_manifest_edited_into_another_encoding_is_one_line_naming_its_row(tmp_path):
    from slt_plugins.data.manifest import ManifestError

    path = tmp_path / "train.tsv"
    path.write_bytes(b"id\tn_frames\tsigner\tgloss\ttext\tcontext\na\t3\tS\tREGEN\tregen\t\nb\t3\tS\tK\xc4LTE\tk\xe4lter\t\n")
    with pytest.raises(ManifestError, match=r"train\.tsv, row 3: not UTF-8 \(byte 0xc4 at column 8\)"):
        read_manifest(path)
