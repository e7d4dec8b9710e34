"""The seeded unigram segmentation sampler draws sentencepiece's subword-regularisation distribution exactly."""

import collections
import itertools
import math
import os
import random

import numpy as np
import pytest
import sentencepiece as spm

from slt_plugins.data.subword_sampling import UnigramSegmentSampler

WORDS = ["morgen", "gibt", "es", "im", "norden", "süden", "regen", "sonne", "wind", "wechselnd", "bewölkt", "und"]


def train_spm(folder, model_type, sentences, vocab_size):
    corpus = folder / "text.txt"
    corpus.write_text("\n".join(sentences) + "\n", encoding="utf-8")
    prefix = folder / model_type
    spm.SentencePieceTrainer.train(input=str(corpus), model_prefix=str(prefix), vocab_size=vocab_size,
                                   model_type=model_type, hard_vocab_limit=False, minloglevel=2)
    return str(prefix) + ".model"


@pytest.fixture(scope="module")
def model(tmp_path_factory, shared_data):
    """A unigram model of the real Phoenix-2014T training translations, at a small vocabulary: many pieces overlap,
    so a sentence has hundreds of segmentations."""
    with open(os.path.join(shared_data, "phoenix-2014t", "PHOENIX-2014-T.train.corpus.csv"), encoding="utf-8") as f:
        texts = [row.rstrip("\n").split("|")[-1] for row in f][1:]
    return train_spm(tmp_path_factory.mktemp("spm"), "unigram", texts, 500)


def exact_distribution(sampler, text):
    """Every segmentation of the normalised text, enumerated, with probability ∝ exp(α · sum of piece scores)."""
    s = sampler.sp.normalize(text)

    def segmentations(begin):
        if begin == len(s):
            yield (), 0.0
        for end in range(begin + 1, len(s) + 1):
            hit = sampler.pieces.get(s[begin:end])
            if hit is not None:
                for rest, score in segmentations(end):
                    yield (hit[0],) + rest, hit[1] + score

    weights = {ids: math.exp(sampler.alpha * score) for ids, score in segmentations(0)}
    total = sum(weights.values())
    return {ids: w / total for ids, w in weights.items()}


def total_variation(p, counts, top=15):
    """Total variation distance between ``p`` and the draws' frequencies over p's ``top`` likeliest segmentations
    and one bin for all the others (so the sampling noise stays small however many segmentations there are)."""
    n = sum(counts.values())
    likeliest = sorted(p, key=p.get, reverse=True)[:top]
    gaps = [abs(p[k] - counts.get(k, 0) / n) for k in likeliest]
    rest = abs((1 - sum(p[k] for k in likeliest)) - (n - sum(counts.get(k, 0) for k in likeliest)) / n)
    return 0.5 * (sum(gaps) + rest)


@pytest.mark.parametrize("alpha", [0.1, 0.5])
def test_draws_follow_the_exact_distribution_and_sentencepieces_own(model, alpha):
    """Forward-filtering backward-sampling gives each segmentation its exact probability; sentencepiece's own
    ``enable_sampling`` draws the same distribution (so the two samplers are interchangeable, bar the seed)."""
    sampler = UnigramSegmentSampler(model, alpha)
    text = "am tag im norden regen"
    exact = exact_distribution(sampler, text)
    assert len(exact) > 20  # a real choice, not a handful of cuts
    rng, n = np.random.default_rng(0), 20000
    ours = collections.Counter(tuple(sampler.sample(text, rng)) for _ in range(n))
    theirs = collections.Counter(tuple(sampler.sp.encode(text, enable_sampling=True, alpha=alpha, nbest_size=-1))
                                 for _ in range(n))
    assert total_variation(exact, ours) < 0.025
    assert total_variation(exact, theirs) < 0.025
    # and a wrong α is told apart at this sample size
    assert total_variation(exact_distribution(UnigramSegmentSampler(model, alpha * 2), text), ours) > 0.05


def test_a_sharp_alpha_gives_sentencepieces_best_segmentation(model):
    """As α grows the draw concentrates on the Viterbi path: sentencepiece's ``encode``. A character no piece covers
    is an <unk> piece of its own (sentencepiece's encode then merges a run of them; a training target holding <unk>
    falls back to the best segmentation anyway)."""
    sampler = UnigramSegmentSampler(model, 1000.0)
    rng = np.random.default_rng(0)
    for text in [" ".join(words) for words in itertools.permutations(WORDS[:5], 3)] + ["ß"]:
        assert sampler.sample(text, rng) == sampler.sp.encode(text), text
    cut = sampler.sample("regen ☃§☃", rng)
    assert cut[-3:] == [sampler.sp.unk_id()] * 3 and sampler.sp.unk_id() not in cut[:-3]


def test_the_same_generator_state_gives_the_same_cut(model):
    sampler = UnigramSegmentSampler(model, 0.3)
    text = "morgen gibt es im süden wind und sonne"
    cuts = [sampler.sample(text, np.random.default_rng([1, epoch, 7])) for epoch in range(1, 9)]
    assert cuts == [sampler.sample(text, np.random.default_rng([1, epoch, 7])) for epoch in range(1, 9)]
    assert len({tuple(c) for c in cuts}) > 1
    assert all("".join(sampler.sp.id_to_piece(i) for i in c) == sampler.sp.normalize(text) for c in cuts)
    assert sampler.sample("", np.random.default_rng(0)) == []


def test_bpe_models_and_a_zero_alpha_are_refused(tmp_path, model):
    rng = random.Random(0)
    bpe = train_spm(tmp_path, "bpe", [" ".join(rng.choices(WORDS, k=6)) for _ in range(300)], 30)
    with pytest.raises(ValueError, match=r"bpe.model is not a unigram sentencepiece model"):
        UnigramSegmentSampler(bpe, 0.3)
    with pytest.raises(ValueError, match="must be positive"):
        UnigramSegmentSampler(model, 0.0)
