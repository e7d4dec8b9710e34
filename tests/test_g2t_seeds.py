"""bench/g2t_seeds.py: variants × seeds of the from-scratch recipe, summarised as means against the first variant."""

import json
import os
import re
import statistics
import subprocess
import sys

import pytest
import sacrebleu

from conftest import REPO, load_bench, run_script
from test_fairseq_cli import write_toy_corpus


def test_summary_means_sd_and_the_difference_from_the_first_variant():
    bench = load_bench("g2t_seeds")
    runs = [{"variant": v, "seed": s, "best": {"bleu4": b, "length_ratio": 0.9}} for v, s, b in
            [("base", 1, 24.0), ("base", 2, 25.0), ("drop", 1, 25.0), ("drop", 2, 26.0), ("drop", 3, 27.0)]]
    runs[0]["avg5"] = {"bleu4": 20.0, "length_ratio": 1.0}
    rows = bench.summarise(runs, [("base", []), ("drop", ["model.dropout=0.2"])])
    best = {r["variant"]: r for r in rows if r["checkpoint"] == "best"}
    assert best["base"]["mean"] == 24.5 and best["base"]["sd"] == pytest.approx(0.7071, abs=1e-4)
    assert best["drop"]["mean"] == 26.0 and best["drop"]["seeds"] == [1, 2, 3]
    assert best["drop"]["difference"] == pytest.approx(1.5) and best["drop"]["ratio"] == pytest.approx(26 / 24.5)
    averaged = [r for r in rows if r["checkpoint"] == "avg5"]  # only where a run has it; sd 0 for one seed
    assert len(averaged) == 1 and averaged[0]["sd"] == 0.0 and averaged[0]["difference"] == 0.0
    zero = bench.summarise([{"variant": "base", "seed": 1, "best": {"bleu4": 0.0, "length_ratio": 0.5}}],
                           [("base", [])])
    assert zero[0]["ratio"] is None  # a toy baseline at 0 BLEU: no ratio, no division by zero


def test_a_variant_without_key_value_overrides_is_refused_with_the_form():
    bench = load_bench("g2t_seeds")
    assert bench.parse_variants([]) == [("recipe", [])]
    with pytest.raises(SystemExit, match="Hydra overrides KEY=VALUE"):
        bench.parse_variants([["base"], ["drop", "dropout"]])
    with pytest.raises(SystemExit, match="must differ"):
        bench.parse_variants([["a"], ["a", "model.dropout=0.2"]])


def test_two_variants_two_seeds_end_to_end_and_a_second_run_reads_results_back(tmp_path):
    """The recipe's config shrunk to a toy size: 4 trainings, 8 decodes, one table; run again, nothing retrains."""
    write_toy_corpus(tmp_path / "corpus.tsv", n_train=32, n_dev=5)
    data, work = tmp_path / "bin", tmp_path / "work"
    run_script("slt-binarise", "tsv", "--manifest", tmp_path / "corpus.tsv", "--out", data, "--text-vocab-size", "40")
    shrink = [f"model.{side}_{k}={v}" for side in ("encoder", "decoder")
              for k, v in (("layers", 1), ("embed_dim", 32), ("ffn_embed_dim", 64), ("attention_heads", 2))]
    cmd = [sys.executable, os.path.join(REPO, "bench", "g2t_seeds.py"), "--data", str(data), "--work", str(work),
           "--seeds", "1", "2", "--jobs", "2", "--variant", "base", "--variant", "drop", "model.dropout=0.1",
           "--set", *shrink, "optimization.max_epoch=5", "optimization.max_update=5",
           "lr_scheduler.warmup_updates=2", "dataset.validate_after_updates=0"]
    first = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert first.returncode == 0, first.stderr[-3000:]
    summary = json.loads((work / "results.json").read_text())["summary"]
    assert [(r["variant"], r["checkpoint"], r["seeds"]) for r in summary] == [
        ("base", "best", [1, 2]), ("base", "avg5", [1, 2]), ("drop", "best", [1, 2]), ("drop", "avg5", [1, 2])]
    # each run's figure is sacrebleu's BLEU of its own decode, and the table is made of those figures
    runs = json.loads((work / "results.json").read_text())["runs"]
    for run in runs:
        for which in ("best", "avg5"):
            gen = (work / run["variant"] / f"seed{run['seed']}" / f"dev.{which}.gen").read_text()
            refs = dict(re.findall(r"^T-(\d+)\t(.*)$", gen, flags=re.M))
            hyps = {}
            for i, text in re.findall(r"^D-(\d+)\t\S+\t(.*)$", gen, flags=re.M):
                hyps.setdefault(i, text)
            assert len(refs) == 5 and hyps.keys() == refs.keys()
            order = sorted(refs, key=int)
            bleu = sacrebleu.corpus_bleu([hyps[i] for i in order], [[refs[i] for i in order]], tokenize="13a")
            assert run[which]["bleu4"] == pytest.approx(bleu.score, abs=0.01)
    means = {(v, c): statistics.mean(r[c]["bleu4"] for r in runs if r["variant"] == v)
             for v in ("base", "drop") for c in ("best", "avg5")}
    for row in summary:
        assert row["mean"] == pytest.approx(means[row["variant"], row["checkpoint"]])
        assert row["difference"] == pytest.approx(row["mean"] - means["base", row["checkpoint"]])
    assert "'dropout': 0.1," in (work / "drop" / "seed2" / "train.log").read_text()  # the variant's override
    assert "'dropout': 0.1," not in (work / "base" / "seed2" / "train.log").read_text()
    assert "baseline: 'base'" in first.stdout and "drop" in first.stdout
    trained = os.path.getmtime(work / "base" / "seed1" / "train.log")
    second = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert second.returncode == 0 and os.path.getmtime(work / "base" / "seed1" / "train.log") == trained
    assert json.loads((work / "results.json").read_text())["summary"] == summary
