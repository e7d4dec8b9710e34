"""slt-binarise on each input format, each kind of bad input, and an interrupted run."""

import contextlib
import io
import json
import os
import pickle
import shutil
import signal
import subprocess
import time
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from conftest import BIN, run_script
from slt_plugins.data.lmdb_store import CLIP_MAGIC, FrameStore, LmdbReader
from slt_plugins.data.manifest import read_manifest
from fairseq_slt.tools.binarise import main as binarise_main

PHOENIX_HEADER = "name|video|start|end|speaker|orth|translation"


def write_frames(folder, n, size=(30, 40), seed=0):
    os.makedirs(folder, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(1, n + 1):
        Image.fromarray(rng.integers(0, 255, (*size, 3), dtype=np.uint8)).save(f"{folder}/images{i:04d}.png")


def write_phoenix(root, rows_by_split, frames=True):
    """A Phoenix-layout corpus: ``root/ann/PHOENIX-2014-T.<split>.corpus.csv`` and ``root/frames/<split>/<name>/``."""
    os.makedirs(root / "ann", exist_ok=True)
    for split, rows in rows_by_split.items():
        lines = [PHOENIX_HEADER]
        for name, gloss, text, *n in rows:
            lines.append(f"{name}|{name}/1/*.png|-1|-1|Signer01|{gloss}|{text}")
            if frames and n:
                write_frames(root / "frames" / split / name, n[0])
        (root / "ann" / f"PHOENIX-2014-T.{split}.corpus.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root / "ann", root / "frames"


GOOD = {"train": [("rec-1", "REGEN NORD", "im norden regen", 5), ("rec-2", "SONNE", "sonne", 7),
                  ("rec-4", "WIND", "wind", 4)],
        "dev": [("rec-3", "REGEN", "regen", 6)]}


def binarise(*args, check=True):
    """slt-binarise in this process (the console script costs seconds of imports each time)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = binarise_main([*map(str, args), "--workers", "1"])
    if check:
        assert rc == 0, err.getvalue()
    return SimpleNamespace(returncode=rc, stdout=out.getvalue(), stderr=err.getvalue())


def test_phoenix_with_frames(tmp_path):
    ann, frames = write_phoenix(tmp_path, GOOD)
    out = tmp_path / "bin"
    binarise("phoenix-2014t", "--annotations", ann, "--frames", frames, "--out", out, "--frame-size", "20")
    train = read_manifest(out / "train.tsv")
    assert [(r.id, r.n_frames, r.context) for r in train] == [("rec-1", 5, ""), ("rec-2", 7, "rec-1"),
                                                                ("rec-4", 4, "rec-2")]
    assert read_manifest(out / "dev.tsv")[0].context == ""  # rec-2 is in train: no context across splits
    store = FrameStore(str(out / "frames.lmdb"))
    clip = store.frames("rec-2")
    assert clip.shape == (7, 20, 27, 3) and clip.dtype == np.uint8  # shorter side 30 → 20, aspect kept
    assert all(LmdbReader(str(out / "frames.lmdb")).get(k).startswith(CLIP_MAGIC) for k in ("rec-1", "rec-2"))
    meta = json.loads((out / "meta.json").read_text())
    assert meta["splits"] == {"dev": 1, "train": 3} and meta["frames"]["total"] == 22
    gloss_dict = (out / "dict.gloss.txt").read_text().split()[::2]
    assert sorted(gloss_dict) == ["NORD", "REGEN", "SONNE", "WIND"]  # from the training split only
    assert (out / "spm.model").is_file() and (out / "dict.text.txt").is_file()


def test_shared_phoenix_annotations_only(shared_data, tmp_path):
    out = tmp_path / "phoenix"
    proc = run_script("slt-binarise", "phoenix-2014t", "--annotations", os.path.join(shared_data, "phoenix-2014t"),
                      "--out", out)
    assert "dev 519, train 7096" in proc.stdout
    meta = json.loads((out / "meta.json").read_text())
    assert meta["splits"] == {"dev": 519, "train": 7096} and meta["skipped"] == 0
    assert not (out / "frames.lmdb").exists()
    train = read_manifest(out / "train.tsv")
    assert train[0].id == "11August_2010_Wednesday_tagesschau-1" and train[0].n_frames == 0
    assert train[0].gloss == "JETZT WETTER MORGEN DONNERSTAG ZWOELF FEBRUAR"
    assert meta["gloss_types"] == 1085


def test_shared_real_frames(shared_data, tmp_path):
    ann = tmp_path / "ann"
    ann.mkdir()
    shutil.copy(os.path.join(shared_data, "real-frames", "one-sample.corpus.csv"),
                ann / "PHOENIX-2014-T.train.corpus.csv")
    out = tmp_path / "real"
    binarise("phoenix-2014t", "--annotations", ann, "--frames", os.path.join(shared_data, "real-frames"),
             "--out", out)
    (row,) = read_manifest(out / "train.tsv")
    clip = FrameStore(str(out / "frames.lmdb")).frames(row.id)
    assert row.n_frames == 2 and clip.shape == (2, 317, 256, 3)  # 260×210 portrait frames, shorter side → 256
    original = np.asarray(Image.open(os.path.join(shared_data, "real-frames", row.id, "images0001.png"))
                          .convert("RGB").resize((256, 317), Image.BILINEAR), dtype=np.float32)
    assert np.abs(clip[0].astype(np.float32) - original).mean() < 4  # JPEG at quality 90


def test_tsv_with_a_real_video_and_a_frame_folder(shared_data, tmp_path):
    write_frames(tmp_path / "clips" / "b", 6)
    video = os.path.join(shared_data, "video", "test_video.mp4")
    (tmp_path / "corpus.tsv").write_text(
        "id\tvideo\tgloss\ttext\tsigner\n"
        f"a\t{video}\tHALLO WELT\thallo welt\tS1\n"
        "b\tclips/b\tWELT\tdie welt\tS2\n", encoding="utf-8")
    out = tmp_path / "bin"
    binarise("tsv", "--manifest", f"train={tmp_path / 'corpus.tsv'}", "--out", out, "--frame-size", "64")
    rows = {r.id: r for r in read_manifest(out / "train.tsv")}
    assert rows["a"].n_frames == 58 and rows["b"].n_frames == 6  # every decoded frame of the mp4
    assert FrameStore(str(out / "frames.lmdb")).frames("a").shape == (58, 85, 64, 3)  # 720×540 portrait


def test_csl_daily(tmp_path):
    ann = tmp_path / "sentence_label"
    ann.mkdir()
    info = [{"name": "S000001_P0000_T00", "length": 5, "label_gloss": ["他", "谁"], "label_char": ["他", "是", "谁"],
             "signer": 3},
            {"name": "S000002_P0000_T00", "length": 4, "label_gloss": ["你", "好"], "label_char": ["你", "好"],
             "signer": 1}]
    with open(ann / "csl2020ct_v2.pkl", "wb") as f:
        pickle.dump({"info": info, "gloss_map": ["他", "谁", "你", "好"]}, f)
    (ann / "split_1.txt").write_text("name|split\nS000001_P0000_T00|train\nS000002_P0000_T00|dev\n")
    for item in info:
        write_frames(tmp_path / "frames" / item["name"], item["length"])
    out = tmp_path / "bin"
    binarise("csl-daily", "--annotations", ann, "--frames", tmp_path / "frames", "--out", out)
    (row,) = read_manifest(out / "train.tsv")
    assert (row.gloss, row.text, row.signer, row.n_frames) == ("他 谁", "他是谁", "Signer3", 5)
    assert json.loads((out / "meta.json").read_text())["language"] == "zh"


class Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_csl_daily_pickle_with_code_is_refused(tmp_path):
    ann = tmp_path / "sentence_label"
    ann.mkdir()
    with open(ann / "csl2020ct_v2.pkl", "wb") as f:
        pickle.dump({"info": [Evil()]}, f)
    (ann / "split_1.txt").write_text("name|split\n")
    proc = binarise("csl-daily", "--annotations", ann, "--out", tmp_path / "bin", check=False)
    assert proc.returncode == 2 and "refusing to load posix.system" in proc.stderr and "pwned" not in proc.stdout


BAD_ROWS = {
    "missing frame folder": (("rec-9", "REGEN", "regen", None), "no such frame folder or video file"),
    "empty gloss": (("rec-9", "", "regen", 3), "empty gloss"),
    "empty text": (("rec-9", "REGEN", " ", 3), "empty text"),
    "duplicate id": (("rec-1", "REGEN", "regen", 3), "duplicate id 'rec-1'"),
}


@pytest.mark.parametrize("case", sorted(BAD_ROWS))
def test_bad_row_stops_with_file_and_row_or_is_skipped(tmp_path, case):
    row, message = BAD_ROWS[case]
    rows = {"train": GOOD["train"] + [tuple(x for x in row if x is not None)], "dev": GOOD["dev"]}
    ann, frames = write_phoenix(tmp_path, rows)
    out = tmp_path / "bin"
    proc = binarise("phoenix-2014t", "--annotations", ann, "--frames", frames, "--out", out, check=False)
    assert proc.returncode == 2 and not out.exists()
    (line,) = proc.stderr.strip().splitlines()
    assert "PHOENIX-2014-T.train.corpus.csv, row 5" in line and message in line and "--skip-invalid" in line

    binarise("phoenix-2014t", "--annotations", ann, "--frames", frames, "--out", out, "--skip-invalid")
    assert [r.id for r in read_manifest(out / "train.tsv")] == ["rec-1", "rec-2", "rec-4"]
    skipped = (out / "skipped.tsv").read_text()
    assert "row 5" in skipped and message in skipped


def test_malformed_row_unreadable_image_and_video(tmp_path):
    ann, frames = write_phoenix(tmp_path, GOOD)
    with open(ann / "PHOENIX-2014-T.train.corpus.csv", "a") as f:
        f.write("rec-7|rec-7/1/*.png|-1|REGEN|regen\n")  # two fields short
    proc = binarise("phoenix-2014t", "--annotations", ann, "--frames", frames, "--out", tmp_path / "o", check=False)
    assert proc.returncode == 2 and "train.corpus.csv, row 5: 5 fields, expected 7" in proc.stderr

    (frames / "train" / "rec-2" / "images0003.png").write_bytes(b"not a png")
    (tmp_path / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + os.urandom(256))
    (tmp_path / "c.tsv").write_text("id\tvideo\tgloss\ttext\tsigner\n"
                                    f"v\t{tmp_path / 'broken.mp4'}\tA\ta\tS\n"
                                    f"f\t{frames / 'train' / 'rec-2'}\tB\tb\tS\n"
                                    f"g\t{frames / 'train' / 'rec-1'}\tC\tc\tS\n")
    proc = binarise("tsv", "--manifest", tmp_path / "c.tsv", "--out", tmp_path / "o", check=False)
    assert proc.returncode == 2 and "c.tsv, row 2" in proc.stderr and "unreadable video" in proc.stderr
    binarise("tsv", "--manifest", tmp_path / "c.tsv", "--out", tmp_path / "o", "--skip-invalid")
    skipped = (tmp_path / "o" / "skipped.tsv").read_text()
    assert "unreadable video" in skipped and "images0003.png: unreadable image" in skipped
    assert [r.id for r in read_manifest(tmp_path / "o" / "train.tsv")] == ["g"]


def test_failed_run_keeps_the_earlier_output(tmp_path):
    ann, frames = write_phoenix(tmp_path, GOOD)
    out = tmp_path / "bin"
    binarise("phoenix-2014t", "--annotations", ann, "--frames", frames, "--out", out)
    before = (out / "train.tsv").read_text()
    shutil.rmtree(frames / "train" / "rec-2")
    assert binarise("phoenix-2014t", "--annotations", ann, "--frames", frames, "--out", out,
                    check=False).returncode == 2
    assert (out / "train.tsv").read_text() == before and FrameStore(str(out / "frames.lmdb")).num_frames("rec-2") == 7
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith("bin.")] == []


def test_killed_run_keeps_the_earlier_output_and_a_rerun_succeeds(tmp_path):
    rows = {"train": [(f"rec-{i}", "REGEN", "regen", 40) for i in range(1, 41)]}
    ann, frames = write_phoenix(tmp_path, rows)
    out = tmp_path / "bin"
    binarise("phoenix-2014t", "--annotations", ann, "--out", out)  # an earlier, annotations-only version
    before = (out / "train.tsv").read_text()

    proc = subprocess.Popen([os.path.join(BIN, "slt-binarise"), "phoenix-2014t", "--annotations", ann, "--frames",
                             frames, "--out", out, "--workers", "1", "--frame-size", "300"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    staging = tmp_path / f"bin.tmp-{proc.pid}"
    deadline = time.time() + 60
    while not (staging / "frames.lmdb").exists() and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert staging.exists(), "the run finished before it could be killed; make it longer"
    assert (out / "train.tsv").read_text() == before and not (out / "frames.lmdb").exists()

    binarise("phoenix-2014t", "--annotations", ann, "--frames", frames, "--out", out, "--frame-size", "20")
    assert read_manifest(out / "train.tsv")[0].n_frames == 40
    assert not staging.exists()  # the killed run's leftovers are cleaned up


def test_tsv_row_without_a_video_among_rows_with_one(tmp_path):
    write_frames(tmp_path / "clips" / "a", 4)
    (tmp_path / "c.tsv").write_text("id\tvideo\tgloss\ttext\tsigner\n"
                                    "a\tclips/a\tA\ta\tS\n"
                                    "b\t\tB\tb\tS\n")
    proc = binarise("tsv", "--manifest", tmp_path / "c.tsv", "--out", tmp_path / "o", check=False)
    assert proc.returncode == 2 and "c.tsv, row 3: no video or frame folder given" in proc.stderr
    binarise("tsv", "--manifest", tmp_path / "c.tsv", "--out", tmp_path / "o", "--skip-invalid")
    assert [r.id for r in read_manifest(tmp_path / "o" / "train.tsv")] == ["a"]
