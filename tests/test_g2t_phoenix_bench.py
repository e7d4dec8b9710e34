"""bench/g2t_phoenix.py: planning our recipe's epochs from the time budget, and checking that the schedule finished."""

from argparse import ArgumentTypeError, Namespace

import numpy as np
import pytest

from conftest import load_bench, run_script
from test_fairseq_cli import write_toy_corpus


def test_a_schedule_cut_short_by_the_budget_is_reported_with_the_epochs_to_pass():
    bench = load_bench("g2t_phoenix")
    assert bench.schedule_cut_short(50, 50) is None and bench.schedule_cut_short(28, 28) is None
    warning = bench.schedule_cut_short(21, 50)
    assert "epoch 21 of the 50" in warning and "--epochs 20" in warning
    assert bench.planned_epochs(Namespace(epochs=28)) == 28
    assert bench.planned_epochs(Namespace(epochs=0)) == 50  # the config's max_epoch


def test_auto_epochs_fill_the_budget_from_the_timed_update_and_never_pass_the_config():
    bench = load_bench("g2t_phoenix")
    # 55 min, 222 batches, 0.377 s per update (a CPU without AMX): 86 % of 3300 s / 83.7 s per epoch = 33.9
    assert bench.fit_epochs(55 * 60, 222, 0.377, cap=50) == 33
    assert bench.fit_epochs(55 * 60, 222, 0.1, cap=50) == 50  # a fast machine: the config's, never more
    assert bench.fit_epochs(60, 222, 0.447, cap=50) == 1  # a budget below one epoch still trains one
    assert bench.epochs_arg("auto") == "auto" and bench.epochs_arg("28") == 28
    for bad in ("0", "-3", "many"):
        with pytest.raises(ArgumentTypeError, match="positive number of epochs, or auto"):
            bench.epochs_arg(bad)


def test_the_update_timing_runs_the_recipe_in_as_many_processes_as_asked(tmp_path):
    """Two timing processes at once on a toy corpus and a toy-sized recipe: a positive time, their logs kept."""
    write_toy_corpus(tmp_path / "corpus.tsv", n_train=64, n_dev=5)
    data = tmp_path / "bin"
    run_script("slt-binarise", "tsv", "--manifest", tmp_path / "corpus.tsv", "--out", data, "--text-vocab-size", "40")
    shrink = [f"model.{side}_{k}={v}" for side in ("encoder", "decoder")
              for k, v in (("layers", 1), ("embed_dim", 32), ("ffn_embed_dim", 64), ("attention_heads", 2))]
    args = Namespace(data=str(data), work=str(tmp_path / "work"), threads=1, seed=1,
                     set=[*shrink, "dataset.batch_size=8"])
    seconds = load_bench("g2t_phoenix").time_updates(args, copies=2, warmup=2, updates=3)
    assert 0 < seconds < 5
    speed = load_bench("g2t_train_speed")
    each = [speed.read_result((tmp_path / "work" / f"time_updates{i}" / "child.log").read_text()) for i in (0, 1)]
    assert seconds == max(r["epoch_wall_seconds_per_update"] for r in each)  # the slower of the two copies


def test_the_epoch_estimate_reads_a_line_fitted_to_the_timed_batches_at_the_epochs_mean_padded_batch():
    speed = load_bench("g2t_train_speed")
    tokens = [400, 600, 800, 1000]  # long batches timed first: 0.1 s + 0.4 ms per padded position
    times = [0.1 + 0.0004 * t for t in tokens]
    epoch = [500, 600, 700, 760]  # the epoch's batches: 640 padded positions on average
    assert speed.epoch_update_seconds(times, tokens, epoch) == pytest.approx(0.1 + 0.0004 * 640)
    assert sum(times) / 4 > 0.1 + 0.0004 * 640  # what the plain mean would have said
    assert speed.epoch_update_seconds([0.3, 0.5], [640, 640], epoch) == pytest.approx(0.4)


def test_a_batchs_padded_size_is_its_items_times_the_longest_source_and_target():
    speed = load_bench("g2t_train_speed")
    d = Namespace(src_sizes=np.array([3, 5, 4, 9]), tgt_sizes=np.array([10, 7, 12, 20]))
    assert speed.padded_batch_tokens(d, [np.array([0, 1, 2]), np.array([3])]).tolist() == [3 * (5 + 12), 9 + 20]
