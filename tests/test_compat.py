"""fairseq-fixed on current torch/numpy: safe checkpoint loading, numpy aliases, no dropped remainder batch, a BLEU
scorer that takes empty sentences."""

import argparse
import collections
import pickle
import subprocess
import sys

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


def test_fairseqs_c_bleu_scorer_takes_empty_sentences():
    """fairseq-generate's default scorer segfaulted on an empty hypothesis; run in a child so a crash fails the test."""
    code = """
import torch, slt_plugins
from fairseq.scoring.bleu import BleuConfig, Scorer
s = Scorer(BleuConfig())
s.add(torch.IntTensor([5, 6, 7, 2]), torch.IntTensor([5, 6, 2]))
s.add(torch.IntTensor([5, 6, 7, 2]), torch.IntTensor([]))
s.add(torch.IntTensor([]), torch.IntTensor([5, 6, 7, 8, 2]))
st = s.stat
print(st.reflen, st.predlen, st.match1, st.count1, st.match2, st.count2, st.count4)
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    # lengths of every side, the empty pairs' n-grams as candidates without matches
    assert proc.stdout.split() == ["6", "6", "2", "6", "1", "4", "1"]
