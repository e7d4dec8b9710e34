"""Task ``sign2text``: translate sign clips into spoken-language text, recognising their glosses on the way.

Inputs as ``sign2gloss`` (``--input frames`` end to end, or ``--input features`` written by slt-extract-features),
text and its vocabulary as ``gloss2text`` (the dataset's own or a pruned mBART's with ``--vocab``, mBART's language
tokens). Each batch holds the text target (``target``, ``prev_output_tokens``) and the gloss target of the CTC
term (``gloss_target``), for the ``combined`` criterion and model ``joint``.

Training starts from a Sign2Gloss and a Gloss2Text checkpoint (``--sign2gloss-checkpoint``,
``--gloss2text-checkpoint`` of the model); a joint checkpoint loaded later (resuming, fairseq-generate) brings its
own weights. fairseq-generate writes the text by beam search (``--scoring translation_metrics``: BLEU-1..4, ROUGE-L)
and the glosses by CTC decoding of the same encoder pass.

The glosses travel with the hypotheses the generator returns; fairseq-generate hands its scorer strings of text
only, so the task, where each batch's references and hypotheses meet (:meth:`Sign2TextTask.inference_step`), keeps
the run's gloss WER itself (``--gloss-cleanup`` applied to both sides first): after each batch it prints each
utterance's glosses as a ``G-<id>`` line and the WER of all utterances so far, one line::

    Gloss WER so far: 3.43 (del 1, ins 0, sub 5; 175 glosses in 42 utterances)

The last such line, just before fairseq's ``Generate test with beam=…: BLEU-1 …`` line, is the run's gloss WER
(fairseq-generate tells a task neither when a run ends nor which scorer it built).

A dataset binarised without glosses (``slt-binarise --no-glosses``) has no gloss targets: the model is built without
a gloss classifier, trains on the text alone (``--ctc-weight 0``) from a visual backbone and an mBART (or from
scratch), and fairseq-generate writes the text only (no ``G-`` lines, no WER).
"""

import logging
from dataclasses import dataclass, field
from typing import Optional

from fairseq.dataclass import ChoiceEnum
from fairseq.tasks import FairseqTask, register_task

from slt_plugins.data.dataset_meta import has_glosses
from slt_plugins.data.manifest import manifest_path, read_manifest
from slt_plugins.scoring.phoenix_cleanup import CLEANERS
from slt_plugins.scoring.word_errors import WordErrorTally
from slt_plugins.tasks.gloss2text import SpokenTextConfig, SpokenTextTask
from slt_plugins.tasks.sign2gloss import SignInput, Sign2GlossConfig, load_gloss_dictionary

logger = logging.getLogger(__name__)


@dataclass
class Sign2TextConfig(Sign2GlossConfig, SpokenTextConfig):
    gloss_beam: Optional[int] = field(default=None, metadata={
        "help": "fairseq-generate: CTC prefix beam width for the glosses (1: greedy; SLRT: 5 at test); default: "
                "the checkpoint's, else 5"})
    gloss_cleanup: Optional[ChoiceEnum(["none"] + list(CLEANERS))] = field(default=None, metadata={
        "help": "clean-up applied to both gloss sequences before WER (phoenix-2014t for published Phoenix WERs); "
                "default: the checkpoint's, else none"})


@register_task("sign2text", dataclass=Sign2TextConfig)
class Sign2TextTask(SignInput, SpokenTextTask):
    cfg: Sign2TextConfig
    checkpoint_settings = dict(SignInput.checkpoint_settings, gloss_beam=5, gloss_cleanup="none")

    def __init__(self, cfg: Sign2TextConfig, gloss_dict, text_dict, spm_model):
        super().__init__(cfg, gloss_dict, text_dict, spm_model)
        # the classifier's vocabulary, blank '<s>' = 0; None for a dataset without glosses (no classifier, no CTC)
        self.ctc_dict = load_gloss_dictionary(cfg.data) if has_glosses(cfg.data) else None
        self.gloss_errors = WordErrorTally()  # of the glosses recognised in fairseq-generate's run
        self.init_checkpoint_settings()

    def load_dataset(self, split, epoch=1, combine=False, **kwargs):
        rows = read_manifest(manifest_path(self.cfg.data, split))
        texts = [self.encode_text(r.text) for r in rows]
        glosses = None if self.ctc_dict is None else [
            self.ctc_dict.encode_line(r.gloss, add_if_not_exist=False, append_eos=False).long() for r in rows]
        self.datasets[split] = self.sign_dataset(split, rows, texts, self.text_dict.pad(),
                                                 eos_idx=self.target_lang_id, gloss_targets=glosses)
        logger.info(f"{split}: {len(rows)} utterances from {self.store.path}")

    def build_model(self, cfg, from_checkpoint=False):
        from slt_plugins.models.joint import (decide_gloss_classifier, forget_initial_weight_files,
                                              resolve_from_checkpoints)

        # a fresh model takes its shapes (recorded in its config) and weights from the two checkpoints, or from a
        # backbone file and an mBART (gloss-free); a trained joint checkpoint brings both itself
        states = {} if from_checkpoint else resolve_from_checkpoints(cfg)
        decide_gloss_classifier(cfg, self.ctc_dict is not None, from_checkpoint)
        if from_checkpoint:
            forget_initial_weight_files(cfg)
        model = FairseqTask.build_model(self, cfg, from_checkpoint)
        if states:
            model.load_from_checkpoints(self, states)
        if getattr(cfg, "pretrained_mbart", "") and not from_checkpoint:
            model.load_pretrained_mbart(cfg.pretrained_mbart)
        self.setup_validation_bleu(model)
        if getattr(self, "_bleu_generator", None) is not None:
            self._bleu_generator.recognise_glosses = False  # validation BLEU scores the text only
        return model

    def build_generator(self, models, args, seq_gen_cls=None, extra_gen_cls_kwargs=None, **kwargs):
        from slt_plugins.decoding.sign2text_generator import Sign2TextGenerator

        gloss_beam = getattr(args, "gloss_beam", None) or self.cfg.gloss_beam
        if self.ctc_dict is not None:
            logger.info(f"glosses: CTC beam {gloss_beam}, clean-up {self.settings()['gloss_cleanup']}")
        extra = dict(extra_gen_cls_kwargs or {}, gloss_dict=self.ctc_dict, gloss_beam=gloss_beam)
        self.gloss_errors = WordErrorTally()  # the run this generator is built for starts counting afresh
        return super().build_generator(models, args, seq_gen_cls or Sign2TextGenerator, extra, **kwargs)

    def inference_step(self, generator, models, sample, prefix_tokens=None, constraints=None):
        hypos = super().inference_step(generator, models, sample, prefix_tokens, constraints)
        # the glosses come with the hypotheses of fairseq-generate's generator (not with validation BLEU's, nor with
        # --score-reference's scorer); every hypothesis of an utterance carries the same glosses
        if hypos and all(nbest and "glosses" in nbest[0] for nbest in hypos):
            self.report_glosses(sample, [nbest[0]["glosses"] for nbest in hypos])
        return hypos

    def report_glosses(self, sample, recognised):
        """Print each utterance's glosses (``G-<id>``), add its errors to the run's tally, print the tally."""
        assert len(recognised) == len(sample["id"]), (len(recognised), len(sample["id"]))
        clean = CLEANERS.get(self.cfg.gloss_cleanup, lambda x: x)
        for i, (sample_id, labels) in enumerate(zip(sample["id"].tolist(), recognised)):
            hyp = self.ctc_dict.string(labels)
            ref = self.ctc_dict.string(sample["gloss_target"][i][: sample["gloss_target_lengths"][i]])
            print(f"G-{sample_id}\t{hyp}")
            self.gloss_errors.add(clean(ref).split(), clean(hyp).split())
        print(f"Gloss WER so far: {self.gloss_errors}", flush=True)

    @property
    def source_dictionary(self):
        """None: the source is video (fairseq-generate prints no S- line); the translator's source vocabulary, the
        glosses' with the language token, is ``gloss_dict``."""
        return None

    def max_positions(self):
        return self.cfg.max_frames, self.cfg.max_target_positions
