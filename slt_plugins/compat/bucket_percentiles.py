"""``fairseq.data.data_utils.get_buckets`` on numpy 2: ``np.percentile(method=…)``, not ``interpolation=…``.

Fixes: fairseq computes the length buckets of ``--num-batch-buckets N`` (``BucketPadLengthDataset``, e.g.
``--task translation --num-batch-buckets 4``) with ``np.percentile(…, interpolation="lower")``; numpy 2 removed that
keyword (renamed ``method`` in numpy 1.22), so any bucketed dataset failed with a TypeError. Same buckets, new keyword.

Versions: fairseq 0.12.x with numpy >= 2.0.
Removable when: ``grep -n 'interpolation="lower"' …/fairseq/data/data_utils.py`` finds nothing.
"""

import numpy as np


def get_buckets(sizes, num_buckets):
    buckets = np.unique(np.percentile(sizes, np.linspace(0, 100, num_buckets + 1), method="lower")[1:])
    return buckets


def install() -> None:
    from fairseq.data import bucket_pad_length_dataset, data_utils

    data_utils.get_buckets = get_buckets
    bucket_pad_length_dataset.get_buckets = get_buckets
