"""Keeps fairseq-fixed 0.12.3.1 working on current torch and numpy without editing site-packages.

* torch >= 2.6 loads with ``weights_only=True``; a fairseq checkpoint holds an ``argparse.Namespace`` (the
  model's legacy args) and a few other plain types. We allow-list exactly those, so loading stays safe: a
  checkpoint that pickles anything else is still refused.
* numpy >= 1.24 removed the ``np.int``/``np.float``/… aliases that fairseq still calls on some code paths
  (``fairseq.data.data_utils``); we restore them as the builtins they always were, only where missing.
* fairseq-fixed's ``data_utils.batch_by_size`` throws away the last batch whenever its size is not a multiple of
  ``--required-batch-size-multiple`` (8 by default): fairseq-generate and validation silently skip up to 7
  utterances of a split. Upstream fairseq keeps that batch (``--skip-remainder-batch`` exists for training), and
  so do we, so that every utterance of a split is scored.
* fairseq wraps every model in ``DistributedDataParallel(device_ids=[device_id])``; current torch refuses
  ``device_ids`` for a CPU module, so multi-process training on CPU (gloo) failed. The CPU case gets no device ids.
* fairseq's C BLEU scorer (``--scoring bleu``, fairseq-generate's default) reads through a null pointer when a
  hypothesis or reference is empty, and the process dies with a segmentation fault: an undertrained model that
  emits nothing (CTC decoding often does) crashed fairseq-generate. When either side is empty we count it in
  Python as the C code counts a sentence pair: the lengths of both sides and the other side's n-grams, no matches.
* Importing fairseq runs ``logging.basicConfig(level=DEBUG)`` (in a wav2vec module), which turns every later
  ``basicConfig`` into a no-op: fairseq-generate then logs hydra's and PIL's debug lines. We undo that one call.
"""

import argparse
import collections
import logging
import os

import numpy as np
import torch
from fairseq.data import data_utils

_NUMPY_ALIASES = {"int": int, "float": float, "bool": bool, "object": object, "long": int}


def _checkpoint_safe_globals():
    """The non-tensor types found in fairseq training checkpoints (cfg, extra_state, optimizer history)."""
    types = [argparse.Namespace, collections.OrderedDict, collections.defaultdict, dict, list, set]
    types += [np.dtype, np.ndarray]
    types += [type(np.dtype(t)) for t in ("float64", "float32", "int64", "int32", "bool")]
    try:  # numpy scalars and arrays are reconstructed through these
        from numpy._core.multiarray import _reconstruct, scalar
    except ImportError:  # numpy < 2
        from numpy.core.multiarray import _reconstruct, scalar
    return types + [_reconstruct, scalar]


def batch_by_size(indices, num_tokens_fn, max_tokens=None, max_sentences=None, required_batch_size_multiple=1,
                  fixed_shapes=None, num_tokens_vec=None):
    """``fairseq.data.data_utils.batch_by_size`` as upstream fairseq has it: the remainder batch is kept."""
    if fixed_shapes is not None:
        return _fairseq_batch_by_size(indices, num_tokens_fn, max_tokens, max_sentences,
                                      required_batch_size_multiple, fixed_shapes, num_tokens_vec)
    from fairseq.data.data_utils_fast import batch_by_size_fn, batch_by_size_vec

    max_tokens = int(max_tokens) if max_tokens is not None else -1
    max_sentences = max_sentences if max_sentences is not None else -1
    indices = np.asarray(indices if isinstance(indices, np.ndarray) else list(indices), dtype=np.int64)
    if num_tokens_vec is None:
        return batch_by_size_fn(indices, num_tokens_fn, max_tokens, max_sentences, required_batch_size_multiple)
    num_tokens_vec = np.asarray(num_tokens_vec, dtype=np.int64)
    return batch_by_size_vec(indices, num_tokens_vec, max_tokens, max_sentences, required_batch_size_multiple)


_fairseq_batch_by_size = data_utils.batch_by_size


class _CpuAwareDistributedDataParallel(torch.nn.parallel.DistributedDataParallel):
    def __init__(self, module, device_ids=None, output_device=None, **kwargs):
        if all(p.device.type == "cpu" for p in module.parameters()):
            device_ids = output_device = None
        super().__init__(module, device_ids=device_ids, output_device=output_device, **kwargs)


def _bleu_add_empty_safe(add):
    def wrapper(self, ref, pred):
        if ref.numel() and pred.numel():
            return add(self, ref, pred)
        reflen, predlen = (int(((t != self.pad) & (t != self.eos)).sum()) for t in (ref, pred))
        self.stat.reflen += reflen
        self.stat.predlen += predlen
        for n in range(1, 5):  # a pair with an empty side has candidate n-grams but no matches
            setattr(self.stat, f"count{n}", getattr(self.stat, f"count{n}") + max(predlen - n + 1, 0))

    wrapper.__wrapped__ = add
    return wrapper


def _undo_fairseq_debug_logging():
    root = logging.getLogger()
    if (root.level == logging.DEBUG and len(root.handlers) == 1 and os.environ.get("LOGLEVEL", "").upper() != "DEBUG"
            and getattr(root.handlers[0].formatter, "_fmt", None) == logging.BASIC_FORMAT):
        root.removeHandler(root.handlers[0])
        root.setLevel(logging.WARNING)


def install():
    from fairseq.models import distributed_fairseq_model
    from fairseq.scoring import bleu

    _undo_fairseq_debug_logging()
    if not hasattr(bleu.Scorer.add, "__wrapped__"):
        bleu.Scorer.add = _bleu_add_empty_safe(bleu.Scorer.add)
    distributed_fairseq_model.DistributedDataParallel = _CpuAwareDistributedDataParallel
    data_utils.batch_by_size = batch_by_size
    for name, builtin in _NUMPY_ALIASES.items():
        if name not in np.__dict__:
            setattr(np, name, builtin)
    if hasattr(torch.serialization, "add_safe_globals"):
        torch.serialization.add_safe_globals(_checkpoint_safe_globals())
