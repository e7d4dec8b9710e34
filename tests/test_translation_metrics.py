"""The ``translation_metrics`` scorer: BLEU-1..4 against sacrebleu and a hand count, ROUGE-L by hand, the registry."""

import re

import pytest
import sacrebleu
from fairseq import options, scoring
from fairseq.data import Dictionary
from fairseq.dataclass.utils import convert_namespace_to_omegaconf

import slt_plugins  # noqa: F401  (registers the scorer)
from slt_plugins.scoring.translation_metrics import (
    TranslationMetricsConfig, TranslationMetricsScorer, lcs_length, rouge_l, rouge_l_sentence)

REFS = ["Am Tag regnet es im Norden, später auch im Süden.", "morgen scheint die sonne", "es bleibt windig!"]
HYPS = ["Am Tag regnet es im Süden, später auch im Norden.", "morgen scheint sonne", "es bleibt sehr windig !"]


def make_scorer(refs=REFS, hyps=HYPS, **overrides):
    scorer = TranslationMetricsScorer(TranslationMetricsConfig(**overrides))
    for ref, hyp in zip(refs, hyps):
        scorer.add_string(ref, hyp)
    return scorer


@pytest.mark.parametrize("tokenize", ["13a", "none"])
@pytest.mark.parametrize("lowercase", [False, True])
def test_bleu4_equals_sacrebleu(tokenize, lowercase):
    scorer = make_scorer(bleu_tokenize=tokenize, bleu_lowercase=lowercase)
    expected = sacrebleu.corpus_bleu(HYPS, [REFS], tokenize=tokenize, lowercase=lowercase).score
    assert scorer.score() == pytest.approx(expected)
    assert scorer.bleu(4).score == pytest.approx(expected)
    assert f"tok:{tokenize}" in scorer.result_string()
    assert ("case:lc" if lowercase else "case:mixed") in scorer.result_string()


def test_tokenizers_differ_and_bleu_n_decreases():
    # 13a splits "Norden," / "windig!" off their punctuation, none does not: different counts, different scores.
    assert make_scorer(bleu_tokenize="13a").score() != pytest.approx(make_scorer(bleu_tokenize="none").score())
    scores = make_scorer().scores()
    assert scores["bleu1"] >= scores["bleu2"] >= scores["bleu3"] >= scores["bleu4"] > 0


def test_bleu1_by_hand():
    """ref ``the cat sat on the mat``, hyp ``the cat sat on a mat``: 6 words each, so the brevity penalty is 1;
    clipped unigram matches the, cat, sat, on, mat = 5 of 6 → BLEU-1 = 5/6 = 83.33."""
    scorer = make_scorer(["the cat sat on the mat"], ["the cat sat on a mat"])
    assert scorer.bleu(1).score == pytest.approx(100 * 5 / 6)
    # BLEU-2 = sqrt(p1·p2), bigrams matched: "the cat", "cat sat", "sat on" = 3 of 5
    assert scorer.bleu(2).score == pytest.approx(100 * (5 / 6 * 3 / 5) ** 0.5)


def test_lcs_length():
    assert lcs_length("a b c d e".split(), "a c x e".split()) == 3
    assert lcs_length([], ["a"]) == 0
    assert lcs_length(list("ABCBDAB"), list("BDCABA")) == 4


def test_rouge_l_by_hand():
    """Pair 1: ref ``heute regnet es im norden stark`` (6 words), hyp ``im norden regnet es heute`` (5 words).
    A longest common subsequence is ``regnet es`` (or ``im norden``): LCS = 2.
    P = 2/5 = 0.4, R = 2/6 = 1/3, β = 1.2, β² = 1.44:
    F = (1 + 1.44)·0.4·(1/3) / (1/3 + 1.44·0.4) = 0.325333 / 0.909333 = 0.357771.
    Pair 2: identical, F = 1.  Corpus ROUGE-L = 100·(0.357771 + 1)/2 = 67.8886."""
    refs = ["heute regnet es im norden stark", "morgen sonne"]
    hyps = ["im norden regnet es heute", "morgen sonne"]
    f, p, r = rouge_l_sentence(hyps[0].split(), refs[0].split())
    assert (p, r) == pytest.approx((0.4, 1 / 3))
    assert f == pytest.approx(2.44 * 0.4 / 3 / (1 / 3 + 1.44 * 0.4)) and f == pytest.approx(0.357771, abs=1e-6)
    assert make_scorer(refs, hyps).rouge() == pytest.approx(100 * (0.357771 + 1) / 2, abs=1e-4)


def test_rouge_beta_options():
    """ref ``heute regnet es im ganzen norden`` (6), hyp ``heute es im norden`` (4): LCS 4, P = 1, R = 2/3.
    β = 1.2: F = 2.44·(2/3) / (2/3 + 1.44) = 0.772152;  β = P/R = 1.5 (``--rouge-beta 0``, SLRT's tf_seq2seq
    variant): F = 3.25·(2/3) / (2/3 + 2.25) = 0.742857;  β = 1: F1 = 2·(2/3) / (5/3) = 0.8."""
    ref, hyp = ["heute regnet es im ganzen norden"], ["heute es im norden"]
    assert make_scorer(ref, hyp).rouge() == pytest.approx(77.2152, abs=1e-4)
    assert make_scorer(ref, hyp, rouge_beta=0.0).rouge() == pytest.approx(74.2857, abs=1e-4)
    assert make_scorer(ref, hyp, rouge_beta=1.0).rouge() == pytest.approx(80.0)


def test_rouge_char_level_and_lowercase():
    # characters: ref 今天下雨 (4), hyp 今天 有 雨 (4 characters, spaces ignored): LCS 今天雨 = 3 → P = R = F = 3/4
    assert make_scorer(["今天下雨"], ["今天 有 雨"], rouge_tokenize="char").rouge() == pytest.approx(75.0)
    # case-sensitive, only "norden" matches of 3 words: P = R = F = 1/3; lower-cased, all match
    assert make_scorer(["Regen Im norden"], ["regen im norden"]).rouge() == pytest.approx(100 / 3)
    assert make_scorer(["Regen Im norden"], ["regen im norden"], rouge_lowercase=True).rouge() == pytest.approx(100)


def test_empty_hypotheses_and_empty_corpus():
    scorer = make_scorer(["the cat sat on the mat"], [""])
    assert scorer.score() == 0.0 and scorer.rouge() == 0.0
    assert rouge_l_sentence([], ["a"]) == (0.0, 0.0, 0.0)
    assert rouge_l([], []) == 0.0
    empty = make_scorer([], [])
    assert empty.score() == 0.0 and "ROUGE-L 0.00" in empty.result_string()
    # one empty hypothesis among good ones lowers the averages without crashing
    mixed = make_scorer(REFS + ["noch ein satz"], HYPS + [""])
    assert 0 < mixed.rouge() < make_scorer().rouge()


def test_result_string_format():
    line = make_scorer(bleu_tokenize="none").result_string()
    assert "\n" not in line
    match = re.fullmatch(r"BLEU-1 (\S+), BLEU-2 (\S+), BLEU-3 (\S+), BLEU-4 (\S+) \| ROUGE-L (\S+) \| (nrefs:1\|.*)",
                         line)
    assert match, line
    scorer = make_scorer(bleu_tokenize="none")
    assert float(match.group(4)) == pytest.approx(scorer.score(), abs=0.005)
    assert float(match.group(5)) == pytest.approx(scorer.rouge(), abs=0.005)
    assert "tok:none" in match.group(6)


def test_unknown_tokenizer_is_refused():
    with pytest.raises(ValueError, match="not a sacrebleu tokenizer"):
        TranslationMetricsScorer(TranslationMetricsConfig(bleu_tokenize="nonsense"))


def test_found_by_fairseq_registry():
    assert "translation_metrics" in scoring.SCORER_REGISTRY
    scorer = scoring.build_scorer("translation_metrics", Dictionary())
    assert isinstance(scorer, TranslationMetricsScorer) and scorer.cfg.bleu_tokenize == "13a"


def test_fairseq_generate_options_reach_the_scorer():
    """``--scoring translation_metrics --bleu-tokenize none --bleu-lowercase --rouge-beta 0`` as fairseq-generate
    parses them and builds its scorer (``scoring.build_scorer(cfg.scoring, tgt_dict)``)."""
    parser = options.get_generation_parser()
    args = options.parse_args_and_arch(parser, [
        "data", "--user-dir", "slt_plugins", "--path", "ckpt.pt", "--scoring", "translation_metrics",
        "--bleu-tokenize", "none", "--bleu-lowercase", "--rouge-beta", "0", "--rouge-tokenize", "char"])
    cfg = convert_namespace_to_omegaconf(args)
    scorer = scoring.build_scorer(cfg.scoring, Dictionary())
    assert isinstance(scorer, TranslationMetricsScorer)
    assert (scorer.cfg.bleu_tokenize, scorer.cfg.bleu_lowercase, scorer.cfg.rouge_beta) == ("none", True, 0.0)
    assert scorer.cfg.rouge_tokenize == "char"
    scorer.add_string("Es Regnet", "es regnet")
    assert "case:lc|eff:no|tok:none" in scorer.result_string()
