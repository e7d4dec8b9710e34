"""Gloss–text pairs for training Gloss2Text: targets cut anew each epoch (subword regularisation), utterances joined
to the one before them (concatenation augmentation), and batches made from the epoch's real lengths.

Both augmentations change the items' lengths from one epoch to the next. fairseq batches by the sizes a dataset
reports after ``set_epoch``, so :class:`TextPairs` reports the epoch's own: the sampled cuts' lengths, joined where
items are joined. In training it sorts by target length first: the decoder (and its output layer over the whole
vocabulary) costs most per token, and batching by the best segmentation's lengths had left 22 % of the target
positions as padding (sampled cuts are longer or shorter than the best one by a few pieces).
"""

from typing import List

import numpy as np
import torch
from fairseq.data import Dictionary, LanguagePairDataset

from slt_plugins.data.subword_sampling import UnigramSegmentSampler
from slt_plugins.data.video_transforms import item_rng

#: the random stream of concatenation decisions, apart from the sampler's draws for the same (seed, epoch, item)
CONCAT_STREAM = 1


class SampledTargets:
    """Training targets cut anew in every epoch by :class:`UnigramSegmentSampler`; LanguagePairDataset indexes it as
    it would a list. A cut is a function of (seed, epoch, sentence), so a seeded training repeats exactly. A cut
    holding a piece the dictionary lacks (one the training text's best segmentations never used, which would be
    learnt as <unk>) gives way to the best segmentation. An epoch's cuts are drawn when the epoch is set, so that
    their lengths can make the batches."""

    def __init__(self, texts: List[str], best: List[torch.Tensor], sampler: UnigramSegmentSampler,
                 text_dict: Dictionary, lang_id: int, seed: int):
        self.texts, self.best, self.sampler, self.seed = texts, best, sampler, seed
        pieces = (sampler.sp.id_to_piece(i) for i in range(sampler.sp.get_piece_size()))
        self.piece_to_token = torch.LongTensor([text_dict.index(p) for p in pieces])
        self.tail = torch.LongTensor([text_dict.eos(), lang_id])  # as the task's encode_text ends a sentence
        self.unk = text_dict.unk()
        self.epoch, self.cuts = None, []
        self.set_epoch(1)

    def cut(self, index: int, epoch: int) -> torch.Tensor:
        pieces = self.sampler.sample(self.texts[index], item_rng(self.seed, epoch, index))
        ids = torch.cat([self.piece_to_token[pieces], self.tail])
        return self.best[index] if (ids == self.unk).any() else ids

    def set_epoch(self, epoch: int):
        if epoch != self.epoch:
            self.epoch, self.cuts = epoch, [self.cut(i, epoch) for i in range(len(self.texts))]

    def sizes(self) -> np.ndarray:
        """The lengths of this epoch's cuts."""
        return np.array([len(c) for c in self.cuts], dtype=np.int64)

    def __len__(self):
        return len(self.texts)

    def __getitem__(self, index):
        return self.cuts[index]


class TextPairs(LanguagePairDataset):
    """LanguagePairDataset that passes the epoch on to sampled targets and, in training, may join an utterance to
    the one before it in the same recording (``concat_prob``): glosses after glosses, text after text, one longer
    example of signed discourse. Which items are joined is drawn per epoch from (seed, epoch, item), as the sampled
    cuts are. The sizes fairseq batches by are the epoch's (sampled, joined), and batches are made anew each epoch,
    so a joined item shares its batch with items of its length rather than doubling the padding of 31 short ones.
    ``own_src_sizes`` and ``own_tgt_sizes`` are the items' lengths in this epoch before any joining."""

    def __init__(self, *args, predecessors=None, concat_prob=0.0, seed=1, **kwargs):
        super().__init__(*args, **kwargs)
        self.concat_prob, self.seed = concat_prob, seed
        self.predecessors = np.asarray(predecessors if predecessors is not None else [-1] * len(self), dtype=np.int64)
        self.own_src_sizes, self.own_tgt_sizes = self.src_sizes.copy(), self.tgt_sizes.copy()
        self.joined = np.zeros(len(self), dtype=bool)
        self.set_epoch(1)

    @property
    def sampled(self) -> bool:
        return isinstance(self.tgt, SampledTargets)

    @property
    def can_reuse_epoch_itr_across_epochs(self):
        return self.concat_prob == 0 and not self.sampled  # else the sizes change with the epoch

    def set_epoch(self, epoch):
        super().set_epoch(epoch)
        if self.sampled:
            self.tgt.set_epoch(epoch)
            self.own_tgt_sizes = self.tgt.sizes()
        self.src_sizes, self.tgt_sizes = self.own_src_sizes.copy(), self.own_tgt_sizes.copy()
        if self.concat_prob > 0:
            has = np.flatnonzero(self.predecessors >= 0)
            draws = np.array([item_rng(self.seed, epoch, i, CONCAT_STREAM).random() for i in has])
            self.joined[:] = False
            self.joined[has[draws < self.concat_prob]] = True
            before = self.predecessors[self.joined]
            # the first utterance's </s> and language token give way to the second's
            self.src_sizes[self.joined] += self.own_src_sizes[before] - 2
            self.tgt_sizes[self.joined] += self.own_tgt_sizes[before] - 2
        self.sizes = np.vstack((self.src_sizes, self.tgt_sizes)).T

    def ordered_indices(self):
        """In training, a random order sorted by target length, then by source length (fairseq sorts by source
        first): the decoder side is the dearer one to pad. Otherwise fairseq's order, by source length."""
        if not self.shuffle or self.buckets is not None:
            return super().ordered_indices()
        indices = np.random.permutation(len(self)).astype(np.int64)
        return indices[np.lexsort((self.src_sizes[indices], self.tgt_sizes[indices]))]

    def __getitem__(self, index):
        item = super().__getitem__(index)
        if self.joined[index]:
            first = super().__getitem__(self.predecessors[index])
            item = dict(item, source=torch.cat([first["source"][:-2], item["source"]]),
                        target=torch.cat([first["target"][:-2], item["target"]]))
        return item
