"""The split manifest of a binarised dataset: ``data_bins/<name>/<split>.tsv``.

One row per utterance: ``id  n_frames  signer  gloss  text  context``, tab separated with a header. ``n_frames`` is
0 for an annotation-only dataset; ``context`` is the id of the preceding utterance of the same recording (empty
for the first), read by the dialogue teacher.
"""

import csv
import os
from dataclasses import astuple, dataclass, fields
from typing import Iterable, Iterator, List


class ManifestError(ValueError):
    """A manifest that cannot be read; the message names the file and the row."""


@dataclass(frozen=True)
class ManifestRow:
    id: str
    n_frames: int
    signer: str
    gloss: str
    text: str
    context: str = ""


COLUMNS = [f.name for f in fields(ManifestRow)]


def manifest_path(data_dir: str, split: str) -> str:
    return os.path.join(data_dir, f"{split}.tsv")


def read_manifest(path: str) -> List[ManifestRow]:
    if not os.path.isfile(path):
        raise ManifestError(f"{path}: no such manifest; binarise the dataset first (slt-binarise --help)")
    rows = []
    with open(path, "rb") as f:
        reader = csv.reader(_utf8_lines(path, f), delimiter="\t", quoting=csv.QUOTE_NONE)
        header = next(reader, None)
        if header != COLUMNS:
            raise ManifestError(f"{path}, row 1: header is {header}, expected {COLUMNS}")
        for line_no, values in enumerate(reader, start=2):
            if len(values) != len(COLUMNS):
                raise ManifestError(f"{path}, row {line_no}: {len(values)} columns, expected {len(COLUMNS)}")
            try:
                n_frames = int(values[1])
            except ValueError:
                raise ManifestError(f"{path}, row {line_no}: n_frames {values[1]!r} is not an integer") from None
            rows.append(ManifestRow(values[0], n_frames, *values[2:]))
    return rows


def _utf8_lines(path: str, lines: Iterable[bytes]) -> Iterator[str]:
    """The lines decoded, or one line naming the first that is not UTF-8 (a manifest edited by hand)."""
    for line_no, raw in enumerate(lines, start=1):
        try:
            yield raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise ManifestError(f"{path}, row {line_no}: not UTF-8 (byte 0x{raw[e.start]:02x} at column "
                                f"{e.start + 1}); save the file as UTF-8") from None


def write_manifest(path: str, rows: Iterable[ManifestRow]) -> None:
    with open(path, "w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f, delimiter="\t", quoting=csv.QUOTE_NONE, lineterminator="\n")
        writer.writerow(COLUMNS)
        for row in rows:
            values = astuple(row)
            for value in values:
                if isinstance(value, str) and any(c in value for c in "\t\n\r"):
                    raise ManifestError(f"utterance {row.id!r} has a tab or newline in {value!r}; remove it from "
                                        "the annotations")  # the path would be a temporary one
            writer.writerow(values)
