"""Word errors of one sequence against another, and their running tally over a corpus (the gloss WER that task
``sign2text`` reports in fairseq-generate: its glosses never reach a fairseq scorer, which sees text only)."""

from dataclasses import dataclass
from typing import Sequence, Tuple


def word_error_counts(ref: Sequence[str], hyp: Sequence[str]) -> Tuple[int, int, int]:
    """(deletions, insertions, substitutions) of one minimum-edit alignment of ``hyp`` to ``ref``."""
    n, m = len(ref), len(hyp)
    cost = [[0] * (m + 1) for _ in range(n + 1)]
    for i in range(n + 1):
        cost[i][0] = i
    for j in range(m + 1):
        cost[0][j] = j
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            cost[i][j] = min(cost[i - 1][j] + 1, cost[i][j - 1] + 1,
                             cost[i - 1][j - 1] + (ref[i - 1] != hyp[j - 1]))
    deletions = insertions = substitutions = 0
    i, j = n, m
    while i > 0 or j > 0:
        if i > 0 and j > 0 and cost[i][j] == cost[i - 1][j - 1] + (ref[i - 1] != hyp[j - 1]):
            substitutions += ref[i - 1] != hyp[j - 1]
            i, j = i - 1, j - 1
        elif i > 0 and cost[i][j] == cost[i - 1][j] + 1:
            deletions, i = deletions + 1, i - 1
        else:
            insertions, j = insertions + 1, j - 1
    return deletions, insertions, substitutions


@dataclass
class WordErrorTally:
    """Errors summed over the utterances added so far; ``wer`` is their total over the reference words, × 100."""

    deletions: int = 0
    insertions: int = 0
    substitutions: int = 0
    words: int = 0  # in the references
    utterances: int = 0

    def add(self, ref: Sequence[str], hyp: Sequence[str]) -> None:
        d, i, s = word_error_counts(ref, hyp)
        self.deletions, self.insertions, self.substitutions = self.deletions + d, self.insertions + i, \
            self.substitutions + s
        self.words += len(ref)
        self.utterances += 1

    @property
    def wer(self) -> float:
        """0 before any reference word was added."""
        return 100.0 * (self.deletions + self.insertions + self.substitutions) / max(self.words, 1)

    def __str__(self) -> str:
        return (f"{self.wer:.2f} (del {self.deletions}, ins {self.insertions}, sub {self.substitutions}; "
                f"{self.words} glosses in {self.utterances} utterances)")
