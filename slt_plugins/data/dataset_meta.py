"""What a binarised dataset declares about itself in its ``meta.json`` (written by slt-binarise), read by the tasks.

``glosses``: false for a corpus binarised with ``--no-glosses`` (How2Sign, YouTube-ASL, OpenASL: video and text
only). Its manifests' gloss column is empty and its ``dict.gloss.txt`` holds only the special symbols (the
translator's source vocabulary, to which the task adds the sign-language token). A dataset whose ``meta.json`` does
not say (written before the field existed, or an exported bundle of a model with glosses) has glosses.
"""

import json
import os


class NoGlossesError(ValueError):
    """A task or option that needs glosses, given a dataset declared without them."""


def has_glosses(data: str) -> bool:
    path = os.path.join(data, "meta.json")
    if not os.path.isfile(path):
        return True
    try:
        with open(path, encoding="utf-8") as f:
            meta = json.load(f)
    except (ValueError, UnicodeDecodeError):
        return True  # a damaged meta.json is reported by whoever needs its other fields
    return not (isinstance(meta, dict) and meta.get("glosses") is False)


def require_glosses(data: str, needed_by: str, instead: str) -> None:
    """Refuse ``data`` in one line if it was binarised without glosses: ``needed_by`` trains on them, ``instead``
    says what works without."""
    if not has_glosses(data):
        raise NoGlossesError(f"{data} has no glosses (binarised with --no-glosses, see its meta.json), but "
                             f"{needed_by} needs them; {instead}")
