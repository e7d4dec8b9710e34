"""Undoes the ``logging.basicConfig(level=DEBUG)`` that importing fairseq runs.

Fixes: a wav2vec module of fairseq calls ``logging.basicConfig(level=logging.DEBUG)`` at import, which makes every
later ``basicConfig`` a no-op: fairseq-generate then logged hydra's and PIL's debug lines. We remove exactly that
handler (the root at DEBUG with one basic-format handler) unless ``LOGLEVEL=DEBUG`` asked for it.

Versions: fairseq 0.12.x (``fairseq/models/wav2vec/utils.py`` or its importers).
Removable when: ``python -c "import logging, fairseq.models; print(logging.getLogger().level)"`` prints 30 (WARNING).
"""

import logging
import os


def install() -> None:
    import fairseq.models  # noqa: F401  (the import that configures logging: undo it after, not before)

    root = logging.getLogger()
    if (root.level == logging.DEBUG and len(root.handlers) == 1 and os.environ.get("LOGLEVEL", "").upper() != "DEBUG"
            and getattr(root.handlers[0].formatter, "_fmt", None) == logging.BASIC_FORMAT):
        root.removeHandler(root.handlers[0])
        root.setLevel(logging.WARNING)
