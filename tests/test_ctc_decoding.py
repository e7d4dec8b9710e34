"""CTC decoding: greedy, prefix beam search against brute force, and the generator fairseq-generate drives."""

import itertools
import math

import pytest
import torch
import torch.nn.functional as F
from fairseq import utils
from fairseq.data import Dictionary
from fairseq_cli.generate import get_symbols_to_strip_from_output

from slt_plugins.decoding.ctc_decoder import CTCSequenceGenerator, ctc_greedy, ctc_prefix_beam_search

BLANK = 0


def frames(*rows):
    """T×V log-probabilities from rows of probabilities."""
    return torch.tensor(rows, dtype=torch.float).log()


def random_log_probs(n_frames, vocab, seed):
    return F.log_softmax(torch.randn(n_frames, vocab, generator=torch.Generator().manual_seed(seed)) * 2, dim=-1)


def collapse(path):
    return tuple(label for label, _ in itertools.groupby(path) if label != BLANK)


def brute_force(log_probs):
    """log p(labels) for every label sequence, summed over all V^T alignments."""
    n_frames, vocab = log_probs.shape
    totals = {}
    for path in itertools.product(range(vocab), repeat=n_frames):
        score = sum(log_probs[t, s].item() for t, s in enumerate(path))
        totals.setdefault(collapse(path), []).append(score)
    return {labels: torch.logsumexp(torch.tensor(scores), 0).item() for labels, scores in totals.items()}


def sequence_log_prob(log_probs, labels):
    """log p(labels) by torch's CTC forward algorithm."""
    if not labels:
        return log_probs[:, BLANK].sum().item()
    return -F.ctc_loss(log_probs.unsqueeze(1), torch.tensor([labels]), [log_probs.size(0)], [len(labels)],
                       blank=BLANK, reduction="sum").item()


def test_greedy_collapses_repeats_and_drops_blanks():
    lp = frames([0.1, 0.8, 0.1], [0.1, 0.8, 0.1], [0.8, 0.1, 0.1], [0.1, 0.8, 0.1], [0.2, 0.1, 0.7],
                [0.9, 0.05, 0.05])
    assert ctc_greedy(lp, BLANK) == [1, 1, 2]
    assert ctc_greedy(lp, blank=2) == [1, 0, 1, 0]  # another blank index is honoured


@pytest.mark.parametrize("seed", range(4))
def test_prefix_beam_search_is_exact_without_pruning(seed):
    lp = random_log_probs(5, 3, seed)
    exact = sorted(brute_force(lp).items(), key=lambda kv: kv[1], reverse=True)
    nbest = ctc_prefix_beam_search(lp, beam=3 ** 5, blank=BLANK, prune_topk=3)
    assert [tuple(labels) for labels, _ in nbest] == [labels for labels, _ in exact]
    assert [score for _, score in nbest] == pytest.approx([score for _, score in exact], abs=1e-5)
    assert math.fsum(math.exp(score) for _, score in nbest) == pytest.approx(1.0, abs=1e-5)


def test_a_small_beam_finds_the_best_sequence_with_a_lower_bound_of_its_score():
    lp = random_log_probs(5, 3, seed=7)
    best, score = max(brute_force(lp).items(), key=lambda kv: kv[1])
    labels, beam_score = ctc_prefix_beam_search(lp, beam=4, blank=BLANK)[0]
    assert tuple(labels) == best and score - 0.01 < beam_score <= score + 1e-6


def test_a_repeated_label_needs_a_blank_in_between():
    a = [0.02, 0.96, 0.02]
    held = frames(a, a, a)  # "a" held for three frames: one gloss
    split = frames(a, [0.96, 0.02, 0.02], a)  # a blank in between: two glosses
    assert ctc_greedy(held, BLANK) == [1] and ctc_greedy(split, BLANK) == [1, 1]
    assert ctc_prefix_beam_search(held, beam=5, blank=BLANK)[0][0] == [1]
    assert ctc_prefix_beam_search(split, beam=5, blank=BLANK)[0][0] == [1, 1]
    for lp in (held, split):
        for labels, score in ctc_prefix_beam_search(lp, beam=27, blank=BLANK, prune_topk=3):
            assert score == pytest.approx(sequence_log_prob(lp, labels), abs=1e-4)


@pytest.mark.parametrize("seed", range(5))
def test_beam_search_beats_greedy(seed):
    """The beam sums paths, greedy takes the single best one: the beam's score is at least that path's, and at
    most the exact probability of its own sequence (mass of prefixes that left the beam is lost)."""
    logits = torch.randn(40, 12, generator=torch.Generator().manual_seed(seed)) * 8
    logits[:, BLANK] += 4  # peaky and blank-dominated, as a trained CTC model's output
    lp = F.log_softmax(logits, dim=-1)
    labels, score = ctc_prefix_beam_search(lp, beam=5, blank=BLANK)[0]
    assert lp.max(dim=-1).values.sum().item() - 1e-4 <= score <= sequence_log_prob(lp, labels) + 1e-4
    assert sequence_log_prob(lp, labels) >= sequence_log_prob(lp, ctc_greedy(lp, BLANK)) - 1e-4


def test_nbest_is_sorted_and_distinct():
    nbest = ctc_prefix_beam_search(random_log_probs(30, 8, seed=1), beam=6, blank=BLANK)
    scores = [s for _, s in nbest]
    assert len(nbest) == 6 and scores == sorted(scores, reverse=True)
    assert len({tuple(labels) for labels, _ in nbest}) == 6


class FixedCTCModel(torch.nn.Module):
    """Stands in for a sign encoder: fixed T×B×V logits and a padding mask, whatever the input."""

    def __init__(self, logits, padding_mask):
        super().__init__()
        self.logits, self.padding_mask = logits, padding_mask

    def forward(self, **net_input):
        return {"encoder_out": self.logits, "padding_mask": self.padding_mask}

    def get_normalized_probs(self, net_output, log_probs):
        return F.log_softmax(net_output["encoder_out"].float(), dim=-1)


@pytest.fixture
def gloss_dict():
    d = Dictionary()  # <s> = 0 is the blank, as in sign2gloss
    for gloss in ("MORGEN", "REGEN", "SONNE"):
        d.add_symbol(gloss)
    return d


def one_hot_logits(paths, vocab):
    """T×B×V logits that make each utterance's frames emit the given labels almost surely."""
    return F.one_hot(torch.tensor(paths).t(), vocab).float() * 20


@pytest.mark.parametrize("beam", [1, 4])
def test_generator_honours_lengths_and_returns_fairseq_hypotheses(gloss_dict, beam):
    morgen, regen, sonne = (gloss_dict.index(g) for g in ("MORGEN", "REGEN", "SONNE"))
    logits = one_hot_logits([[morgen, 0, regen, sonne, sonne], [sonne, sonne, 0, morgen, regen]], len(gloss_dict))
    padding = torch.tensor([[False, False, False, True, True], [False] * 5])  # utterance 0: SONNE only in padding
    generator = CTCSequenceGenerator(gloss_dict, beam=beam, nbest=2)
    hypos = generator.generate([FixedCTCModel(logits, padding)], {"net_input": {"features": None}})

    assert len(hypos) == 2 and all(len(h) == (1 if beam == 1 else 2) for h in hypos)
    strip = get_symbols_to_strip_from_output(generator)
    for hypos_i, expected in zip(hypos, ["MORGEN REGEN", "SONNE MORGEN REGEN"]):
        best = hypos_i[0]
        assert set(best) == {"tokens", "score", "positional_scores", "attention", "alignment"}
        assert best["tokens"].dtype == torch.long and isinstance(best["score"], float)
        assert best["positional_scores"].shape == best["tokens"].shape
        assert best["positional_scores"].sum().item() == pytest.approx(best["score"], abs=1e-5)
        _, hypo_str, _ = utils.post_process_prediction(  # as fairseq-generate turns a hypothesis into text
            hypo_tokens=best["tokens"].int().cpu(), src_str="", alignment=best["alignment"], align_dict=None,
            tgt_dict=gloss_dict, remove_bpe=None, extra_symbols_to_ignore=strip)
        assert hypo_str == expected
    if beam > 1:
        assert hypos[0][0]["score"] >= hypos[0][1]["score"]


def test_generator_without_padding_mask_reads_every_frame(gloss_dict):
    regen = gloss_dict.index("REGEN")
    logits = one_hot_logits([[regen, 0, regen]], len(gloss_dict))
    (hypos,) = CTCSequenceGenerator(gloss_dict).generate([FixedCTCModel(logits, None)], {"net_input": {}})
    assert hypos[0]["tokens"].tolist() == [regen, regen]
