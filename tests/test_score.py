"""slt-score: both BLEU tokenisations and ROUGE-L from a fairseq-generate output file."""

import json

import sacrebleu

from fairseq_slt.tools.score import main as score_main

REFS = ["am tag regnet es im norden.", "morgen gibt es sonne", "der wind weht kräftig, im süden auch"]
HYPS = ["am tag regnet es im norden .", "morgen sonne", "der wind weht kräftig im süden"]


def write_generate_output(path, refs=REFS, hyps=HYPS):
    lines = []
    for i, (r, h) in reversed(list(enumerate(zip(refs, hyps)))):  # fairseq prints in batch order, not id order
        lines += [f"S-{i}\tX Y", f"T-{i}\t{r}", f"H-{i}\t-0.5\t▁{h}", f"D-{i}\t-0.5\t{h}", f"P-{i}\t-0.1 -0.2"]
    path.write_text("\n".join(lines + ["Generate test with beam=5: BLEU4 = 0.00"]) + "\n", encoding="utf-8")


def test_scores_match_sacrebleu_under_each_tokenisation(tmp_path, capsys):
    write_generate_output(tmp_path / "gen.out")
    assert score_main([str(tmp_path / "gen.out"), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["sentences"] == 3
    for tok in ("13a", "none"):
        expected = sacrebleu.corpus_bleu(HYPS, [REFS], tokenize=tok).score
        assert abs(out["scores"][tok]["bleu4"] - round(expected, 2)) < 1e-6
        assert f"tok:{tok}" in out["scores"][tok]["signature"]
    # 13a splits "norden." and "kräftig," off their punctuation, 'none' does not: the numbers differ
    assert out["scores"]["13a"]["bleu4"] != out["scores"]["none"]["bleu4"]
    assert 0 < out["scores"]["none"]["rouge_l"] < 100


def test_text_output_names_the_signature(tmp_path, capsys):
    write_generate_output(tmp_path / "gen.out")
    assert score_main([str(tmp_path / "gen.out")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].endswith("3 sentences") and "tok:13a" in lines[1] and "tok:none" in lines[2]


def test_a_cut_short_file_is_refused(tmp_path, capsys):
    write_generate_output(tmp_path / "gen.out")
    text = (tmp_path / "gen.out").read_text().splitlines()
    (tmp_path / "cut.out").write_text("\n".join(l for l in text if not l.startswith("D-1\t")) + "\n")
    assert score_main([str(tmp_path / "cut.out")]) == 2
    assert "samples [1] have a reference but no 'D-' hypothesis" in capsys.readouterr().err
    (tmp_path / "empty.out").write_text("nothing\n")
    assert score_main([str(tmp_path / "empty.out")]) == 2
    assert "no 'T-<id>' reference lines" in capsys.readouterr().err
