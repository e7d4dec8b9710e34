"""slt-binarise: a corpus (annotations, and frame folders or videos) → ``data_bins/NAME`` (DESIGN.md §2).

Writes the split manifests, ``frames.lmdb`` (frames resized once, JPEG) and/or ``poses.lmdb`` (keypoints of
``.pose`` files, selected and normalised: docs/keypoints.md), ``dict.gloss.txt``, a sentencepiece
model ``spm.model`` with ``dict.text.txt``, and ``meta.json``. Everything is built in a temporary sibling folder
and renamed into place at the end, so an interrupted run leaves an earlier ``NAME`` as it was. An existing ``NAME``
is replaced only if slt-binarise wrote it (or with ``--overwrite``), and never when it holds or lies inside an input.

A corpus without glosses (How2Sign, YouTube-ASL, OpenASL) is declared with ``--no-glosses``: its gloss cells must be
empty (a TSV may lack the column), and ``meta.json`` records ``"glosses": false`` for the tasks (docs/gloss_free.md).

Values that become file names or store keys are checked: a split is a plain name, an id holds no '/' or control
character and fits an LMDB key. With ``--skip-invalid`` bad rows go to ``skipped.tsv``; of an id given twice the
first copy whose clip can be read is kept, and ``skipped.tsv`` names it for every other copy.
"""

import argparse
import io
import json
import multiprocessing
import os
import re
import sys
import time
from typing import Dict, Iterable, List, Optional, Sequence, Set, Tuple

import sentencepiece as spm
from fairseq.data import Dictionary

from slt_plugins import __version__
from slt_plugins.data.lmdb_store import FEATURE_INDEX, POSE_STORE, LmdbWriter, encode_jpeg, pack_clip
from slt_plugins.data.pose_files import PoseFileError, read_pose_array
from slt_plugins.data.pose_layouts import DEFAULT_LAYOUT, LAYOUTS, get_layout
from slt_plugins.data.manifest import ManifestError, ManifestRow, manifest_path, write_manifest
from slt_plugins.data.video_io import ClipReadError, iter_clip_frames
from fairseq_slt.tools.atomic import OutputError, Owner, staging
from fairseq_slt.tools.progress import progress_bar
from fairseq_slt.tools.corpora import (CorpusError, InvalidRow, Utterance, read_csl_daily, read_phoenix, read_tsv,
                           split_problem)


class BinariseError(ValueError):
    """Stops the run with one line naming the file and row, and the fix."""


# --- collecting utterances ---------------------------------------------------------------------------------------

def collect(records: Iterable, skip_invalid: bool) -> Tuple[List[Utterance], List[InvalidRow]]:
    """The valid utterances in reading order and the invalid rows. Without ``--skip-invalid`` the first invalid row or
    repeated id stops the run; with it, a repeated id is kept here and decided by :func:`first_valid_copies` once
    the clips are read, so that a copy without frames cannot push out a valid one."""
    utterances, invalid, seen = [], [], {}
    for record in records:
        if isinstance(record, Utterance) and record.id in seen and not skip_invalid:
            record = InvalidRow(record.origin, record.id, f"duplicate id {record.id!r} (first at {seen[record.id]})"
                                "; ids must be unique across splits")
        if isinstance(record, InvalidRow):
            if not skip_invalid:
                raise BinariseError(f"{record} (or pass --skip-invalid to skip such rows)")
            invalid.append(record)
            continue
        seen.setdefault(record.id, record.origin)
        utterances.append(record)
    if not utterances:
        raise BinariseError("no valid utterance was read; check the annotation paths")
    return utterances, invalid


def first_valid_copies(utterances: List[Utterance], failed: Set[str]) -> Tuple[List[Utterance], List[InvalidRow]]:
    """Each id once: its first copy whose clip could be read (``failed``: the origins of those that could not);
    the other readable copies are listed as duplicates."""
    kept: Dict[str, Utterance] = {}
    for u in utterances:
        if u.origin not in failed:
            kept.setdefault(u.id, u)
    duplicates = [InvalidRow(u.origin, u.id, f"duplicate id {u.id!r}; ids must be unique across splits")
                  for u in utterances if u.origin not in failed and kept[u.id] is not u]
    return [u for u in utterances if kept.get(u.id) is u], duplicates


def contexts(ids: List[str]) -> Dict[str, str]:
    """The preceding utterance of the same recording, from names of the form ``<recording>-<n>``. Called per split:
    a context from another split (the test set's text in training, say) would leak across the split."""
    by_recording: Dict[str, List[Tuple[int, str]]] = {}
    for id_ in ids:
        match = re.fullmatch(r"(.+)-(\d+)", id_)
        if match:
            by_recording.setdefault(match.group(1), []).append((int(match.group(2)), id_))
    result = {}
    for parts in by_recording.values():
        parts.sort()
        for (_, previous), (_, current) in zip(parts, parts[1:]):
            result[current] = previous
    return result


# --- frames ------------------------------------------------------------------------------------------------------

def _encode_clip(job: Tuple[Optional[str], Optional[int], int]) -> Tuple[Optional[bytes], int, str]:
    source, shorter_side, quality = job
    if source is None:  # a TSV row without a video among rows with one
        return None, 0, "no video or frame folder given, while other rows have one"
    try:
        jpegs = [encode_jpeg(frame, quality) for frame in iter_clip_frames(source, shorter_side)]
    except ClipReadError as e:
        return None, 0, str(e)
    if not jpegs:
        return None, 0, f"{source}: no frames could be decoded"
    return pack_clip(jpegs), len(jpegs), ""


def write_frames(utterances: List[Utterance], path: str, shorter_side: Optional[int], quality: int, workers: int,
                 skip_invalid: bool) -> Tuple[Dict[str, int], List[InvalidRow]]:
    """Each id's frames from its first copy whose clip can be read; returns the frame count per id and the rows whose
    clip could not be read."""
    jobs = [(u.source, shorter_side, quality) for u in utterances]
    n_frames, invalid = {}, []
    pool = multiprocessing.get_context("spawn").Pool(workers) if workers > 1 else None
    results = pool.imap(_encode_clip, jobs, chunksize=2) if pool else map(_encode_clip, jobs)
    try:
        with LmdbWriter(path) as writer:
            for u, (packed, count, error) in progress_bar(zip(utterances, results), total=len(jobs),
                                                          desc="frames", unit="clip"):
                if packed is None:
                    row = InvalidRow(u.origin, u.id, error)
                    if not skip_invalid:
                        raise BinariseError(f"{row} (fix the clip or pass --skip-invalid)")
                    invalid.append(row)
                    continue
                if u.id not in n_frames:  # a later copy of a repeated id: see first_valid_copies
                    writer.put(u.id, packed)
                    n_frames[u.id] = count
    finally:
        if pool:
            pool.terminate()
    return n_frames, invalid


# --- keypoints ---------------------------------------------------------------------------------------------------

def write_poses(utterances: List[Utterance], path: str, layout_name: str, skip_invalid: bool,
                failed: Set[str]) -> Tuple[Dict[str, int], List[InvalidRow]]:
    """Each id's keypoints (its first copy whose .pose file and clip, if any, can be read) into ``poses.lmdb``, with
    the index the datasets and backbones read; returns the frame count per id and the rows whose file could not be
    read. ``failed``: origins already rejected (their clip)."""
    layout = get_layout(layout_name)
    lengths, fps, invalid, dims = {}, {}, [], None
    with LmdbWriter(path) as writer:
        for u in progress_bar(utterances, desc="poses", unit="clip"):
            if u.origin in failed or u.id in lengths:
                continue
            try:
                if u.pose is None:
                    raise PoseFileError("no .pose file given, while other rows have one")
                array, rate = read_pose_array(u.pose, layout)
                if dims is not None and array.shape[-1] - 1 != dims:
                    raise PoseFileError(f"{u.pose}: {array.shape[-1] - 1} coordinates per point where the files "
                                        f"before it have {dims}")
            except PoseFileError as e:
                row = InvalidRow(u.origin, u.id, str(e))
                if not skip_invalid:
                    raise BinariseError(f"{row} (fix the file or pass --skip-invalid)") from None
                invalid.append(row)
                continue
            dims = array.shape[-1] - 1
            writer.put_array(u.id, array)
            lengths[u.id], fps[u.id] = len(array), rate
    index = {"layout": layout.name, "points": [f"{c}:{p}" for c, p in layout.points], "dims": dims or 0,
             "channels": "coordinates then confidence", "normalisation": "shoulder width (pose-format normalize)",
             "lengths": lengths, "fps": fps}
    with open(os.path.join(path, FEATURE_INDEX), "w", encoding="utf-8") as f:
        json.dump(index, f)
    return lengths, invalid


# --- vocabularies ------------------------------------------------------------------------------------------------

def build_gloss_dictionary(glosses: Iterable[str]) -> Dictionary:
    """Gloss types of the training split; index 0 (``<s>``) doubles as the CTC blank, as in fairseq's ctc."""
    d = Dictionary()
    for line in glosses:
        for gloss in line.split():
            d.add_symbol(gloss)
    d.finalize(padding_factor=1)
    return d


def train_sentencepiece(texts: List[str], model_path: str, vocab_size: int) -> spm.SentencePieceProcessor:
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(texts), model_writer=model, vocab_size=vocab_size, hard_vocab_limit=False,
        model_type="unigram", character_coverage=1.0, num_threads=1, minloglevel=2,
        bos_id=-1, eos_id=-1, unk_id=0, pad_id=-1,  # fairseq's Dictionary adds its own specials
    )
    with open(model_path, "wb") as f:
        f.write(model.getvalue())
    return spm.SentencePieceProcessor(model_proto=model.getvalue())


def build_text_dictionary(texts: Iterable[str], sp: spm.SentencePieceProcessor) -> Dictionary:
    d = Dictionary()
    for text in texts:
        for piece in sp.encode(text, out_type=str):
            d.add_symbol(piece)
    d.finalize()
    return d


def _cell(value: str) -> str:
    """A TSV cell: a skipped id may hold the very tab or newline it was skipped for."""
    return value if value.isprintable() else repr(value)[1:-1]


# --- the output folder -------------------------------------------------------------------------------------------

OWNER = Owner("slt-binarise", "meta.json", "tool")


def binarise(records: Iterable, out: str, *, source: dict, language: str, frame_size: Optional[int] = 256,
             jpeg_quality: int = 90, workers: int = 1, text_vocab_size: int = 2000,
             skip_invalid: bool = False, inputs: Sequence[str] = (), overwrite: bool = False,
             glosses: bool = True, pose_layout: str = DEFAULT_LAYOUT) -> dict:
    """``glosses=False``: the corpus was declared without glosses (``--no-glosses``; the readers have checked that
    every gloss cell is empty): ``dict.gloss.txt`` then holds only the special symbols and ``meta.json`` records
    ``"glosses": false``, which the tasks that need glosses refuse. ``inputs``: the annotation files and frame
    roots, which ``out`` may neither hold nor lie inside (nor any clip's source); an existing ``out`` that is not an
    earlier output of slt-binarise is replaced only with ``overwrite``."""
    started = time.time()
    utterances, invalid = collect(records, skip_invalid)
    sources = [*inputs, *(u.source for u in utterances if u.source), *(u.pose for u in utterances if u.pose)]
    with staging(out, OWNER, inputs=sources, overwrite=overwrite) as tmp:
        n_frames: Dict[str, int] = {}
        with_frames = any(u.source for u in utterances)
        if with_frames:
            n_frames, bad_clips = write_frames(utterances, os.path.join(tmp, "frames.lmdb"), frame_size,
                                               jpeg_quality, workers, skip_invalid)
            invalid += bad_clips
        with_poses = any(u.pose for u in utterances)
        pose_frames: Dict[str, int] = {}
        if with_poses:
            pose_frames, bad_poses = write_poses(utterances, os.path.join(tmp, POSE_STORE), pose_layout,
                                                 skip_invalid, {r.origin for r in invalid})
            invalid += bad_poses
            if not pose_frames:
                raise BinariseError("no .pose file could be read (every row with one was skipped; see why with "
                                    "the same command without --skip-invalid)")
        utterances, duplicates = first_valid_copies(utterances, {r.origin for r in invalid})
        invalid += duplicates
        kept = {u.id: u.origin for u in utterances}
        splits: Dict[str, List[Utterance]] = {}
        for u in utterances:
            splits.setdefault(u.split, []).append(u)
        for split, items in splits.items():
            context = contexts([u.id for u in items])
            write_manifest(manifest_path(tmp, split), [
                ManifestRow(u.id, n_frames.get(u.id, pose_frames.get(u.id, 0)), u.signer, u.gloss, u.text,
                            context.get(u.id, ""))
                for u in items])

        train = splits.get("train", utterances)
        gloss_dict = build_gloss_dictionary(u.gloss for u in train)
        gloss_dict.save(os.path.join(tmp, "dict.gloss.txt"))
        sp = train_sentencepiece([u.text for u in train], os.path.join(tmp, "spm.model"), text_vocab_size)
        text_dict = build_text_dictionary((u.text for u in train), sp)
        text_dict.save(os.path.join(tmp, "dict.text.txt"))

        if invalid:
            with open(os.path.join(tmp, "skipped.tsv"), "w", encoding="utf-8") as f:
                f.write("id\twhere\treason\tkept\n")  # kept: the copy of the same id that is in the dataset
                f.writelines("\t".join(map(_cell, (r.id, r.origin, r.reason, kept.get(r.id, "")))) + "\n"
                             for r in invalid)
        meta = {
            "source": source,
            "language": language,
            "splits": {split: len(items) for split, items in sorted(splits.items())},
            "frames": {"stored": with_frames, "total": sum(n_frames.values()), "shorter_side": frame_size or None,
                       "jpeg_quality": jpeg_quality},
            "glosses": glosses,
            "poses": {"stored": with_poses, "total": sum(pose_frames.values()),
                      "layout": pose_layout if with_poses else None},
            "gloss_types": len(gloss_dict) - gloss_dict.nspecial,
            "text_pieces": len(text_dict) - text_dict.nspecial,
            "skipped": len(invalid),
            "tool": f"fairseq-slt {__version__} slt-binarise",
            "seconds": round(time.time() - started, 1),
        }
        with open(os.path.join(tmp, "meta.json"), "w", encoding="utf-8") as f:
            json.dump(meta, f, indent=2, ensure_ascii=False)
    return meta


# --- command line ------------------------------------------------------------------------------------------------

def _tsv_manifests(manifests: List[str]) -> List[Tuple[str, str]]:
    """(split or "", file) of each ``--manifest [SPLIT=]FILE``."""
    result = []
    for spec in manifests:
        split, _, path = spec.rpartition("=") if "=" in spec and not os.path.exists(spec) else ("", "", spec)
        if split and split_problem(split):
            raise CorpusError(f"--manifest {spec}: {split_problem(split)}")
        result.append((split, path))
    return result


def _tsv_records(manifests: List[Tuple[str, str]], glosses: bool):
    for split, path in manifests:
        yield from read_tsv(path, split or None, glosses)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="slt-binarise", description=__doc__.split("\n\n")[0])
    formats = parser.add_subparsers(dest="format", required=True, metavar="FORMAT")

    def add(name, help_, language):
        p = formats.add_parser(name, help=help_, description=help_)
        p.add_argument("--out", required=True, help="output folder, e.g. data_bins/NAME; built beside it and renamed "
                       "into place when complete. An existing folder is replaced only if slt-binarise wrote it (it "
                       "has slt-binarise's meta.json) or with --overwrite; one that holds or lies inside an input "
                       "is always refused")
        p.add_argument("--overwrite", action="store_true",
                       help="replace --out even if it is not an earlier output of slt-binarise (its files are lost)")
        p.add_argument("--skip-invalid", action="store_true",
                       help="skip bad rows and clips and list them in OUT/skipped.tsv instead of stopping")
        p.add_argument("--frame-size", type=int, default=256,
                       help="resize frames so their shorter side has this length (0: keep) (default: 256)")
        p.add_argument("--jpeg-quality", type=int, default=90)
        p.add_argument("--workers", type=int, default=min(4, os.cpu_count() or 1),
                       help="processes decoding and encoding clips")
        p.add_argument("--text-vocab-size", type=int, default=2000,
                       help="upper bound on the sentencepiece vocabulary of the text")
        p.add_argument("--language", default=language, help=f"language of the text (default: {language})")
        p.add_argument("--no-glosses", dest="glosses", action="store_false",
                       help="the corpus has no glosses (video and text only: How2Sign, YouTube-ASL, OpenASL): every "
                            "gloss cell must be empty (or the TSV's gloss column absent), meta.json says so, and only "
                            "sign2text with --ctc-weight 0 trains on it. Without this option an empty gloss is an "
                            "invalid row")
        p.add_argument("--pose-layout", default=DEFAULT_LAYOUT, choices=sorted(LAYOUTS),
                       help="the keypoints kept of each .pose file (docs/keypoints.md) (default: %(default)s)")
        return p

    p = add("phoenix-2014t", "RWTH-PHOENIX-Weather 2014T: PHOENIX-2014-T.<split>.corpus.csv files", "de")
    p.add_argument("--annotations", required=True, help="folder with the *.corpus.csv files, or one such file")
    p.add_argument("--frames", help="frame root, e.g. features/fullFrame-210x260px (omit: annotations only)")
    p.add_argument("--poses", help="folder of .pose files named by id, <split>/<id>.pose or <id>.pose")
    p = add("csl-daily", "CSL-Daily: sentence_label/csl2020ct_v2.pkl and split_1.txt", "zh")
    p.add_argument("--annotations", required=True, help="CSL-Daily's sentence_label folder")
    p.add_argument("--frames", help="folder with one frame folder per sentence (omit: annotations only)")
    p.add_argument("--poses", help="folder of .pose files named by id, <id>.pose")
    p = add("tsv", "any corpus: a TSV with the columns id, video, gloss, text, signer [, split] [, pose] (no gloss "
                   "column with --no-glosses)", "und")
    p.add_argument("--manifest", required=True, action="append", metavar="[SPLIT=]FILE",
                   help="the TSV; repeat as train=a.tsv dev=b.tsv, or give one file with a split column")
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    source = {k: v for k, v in vars(args).items() if k in ("format", "annotations", "frames", "poses", "manifest")}
    try:
        if args.format == "tsv":
            manifests = _tsv_manifests(args.manifest)
            records, inputs = _tsv_records(manifests, args.glosses), [path for _, path in manifests]
        else:
            read = read_phoenix if args.format == "phoenix-2014t" else read_csl_daily
            records = read(args.annotations, args.frames, args.poses, args.glosses)
            inputs = [p for p in (args.annotations, args.frames, args.poses) if p]
        meta = binarise(records, args.out, source=source, language=args.language, frame_size=args.frame_size,
                        jpeg_quality=args.jpeg_quality, workers=args.workers, text_vocab_size=args.text_vocab_size,
                        skip_invalid=args.skip_invalid, inputs=inputs, overwrite=args.overwrite,
                        glosses=args.glosses, pose_layout=args.pose_layout)
    except (BinariseError, CorpusError, ClipReadError, OutputError, ManifestError) as e:
        print(f"slt-binarise: error: {e}", file=sys.stderr)
        return 2
    splits = ", ".join(f"{k} {v}" for k, v in meta["splits"].items())
    glosses = f"{meta['gloss_types']} glosses" if meta["glosses"] else "no glosses"
    poses = f"{meta['poses']['total']} pose frames ({meta['poses']['layout']}); " if meta["poses"]["stored"] else ""
    print(f"{args.out}: {splits}; {meta['frames']['total']} frames; {poses}{glosses}, "
          f"{meta['text_pieces']} text pieces; {meta['skipped']} skipped; {meta['seconds']} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
