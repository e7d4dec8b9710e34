"""Readers of the corpora's own annotation formats, each turning rows into :class:`Utterance` records.

A reader checks every row and reports a problem as an :class:`InvalidRow` naming the file, the row and the fix;
the binariser stops at the first one or, with ``--skip-invalid``, skips and lists them.
"""

import csv
import glob
import os
import pickle
import re
from dataclasses import dataclass
from typing import Iterator, List, Optional, Union


@dataclass
class Utterance:
    split: str
    id: str
    signer: str
    gloss: str
    text: str
    source: Optional[str]  # frame folder or video file; None when binarising annotations only
    origin: str  # "file, row N", for messages


@dataclass
class InvalidRow:
    origin: str
    id: str
    reason: str

    def __str__(self):
        return f"{self.origin}: {self.reason}"


Record = Union[Utterance, InvalidRow]


class CorpusError(ValueError):
    """An annotation file that cannot be read at all (missing, wrong header)."""


def _clean(text: str) -> str:
    return " ".join(text.split())


def _check(u: Utterance) -> Record:
    for column in ("id", "gloss", "text"):
        if not getattr(u, column):
            return InvalidRow(u.origin, u.id, f"empty {column}; fill it in or drop the row (--skip-invalid)")
    return u


# --- Phoenix-2014T -----------------------------------------------------------------------------------------------

PHOENIX_HEADER = ["name", "video", "start", "end", "speaker", "orth", "translation"]


def phoenix_annotation_files(annotations: str) -> List[str]:
    if os.path.isfile(annotations):
        return [annotations]
    files = sorted(glob.glob(os.path.join(annotations, "*.corpus.csv")))
    if not files:
        raise CorpusError(f"{annotations}: no *.corpus.csv files (expected PHOENIX-2014-T.<split>.corpus.csv)")
    return files


def phoenix_split(path: str) -> str:
    match = re.match(r".*?\.(\w+)\.corpus\.csv$", os.path.basename(path))
    return match.group(1) if match else "train"


def phoenix_frame_folder(frames: str, split: str, name: str, video: str) -> str:
    """Where the frames of one utterance are: the official layout is ``<frames>/<split>/<name>/``; the
    ``video`` column (``<name>/1/*.png``) and split-less folders are tried as well."""
    video_dir = os.path.dirname(video) if "*" in video else video
    candidates = [os.path.join(frames, split, name), os.path.join(frames, split, video_dir),
                  os.path.join(frames, name), os.path.join(frames, video_dir)]
    for candidate in candidates:
        if os.path.isdir(candidate):
            return candidate
    return candidates[0]


def read_phoenix(annotations: str, frames: Optional[str]) -> Iterator[Record]:
    for path in phoenix_annotation_files(annotations):
        split = phoenix_split(path)
        with open(path, encoding="utf-8", newline="") as f:
            reader = csv.reader(f, delimiter="|", quoting=csv.QUOTE_NONE)
            header = next(reader, None)
            if header != PHOENIX_HEADER:
                raise CorpusError(f"{path}, row 1: header {header} is not Phoenix-2014T's {'|'.join(PHOENIX_HEADER)}")
            for row_no, row in enumerate(reader, start=2):
                origin = f"{path}, row {row_no}"
                if len(row) != len(PHOENIX_HEADER):
                    yield InvalidRow(origin, row[0] if row else "",
                                     f"{len(row)} fields, expected {len(PHOENIX_HEADER)} separated by '|'")
                    continue
                name, video, _, _, speaker, orth, translation = row
                source = phoenix_frame_folder(frames, split, name, video) if frames else None
                yield _check(Utterance(split, name.strip(), speaker.strip(), _clean(orth), _clean(translation),
                                       source, origin))


# --- CSL-Daily ---------------------------------------------------------------------------------------------------

class _PlainDataUnpickler(pickle.Unpickler):
    """CSL-Daily ships its annotations as a pickle; we accept only plain lists, dicts, strings and numbers in it,
    so a tampered file cannot run code."""

    def find_class(self, module, name):
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}: only plain data is accepted")


def read_csl_daily(annotations: str, frames: Optional[str]) -> Iterator[Record]:
    """``annotations`` holds ``csl2020ct_v2.pkl`` (``info``: name, length, label_gloss, label_char, signer) and
    ``split_1.txt`` (``name|split``); frames are ``<frames>/<name>/*.jpg``. The text is the sentence's
    characters joined, as in the corpus."""
    pkl, split_file = (os.path.join(annotations, n) for n in ("csl2020ct_v2.pkl", "split_1.txt"))
    for path in (pkl, split_file):
        if not os.path.isfile(path):
            raise CorpusError(f"{path}: missing; --annotations must be CSL-Daily's sentence_label folder")
    try:
        with open(pkl, "rb") as f:
            info = _PlainDataUnpickler(f).load()["info"]
    except (pickle.UnpicklingError, KeyError, EOFError) as e:
        raise CorpusError(f"{pkl}: not CSL-Daily's annotation pickle ({e})") from None
    splits = {}
    with open(split_file, encoding="utf-8") as f:
        for row_no, line in enumerate(f, start=1):
            parts = line.strip().split("|")
            if row_no == 1 and parts == ["name", "split"]:
                continue
            if len(parts) != 2:
                raise CorpusError(f"{split_file}, row {row_no}: expected 'name|split', got {line.strip()!r}")
            splits[parts[0]] = parts[1]
    for index, item in enumerate(info):
        origin = f"{pkl}, entry {index}"
        name = str(item.get("name", ""))
        if name not in splits:
            yield InvalidRow(origin, name, f"{name!r} is not in {split_file}")
            continue
        gloss = " ".join(item.get("label_gloss", []))
        text = "".join(item.get("label_char", []))
        source = os.path.join(frames, name) if frames else None
        yield _check(Utterance(splits[name], name, f"Signer{item.get('signer', '')}", _clean(gloss), _clean(text),
                               source, origin))


# --- plain TSV ---------------------------------------------------------------------------------------------------

TSV_COLUMNS = ["id", "video", "gloss", "text", "signer"]


def read_tsv(manifest: str, split: Optional[str] = None) -> Iterator[Record]:
    """A TSV with header ``id video gloss text signer`` (and an optional ``split`` column); ``video`` is a video
    file or a frame folder relative to the TSV, or empty for annotations only."""
    if not os.path.isfile(manifest):
        raise CorpusError(f"{manifest}: no such file")
    root = os.path.dirname(os.path.abspath(manifest))
    with open(manifest, encoding="utf-8", newline="") as f:
        reader = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        header = next(reader, None) or []
        missing = [c for c in TSV_COLUMNS if c not in header]
        if missing:
            raise CorpusError(f"{manifest}, row 1: header lacks {', '.join(missing)}; "
                              f"expected the columns {' '.join(TSV_COLUMNS)} [split]")
        index = {name: i for i, name in enumerate(header)}
        for row_no, row in enumerate(reader, start=2):
            origin = f"{manifest}, row {row_no}"
            if len(row) != len(header):
                yield InvalidRow(origin, row[0] if row else "", f"{len(row)} fields, expected {len(header)} "
                                 "separated by tabs")
                continue
            video = row[index["video"]].strip()
            row_split = split or (row[index["split"]].strip() if "split" in index else "") or "train"
            yield _check(Utterance(row_split, row[index["id"]].strip(), row[index["signer"]].strip(),
                                   _clean(row[index["gloss"]]), _clean(row[index["text"]]),
                                   os.path.join(root, video) if video else None, origin))
