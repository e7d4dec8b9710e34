"""Task ``gloss2text``: translate a gloss sequence into spoken-language text.

Reads a binarised dataset (``data_bins/NAME``): the split manifests, ``dict.gloss.txt`` for the source,
``spm.model`` and ``dict.text.txt`` for the target. Text is cut into sub-words when a split is loaded, and
fairseq-generate joins them back through :meth:`build_bpe`, so scores are computed on plain text.
"""

import logging
import os
from argparse import Namespace
from dataclasses import dataclass, field

import torch
from fairseq.data import Dictionary, LanguagePairDataset, encoders
from fairseq.dataclass import FairseqDataclass
from fairseq.tasks import FairseqTask, register_task
from omegaconf import II, MISSING

from slt_plugins.data.manifest import manifest_path, read_manifest

logger = logging.getLogger(__name__)


class TextPiecesOnly:
    """fairseq-generate passes the source line through the same ``decode`` as the text; glosses carry no
    sentencepiece word marker, and joining them would glue ``REGEN SCHNEE`` into ``REGENSCHNEE``."""

    def __init__(self, bpe):
        self.bpe = bpe

    def encode(self, x: str) -> str:
        return self.bpe.encode(x)

    def decode(self, x: str) -> str:
        return self.bpe.decode(x) if "\u2581" in x else x


@dataclass
class Gloss2TextConfig(FairseqDataclass):
    data: str = field(
        default=MISSING,
        metadata={"help": "binarised dataset folder (data_bins/NAME) with <split>.tsv, dict.gloss.txt, "
                          "dict.text.txt and spm.model"},
    )
    max_source_positions: int = field(default=1024, metadata={"help": "longest gloss sequence, in tokens"})
    max_target_positions: int = field(default=1024, metadata={"help": "longest text, in sub-words"})
    seed: int = II("common.seed")


@register_task("gloss2text", dataclass=Gloss2TextConfig)
class Gloss2TextTask(FairseqTask):
    cfg: Gloss2TextConfig

    def __init__(self, cfg: Gloss2TextConfig, gloss_dict: Dictionary, text_dict: Dictionary):
        super().__init__(cfg)
        self.gloss_dict = gloss_dict
        self.text_dict = text_dict
        self.text_bpe = encoders.build_bpe(
            Namespace(bpe="sentencepiece", sentencepiece_model=os.path.join(cfg.data, "spm.model"))
        )

    @classmethod
    def setup_task(cls, cfg: Gloss2TextConfig, **kwargs):
        dicts = []
        for name in ("dict.gloss.txt", "dict.text.txt", "spm.model"):
            path = os.path.join(cfg.data, name)
            if not os.path.isfile(path):
                raise FileNotFoundError(f"{path} is missing: binarise the dataset with slt-binarise first")
            if name.startswith("dict."):
                dicts.append(Dictionary.load(path))
        logger.info(f"gloss dictionary: {len(dicts[0])} types; text dictionary: {len(dicts[1])} types")
        return cls(cfg, *dicts)

    def load_dataset(self, split, epoch=1, combine=False, **kwargs):
        rows = read_manifest(manifest_path(self.cfg.data, split))
        src = [self.gloss_dict.encode_line(r.gloss, add_if_not_exist=False).long() for r in rows]
        tgt = [self.encode_text(r.text) for r in rows]
        self.datasets[split] = LanguagePairDataset(
            src, torch.LongTensor([len(s) for s in src]), self.gloss_dict,
            tgt, torch.LongTensor([len(t) for t in tgt]), self.text_dict,
            left_pad_source=False,
            left_pad_target=False,
            shuffle=(split == "train"),
        )
        logger.info(f"{split}: {len(rows)} utterances")

    def encode_text(self, text: str) -> torch.LongTensor:
        return self.text_dict.encode_line(self.text_bpe.encode(text), add_if_not_exist=False).long()

    def build_bpe(self, args):
        """The dataset's sentencepiece model, unless the command line names another ``--bpe``."""
        if args is not None and getattr(args, "_name", None):
            return super().build_bpe(args)
        return TextPiecesOnly(self.text_bpe)

    def max_positions(self):
        return self.cfg.max_source_positions, self.cfg.max_target_positions

    @property
    def source_dictionary(self):
        return self.gloss_dict

    @property
    def target_dictionary(self):
        return self.text_dict
