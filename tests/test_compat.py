"""fairseq-fixed on current torch/numpy: safe checkpoint loading, numpy aliases, no dropped remainder batch."""

import argparse
import collections
import pickle

import numpy as np
import pytest
import torch

import slt_plugins  # noqa: F401  (installs the compat layer)
from fairseq.data import data_utils


def test_fairseq_style_checkpoint_loads_with_weights_only(tmp_path):
    path = tmp_path / "ckpt.pt"
    state = {
        "args": argparse.Namespace(arch="mbart_translator_tiny", lr=[1e-3]),
        "cfg": {"model": argparse.Namespace(dropout=0.1), "common": {"seed": 1}},
        "model": collections.OrderedDict(w=torch.ones(2)),
        "extra_state": {"best": np.float64(3.5), "val_loss": np.array([1.0, 2.0])},
        "optimizer_history": [{"num_updates": 5}],
    }
    torch.save(state, path)
    loaded = torch.load(path, weights_only=True)
    assert loaded["args"].arch == "mbart_translator_tiny"
    assert loaded["extra_state"]["best"] == 3.5


class Payload:
    def __reduce__(self):
        return (print, ("this must never run",))


def test_arbitrary_objects_are_still_refused(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"x": Payload()}, path)
    with pytest.raises(pickle.UnpicklingError):
        torch.load(path, weights_only=True)


def test_numpy_aliases_fairseq_still_calls():
    assert np.int is int and np.float is float  # fairseq.data.data_utils calls them


@pytest.mark.parametrize("n,max_sentences,mult", [(20, 20, 8), (21, 4, 8), (13, 3, 2), (5, None, 8)])
def test_batch_by_size_keeps_the_remainder_batch(n, max_sentences, mult):
    indices = np.arange(n, dtype=np.int64)
    sizes = np.full(n, 5, dtype=np.int64)
    for kwargs in ({"num_tokens_vec": sizes}, {}):
        batches = data_utils.batch_by_size(indices, lambda i: 5, max_tokens=1000, max_sentences=max_sentences,
                                           required_batch_size_multiple=mult, **kwargs)
        assert sorted(np.concatenate(batches).tolist()) == list(range(n))
