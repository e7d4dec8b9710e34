"""The demo corpus generator: Phoenix-2014T layout, determinism, a learnable but non-trivial language, atomic
writing, and the command line."""

import csv
import hashlib
import os
import re

import numpy as np
import pytest
from PIL import Image

from fairseq_slt.tools import make_demo_data as demo

SMALL = ["--train", "12", "--dev", "4", "--test", "4", "--workers", "1"]


def make(out, *extra):
    demo.main(["--out", str(out), *SMALL, *extra])
    return out


def tree_hash(root):
    digest = hashlib.sha256()
    for folder, dirs, files in os.walk(root):
        dirs.sort()
        for name in sorted(files):
            path = os.path.join(folder, name)
            digest.update(os.path.relpath(path, root).encode())
            with open(path, "rb") as f:
                digest.update(f.read())
    return digest.hexdigest()


def read_split(out, split):
    with open(out / "annotations" / f"PHOENIX-2014-T.{split}.corpus.csv", encoding="utf-8", newline="") as f:
        return list(csv.reader(f, delimiter="|", quoting=csv.QUOTE_NONE))


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return make(tmp_path_factory.mktemp("demo") / "corpus")


def test_layout_and_csv_format(corpus):
    names = []
    for split, size in (("train", 12), ("dev", 4), ("test", 4)):
        rows = read_split(corpus, split)
        assert rows[0] == ["name", "video", "start", "end", "speaker", "orth", "translation"]
        assert len(rows) == size + 1
        for name, video, start, end, speaker, orth, translation in rows[1:]:
            assert re.fullmatch(r"demo_recording\d{3}-\d+", name)
            assert video == f"{name}/1/*.png" and start == end == "-1"
            assert re.fullmatch(r"Signer0\d", speaker)
            assert orth == orth.upper() and set(orth.split()) <= set(demo.GLOSSES)
            assert translation == translation.lower() and translation.strip()
            assert demo.MIN_GLOSSES <= len(orth.split()) <= demo.MAX_GLOSSES
            files = sorted(os.listdir(corpus / "frames" / split / name))
            assert files == [f"images{i:04d}.png" for i in range(1, len(files) + 1)]
            assert _frame_bounds(orth.split())[0] <= len(files) <= _frame_bounds(orth.split())[1]
            with Image.open(corpus / "frames" / split / name / files[0]) as image:
                assert image.mode == "RGB" and image.size == (64, 64)
            names.append(name)
    assert len(set(names)) == len(names)
    assert sorted(os.listdir(corpus)) == ["annotations", "demo_data.json", "frames", "poses"]
    assert len(list((corpus / "poses").rglob("*.pose"))) == len(names)  # the keypoints of every clip


def _frame_bounds(glosses):
    """Fewest and most frames a clip of these glosses can have."""
    low = sum(max(demo.MIN_SIGN_FRAMES, round(demo.SIGNS[g].frames * (1 - demo.DURATION_JITTER))) for g in glosses)
    high = sum(max(demo.MIN_SIGN_FRAMES, round(demo.SIGNS[g].frames * (1 + demo.DURATION_JITTER))) for g in glosses)
    transitions = len(glosses) + 1
    return (low + transitions * demo.TRANSITION_FRAMES[0] + 2 * demo.REST_FRAMES[0],
            high + transitions * demo.TRANSITION_FRAMES[1] + 2 * demo.REST_FRAMES[1])


def test_recordings_hold_consecutive_utterances_of_one_signer(corpus):
    recordings = {}
    for split in demo.SPLITS:
        for row in read_split(corpus, split)[1:]:
            recording, index = row[0].rsplit("-", 1)
            recordings.setdefault(recording, []).append((int(index), row[4], split))
    assert any(len(utterances) > 1 for utterances in recordings.values())
    for utterances in recordings.values():
        assert [i for i, _, _ in utterances] == list(range(1, len(utterances) + 1))
        assert len({signer for _, signer, _ in utterances}) == 1
        assert len({split for _, _, split in utterances}) == 1


def test_same_seed_gives_identical_files(corpus, tmp_path):
    assert tree_hash(make(tmp_path / "again")) == tree_hash(corpus)


def test_worker_count_does_not_change_the_output(corpus, tmp_path):
    out = tmp_path / "parallel"
    demo.main(["--out", str(out), *SMALL[:-2], "--workers", "2"])
    assert tree_hash(out) == tree_hash(corpus)


def test_other_seed_gives_other_data(corpus, tmp_path):
    other = make(tmp_path / "other", "--seed", "2")
    assert read_split(other, "train") != read_split(corpus, "train")
    first = corpus / "frames" / "train" / "demo_recording001-1" / "images0001.png"
    assert first.read_bytes() != (other / "frames" / "train" / "demo_recording001-1" / "images0001.png").read_bytes()


def test_train_covers_the_vocabulary_and_splits_differ_by_sentence(corpus):
    orth = {split: [row[5] for row in read_split(corpus, split)[1:]] for split in demo.SPLITS}
    train_glosses = {g for sentence in orth["train"] for g in sentence.split()}
    assert train_glosses == set(demo.GLOSSES)
    for split in ("dev", "test"):
        assert {g for sentence in orth[split] for g in sentence.split()} <= train_glosses
    everything = orth["train"] + orth["dev"] + orth["test"]
    assert len(set(everything)) == len(everything)


def test_a_gloss_subset_gives_sentences_of_those_glosses_only_and_covers_them_in_train():
    """--glosses: the small vocabulary of the learning tests' corpus (conftest.LEARNABLE_GLOSSES)."""
    subset = ("HEUTE", "MORGEN", "NORD", "WEST", "REGEN", "WIND", "NEBEL", "STARK")
    utterances = demo.plan_corpus(1, {"train": 24, "dev": 6, "test": 6}, subset)
    assert all(set(u.sentence.glosses) <= set(subset) for u in utterances)
    assert {g for u in utterances if u.split == "train" for g in u.sentence.glosses} == set(subset)
    assert len({u.sentence.glosses for u in utterances}) == 36
    with pytest.raises(SystemExit):
        demo.parse_args(["--out", "x", "--glosses", "REGEN", "HAGEL"])  # not a gloss of the generator

def test_vocabularies_are_modest():
    assert 20 <= len(demo.GLOSSES) <= 30 and set(demo.GLOSSES) == set(demo.SIGNS)
    utterances = demo.plan_corpus(0, {"train": 400, "dev": 50, "test": 50})
    words = {w for u in utterances for w in u.sentence.text.split()}
    assert len(words) < 150


def test_text_is_not_a_monotonic_copy_of_the_glosses():
    sentences = [u.sentence for u in demo.plan_corpus(0, {"train": 300, "dev": 0, "test": 0})]
    # function words that no gloss spells
    assert all({"gibt", "es"} <= set(s.text.split()) or "grad" in s.text for s in sentences)
    # the intensity follows the weather gloss but precedes its noun
    reordered = [s for s in sentences if "REGEN STARK" in " ".join(s.glosses)]
    assert reordered and all("kräftigen regen" in s.text for s in reordered)
    # BIS is "bis" or "zwischen … und", depending on the sentence
    ranges = [s for s in sentences if "BIS" in s.glosses]
    assert any("zwischen" in s.text for s in ranges) and any(" bis " in s.text for s in ranges)
    # a time gloss after the verb in some sentences and first in others
    assert any(s.text.startswith("die temperaturen liegen morgen") for s in sentences)
    assert any(s.text.startswith("morgen ") for s in sentences)


def test_hand_motion_differs_between_glosses():
    """Every gloss has its own look or path, so recognition is learnable."""
    t = np.linspace(0, 1, 8)
    looks = {}
    for gloss, sign in demo.SIGNS.items():
        key = (sign.shape, sign.colour, tuple(np.round(sign.path(t).ravel(), 2)))
        assert key not in looks, f"{gloss} looks like {looks.get(key)}"
        looks[key] = gloss


def test_rerun_replaces_an_existing_corpus(tmp_path):
    out = make(tmp_path / "corpus")
    (out / "stale.txt").write_text("from an older run")
    make(out, "--seed", "3")
    assert not (out / "stale.txt").exists()
    assert sorted(os.listdir(tmp_path)) == ["corpus"]  # no .tmp-/.old- leftovers


def test_failed_build_leaves_the_old_corpus_intact(tmp_path, monkeypatch):
    out = make(tmp_path / "corpus")
    before = tree_hash(out)

    def broken(job):
        raise RuntimeError("disk full")

    monkeypatch.setattr(demo, "write_clip", broken)
    with pytest.raises(RuntimeError):
        make(out, "--seed", "4")
    assert tree_hash(out) == before
    assert sorted(os.listdir(tmp_path)) == ["corpus"]


def test_refuses_to_replace_a_folder_that_is_not_a_demo_corpus(tmp_path):
    out = tmp_path / "precious"
    out.mkdir()
    (out / "thesis.tex").write_text("do not delete")
    with pytest.raises(SystemExit) as exit_info:
        make(out)
    assert "refusing" in str(exit_info.value)
    assert os.listdir(out) == ["thesis.tex"]


def test_cli_prints_counts_and_validates_arguments(tmp_path, capsys):
    make(tmp_path / "cli", "--frame-size", "32", "48")
    printed = capsys.readouterr().out
    assert "train 12 (" in printed and "dev 4 (" in printed and "test 4 (" in printed and " s" in printed
    with Image.open(next((tmp_path / "cli" / "frames" / "dev").iterdir()) / "images0001.png") as image:
        assert image.size == (48, 32)
    with pytest.raises(SystemExit) as exit_info:
        demo.main(["--out", str(tmp_path / "bad"), "--train", "0"])
    assert exit_info.value.code == 2
    with pytest.raises(SystemExit) as exit_info:
        demo.main(["--help"])
    assert exit_info.value.code == 0 and "--frame-size" in capsys.readouterr().out
