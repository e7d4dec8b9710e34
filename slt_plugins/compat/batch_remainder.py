"""``fairseq.data.data_utils.batch_by_size`` that keeps the last batch, as upstream fairseq does.

Fixes: fairseq-fixed's version throws away the last batch whenever its size is not a multiple of
``--required-batch-size-multiple`` (8 by default): fairseq-generate and validation silently skipped up to 7
utterances of a split. Upstream fairseq keeps that batch (``--skip-remainder-batch`` exists for training), and so do
we, so every utterance of a split is scored. Batches of fixed shapes (``--num-batch-buckets``, TPU) go to fairseq's
own function unchanged, with its arguments by name.

Versions: fairseq-fixed 0.12.3.1 (``pip install fairseq-fixed``); upstream fairseq main is already right.
Removable when: ``tests/test_compat.py::test_batch_by_size_keeps_the_remainder_batch`` passes with ``install()``
not called (fairseq's own function then keeps the remainder).
"""

import numpy as np
from fairseq.data import data_utils

FAIRSEQ_BATCH_BY_SIZE = data_utils.batch_by_size


def batch_by_size(indices, num_tokens_fn, num_tokens_vec=None, max_tokens=None, max_sentences=None,
                  required_batch_size_multiple=1, fixed_shapes=None):
    """fairseq's signature and results, the remainder batch kept."""
    if fixed_shapes is not None:
        return FAIRSEQ_BATCH_BY_SIZE(indices, num_tokens_fn, num_tokens_vec=num_tokens_vec, max_tokens=max_tokens,
                                     max_sentences=max_sentences,
                                     required_batch_size_multiple=required_batch_size_multiple,
                                     fixed_shapes=fixed_shapes)
    from fairseq.data.data_utils_fast import batch_by_size_fn, batch_by_size_vec

    max_tokens = int(max_tokens) if max_tokens is not None else -1
    max_sentences = max_sentences if max_sentences is not None else -1
    indices = np.asarray(indices if isinstance(indices, np.ndarray) else list(indices), dtype=np.int64)
    if num_tokens_vec is None:
        return batch_by_size_fn(indices, num_tokens_fn, max_tokens, max_sentences, required_batch_size_multiple)
    num_tokens_vec = np.asarray(num_tokens_vec, dtype=np.int64)
    return batch_by_size_vec(indices, num_tokens_vec, max_tokens, max_sentences, required_batch_size_multiple)


def install() -> None:
    data_utils.batch_by_size = batch_by_size
