"""The Phoenix gloss clean-up: each rule, idempotence, and the fairseq tokenizer feeding fairseq's WER scorer."""

import random
from argparse import Namespace

import pytest
from fairseq import options, scoring
from fairseq.data import Dictionary, encoders
from fairseq.dataclass.utils import convert_namespace_to_omegaconf

from slt_plugins.scoring.phoenix_cleanup import clean_phoenix_2014, clean_phoenix_2014t


@pytest.mark.parametrize("raw, clean", [
    ("__ON__ MORGEN __EMOTION__ REGEN __OFF__", "MORGEN REGEN"),  # every __…__ marker goes
    ("__LEFTHAND__ NORD __EPENTHESIS__ __PU__ SUED", "NORD SUED"),
    ("loc-REGION cl-KOMMEN", "REGION KOMMEN"),  # prefixes
    ("neg-HABEN SONNE", "neg-HABEN SONNE"),  # other prefixes stay
    ("WOLKE-PLUSPLUS REGEN", "WOLKE REGEN"),  # suffix
    ("WALDRAUM RAUM", "WALD RAUM"),  # RAUM after a stem goes, RAUM alone stays
    ("WIE AUSSEHEN MORGEN", "WIE-AUSSEHEN MORGEN"),
    ("A B C D MORGEN", "A+B+C+D MORGEN"),  # fingerspelling joined, the whole run
    ("E+R Z", "E+R+Z"),
    ("SCH H", "SCH+H"), ("G+U NN E", "G+U+NN+E"),  # SCH/NN before a letter, a letter before NN
    ("SCH SCH", "SCH"), ("A SCH", "A SCH"),  # not a spelled seam: a repeat is collapsed, the rest stays
    ("ICH ICH ICH REGEN neg-HABEN neg-HABEN", "ICH REGEN neg-HABEN"),  # repetitions
    ("X+REGEN REGEN", "X+REGEN"), ("MORGEN MORGEN+WIND", "MORGEN+WIND"),  # across a + seam
    ("  MORGEN   REGEN ", "MORGEN REGEN"), ("", ""),
])
def test_phoenix_2014t_rules(raw, clean):
    assert clean_phoenix_2014t(raw) == clean


@pytest.mark.parametrize("raw, clean", [
    ("loc-REGION cl-KOMMEN qu-WAS poss-SEIN lh-MORGEN", "REGION KOMMEN WAS SEIN MORGEN"),
    ("S0NNE HABEN2", "SONNE HABEN"),
    ("__ON__ __EMOTION__ MORGEN __PU__ __LEFTHAND__ __EPENTHESIS__ __OFF__", "__ON__ MORGEN __OFF__"),
    ("WIE AUSSEHEN ZEIGEN", "WIE-AUSSEHEN ZEIGEN-BILDSCHIRM"),
    ("ZEIGEN ZEIGEN-BILDSCHIRM", "ZEIGEN-BILDSCHIRM"),
    ("WALDRAUM ARAUM WOLKE-PLUSPLUS", "WALD ARAUM WOLKE"),  # RAUM only after two capitals
    ("A B C", "A+B+C"), ("ICH ICH", "ICH"),
])
def test_phoenix_2014_rules(raw, clean):
    assert clean_phoenix_2014(raw) == clean


TRIGGERS = ["__ON__", "__OFF__", "__EMOTION__", "__LEFTHAND__", "__EPENTHESIS__", "__PU__", "loc-REGION",
            "cl-KOMMEN", "qu-WAS", "poss-SEIN", "lh-X", "WOLKE-PLUSPLUS", "X-PLUSPLUS", "WALDRAUM", "RAUM", "WIE",
            "AUSSEHEN", "ZEIGEN", "ZEIGEN-BILDSCHIRM", "S0NNE", "HABEN2", "A", "B", "E+R", "SCH", "NN", "ICH",
            "neg-HABEN", "MORGEN", "REGEN"]


@pytest.mark.parametrize("clean", [clean_phoenix_2014t, clean_phoenix_2014])
def test_cleanup_is_idempotent(clean):
    rng = random.Random(0)
    for _ in range(2000):
        once = clean(" ".join(rng.choices(TRIGGERS, k=rng.randint(1, 12))))
        assert clean(once) == once


def test_registered_as_a_fairseq_tokenizer():
    tokenizer = encoders.build_tokenizer(Namespace(tokenizer="phoenix_gloss_cleanup"))
    assert tokenizer.encode("loc-REGION ICH ICH") == "loc-REGION ICH ICH"
    assert tokenizer.decode("loc-REGION ICH ICH __OFF__") == "REGION ICH"
    tokenizer = encoders.build_tokenizer(Namespace(tokenizer="phoenix_gloss_cleanup", phoenix_variant="phoenix-2014"))
    assert tokenizer.decode("ZEIGEN __OFF__") == "ZEIGEN-BILDSCHIRM __OFF__"


def test_fairseq_generate_options_reach_the_tokenizer():
    """``--tokenizer phoenix_gloss_cleanup --phoenix-variant …`` as fairseq-generate parses and builds them."""
    parser = options.get_generation_parser()
    args = options.parse_args_and_arch(parser, [
        "data", "--user-dir", "slt_plugins", "--path", "ckpt.pt", "--scoring", "wer",
        "--tokenizer", "phoenix_gloss_cleanup", "--phoenix-variant", "phoenix-2014"])
    cfg = convert_namespace_to_omegaconf(args)
    assert encoders.build_tokenizer(cfg.tokenizer).decode("S0NNE ZEIGEN") == "SONNE ZEIGEN-BILDSCHIRM"


def test_wer_after_cleanup_matches_a_hand_count():
    """ref MORGEN REGEN NORD WIND, hyp MORGEN SONNE NORD: one substitution, one deletion → 2 / 4 = 50 %."""
    tokenizer = encoders.build_tokenizer(Namespace(tokenizer="phoenix_gloss_cleanup"))
    scorer = scoring.build_scorer("wer", Dictionary())
    ref, hyp = "MORGEN REGEN loc-NORD WIND __OFF__", "__ON__ MORGEN SONNE NORD NORD"
    scorer.add_string(tokenizer.decode(ref), tokenizer.decode(hyp))
    assert scorer.score() == pytest.approx(50.0)
    raw = scoring.build_scorer("wer", Dictionary())
    raw.add_string(ref, hyp)
    assert raw.score() == pytest.approx(100.0)  # uncleaned: __ON__ inserted, 3 substituted, __OFF__ deleted
