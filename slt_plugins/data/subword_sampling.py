"""Seeded subword regularisation: sampling a sentencepiece unigram model's segmentations with our own generator.

Kudo (2018) trains on a segmentation drawn afresh each time a sentence is read, with probability proportional to
``P(segmentation)^α``. sentencepiece draws it itself (``enable_sampling``), but from a generator that
``set_random_generator_seed`` does not make repeatable (sentencepiece 0.2.x: two runs with the same seed cut the
same sentence differently), so two trainings with one seed drift apart from the first batch. This module draws the
same distribution, forward-filtering backward-sampling over the unigram lattice as sentencepiece does, from a numpy
generator that the caller seeds per (seed, epoch, sentence): the same cut in any process, thread or worker.
"""

import math
from bisect import bisect_right
from typing import Dict, List, Tuple

import numpy as np
import sentencepiece as spm
from sentencepiece import sentencepiece_model_pb2

NORMAL, USER_DEFINED = 1, 4  # sentencepiece_model.proto's piece types
UNK_PENALTY = 10.0  # sentencepiece scores an unknown character as the lowest piece score less this


class UnigramSegmentSampler:
    """Segmentations of one sentencepiece unigram model, sampled with smoothing ``alpha`` (sentencepiece's
    ``enable_sampling=True, nbest_size=-1``). The lattice of a sentence is built once and kept, so a draw is one
    backward walk."""

    def __init__(self, model_file: str, alpha: float):
        with open(model_file, "rb") as f:
            serialized = f.read()
        proto = sentencepiece_model_pb2.ModelProto()
        proto.ParseFromString(serialized)
        if proto.trainer_spec.model_type != sentencepiece_model_pb2.TrainerSpec.UNIGRAM:
            raise ValueError(f"{model_file} is not a unigram sentencepiece model; subword sampling "
                             "(--text-sampling-alpha) needs one (slt-binarise trains unigram models)")
        if alpha <= 0:
            raise ValueError(f"the sampling smoothing alpha must be positive, not {alpha}")
        self.alpha = alpha
        self.sp = spm.SentencePieceProcessor(model_proto=serialized)
        normal = [p.score for p in proto.pieces if p.type == NORMAL]
        max_score, min_score = max(normal), min(normal)
        self.pieces: Dict[str, Tuple[int, float]] = {}
        for i, p in enumerate(proto.pieces):
            if p.type == NORMAL:
                self.pieces[p.piece] = (i, p.score)
            elif p.type == USER_DEFINED:  # as sentencepiece: always preferred to the pieces inside it
                self.pieces[p.piece] = (i, len(p.piece) * max_score - 0.1)
        self.longest = max(len(p) for p in self.pieces)
        self.unk = (self.sp.unk_id(), min_score - UNK_PENALTY)
        self.lattices: Dict[str, List[tuple]] = {}

    def lattice(self, text: str) -> List[tuple]:
        """For each end position of the normalised text, the (begin positions, piece ids, cumulative probabilities)
        of the pieces that end there, weighted by all the ways to reach their begin (the forward pass)."""
        if text in self.lattices:
            return self.lattices[text]
        s = self.sp.normalize(text)
        ending: List[list] = [[] for _ in range(len(s) + 1)]
        for begin in range(len(s)):
            single = False
            for end in range(begin + 1, min(len(s), begin + self.longest) + 1):
                hit = self.pieces.get(s[begin:end])
                if hit is not None:
                    ending[end].append((begin, hit[0], hit[1]))
                    single |= end == begin + 1
            if not single:  # sentencepiece's unknown node: one character no piece covers
                ending[begin + 1].append((begin, *self.unk))
        forward = [0.0] + [-math.inf] * len(s)
        table = [None]
        for end in range(1, len(s) + 1):
            logits = np.array([forward[b] + self.alpha * score for b, _, score in ending[end]])
            top = logits.max()
            forward[end] = top + math.log(np.exp(logits - top).sum())
            cumulative = np.cumsum(np.exp(logits - forward[end]))
            table.append(([b for b, _, _ in ending[end]], [i for _, i, _ in ending[end]],
                          (cumulative / cumulative[-1]).tolist()))
        self.lattices[text] = table
        return table

    def sample(self, text: str, rng: np.random.Generator) -> List[int]:
        """One segmentation of ``text``, as sentencepiece ids, drawn with ``rng``."""
        table = self.lattice(text)
        ids, end = [], len(table) - 1
        draws = rng.random(end).tolist()  # at most one draw per character
        while end > 0:
            begins, pieces, cumulative = table[end]
            k = min(bisect_right(cumulative, draws[len(ids)]), len(pieces) - 1)
            ids.append(pieces[k])
            end = begins[k]
        return ids[::-1]
