"""bench/g2t_phoenix.py's check that the time budget let our recipe's schedule finish."""

from argparse import Namespace

from conftest import load_bench


def test_a_schedule_cut_short_by_the_budget_is_reported_with_the_epochs_to_pass():
    bench = load_bench("g2t_phoenix")
    assert bench.schedule_cut_short(50, 50) is None and bench.schedule_cut_short(28, 28) is None
    warning = bench.schedule_cut_short(21, 50)
    assert "epoch 21 of the 50" in warning and "--epochs 20" in warning
    assert bench.planned_epochs(Namespace(epochs=28)) == 28
    assert bench.planned_epochs(Namespace(epochs=0)) == 50  # the config's max_epoch
