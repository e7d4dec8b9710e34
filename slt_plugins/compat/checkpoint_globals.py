"""Allow-lists the plain types of a fairseq checkpoint for ``torch.load(weights_only=True)``.

Fixes: torch >= 2.6 loads with ``weights_only=True`` by default (and this toolkit always passes it, see
:mod:`safe_checkpoint_loading`); a fairseq 0.12 checkpoint holds an ``argparse.Namespace`` (the model's legacy args),
numpy scalars and arrays (``extra_state``) and a few containers, which the unpickler refuses unless allow-listed.
We list exactly those, so a checkpoint that pickles anything else is still refused.

Versions: every fairseq that saves ``args``/numpy values in checkpoints (0.12.x); torch >= 2.4
(``torch.serialization.add_safe_globals``).
Removable when: fairseq saves checkpoints of tensors and builtins only; then ``tests/test_compat.py::
test_fairseq_style_checkpoint_loads_with_weights_only`` passes without this module.
"""

import argparse
import collections

import numpy as np
import torch


def safe_globals() -> list:
    """The non-tensor types found in fairseq training checkpoints (cfg, extra_state, optimizer history)."""
    types = [argparse.Namespace, collections.OrderedDict, collections.defaultdict, dict, list, set]
    types += [np.dtype, np.ndarray]
    types += [type(np.dtype(t)) for t in ("float64", "float32", "int64", "int32", "bool")]
    try:  # numpy scalars and arrays are reconstructed through these
        from numpy._core.multiarray import _reconstruct, scalar
    except ImportError:  # numpy < 2
        from numpy.core.multiarray import _reconstruct, scalar
    return types + [_reconstruct, scalar]


def install() -> None:
    torch.serialization.add_safe_globals(safe_globals())
