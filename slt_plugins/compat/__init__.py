"""Keeps fairseq-fixed 0.12.3.1 working, and safe, on current torch and numpy without editing site-packages.

One module per patch; each says what it fixes, on which versions, and how to tell when it can go. ``install()``
applies them all (``import slt_plugins`` calls it); each is idempotent.
"""

from slt_plugins.compat import (batch_remainder, bleu_empty_sentences, bucket_percentiles, checkpoint_globals,
                                cpu_ddp, debug_logging, numpy_aliases, one_line_errors, safe_checkpoint_loading)

PATCHES = (debug_logging, bleu_empty_sentences, cpu_ddp, batch_remainder, bucket_percentiles, numpy_aliases,
           checkpoint_globals, safe_checkpoint_loading, one_line_errors)


def install() -> None:
    for patch in PATCHES:
        patch.install()
