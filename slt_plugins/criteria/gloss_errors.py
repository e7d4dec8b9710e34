"""The greedy gloss WER that the recognition criteria log in validation, so that ``--best-checkpoint-metric wer``
works: best-path CTC decoding against the references, without any corpus clean-up (fairseq-generate's WER, with
the clean-up and beam search, is the one to report)."""

from typing import Callable, Tuple

import editdistance
import torch
from fairseq import metrics

from slt_plugins.decoding.ctc_decoder import ctc_greedy


def greedy_gloss_errors(logits: torch.Tensor, input_lengths: torch.Tensor, targets: torch.Tensor,
                        target_lengths: torch.Tensor, blank: int) -> Tuple[int, int]:
    """Word errors of best-path decoding of T'×B×V logits (or log-probabilities), and the reference length."""
    logits, targets = logits.detach().float().cpu(), targets.cpu()  # one copy, not one per clip
    errors = words = 0
    for b, (n, m) in enumerate(zip(input_lengths.tolist(), target_lengths.tolist())):
        errors += editdistance.eval(ctc_greedy(logits[:n, b], blank), targets[b, :m].tolist())
        words += m
    return errors, words


def log_gloss_wer(total: Callable[[str], float]) -> None:
    """In reduce_metrics: ``wer`` from the summed ``_gloss_errors`` and ``_gloss_words`` of the logging outputs."""
    words = total("_gloss_words")
    if words > 0:
        metrics.log_scalar("_gloss_errors", total("_gloss_errors"))
        metrics.log_scalar("_gloss_words", words)
        metrics.log_derived("wer", lambda meters: round(
            100.0 * meters["_gloss_errors"].sum / meters["_gloss_words"].sum, 2)
            if meters["_gloss_words"].sum > 0 else float("nan"))
