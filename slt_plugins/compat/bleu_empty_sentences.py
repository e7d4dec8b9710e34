"""fairseq's C BLEU scorer (``--scoring bleu``, fairseq-generate's default) on an empty sentence.

Fixes: the C code reads through a null pointer when a hypothesis or reference is empty, and the process dies with a
segmentation fault: an undertrained model that emits nothing (CTC decoding often does) crashed fairseq-generate.
When either side is empty we count it in Python as the C code counts a sentence pair: the lengths of both sides and
the other side's n-grams as candidates, no matches.

Versions: fairseq 0.12.x (``fairseq/clib/libbleu/libbleu.cpp``).
Removable when: ``tests/test_compat.py::test_fairseqs_c_bleu_scorer_takes_empty_sentences`` passes in a process
that imports fairseq without this module.
"""


def add_empty_safe(add):
    def wrapper(self, ref, pred):
        if ref.numel() and pred.numel():
            return add(self, ref, pred)
        reflen, predlen = (int(((t != self.pad) & (t != self.eos)).sum()) for t in (ref, pred))
        self.stat.reflen += reflen
        self.stat.predlen += predlen
        for n in range(1, 5):  # a pair with an empty side has candidate n-grams but no matches
            setattr(self.stat, f"count{n}", getattr(self.stat, f"count{n}") + max(predlen - n + 1, 0))

    wrapper.__wrapped__ = add
    return wrapper


def install() -> None:
    from fairseq.scoring import bleu

    if not hasattr(bleu.Scorer.add, "__wrapped__"):
        bleu.Scorer.add = add_empty_safe(bleu.Scorer.add)
