"""Hostile and damaged models, checkpoints and stores: every entry point refuses each with one line, runs no code
and loses nothing.

A table anyone can extend: a case is (name, builder, command, expected). The builder makes the hostile file(s) from
a tiny trained world (dataset, checkpoint, bundle) and returns the names the command's ``{placeholders}`` use; the
command runs as a console script; ``expected`` is a piece (or a tuple of pieces) of the one error line it must print
on stderr. Every case also checks: a non-zero exit, no traceback, no marker file (the code-running pickle never ran),
and that the world's checkpoint is untouched.

The code-running checkpoint is read under ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1``, which makes torch's default loads
unpickle anything, as torch < 2.6 does: only a load that passes ``weights_only=True`` itself is safe.
"""

import os
import shutil
from typing import Callable, Dict, List, NamedTuple

import numpy as np
import pytest
import torch

from conftest import dataset_view, run_script

S2G = ["--user-dir", "slt_plugins", "--task", "sign2gloss", "--arch", "s3d_encoder_tiny", "--crop-size", "32",
       "--criterion", "gloss_ctc", "--optimizer", "adam", "--lr", "1e-3", "--batch-size", "4", "--num-workers", "0",
       "--no-progress-bar", "--valid-subset", "dev", "--no-epoch-checkpoints", "--best-checkpoint-metric", "wer"]


@pytest.fixture(scope="module")
def world(tiny_trained, tmp_path_factory):
    """conftest's tiny binarised corpus (``root`` holds its raw files), its Sign2Gloss checkpoint and a bundle of
    it."""
    bundle = tmp_path_factory.mktemp("world") / "bundle"
    run_script("slt-export", "--checkpoint", tiny_trained["s2g"], "--out", bundle)
    return {"root": tiny_trained["root"], "data": tiny_trained["data"], "checkpoint": tiny_trained["s2g"],
            "bundle": bundle}


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
    expected: object  # a piece of the error line, or a tuple of pieces all in that line


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


def features_view(world, tmp, bad_value):
    """The world's dataset with a features/bad.lmdb whose first train array is ``bad_value`` (bytes)."""
    import io

    from slt_plugins.data.lmdb_store import LmdbWriter
    from slt_plugins.data.manifest import read_manifest

    view = dataset_view(world["data"], tmp / "view")
    bad_id = first_id(world["data"], "train")
    with LmdbWriter(str(view / "features" / "bad.lmdb")) as writer:
        for split in ("train", "dev", "test"):
            for row in read_manifest(view / f"{split}.tsv"):
                writer.put_array(row.id, np.zeros((row.n_frames // 4, 24), dtype=np.float16))
        buffer = io.BytesIO()
        if bad_value == "object":
            np.save(buffer, np.array([RunsCode(tmp / "MARKER")] * 3, dtype=object), allow_pickle=True)
        else:  # a header that declares 10^12 × 24 float16 (48 TB) in front of 48 bytes
            np.lib.format.write_array_header_1_0(buffer, {"descr": "<f2", "fortran_order": False,
                                                          "shape": (10 ** 12, 24)})
            buffer.write(b"\0" * 48)
        writer.put(bad_id, buffer.getvalue())
    return {"view": view, "bad_id": bad_id}


FEATURES_TRAIN = ["fairseq-train", "{view}", *S2G, "--input", "features", "--features", "bad", "--max-update", "1",
                  "--save-dir", "{tmp}/ck"]
CASES += [
    # a features store with a hostile array (issue 25 item 8)
    Case("features of object dtype", lambda w, t: features_view(w, t, "object"), FEATURES_TRAIN,
         "fairseq-train: error: array '{view}/features/bad.lmdb:{bad_id}': dtype object where features are numbers"),
    Case("features with an absurd declared shape", lambda w, t: features_view(w, t, "shape"), FEATURES_TRAIN,
         "fairseq-train: error: array '{view}/features/bad.lmdb:{bad_id}': header declares shape "
         "(1000000000000, 24) of float16, which is not the 48 bytes stored"),
]


def dataset_with_a_garbage_clip(world, tmp):
    """A copy of the world's dataset whose first train clip's frames are not JPEGs."""
    from slt_plugins.data.lmdb_store import LmdbWriter, pack_clip
    from slt_plugins.data.manifest import read_manifest

    data = tmp / "data"
    shutil.copytree(world["data"], data)
    row = read_manifest(data / "train.tsv")[0]
    with LmdbWriter(str(data / "frames.lmdb")) as writer:
        writer.put(row.id, pack_clip([b"garbage, not a JPEG"] * row.n_frames))
    return {"data2": data, "bad_id": row.id}


CASES += [
    # a damaged clip met by a data-loader worker in training (issue 25 item 4, the datasets)
    Case("damaged clip in training", dataset_with_a_garbage_clip,
         ["fairseq-train", "{data2}", *S2G, "--num-workers", "1", "--max-epoch", "1", "--save-dir", "{tmp}/ck"],
         ("fairseq-train: error: {data2}/frames.lmdb: clip '{bad_id}', frame ",  # the first the augmentation picks
          ": not a readable JPEG (no JPEG header); binarise the dataset again")),
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
    expected = [piece.format(**names) for piece in (case.expected if isinstance(case.expected, tuple)
                                                    else (case.expected,))]
    assert proc.returncode != 0, proc.stdout[-2000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert any(all(piece in line for piece in expected) for line in lines), \
        f"expected {expected!r} in one line of\n{proc.stderr[-3000:]}"
    errors = [line for line in lines if "error" in line.lower() or line.startswith(case.command[0])]
    assert len(errors) == 1, proc.stderr[-3000:]
    assert not (tmp_path / "MARKER").exists(), "the checkpoint's pickle ran code"
    assert {p: os.path.getmtime(p) for p in before} == before


# --- stored clips and frames (issue 25 item 4): each bad input is its own one-line error, the rest is translated --

def small_jpeg(width=32, height=32, value=128):
    from slt_plugins.data.lmdb_store import encode_jpeg

    return encode_jpeg(np.full((height, width, 3), value, dtype=np.uint8))


def jpeg_claiming(width, height):
    """A tiny JPEG whose frame header (SOF0) declares width×height."""
    data = bytearray(small_jpeg(8, 8))
    sof = data.index(b"\xff\xc0")
    data[sof + 5: sof + 9] = height.to_bytes(2, "big") + width.to_bytes(2, "big")
    return bytes(data)


def png_claiming(path, width, height):
    """A tiny PNG whose IHDR (with a valid CRC) declares width×height."""
    import io
    import zlib

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buffer, format="PNG")
    data = bytearray(buffer.getvalue())
    data[16:24] = width.to_bytes(4, "big") + height.to_bytes(4, "big")
    data[29:33] = zlib.crc32(bytes(data[12:29])).to_bytes(4, "big")
    path.write_bytes(bytes(data))


def hostile_store(path):
    """A frames store with one good clip and one of each kind of damage; returns {key: expected error}."""
    import struct

    from slt_plugins.data.lmdb_store import LmdbWriter, pack_clip

    good = [small_jpeg(value=40 * i) for i in range(6)]
    cut = small_jpeg(64, 64)
    expected = {
        "corrupt_header": "header declares 4294967295 frames",
        "garbage_jpeg": "frame 2: not a readable JPEG (no JPEG header); binarise the dataset again",
        "truncated_jpeg": "frame 1: not a readable JPEG (OSError",
        "mixed_sizes": "frame 3: 48×48 where the clip's first frame is 32×32",
        "bomb": "frame 1: not a readable JPEG (DecompressionBombError",
        "claims_9000": "frame 1: declares 9000×9000 = 81,000,000 pixels, over the limit of 16,777,216 per frame",
    }
    with LmdbWriter(str(path)) as writer:
        writer.put("good", pack_clip(good))
        writer.put("corrupt_header", struct.pack("<4sBI", b"SLTF", 1, 0xFFFFFFFF) + b"\0" * 64)
        writer.put("garbage_jpeg", pack_clip([good[0], b"garbage, not a JPEG", good[2], good[3]]))
        writer.put("truncated_jpeg", pack_clip([cut[: len(cut) * 2 // 3]] * 4))
        writer.put("mixed_sizes", pack_clip(good[:2] + [small_jpeg(48, 48)] + good[3:]))
        writer.put("bomb", pack_clip([jpeg_claiming(60000, 60000)] * 4))
        writer.put("claims_9000", pack_clip([jpeg_claiming(9000, 9000)] * 4))
    return expected


def test_translate_gives_each_damaged_clip_its_line_and_translates_the_rest(world, tmp_path):
    import json

    from PIL import Image

    expected = {f"{tmp_path}/hostile.lmdb:{k}": v for k, v in hostile_store(tmp_path / "hostile.lmdb").items()}
    bomb, mixed = tmp_path / "bomb_folder", tmp_path / "mixed_folder"
    bomb.mkdir(), mixed.mkdir()
    for i in range(4):
        Image.new("RGB", (40, 40)).save(bomb / f"images{i:04d}.png")
        Image.new("RGB", (40, 40) if i != 2 else (40, 56)).save(mixed / f"images{i:04d}.png")
    png_claiming(bomb / "images0002.png", 60000, 60000)
    expected[str(bomb)] = f"{bomb / 'images0002.png'}: unreadable image (DecompressionBombError"
    expected[str(mixed)] = f"{mixed / 'images0002.png'}: a frame of"
    (tmp_path / "not_lmdb.lmdb").mkdir()
    (tmp_path / "not_lmdb.lmdb" / "data.mdb").write_bytes(b"\0garbage" * 512)
    expected[f"{tmp_path}/not_lmdb.lmdb:x"] = f"{tmp_path}/not_lmdb.lmdb: not an LMDB store"
    expected[f"{tmp_path}/hostile.lmdb:{'k' * 600}"] = "a key has 1 to 511 bytes, this one 600"
    good = [f"{tmp_path}/hostile.lmdb:good", f"{world['data']}/frames.lmdb:{first_id(world['data'], 'test')}"]
    inputs = [good[0], *expected, good[1]]
    proc = run_script("slt-translate", "--model", world["bundle"], *inputs, "--json", "--batch-size", "3",
                      check=False, timeout=300)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    results = {r["input"]: r for r in map(json.loads, proc.stdout.splitlines())}
    assert list(results) == inputs
    assert all(results[g]["error"] is None and results[g]["glosses"] is not None for g in good)
    errors = proc.stderr.strip().splitlines()
    assert len(errors) == len(expected), proc.stderr
    for source, line in zip(expected, errors):
        assert line.startswith("slt-translate: ") and expected[source] in line, (source, line)
        assert expected[source] in results[source]["error"]


def test_translate_reruns_a_failing_batch_one_input_at_a_time(world, tmp_path, monkeypatch):
    """An input that fails in a way no reader anticipated (here: injected into the real model's clip loading) costs
    that input alone its translation, not its batch's."""
    from slt_plugins.translator import SignTranslator
    from fairseq_slt.tools import translate

    model = SignTranslator.from_pretrained(str(world["bundle"]), device="cpu")
    load_clip = model.load_clip
    monkeypatch.setattr(model, "load_clip", lambda s: (_ for _ in ()).throw(RuntimeError("unforeseen\nmore"))
                        if s.endswith(":poison") else load_clip(s))
    good = [f"{world['data']}/frames.lmdb:{first_id(world['data'], split)}" for split in ("dev", "test", "train")]
    inputs = [good[0], f"{world['data']}/frames.lmdb:poison", good[1], good[2]]
    plotted = []
    results = translate.run_each(model, inputs, 2, lambda n: None, lambda k, a: plotted.append((k, a.input)))
    assert [r.input for r in results] == inputs
    assert results[1].error == f"{inputs[1]}: RuntimeError: unforeseen"
    assert all(r.error is None and r.glosses is not None for k, r in enumerate(results) if k != 1)
    assert sorted(plotted) == [(0, inputs[0]), (2, inputs[2]), (3, inputs[3])]


def first_id(data, split):
    from slt_plugins.data.manifest import read_manifest

    return read_manifest(os.path.join(data, f"{split}.tsv"))[0].id


def test_datasets_refuse_absurd_frames_before_decoding_and_the_limits_are_settable(tmp_path, monkeypatch):
    from slt_plugins.data.lmdb_store import FrameStore, StoreError
    from slt_plugins.data.manifest import ManifestRow
    from slt_plugins.data.sign_dataset import SignFrameDataset

    hostile_store(tmp_path / "hostile.lmdb")
    store = FrameStore(str(tmp_path / "hostile.lmdb"))
    rows = [ManifestRow(id=k, n_frames=n, signer="", gloss="", text="")
            for k, n in (("good", 6), ("claims_9000", 4), ("mixed_sizes", 6))]
    dataset = SignFrameDataset(store, rows, crop_size=16)
    assert dataset[0]["frames"].shape == (8, 3, 16, 16)
    with pytest.raises(StoreError, match=r"declares 9000×9000 = 81,000,000 pixels, over the limit .* before decoding"):
        dataset[1]
    with pytest.raises(StoreError, match="48×48 where the clip's first frame is 32×32"):
        dataset[2]
    monkeypatch.setenv("SLT_MAX_CLIP_PIXELS", str(5 * 32 * 32))  # 6 frames of 32×32 are over it
    with pytest.raises(StoreError, match=r"6 frames of 32×32 = 6,144 pixels, over the limit of 5,120 per clip"):
        store.frames("good")
    monkeypatch.setenv("SLT_MAX_FRAME_PIXELS", str(31 * 32))
    monkeypatch.setenv("SLT_MAX_CLIP_PIXELS", "")
    with pytest.raises(StoreError, match="over the limit of 992 per frame"):
        store.frames("good")


def test_frame_folders_and_videos_are_refused_before_decoding(tmp_path, shared_data, monkeypatch):
    """What slt-binarise and slt-translate read: a frame folder whose image claims a huge size, and a video over
    the frame limit (the real test video with the limit set below its size)."""
    from PIL import Image

    from slt_plugins.data.video_io import ClipReadError, iter_clip_frames, read_clip

    folder = tmp_path / "frames"
    folder.mkdir()
    for i in range(4):
        Image.new("RGB", (40, 40)).save(folder / f"images{i:04d}.png")
    png_claiming(folder / "images0003.png", 9000, 9000)
    frames = iter_clip_frames(str(folder))
    assert next(frames).shape == (40, 40, 3)
    with pytest.raises(ClipReadError, match=r"images0003.png: declares 9000×9000 = 81,000,000 pixels"):
        list(frames)
    video = os.path.join(shared_data, "video", "test_video.mp4")
    monkeypatch.setenv("SLT_MAX_FRAME_PIXELS", "1000")
    with pytest.raises(ClipReadError, match=r"test_video.mp4: declares \d+×\d+ = [\d,]+ pixels, over the limit of "
                                            r"1,000 per frame"):
        read_clip(video, 64)
    monkeypatch.setenv("SLT_MAX_FRAME_PIXELS", "")
    monkeypatch.setenv("SLT_MAX_CLIP_PIXELS", str(10 * 64 * 85))
    with pytest.raises(ClipReadError, match=r"test_video.mp4: 11 frames of 64×85 = 59,840 pixels, over the limit "
                                            r"of 54,400 per clip"):
        read_clip(video, 64)


# --- slt-extract-features resumed with another checkpoint or settings (issue 25 item 5) ----------------------------

def test_extract_features_resumes_only_with_the_checkpoint_and_settings_it_began_with(world, tmp_path):
    import json

    import lmdb

    data = tmp_path / "data"
    shutil.copytree(world["data"], data)
    first = ["slt-extract-features", "--checkpoint", world["checkpoint"], "--data", data, "--num-workers", "0",
             "--quiet", "--commit-every", "1", "--name", "feats"]
    run_script(*first)
    final, partial = data / "features" / "feats.lmdb", data / "features" / "feats.lmdb.partial"
    # what a run killed half-way leaves: a partial store with some clips, no index
    os.rename(final, partial)
    os.remove(partial / "index.json")
    env = lmdb.open(str(partial))
    with env.begin(write=True) as txn:
        keys = [bytes(k) for k in txn.cursor().iternext(values=False)]
        for key in keys[: len(keys) // 2]:
            txn.delete(key)
    env.close()
    other = tmp_path / "other.pt"  # another model: the same checkpoint with one weight changed
    state = torch.load(world["checkpoint"], weights_only=True)
    state["model"]["encoder.head.classifier.bias"] += 1
    torch.save(state, other)

    refused = run_script(*first[:2], other, *first[3:], check=False)
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    assert refused.stderr.strip().splitlines() == [
        f"slt-extract-features: {partial} was begun with another checkpoint or settings (checkpoint_sha256 "
        f"'{sha256(world['checkpoint'])}' then, '{sha256(other)}' now): resume with the same ones, or --overwrite "
        f"to extract again"]
    assert not final.exists() and len(keys) - len(keys) // 2 == lmdb_entries(partial)  # nothing written
    from fairseq_slt.tools.extract_features import ExtractError, check_resume

    begun = json.loads((partial / "extraction.json").read_text())
    with pytest.raises(ExtractError, match=r"\(fp16 False then, True now; batch_size 4 then, 1 now\)"):
        check_resume(str(partial), dict(begun, batch_size=1, fp16=True))

    resumed = run_script(*first).stdout
    assert f"resuming: {len(keys) - len(keys) // 2} of {len(keys)} clips" in resumed
    index = json.loads((final / "index.json").read_text())
    assert index["count"] == len(keys) and index["extraction"]["checkpoint_sha256"] == sha256(world["checkpoint"])


def sha256(path):
    import hashlib

    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def lmdb_entries(path):
    import lmdb

    env = lmdb.open(str(path), readonly=True, lock=False)
    try:
        return env.stat()["entries"]
    finally:
        env.close()


def test_binarise_refuses_a_frame_that_claims_a_huge_size_before_decoding_it(world, tmp_path):
    raw = tmp_path / "raw"
    shutil.copytree(world["root"] / "raw", raw)
    clip = sorted((raw / "frames" / "test").iterdir())[0]
    png_claiming(clip / "images0002.png", 9000, 9000)
    out = run_script("slt-binarise", "phoenix-2014t", "--annotations", raw / "annotations", "--frames", raw / "frames",
                     "--frame-size", "0", "--workers", "1", "--out", tmp_path / "bin", "--skip-invalid").stdout
    assert "test 4" in out and "1 skipped" in out  # the other clips are binarised
    reason = (tmp_path / "bin" / "skipped.tsv").read_text().splitlines()[1].split("\t")[2]
    assert reason.startswith(f"{clip / 'images0002.png'}: declares 9000×9000 = 81,000,000 pixels, over the limit of "
                             "16,777,216 per frame (refused before decoding")


def test_backbone_weights_that_would_run_code_or_are_truncated_are_one_line(tmp_path, monkeypatch):
    from slt_plugins.models.backbones import load_weights
    from slt_plugins.safe_checkpoint import CheckpointError

    monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
    module = torch.nn.Linear(2, 2)
    evil_file = code_running_checkpoint(tmp_path / "evil.pt", tmp_path / "MARKER")
    with pytest.raises(CheckpointError, match=r"evil.pt is not S3D weights: its pickle calls posix.system") as error:
        load_weights(module, str(evil_file), "S3D weights")
    torch.save(module.state_dict(), tmp_path / "good.pt")
    with pytest.raises(CheckpointError, match=r"cut.pt is not S3D weights: the file is truncated or damaged"):
        load_weights(module, str(truncated_copy(tmp_path / "good.pt", tmp_path / "cut.pt")), "S3D weights")
    assert "\n" not in str(error.value) and not (tmp_path / "MARKER").exists()
