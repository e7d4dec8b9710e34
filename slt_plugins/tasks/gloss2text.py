"""Task ``gloss2text``: translate a gloss sequence into spoken-language text.

Reads a binarised dataset (``data_bins/NAME``) and one of two vocabularies:

- the dataset's own (default, for training from scratch): ``dict.gloss.txt`` for the source, ``spm.model`` and
  ``dict.text.txt`` for the target;
- a pruned mBART's (``--vocab DIR``, written by ``slt-prune-mbart``): ``DIR/dict.txt`` for both sides, glosses as
  whole tokens, text cut by ``DIR/sentence.bpe.model``; the model then shares one embedding table, as mBART does.

Sentences carry mBART's language tokens either way: the source is ``glosses </s> [de_DGS]``, the target
``words </s> [de_DE]``, and the decoder starts from ``[de_DE]`` (fairseq's ``translation_from_pretrained_bart``
convention, so mbart.cc25 sees the input it was trained on). Text is cut into sub-words when a split is loaded, and
fairseq-generate joins them back through :meth:`build_bpe`, so scores are computed on plain text.
"""

import functools
import json
import logging
import os
from argparse import Namespace
from dataclasses import dataclass, field

import torch
from fairseq.data import Dictionary, encoders
from fairseq.tasks import FairseqTask, register_task
from omegaconf import II, MISSING

from slt_plugins.data.dataset_meta import require_glosses
from slt_plugins.data.manifest import manifest_path, read_manifest
from slt_plugins.data.subword_sampling import UnigramSegmentSampler
from slt_plugins.data.text_pairs import SampledTargets, TextPairs
from slt_plugins.tasks.bf16_autocast import Bf16Autocast, Bf16AutocastConfig
from slt_plugins.tasks.validation_bleu import ValidationBleu, ValidationBleuConfig

logger = logging.getLogger(__name__)

#: default (sign, spoken) language tags by the ``language`` that slt-binarise wrote into meta.json
LANGUAGE_TAGS = {"de": ("de_DGS", "de_DE"), "zh": ("zh_CSL", "zh_CN"), "en": ("en_ASL", "en_XX")}


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
class SpokenTextConfig(ValidationBleuConfig, Bf16AutocastConfig):
    """What a task that writes spoken-language text reads: the dataset and the vocabularies (gloss2text, sign2text)."""
    data: str = field(
        default=MISSING,
        metadata={"help": "binarised dataset folder (data_bins/NAME) with <split>.tsv, dict.gloss.txt, "
                          "dict.text.txt and spm.model"},
    )
    vocab: str = field(
        default="",
        metadata={"help": "folder written by slt-prune-mbart (dict.txt, sentence.bpe.model): one vocabulary for "
                          "glosses and text, the pruned mBART's; empty: the dataset's own two"},
    )
    source_lang: str = field(
        default="",
        metadata={"help": "sign language tag, used as the source token [TAG]; empty: from the dataset's meta.json "
                          "language (de → de_DGS, zh → zh_CSL)"},
    )
    target_lang: str = field(
        default="",
        metadata={"help": "spoken language tag, the target token [TAG] that starts decoding "
                          "(de → de_DE, zh → zh_CN)"},
    )
    max_source_positions: int = field(default=1024, metadata={"help": "longest gloss sequence, in tokens"})
    max_target_positions: int = field(default=1024, metadata={"help": "longest text, in sub-words"})
    seed: int = II("common.seed")


@dataclass
class Gloss2TextConfig(SpokenTextConfig):
    """Gloss2Text's training options for its gloss and text pairs."""
    gloss_dropout: float = field(
        default=0.0,
        metadata={"help": "in training, replace each gloss by <unk> with this probability (source word dropout, "
                          "a regulariser for small corpora: Sennrich & Zhang 2019)"},
    )
    text_sampling_alpha: float = field(
        default=0.0,
        metadata={"help": "in training, cut each target text anew in every epoch by sampling the sentencepiece "
                          "unigram model's segmentations with this smoothing α (subword regularisation, Kudo 2018; "
                          "0.1–0.3 on small corpora), seeded by --seed; 0: always the one best segmentation. "
                          "Validation and decoding keep the best one"},
    )
    context_concat_prob: float = field(
        default=0.0,
        metadata={"help": "in training, join an utterance to the one before it in the same recording (the "
                          "manifest's context) with this probability, glosses and text alike: concatenation "
                          "augmentation, longer examples of discourse for a small corpus; 0: never"},
    )


def language_tags(cfg: SpokenTextConfig) -> tuple:
    """(source, target) language tags: the configured ones, else the pruned mBART's (``--vocab``), else those of
    the dataset's language."""
    def meta(folder):
        path = os.path.join(folder, "meta.json")
        if not os.path.isfile(path):
            return {}
        with open(path, encoding="utf-8") as f:
            return json.load(f)

    pruned = meta(cfg.vocab) if cfg.vocab else {}
    if "source_lang" in pruned:
        source, target = pruned["source_lang"], pruned["target_lang"]
    else:
        language = meta(cfg.data).get("language")
        source, target = LANGUAGE_TAGS.get(language, ("sign", language or "text"))
    return cfg.source_lang or source, cfg.target_lang or target


class SpokenTextTask(Bf16Autocast, ValidationBleu, FairseqTask):
    """What gloss2text and sign2text share: the vocabularies with mBART's language tokens, the encoding of glosses
    and text, the translator's generator and the sub-word model that joins its output."""
    cfg: SpokenTextConfig

    def __init__(self, cfg: SpokenTextConfig, gloss_dict: Dictionary, text_dict: Dictionary, spm_model: str):
        super().__init__(cfg)
        self.gloss_dict = gloss_dict
        self.text_dict = text_dict
        self.text_bpe = encoders.build_bpe(Namespace(bpe="sentencepiece", sentencepiece_model=spm_model))
        source, target = language_tags(cfg)
        if cfg.vocab:  # the pruned mBART's dictionary holds its language tokens, and the model has rows for them
            for tag in (source, target):
                if f"[{tag}]" not in gloss_dict:
                    raise ValueError(f"{cfg.vocab}/dict.txt has no language token [{tag}]; pick one of its "
                                     "languages with --source-lang/--target-lang, or prune again with that tag")
        self.source_lang_id = gloss_dict.add_symbol(f"[{source}]")
        self.target_lang_id = text_dict.add_symbol(f"[{target}]")

    @classmethod
    def setup_task(cls, cfg: SpokenTextConfig, **kwargs):
        if cfg.vocab:
            folder, names, maker = cfg.vocab, ("dict.txt", "dict.txt", "sentence.bpe.model"), "slt-prune-mbart"
        else:
            folder, names, maker = cfg.data, ("dict.gloss.txt", "dict.text.txt", "spm.model"), "slt-binarise"
        gloss_path, text_path, spm_model = (os.path.join(folder, name) for name in names)
        for path in (gloss_path, text_path, spm_model):
            if not os.path.isfile(path):
                raise FileNotFoundError(f"{path} is missing from {folder} (made by {maker})")
        gloss_dict = Dictionary.load(gloss_path)
        text_dict = gloss_dict if cfg.vocab else Dictionary.load(text_path)  # one table for both sides
        logger.info(f"gloss dictionary: {len(gloss_dict)} types; text dictionary: {len(text_dict)} types"
                    + (f" (the same, from {cfg.vocab})" if cfg.vocab else ""))
        return cls(cfg, gloss_dict, text_dict, spm_model)

    def encode_glosses(self, glosses: str) -> torch.LongTensor:
        ids = self.gloss_dict.encode_line(glosses, add_if_not_exist=False, append_eos=True).long()
        return torch.cat([ids, ids.new_tensor([self.source_lang_id])])

    def encode_text(self, text: str) -> torch.LongTensor:
        pieces = self.text_bpe.encode(text)
        ids = self.text_dict.encode_line(pieces, add_if_not_exist=False, append_eos=True).long()
        return torch.cat([ids, ids.new_tensor([self.target_lang_id])])

    def gloss_spellings(self) -> torch.LongTensor:
        """For each gloss, the text dictionary's ids of its spelling's sub-words (rows padded with the text padding):
        the gloss's ``-``-separated parts, lowercased, that occur as words in the training translations, where a
        part not found is tried again with ae/oe/ue as ä/ö/ü (the ASCII spelling of German glosses). Glosses with
        no such part (``IX``, ``__ON__``) and the special tokens get an empty row.

        Where the training manifest is absent (an exported bundle holds only the vocabularies), the model is being
        loaded from a checkpoint, whose saved table replaces the empty one returned here."""
        train = manifest_path(self.cfg.data, "train")
        if not os.path.isfile(train):
            return torch.full((len(self.gloss_dict), 1), self.text_dict.pad(), dtype=torch.long)
        words = {w for r in read_manifest(train) for w in r.text.split()}
        rows = []
        for i in range(len(self.gloss_dict)):
            pieces = []
            if i >= self.gloss_dict.nspecial and i != self.source_lang_id:
                for part in self.gloss_dict[i].split("-"):
                    part = part.lower()
                    for form in (part, part.replace("ae", "ä").replace("oe", "ö").replace("ue", "ü")):
                        if form in words:
                            pieces += [self.text_dict.index(p) for p in self.text_bpe.encode(form).split()]
                            break
            rows.append([p for p in pieces if p != self.text_dict.unk()])
        width = max(1, max(len(r) for r in rows))
        table = torch.full((len(rows), width), self.text_dict.pad(), dtype=torch.long)
        for i, r in enumerate(rows):
            table[i, : len(r)] = torch.LongTensor(r)
        return table

    def build_model(self, cfg, from_checkpoint=False):
        model = super().build_model(cfg, from_checkpoint)
        pretrained = getattr(cfg, "pretrained_mbart", None)
        if pretrained and not from_checkpoint:  # a trained checkpoint brings its own weights
            model.load_pretrained_mbart(pretrained)
        self.setup_validation_bleu(model)
        return model

    def build_generator(self, models, args, seq_gen_cls=None, extra_gen_cls_kwargs=None, **kwargs):
        """fairseq's beam search from the target language token, ending a hypothesis at the language token that
        closes every target, or at ``</s>`` for a model trained without it (``--stop-at-eos``: SLRT's, HF's)."""
        stop_at_eos = any(getattr(m, "stop_at_eos", False) for m in models)
        eos = self.text_dict.eos() if stop_at_eos else self.target_lang_id
        extra_gen_cls_kwargs = dict(extra_gen_cls_kwargs or {}, eos=eos)
        generator = super().build_generator(models, args, seq_gen_cls, extra_gen_cls_kwargs, **kwargs)
        if stop_at_eos:  # fairseq starts from its eos unless told otherwise; every caller gets the start token
            generator.generate = functools.partial(generator.generate, bos_token=self.target_lang_id)
        return generator

    def build_bpe(self, args):
        """The vocabulary's sentencepiece model, unless the command line names another ``--bpe``."""
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


@register_task("gloss2text", dataclass=Gloss2TextConfig)
class Gloss2TextTask(SpokenTextTask):
    cfg: Gloss2TextConfig

    @classmethod
    def setup_task(cls, cfg: Gloss2TextConfig, **kwargs):
        require_glosses(cfg.data, "task gloss2text", "train sign2text with --ctc-weight 0 and the translator from "
                        "mBART (--pretrained-mbart) or from scratch")
        return super().setup_task(cfg, **kwargs)

    def __init__(self, cfg: Gloss2TextConfig, gloss_dict: Dictionary, text_dict: Dictionary, spm_model: str):
        super().__init__(cfg, gloss_dict, text_dict, spm_model)
        self.sampler = None
        if cfg.text_sampling_alpha > 0:
            self.sampler = UnigramSegmentSampler(spm_model, cfg.text_sampling_alpha)

    def load_dataset(self, split, epoch=1, combine=False, **kwargs):
        rows = read_manifest(manifest_path(self.cfg.data, split))
        src = [self.encode_glosses(r.gloss) for r in rows]
        tgt = [self.encode_text(r.text) for r in rows]
        tgt_sizes = torch.LongTensor([len(t) for t in tgt])
        if split == "train" and self.sampler is not None:
            tgt = SampledTargets([r.text for r in rows], tgt, self.sampler, self.text_dict, self.target_lang_id,
                                 self.cfg.seed)
        position = {r.id: i for i, r in enumerate(rows)}
        predecessors = [position.get(r.context, -1) if r.context else -1 for r in rows]
        unknown = sum(int((s == self.gloss_dict.unk()).sum()) for s in src)
        if unknown:
            logger.warning(f"{split}: {unknown} glosses are not in the source dictionary and read as <unk>")
        self.datasets[split] = TextPairs(
            src, torch.LongTensor([len(s) for s in src]), self.gloss_dict,
            tgt, tgt_sizes, self.text_dict,
            left_pad_source=False,
            left_pad_target=False,
            shuffle=(split == "train"),
            eos=self.target_lang_id,  # prev_output_tokens start with the target language token
            predecessors=predecessors, concat_prob=self.cfg.context_concat_prob if split == "train" else 0.0,
            seed=self.cfg.seed,
        )
        logger.info(f"{split}: {len(rows)} utterances")

    def train_step(self, sample, model, criterion, optimizer, update_num, ignore_grad=False):
        if self.cfg.gloss_dropout > 0:
            sample = self.drop_glosses(sample)
        return super().train_step(sample, model, criterion, optimizer, update_num, ignore_grad)

    def drop_glosses(self, sample):
        """A copy of the batch with glosses (not </s>, the language token or padding) replaced by <unk>."""
        tokens = sample["net_input"]["src_tokens"]
        d = self.gloss_dict
        droppable = (tokens != d.pad()) & (tokens != d.eos()) & (tokens != self.source_lang_id)
        drop = droppable & (torch.rand(tokens.shape, device=tokens.device) < self.cfg.gloss_dropout)
        net_input = dict(sample["net_input"], src_tokens=tokens.masked_fill(drop, d.unk()))
        return dict(sample, net_input=net_input)
