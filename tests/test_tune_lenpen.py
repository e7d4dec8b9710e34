"""slt-tune-lenpen: reranking one n-best decode under other length penalties, and the cross-fitted dev score."""

import json
import re

from conftest import run_script
from test_fairseq_cli import write_toy_corpus
from fairseq_slt.tools.score import main as score_main
from fairseq_slt.tools.tune_lenpen import main as tune_main, rank, read_nbest

# per sentence: (reference, short hypothesis, long hypothesis). Short: 3 tokens with </s>, log2-prob -1.5; long: 8
# tokens, -6. Ranked by log-prob / length^lenpen, the short one wins below lenpen ln 4 / ln(8/3) = 1.41, the long
# one from there on.
SHORT_WINS, LONG_WINS = ("es regnet", "es regnet", "morgen im norden regen und wind aus west"), \
    ("morgen im süden sonne und wind aus ost", "morgen sonne", "morgen im süden sonne und wind aus ost")


def nbest_file(path, sentences, decoded_lenpen=1.0):
    lines = []
    for i, (ref, short, long) in enumerate(sentences):
        lines += [f"S-{i}\tX", f"T-{i}\t{ref}"]
        for text, lp, n in sorted(((short, -1.5, 3), (long, -6.0, 8)), key=lambda h: -h[1] / h[2] ** decoded_lenpen):
            score = lp / n ** decoded_lenpen
            positional = " ".join([f"{lp / n:.4f}"] * n)
            lines += [f"H-{i}\t{score}\t{text}", f"D-{i}\t{score}\t{text}", f"P-{i}\t{positional}"]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def tune_json(path, capsys, *extra):
    assert tune_main([str(path), "--json", *extra]) == 0
    return json.loads(capsys.readouterr().out)


def test_the_grid_reranks_and_the_best_lenpen_is_the_smallest_with_the_top_score(tmp_path, capsys):
    nbest_file(tmp_path / "gen.out", [LONG_WINS] * 4)
    out = tune_json(tmp_path / "gen.out", capsys)
    grid = {r["lenpen"]: r for r in out["grid"]}
    assert grid[1.0]["bleu4"] < 20 and grid[1.0]["bp"] < 0.5  # the short 1-best of fairseq's default
    assert grid[1.25]["bleu4"] == grid[1.0]["bleu4"] and round(grid[1.5]["bleu4"], 6) == 100 == round(
        grid[3.0]["bleu4"], 6)
    assert out["best_lenpen"] == 1.5  # of the grid points at 100, the nearest to the default 1.0
    assert out["fold_lenpens"] == [1.5, 1.5] and out["cross_fitted"]["13a"]["bleu4"] == 100


def test_each_half_is_ranked_with_the_lenpen_the_other_half_prefers(tmp_path, capsys):
    """Even ids want long hypotheses, odd ids short ones: cross-fitting must get every sentence wrong, since no
    sentence's lenpen may come from its own reference, while the in-sample grid gets half of them right."""
    nbest_file(tmp_path / "gen.out", [LONG_WINS, SHORT_WINS] * 3)
    out = tune_json(tmp_path / "gen.out", capsys, "--write", str(tmp_path / "xfit.gen"))
    assert out["fold_lenpens"] == [1.0, 1.5]  # even ids get the odd half's choice, odd ids the even half's
    assert max(r["bleu4"] for r in out["grid"]) > out["cross_fitted"]["13a"]["bleu4"]
    xfit = (tmp_path / "xfit.gen").read_text(encoding="utf-8")
    assert f"D-0\t0\t{LONG_WINS[1]}\n" in xfit and f"D-1\t0\t{SHORT_WINS[2]}\n" in xfit
    assert score_main([str(tmp_path / "xfit.gen"), "--json"]) == 0  # slt-score reads what --write wrote
    assert json.loads(capsys.readouterr().out)["scores"]["13a"]["bleu4"] == out["cross_fitted"]["13a"]["bleu4"]


def test_a_file_decoded_with_another_lenpen_needs_it_named(tmp_path, capsys):
    nbest_file(tmp_path / "gen.out", [LONG_WINS] * 2, decoded_lenpen=2.0)
    assert tune_main([str(tmp_path / "gen.out")]) == 2
    assert "pass the --lenpen the file was decoded with as --decoded-lenpen" in capsys.readouterr().err
    assert tune_json(tmp_path / "gen.out", capsys, "--decoded-lenpen", "2")["best_lenpen"] == 1.5


def test_unusable_files_say_how_to_decode(tmp_path, capsys):
    nbest_file(tmp_path / "gen.out", [LONG_WINS] * 2)
    text = (tmp_path / "gen.out").read_text().splitlines()
    (tmp_path / "quiet.out").write_text("\n".join(l for l in text if not l.startswith("P-")) + "\n")
    assert tune_main([str(tmp_path / "quiet.out")]) == 2
    assert "lack their 'P-' line" in capsys.readouterr().err
    (tmp_path / "one.out").write_text("\n".join(text[:5] + text[8:13]) + "\n")  # the 1-best of each sentence only
    assert tune_main([str(tmp_path / "one.out")]) == 2
    assert "decode with --nbest equal to --beam" in capsys.readouterr().err
    assert tune_main([str(tmp_path / "missing.out")]) == 2
    assert "missing.out" in capsys.readouterr().err


def test_one_nbest_decode_gives_what_fairseq_generate_gives_under_each_lenpen(tmp_path):
    """The premise: --lenpen only ranks the finished hypotheses. A briefly trained translator (unsure of lengths)
    decodes dev once with --nbest, and its reranking must equal fairseq-generate's own 1-best at lenpen 0 and 3."""
    write_toy_corpus(tmp_path / "corpus.tsv", n_train=64, n_dev=24)
    data, save = tmp_path / "bin", tmp_path / "ckpt"
    run_script("slt-binarise", "tsv", "--manifest", tmp_path / "corpus.tsv", "--out", data, "--text-vocab-size", "40")
    run_script("fairseq-train", data, "--user-dir", "slt_plugins", "--task", "gloss2text", "--arch",
               "mbart_translator_tiny", "--criterion", "label_smoothed_cross_entropy", "--optimizer", "adam", "--lr",
               "3e-3", "--batch-size", "16", "--max-epoch", "10", "--valid-subset", "dev", "--save-dir", save,
               "--no-progress-bar", "--num-workers", "0", "--seed", "1", "--no-epoch-checkpoints")
    generate = ["fairseq-generate", data, "--user-dir", "slt_plugins", "--task", "gloss2text", "--path",
                save / "checkpoint_last.pt", "--gen-subset", "dev", "--beam", "4", "--num-workers", "0"]

    direct = {lenpen: dict(re.findall(r"^D-(\d+)\t\S+\t(.*)$", run_script(*generate, "--lenpen", str(lenpen)).stdout,
                                      flags=re.M)) for lenpen in (0, 3)}
    assert direct[0] != direct[3]  # the penalty matters for this model: the comparison below is not vacuous
    (tmp_path / "nbest.out").write_text(run_script(*generate, "--nbest", "4").stdout, encoding="utf-8")
    samples = read_nbest(str(tmp_path / "nbest.out"))
    assert len(samples) == 24 and all(len(s.texts) == 4 for s in samples.values())
    for lenpen, best in direct.items():
        assert {str(i): rank(s, lenpen) for i, s in samples.items()} == best
