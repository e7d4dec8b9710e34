"""Restores the ``np.int``/``np.float``/``np.bool``/``np.object``/``np.long`` aliases that fairseq still calls.

Fixes: numpy >= 1.24 removed the aliases; fairseq 0.12 calls them on some code paths (``fairseq.data.data_utils``,
e.g. ``np.int`` in ``collate_tokens``' callers and ``filter_paired_dataset_indices_by_size``): an AttributeError. We
set each to the builtin it always was, only where numpy lacks it (numpy 2 has ``np.long`` again, as C long). numpy 2
also removed ``np.compat``, whose ``np.compat.long`` ``LanguagePairDataset`` calls when it has length buckets
(``--num-batch-buckets``): it gets a namespace with ``long = int``.

Versions: fairseq <= 0.12.3 with numpy >= 1.24 (``np.compat``: numpy >= 2.0).
Removable when: ``grep -rn "np\\.\\(int\\|float\\|bool\\|object\\)\\b" $(python -c 'import fairseq,os;
print(os.path.dirname(fairseq.__file__))')`` and ``grep -rn "np\.compat"`` find no call any more.
"""

import types

import numpy as np

ALIASES = {"int": int, "float": float, "bool": bool, "object": object, "long": int}


def install() -> None:
    for name, builtin in ALIASES.items():
        if name not in np.__dict__:
            setattr(np, name, builtin)
    if "compat" not in np.__dict__:
        try:
            import numpy.compat  # noqa: F401  (numpy 1.x)
        except ImportError:
            np.compat = types.SimpleNamespace(long=int)
