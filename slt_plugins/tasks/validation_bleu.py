"""Validation BLEU for the text-producing tasks: decode the validation set each epoch and log sacrebleu's BLEU.

With it, ``--best-checkpoint-metric bleu --maximize-best-checkpoint-metric`` keeps the checkpoint with the best dev
BLEU, the selection SLRT uses, instead of the one with the lowest loss. The per-batch n-gram statistics are
summed across batches and workers and BLEU is computed once from the sums, as fairseq's ``translation`` task does;
the code is ours because that task's version lives in its class and expects its dictionaries and tokenizer.
"""

import json
import logging
from argparse import Namespace
from dataclasses import dataclass, field

import numpy as np
from fairseq import metrics, utils
from fairseq.dataclass import FairseqDataclass

logger = logging.getLogger(__name__)

ORDER = 4


@dataclass
class ValidationBleuConfig(FairseqDataclass):
    eval_bleu: bool = field(default=False, metadata={"help": "decode the validation set and log BLEU (the 'bleu' "
                                                             "metric for --best-checkpoint-metric)"})
    eval_bleu_args: str = field(
        default='{"beam": 1}',
        metadata={"help": "generation arguments as JSON, e.g. '{\"beam\": 5, \"lenpen\": 1.0}' (greedy by default: "
                          "decoding every epoch costs time)"},
    )
    eval_bleu_tokenize: str = field(default="13a", metadata={"help": "sacrebleu tokenizer: 13a, none, zh, …"})
    eval_bleu_print_samples: bool = field(default=False, metadata={"help": "log one hypothesis per batch"})


class ValidationBleu:
    """Mix into a FairseqTask whose config extends :class:`ValidationBleuConfig` and that has ``build_bpe``."""

    def setup_validation_bleu(self, model) -> None:
        if self.cfg.eval_bleu:
            gen_args = Namespace(**json.loads(self.cfg.eval_bleu_args))
            self._bleu_generator = self.build_generator([model], gen_args)
            self._bleu_bpe = self.build_bpe(None)

    def _decode_text(self, tokens, escape_unk: bool) -> str:
        # <unk> is tokenised by sacrebleu as '< unk >' and would match: give each side its own unmatchable word
        text = self.target_dictionary.string(
            tokens.int().cpu(), unk_string="UNKNOWNTOKENINREF" if escape_unk else "UNKNOWNTOKENINHYP",
            extra_symbols_to_ignore=[self._bleu_generator.eos],
        )
        return self._bleu_bpe.decode(text) if self._bleu_bpe is not None else text

    def valid_step(self, sample, model, criterion):
        loss, sample_size, logging_output = super().valid_step(sample, model, criterion)
        if self.cfg.eval_bleu:
            import sacrebleu

            output = self.inference_step(self._bleu_generator, [model], sample, prefix_tokens=None)
            pad = self.target_dictionary.pad()
            hyps = [self._decode_text(beams[0]["tokens"], escape_unk=False) for beams in output]
            refs = [self._decode_text(utils.strip_pad(t, pad), escape_unk=True) for t in sample["target"]]
            if self.cfg.eval_bleu_print_samples:
                logger.info(f"hypothesis: {hyps[0]}\n    reference: {refs[0]}")
            bleu = sacrebleu.corpus_bleu(hyps, [refs], tokenize=self.cfg.eval_bleu_tokenize)
            logging_output["_bleu_sys_len"] = bleu.sys_len
            logging_output["_bleu_ref_len"] = bleu.ref_len
            for i in range(ORDER):  # one scalar per entry: fairseq sums those across workers cheaply
                logging_output[f"_bleu_counts_{i}"] = bleu.counts[i]
                logging_output[f"_bleu_totals_{i}"] = bleu.totals[i]
        return loss, sample_size, logging_output

    def reduce_metrics(self, logging_outputs, criterion):
        super().reduce_metrics(logging_outputs, criterion)
        if not self.cfg.eval_bleu or not any("_bleu_sys_len" in log for log in logging_outputs):
            return  # training batches carry no BLEU statistics

        def total(key):
            return sum(float(log.get(key, 0)) for log in logging_outputs)

        for name in ("counts", "totals"):
            metrics.log_scalar(f"_bleu_{name}", np.array([total(f"_bleu_{name}_{i}") for i in range(ORDER)]))
        metrics.log_scalar("_bleu_sys_len", total("_bleu_sys_len"))
        metrics.log_scalar("_bleu_ref_len", total("_bleu_ref_len"))
        metrics.log_derived("bleu", _bleu_from_meters)


def _bleu_from_meters(meters) -> float:
    from sacrebleu.metrics import BLEU

    if meters["_bleu_totals"].sum.max() == 0:  # nothing but empty hypotheses (the best-checkpoint logic needs a value)
        return 0.0
    bleu = BLEU.compute_bleu(
        correct=[int(x) for x in meters["_bleu_counts"].sum], total=[int(x) for x in meters["_bleu_totals"].sum],
        sys_len=int(meters["_bleu_sys_len"].sum), ref_len=int(meters["_bleu_ref_len"].sum), smooth_method="exp",
    )
    return round(bleu.score, 2)
