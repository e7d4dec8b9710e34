"""Translation metrics as the fairseq scorer ``translation_metrics``: BLEU-1..4 (sacrebleu) and ROUGE-L.

``fairseq-generate … --scoring translation_metrics`` feeds the scorer detokenised reference and hypothesis strings
(``add_string(ref, hyp)``) and prints ``result_string()``, one line::

    BLEU-1 53.20, BLEU-2 40.10, BLEU-3 32.00, BLEU-4 26.50 | ROUGE-L 52.80 | nrefs:1|case:mixed|eff:no|tok:13a|…

``score()`` is BLEU-4.

The scorer sees text only: with ``--task sign2text`` the task itself reports the WER of the glosses it recognised
(:mod:`slt_plugins.tasks.sign2text`).

BLEU: sacrebleu's corpus BLEU with ``max_ngram_order=n`` for n = 1..4, so that BLEU-n is the geometric mean of the
1..n-gram precisions times the brevity penalty (SLRT and signjoey report ``bleu1``..``bleu4`` from the per-order
scores of their vendored sacrebleu, with ``tokenize='none'``).
``--detach-final-period`` splits a hypothesis's final period off its last word, SLRT's German post-processing
(its references, Phoenix-2014T's, are written ``… regen .``); with ``--bleu-tokenize none`` that period is a word.
``--bleu-tokenize`` takes any sacrebleu tokenizer: ``13a`` (default, sacrebleu's), ``none`` (SLRT: text already
lower-cased and space-separated), ``zh`` (Chinese); ``--bleu-lowercase`` lower-cases both sides. The signature
printed is BLEU-4's, so the tokenisation and casing used go with the number. Smoothing is sacrebleu's default
(``exp``); SLRT's ``raw_corpus_bleu`` floors instead, which differs only when some n-gram order has no match in the
whole corpus.

ROUGE-L: the sentence-level, LCS-based F-score of the MS-COCO caption evaluation (coco-caption
``pycocoevalcap/rouge/rouge.py``, Lin 2004), as neccam/slt ``signjoey/metrics.py`` computes it (``rouge`` via
``external_metrics/mscoco_rouge``) and as FangyunWei/SLRT ``TwoStreamNetwork/utils/metrics.py`` keeps it in
``rouge_deprecated`` ("beta 1.2"). It is the default because it is the documented, fixed-β definition behind the
signjoey numbers that SLRT's tables compare with. Per sentence pair, with tokens split on whitespace::

    P = LCS(hyp, ref) / |hyp|,   R = LCS(hyp, ref) / |ref|,   F = (1 + β²)·P·R / (R + β²·P),   β = 1.2

(F = 0 when P or R is 0, so an empty hypothesis scores 0); the corpus score is the mean F over sentences × 100.
``--rouge-beta`` changes β; ``--rouge-beta 0`` instead takes β = P/R per sentence, the variant of the
tf_seq2seq ROUGE module that FangyunWei/SLRT ``TwoStreamNetwork/utils/metrics.py`` (``rouge`` →
``utils/external_metrics/Rouge.py``, ``_f_p_r_lcs``) calls today; the two differ whenever P ≠ R. ``--rouge-tokenize
char`` scores characters instead of words (SLRT's ``level='char'``, used for Chinese). ``--rouge-lowercase``
lower-cases both sides first. The implementation here is written from the definition, not taken from either
repository.
"""

from dataclasses import dataclass, field
from typing import List, Sequence, Tuple

from fairseq.dataclass import ChoiceEnum, FairseqDataclass
from fairseq.scoring import BaseScorer, register_scorer


def lcs_length(a: Sequence[str], b: Sequence[str]) -> int:
    """Length of the longest common subsequence of two token sequences (O(|a|·|b|) time, O(|b|) memory)."""
    if len(a) < len(b):
        a, b = b, a
    row = [0] * (len(b) + 1)
    for x in a:
        diagonal = 0  # row[j - 1] of the previous row
        for j, y in enumerate(b, start=1):
            above = row[j]
            row[j] = diagonal + 1 if x == y else max(above, row[j - 1])
            diagonal = above
    return row[-1]


def rouge_l_sentence(hyp: Sequence[str], ref: Sequence[str], beta: float = 1.2) -> Tuple[float, float, float]:
    """(F, P, R) of ROUGE-L for one tokenised sentence pair, each in 0..1; ``beta <= 0`` means β = P/R."""
    if not hyp or not ref:
        return 0.0, 0.0, 0.0
    common = lcs_length(hyp, ref)
    precision, recall = common / len(hyp), common / len(ref)
    if precision == 0.0 or recall == 0.0:
        return 0.0, precision, recall
    b2 = (precision / recall) ** 2 if beta <= 0 else beta ** 2
    return (1 + b2) * precision * recall / (recall + b2 * precision), precision, recall


def rouge_l(hyps: Sequence[Sequence[str]], refs: Sequence[Sequence[str]], beta: float = 1.2) -> float:
    """Mean sentence-level ROUGE-L F over the corpus, × 100 (0 for an empty corpus)."""
    assert len(hyps) == len(refs), (len(hyps), len(refs))
    if not hyps:
        return 0.0
    return 100.0 * sum(rouge_l_sentence(h, r, beta)[0] for h, r in zip(hyps, refs)) / len(hyps)


def detach_final_period(text: str) -> str:
    """``… regen.`` → ``… regen .``: what SLRT's text tokenizer does to German hypotheses (longer than 2
    characters) after sentencepiece decoding."""
    if len(text) > 2 and text[-1] == "." and text[-2] != " ":
        return text[:-1] + " ."
    return text


@dataclass
class TranslationMetricsConfig(FairseqDataclass):
    bleu_tokenize: str = field(
        default="13a",
        metadata={"help": "sacrebleu tokenizer for BLEU: 13a (sacrebleu's default), none (SLRT: text already "
                          "space-separated), zh (Chinese), intl, char, …"},
    )
    bleu_lowercase: bool = field(default=False, metadata={"help": "lower-case references and hypotheses for BLEU"})
    rouge_beta: float = field(
        default=1.2,
        metadata={"help": "β of the ROUGE-L F-score (1.2: MS-COCO / signjoey); 0: β = P/R per sentence, the "
                          "tf_seq2seq variant in SLRT TwoStreamNetwork"},
    )
    rouge_tokenize: ChoiceEnum(["space", "char"]) = field(
        default="space", metadata={"help": "ROUGE-L units: whitespace-separated words, or characters (Chinese)"}
    )
    rouge_lowercase: bool = field(default=False, metadata={"help": "lower-case both sides before ROUGE-L"})
    detach_final_period: bool = field(default=False, metadata={
        "help": "SLRT's German post-processing of hypotheses: a final period glued to the last word ('regen.') is "
                "split off ('regen .'), as Phoenix-2014T's references write it; before BLEU and ROUGE-L"})


@register_scorer("translation_metrics", dataclass=TranslationMetricsConfig)
class TranslationMetricsScorer(BaseScorer):
    """Corpus BLEU-1..4 (sacrebleu) and sentence-averaged ROUGE-L over detokenised strings; ``score()`` = BLEU-4."""

    ORDERS = (1, 2, 3, 4)

    def __init__(self, cfg: TranslationMetricsConfig):
        super().__init__(cfg)
        from sacrebleu.metrics import BLEU

        tokenize = str(cfg.bleu_tokenize)
        if tokenize not in BLEU.TOKENIZERS:
            raise ValueError(f"--bleu-tokenize {tokenize!r}: not a sacrebleu tokenizer ({', '.join(BLEU.TOKENIZERS)})")
        self.bleus = {n: BLEU(tokenize=tokenize, lowercase=bool(cfg.bleu_lowercase), max_ngram_order=n)
                      for n in self.ORDERS}

    def add_string(self, ref: str, pred: str):
        if self.cfg.detach_final_period:
            pred = detach_final_period(pred)
        super().add_string(ref, pred)

    def _rouge_tokens(self, text: str) -> List[str]:
        if self.cfg.rouge_lowercase:
            text = text.lower()
        if str(self.cfg.rouge_tokenize) == "char":
            return [c for c in text if not c.isspace()]
        return text.split()

    def bleu(self, order: int = 4):
        """sacrebleu's ``BLEUScore`` of order ``order`` (all zeros, no crash, before any sentence was added)."""
        if not self.pred:  # sacrebleu refuses an empty corpus
            return self.bleus[order].compute_bleu([0] * order, [0] * order, 0, 0, max_ngram_order=order)
        return self.bleus[order].corpus_score(list(self.pred), [list(self.ref)])

    def rouge(self) -> float:
        hyps = [self._rouge_tokens(h) for h in self.pred]
        refs = [self._rouge_tokens(r) for r in self.ref]
        return rouge_l(hyps, refs, float(self.cfg.rouge_beta))

    def scores(self) -> dict:
        out = {f"bleu{n}": self.bleu(n).score for n in self.ORDERS}
        out["rouge_l"] = self.rouge()
        return out

    def score(self) -> float:
        return self.bleu(4).score

    def result_string(self) -> str:
        bleu = ", ".join(f"BLEU-{n} {self.bleu(n).score:.2f}" for n in self.ORDERS)
        # BLEU-4 was scored last above: sacrebleu knows its signature (the number of references) only after scoring
        signature = self.bleus[4].get_signature() if self.pred else "no sentences scored"
        return f"{bleu} | ROUGE-L {self.rouge():.2f} | {signature}"
