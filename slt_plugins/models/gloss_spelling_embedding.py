"""Gloss embeddings that share the text side's sub-word embeddings through each gloss's spelling.

Most glosses are the words they stand for, written in capitals (``WETTER`` ↔ "wetter", ``KOENNEN`` ↔ "können"). With
separate gloss and text vocabularies a from-scratch model learns the two tables apart and has to discover that
correspondence from 7k sentences. Here the vector of a gloss is its own row plus the mean of the decoder's embedding
rows of the sub-words its spelling cuts into, so what the decoder learns about "wetter" reaches ``WETTER`` in the
encoder, and a rare gloss starts from its words' meaning. The table of spellings comes from the task
(:meth:`~slt_plugins.tasks.gloss2text.Gloss2TextTask.gloss_spellings`) and is saved with the model.
"""

import torch
import torch.nn.functional as F
from torch import nn


class GlossSpellingEmbedding(nn.Embedding):
    """``nn.Embedding`` over glosses (its ``weight`` stays the gloss table, under the same checkpoint key) whose
    output adds the mean text-embedding row of each gloss's spelling. Glosses without a spelling get their own row
    only."""

    def __init__(self, own: nn.Embedding, text: nn.Embedding, spellings: torch.LongTensor):
        super().__init__(own.num_embeddings, own.embedding_dim, padding_idx=own.padding_idx)
        if spellings.size(0) != own.num_embeddings:
            raise ValueError(f"{spellings.size(0)} gloss spellings for {own.num_embeddings} gloss embeddings")
        self.weight = own.weight
        self.register_buffer("spellings", spellings.long())  # glosses × pieces, text padding where shorter
        self.__dict__["text"] = text  # the decoder's table: shared, not a second copy in this module's state
        self.text_pad = text.padding_idx

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                              error_msgs):
        """The saved table decides: its width (the longest spelling) can differ from the one this model was built
        with, e.g. a placeholder where the training manifest was not at hand (an exported bundle)."""
        saved = state_dict.get(prefix + "spellings")
        if saved is not None and saved.size(0) == self.spellings.size(0) and saved.shape != self.spellings.shape:
            self.spellings = torch.empty_like(saved, device=self.spellings.device)
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                                      error_msgs)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        pieces = self.spellings[tokens]  # B × T × K
        present = (pieces != self.text_pad).unsqueeze(-1).to(self.weight.dtype)
        spelled = (F.embedding(pieces, self.text.weight) * present).sum(-2) / present.sum(-2).clamp(min=1)
        return F.embedding(tokens, self.weight, self.padding_idx) + spelled
