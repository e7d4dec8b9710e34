"""The compat layer (slt_plugins/compat/, one module per patch): each patch's behaviour on fairseq-fixed with current
torch/numpy. The safe checkpoint loader's refusals are in tests/test_hostile_models.py."""

import argparse
import collections
import logging
import pickle
import subprocess
import sys

import numpy as np
import pytest
import torch

import slt_plugins  # noqa: F401  (installs the compat layer)
from fairseq.data import data_utils

from slt_plugins import compat


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


def test_batch_by_size_with_fixed_shapes_hands_fairseq_its_arguments_by_name():
    """--num-batch-buckets N (a LanguagePairDataset with buckets has batch shapes): the replacement passed
    max_tokens where fairseq expects num_tokens_vec, and every such dataset failed once slt_plugins was imported."""
    from fairseq.data import Dictionary, LanguagePairDataset

    d = Dictionary()
    for w in "abcdef":
        d.add_symbol(w)
    lengths = [3, 4, 5, 6, 7, 8, 9, 10, 11, 12]
    src = [torch.full((n,), d.index("a")) for n in lengths]
    dataset = LanguagePairDataset(src, lengths, d, src, lengths, d, num_buckets=2)
    assert dataset.get_batch_shapes() is not None
    batches = dataset.batch_by_size(dataset.ordered_indices(), max_tokens=40)
    assert sorted(np.concatenate(batches).tolist()) == list(range(len(lengths)))
    direct = data_utils.batch_by_size(np.arange(4), lambda i: 5, num_tokens_vec=np.full(4, 5), max_tokens=100,
                                      fixed_shapes=[(2, 5)])
    assert [len(b) for b in direct] == [2, 2]


def test_ddp_on_cpu_takes_device_ids(tmp_path):
    """fairseq passes device_ids=[device_id] whatever the device; torch refuses them for a CPU module."""
    import torch.distributed as dist
    from fairseq.models import distributed_fairseq_model

    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'rendezvous'}", rank=0, world_size=1)
    try:
        ddp = distributed_fairseq_model.DistributedDataParallel(torch.nn.Linear(2, 2), device_ids=[0],
                                                                output_device=0)
        assert ddp.device_ids is None and ddp(torch.ones(1, 2)).shape == (1, 2)
    finally:
        dist.destroy_process_group()


def test_importing_fairseq_leaves_logging_at_warning():
    code = "import logging, slt_plugins; import fairseq_cli.generate; print(logging.getLogger().level)"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={**__import__("os").environ, "LOGLEVEL": ""})
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split() == [str(logging.WARNING)]


@pytest.mark.parametrize("patch", compat.PATCHES, ids=lambda m: m.__name__.rsplit(".", 1)[-1])
def test_every_patch_says_what_it_fixes_on_which_versions_and_when_it_can_go(patch):
    doc = patch.__doc__ or ""
    for heading in ("Fixes:", "Versions:", "Removable when:"):
        assert heading in doc, f"{patch.__name__}: its docstring lacks {heading!r}"
    patch.install()  # idempotent: a second install changes nothing
    patch.install()


def test_toolkit_errors_are_one_line_even_from_a_data_loader_worker():
    from slt_plugins.compat.one_line_errors import one_line, toolkit_error
    from slt_plugins.data.lmdb_store import StoreError

    worker = StoreError("Caught StoreError in DataLoader worker process 0.\nOriginal Traceback (most recent call "
                        "last):\n  File \"x.py\", line 1\nslt_plugins.data.lmdb_store.StoreError: clip 'a': bad\n")
    assert one_line(worker) == "clip 'a': bad"
    try:
        try:
            raise StoreError("store: broken")
        except StoreError:
            raise Exception("Cannot load model parameters")  # fairseq re-raises some errors as plain Exception
    except Exception as e:
        assert str(toolkit_error(e)) == "store: broken"
    assert toolkit_error(ValueError("other")) is None
