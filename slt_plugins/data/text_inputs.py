"""The spoken-language text of each utterance and of the one before it, as token ids: what the distillation
teachers read beside (or instead of) the video.

The dialogue teacher reads the *preceding* utterance of the same recording (the manifest's ``context``, computed
within a split by slt-binarise, so no text crosses splits); the text→gloss teacher reads the utterance's *own*
translation. Both are encoded with the dataset's ``spm.model`` and ``dict.text.txt`` and end with ``</s>``; the first
utterance of a recording has an empty context, which is ``</s>`` alone.
"""

import logging
import os
from argparse import Namespace
from typing import Dict, List

import torch
from fairseq.data import Dictionary, encoders

from slt_plugins.data.manifest import ManifestRow

logger = logging.getLogger(__name__)


class TextInputs:
    def __init__(self, data: str):
        dict_path, spm_path = os.path.join(data, "dict.text.txt"), os.path.join(data, "spm.model")
        for path in (dict_path, spm_path):
            if not os.path.isfile(path):
                raise FileNotFoundError(f"{path} is missing: text inputs need the text vocabulary that slt-binarise "
                                        "writes beside the manifests")
        self.dictionary = Dictionary.load(dict_path)
        self.bpe = encoders.build_bpe(Namespace(bpe="sentencepiece", sentencepiece_model=spm_path))

    def encode(self, text: str) -> torch.LongTensor:
        return self.dictionary.encode_line(self.bpe.encode(text) if text else "", add_if_not_exist=False,
                                           append_eos=True).long()

    def for_rows(self, rows: List[ManifestRow], split: str) -> Dict[str, List[torch.LongTensor]]:
        """``text_tokens`` (each row's translation) and ``context_tokens`` (the translation of its ``context`` row)."""
        by_id = {row.id: row.text for row in rows}
        missing = [row.context for row in rows if row.context and row.context not in by_id]
        if missing:
            logger.warning(f"{split}: {len(missing)} contexts are not in the split (e.g. {missing[0]!r}); they read "
                           "as empty")
        return {
            "text_tokens": [self.encode(row.text) for row in rows],
            "context_tokens": [self.encode(by_id.get(row.context, "")) for row in rows],
        }
