"""Readers of the corpora's own annotation formats, each turning rows into :class:`Utterance` records.

A reader checks every row and reports a problem as an :class:`InvalidRow` naming the file, the row and the fix;
the binariser stops at the first one or, with ``--skip-invalid``, skips and lists them.
"""

import csv
import glob
import os
import pickle
import re
import unicodedata
from dataclasses import dataclass
from typing import Iterator, List, Optional, Tuple, Union


@dataclass
class Utterance:
    split: str
    id: str
    signer: str
    gloss: str
    text: str
    source: Optional[str]  # frame folder or video file; None when binarising annotations only
    origin: str  # "file, row N", for messages
    pose: Optional[str] = None  # a .pose file of the clip's keypoints (pose-format), or None


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


# --- values that become paths or store keys ----------------------------------------------------------------------

PLAIN_NAME = re.compile(r"\w[\w.-]{0,99}")  # no '/', '\\', '..' or leading '.': it cannot leave its folder
MAX_KEY_BYTES = 511  # LMDB's default largest key (mdb_env_get_maxkeysize); ids are the stores' keys


def split_problem(split: str) -> Optional[str]:
    """Why ``split`` cannot name the manifest ``OUT/<split>.tsv``, or None."""
    if split == "skipped":
        return "split 'skipped' is reserved (OUT/skipped.tsv lists the skipped rows); rename it"
    if PLAIN_NAME.fullmatch(split):
        return None
    return (f"split {split!r} is not a plain name (letters, digits, '_', '-', '.'; it names the file "
            "<split>.tsv in --out); rename it")


def id_problem(id_: str) -> Optional[str]:
    """Why ``id_`` cannot be a key of the frame and feature stores, or None."""
    if any(unicodedata.category(c) == "Cc" for c in id_):
        return f"id {id_!r} has a tab or another control character; remove it"
    if "/" in id_ or "\\" in id_ or id_ in (".", ".."):
        return f"id {id_!r} is not a plain name: it may not hold '/' or '\\' nor be '.' or '..'; rename it"
    size = len(id_.encode("utf-8"))
    if size > MAX_KEY_BYTES:
        return (f"id {id_[:40] + '…'!r} is {size} bytes in UTF-8, more than the {MAX_KEY_BYTES} of an LMDB key; "
                "shorten it")
    return None


def _check(u: Utterance, glosses: bool = True) -> Record:
    """``glosses``: the corpus has glosses (else it was declared without them, ``--no-glosses``, and a gloss given
    anyway stops the run: the declaration and the file disagree, which skipping rows would hide)."""
    if not glosses and u.gloss:
        raise CorpusError(f"{u.origin}: gloss {u.gloss[:40]!r} given, but --no-glosses declares a corpus without "
                          "glosses; drop --no-glosses, or empty the gloss column")
    for column in ("id", "gloss", "text") if glosses else ("id", "text"):
        if not getattr(u, column):
            fix = "fill it in or drop the row (--skip-invalid)"
            if column == "gloss":
                fix += ", or binarise with --no-glosses if the corpus has none"
            return InvalidRow(u.origin, u.id, f"empty {column}; {fix}")
    problem = id_problem(u.id) or split_problem(u.split)
    for column in ("signer", "gloss", "text"):
        if not problem and any(unicodedata.category(c) == "Cc" for c in getattr(u, column)):
            problem = f"{column} {getattr(u, column)!r} has a tab or another control character; remove it"
    return InvalidRow(u.origin, u.id, problem) if problem else u


def _lines(path: str) -> Iterator[Tuple[int, Optional[str], str]]:
    """(line number, text, problem) per line of a UTF-8 file; text is None for a line that is not UTF-8, and the
    problem names the byte, so one bad line is that row's error instead of a traceback."""
    with open(path, "rb") as f:
        for line_no, raw in enumerate(f, start=1):
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                yield line_no, None, (f"line {line_no} is not UTF-8 (byte 0x{raw[e.start]:02x} at column "
                                      f"{e.start + 1}); save the file as UTF-8")
                continue
            yield line_no, text.lstrip("\ufeff") if line_no == 1 else text, ""


def _rows(path: str, delimiter: str) -> Iterator[Tuple[int, Optional[List[str]], str]]:
    """(row number, fields, problem) of a delimited file without quoting, one row per line; the header (row 1)
    must be UTF-8."""
    for row_no, text, problem in _lines(path):
        if text is None and row_no == 1:
            raise CorpusError(f"{path}, row 1: {problem}")
        fields = None if text is None else next(csv.reader([text], delimiter=delimiter, quoting=csv.QUOTE_NONE), [])
        yield row_no, fields, problem


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
    ``video`` column (``<name>/1/*.png``) and split-less folders are tried as well, if it stays inside ``frames``."""
    video_dir = os.path.normpath(os.path.dirname(video) if "*" in video else video)
    candidates = [os.path.join(frames, split, name), os.path.join(frames, name)]
    if video and not os.path.isabs(video_dir) and video_dir.split(os.sep)[0] not in ("..", "."):
        candidates[1:1] = [os.path.join(frames, split, video_dir)]
        candidates.append(os.path.join(frames, video_dir))
    for candidate in candidates:
        if os.path.isdir(candidate):
            return candidate
    return candidates[0]


def pose_file(poses: str, split: str, name: str) -> str:
    """The ``.pose`` file of one utterance in a folder of them named by id: ``<poses>/<split>/<id>.pose`` (the layout
    of the frame folders) or ``<poses>/<id>.pose``; the first when neither exists (the row is then reported)."""
    candidates = [os.path.join(poses, split, f"{name}.pose"), os.path.join(poses, f"{name}.pose")]
    return next((c for c in candidates if os.path.isfile(c)), candidates[0])


def read_phoenix(annotations: str, frames: Optional[str], poses: Optional[str] = None,
                 glosses: bool = True) -> Iterator[Record]:
    for path in phoenix_annotation_files(annotations):
        split = phoenix_split(path)
        rows = _rows(path, "|")
        _, header, _ = next(rows, (1, None, ""))
        if header != PHOENIX_HEADER:
            raise CorpusError(f"{path}, row 1: header {header} is not Phoenix-2014T's {'|'.join(PHOENIX_HEADER)}")
        for row_no, row, problem in rows:
            origin = f"{path}, row {row_no}"
            if row is None:
                yield InvalidRow(origin, "", problem)
                continue
            if len(row) != len(PHOENIX_HEADER):
                yield InvalidRow(origin, row[0] if row else "",
                                 f"{len(row)} fields, expected {len(PHOENIX_HEADER)} separated by '|'")
                continue
            name, video, _, _, speaker, orth, translation = row
            utterance = _check(Utterance(split, name.strip(), speaker.strip(), _clean(orth), _clean(translation),
                                         None, origin), glosses)
            if frames and isinstance(utterance, Utterance):  # a checked name cannot lead out of the frame root
                utterance.source = phoenix_frame_folder(frames, split, utterance.id, video)
            if poses and isinstance(utterance, Utterance):
                utterance.pose = pose_file(poses, split, utterance.id)
            yield utterance


# --- CSL-Daily ---------------------------------------------------------------------------------------------------

class _PlainDataUnpickler(pickle.Unpickler):
    """CSL-Daily ships its annotations as a pickle; we accept only plain lists, dicts, strings and numbers in it,
    so a tampered file cannot run code."""

    def find_class(self, module, name):
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}: only plain data is accepted")


def read_csl_daily(annotations: str, frames: Optional[str], poses: Optional[str] = None,
                   glosses: bool = True) -> Iterator[Record]:
    """``annotations`` holds ``csl2020ct_v2.pkl`` (``info``: name, length, label_gloss, label_char, signer) and
    ``split_1.txt`` (``name|split``); frames are ``<frames>/<name>/*.jpg``. The text is the sentence's
    characters joined, as in the corpus."""
    pkl, split_file = (os.path.join(annotations, n) for n in ("csl2020ct_v2.pkl", "split_1.txt"))
    for path in (pkl, split_file):
        if not os.path.isfile(path):
            raise CorpusError(f"{path}: missing; --annotations must be CSL-Daily's sentence_label folder")
    info = _csl_daily_info(pkl)
    splits = {}
    for row_no, parts, problem in _rows(split_file, "|"):
        if parts is None:
            raise CorpusError(f"{split_file}, row {row_no}: {problem}")
        if row_no == 1 and parts == ["name", "split"]:
            continue
        if len(parts) != 2:
            raise CorpusError(f"{split_file}, row {row_no}: expected 'name|split', got {'|'.join(parts)!r}")
        splits[parts[0].strip()] = (parts[1].strip(), f"{split_file}, row {row_no}")
    for index, item in enumerate(info):
        origin = f"{pkl}, entry {index}"
        problem, name = _csl_daily_entry_problem(item), str(item.get("name", "")) if isinstance(item, dict) else ""
        if problem:
            yield InvalidRow(origin, name, problem)
            continue
        if name not in splits:
            yield InvalidRow(origin, name, f"{name!r} is not in {split_file}")
            continue
        split, split_origin = splits[name]
        if split_problem(split):
            yield InvalidRow(split_origin, name, split_problem(split))
            continue
        gloss = " ".join(item.get("label_gloss", []))
        text = "".join(item.get("label_char", []))
        utterance = _check(Utterance(split, name, f"Signer{item.get('signer', '')}", _clean(gloss), _clean(text),
                                     None, origin), glosses)
        if frames and isinstance(utterance, Utterance):  # a checked name cannot lead out of the frame root
            utterance.source = os.path.join(frames, name)
        if poses and isinstance(utterance, Utterance):
            utterance.pose = pose_file(poses, split, name)
        yield utterance


def _csl_daily_info(pkl: str) -> list:
    """The ``info`` list of CSL-Daily's pickle, loaded without running code."""
    try:
        with open(pkl, "rb") as f:
            data = _PlainDataUnpickler(f).load()
    except Exception as e:  # noqa: BLE001  (a malformed pickle raises about anything; each is this one line)
        raise CorpusError(f"{pkl}: not CSL-Daily's annotation pickle ({type(e).__name__}: {e})") from None
    if not isinstance(data, dict):
        raise CorpusError(f"{pkl}: not CSL-Daily's annotation pickle (of type {type(data).__name__}, expected a "
                          "dict with a list 'info')")
    if not isinstance(data.get("info"), list):
        raise CorpusError(f"{pkl}: not CSL-Daily's annotation pickle (its 'info' is of type "
                          f"{type(data.get('info')).__name__}, expected a list of dicts)")
    return data["info"]


def _csl_daily_entry_problem(item) -> Optional[str]:
    if not isinstance(item, dict):
        return f"of type {type(item).__name__}, expected a dict with name, label_gloss, label_char"
    for key in ("label_gloss", "label_char"):
        value = item.get(key, [])
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
            return f"{key} is of type {type(value).__name__}, expected a list of strings"
    return None


# --- plain TSV ---------------------------------------------------------------------------------------------------

TSV_COLUMNS = ["id", "video", "gloss", "text", "signer"]


def read_tsv(manifest: str, split: Optional[str] = None, glosses: bool = True) -> Iterator[Record]:
    """A TSV with header ``id video gloss text signer`` (and optional ``split`` and ``pose`` columns); ``video`` is a
    video file or a frame folder relative to the TSV, or empty for annotations only; ``pose`` a ``.pose`` file of the
    clip's keypoints, relative to the TSV (or empty). A corpus without glosses (``glosses=False``: How2Sign,
    YouTube-ASL, OpenASL) may leave the ``gloss`` column out, or leave it empty."""
    if not os.path.isfile(manifest):
        raise CorpusError(f"{manifest}: no such file")
    root = os.path.dirname(os.path.abspath(manifest))
    rows = _rows(manifest, "\t")
    header = next(rows, (1, [], ""))[1] or []
    required = TSV_COLUMNS if glosses else [c for c in TSV_COLUMNS if c != "gloss"]
    missing = [c for c in required if c not in header]
    if missing:
        raise CorpusError(f"{manifest}, row 1: header lacks {', '.join(missing)}; "
                          f"expected the columns {' '.join(required)} [split]"
                          + ("; a corpus without glosses: pass --no-glosses" if missing == ["gloss"] else ""))
    index = {name: i for i, name in enumerate(header)}
    for row_no, row, problem in rows:
        origin = f"{manifest}, row {row_no}"
        if row is None:
            yield InvalidRow(origin, "", problem)
            continue
        if len(row) != len(header):
            yield InvalidRow(origin, row[0] if row else "", f"{len(row)} fields, expected {len(header)} "
                             "separated by tabs")
            continue
        video = row[index["video"]].strip()
        row_split = split or (row[index["split"]].strip() if "split" in index else "") or "train"
        gloss = _clean(row[index["gloss"]]) if "gloss" in index else ""
        pose = row[index["pose"]].strip() if "pose" in index else ""
        yield _check(Utterance(row_split, row[index["id"]].strip(), row[index["signer"]].strip(),
                               gloss, _clean(row[index["text"]]),
                               os.path.join(root, video) if video else None, origin,
                               os.path.join(root, pose) if pose else None), glosses)
