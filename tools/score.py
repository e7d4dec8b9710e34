"""slt-score: BLEU-1..4 and ROUGE-L of a fairseq-generate output, under each BLEU tokenisation papers use.

Sign language translation papers disagree on BLEU's tokenisation: SLRT scores lower-cased, space-separated text
with sacrebleu's ``tokenize='none'``, others sacrebleu's default ``13a``. Both numbers, each with sacrebleu's
signature, come from one pass over the file: ``fairseq-generate … > gen.out; slt-score gen.out``. It reads the
detokenised ``T-<id>`` (reference) and ``D-<id>`` (hypothesis) lines; any fairseq translation task's output
works (``--post-process sentencepiece`` where the task does not join sub-words itself).
"""

import argparse
import json
import re
import sys
from typing import List, Optional, Tuple

from slt_plugins.scoring.translation_metrics import TranslationMetricsConfig, TranslationMetricsScorer


class ScoreError(ValueError):
    pass


def read_generate_output(path: str) -> Tuple[List[str], List[str]]:
    """(references, hypotheses) in sample-id order; the first hypothesis of each sample (the best of the n-best)."""
    refs, hyps = {}, {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            match = re.match(r"^([TD])-(\d+)\t(.*)$", line.rstrip("\n"))
            if not match:
                continue
            kind, sample, rest = match.group(1), int(match.group(2)), match.group(3)
            if kind == "T":
                refs[sample] = rest
            elif sample not in hyps:
                hyps[sample] = rest.split("\t", 1)[1] if "\t" in rest else ""
    if not refs:
        raise ScoreError(f"{path}: no 'T-<id>' reference lines; is it the output of fairseq-generate on a split "
                         "with targets?")
    missing = sorted(set(refs) - set(hyps))
    if missing:
        raise ScoreError(f"{path}: samples {missing[:5]} have a reference but no 'D-' hypothesis; the file is cut "
                         "short")
    order = sorted(refs)
    return [refs[i] for i in order], [hyps[i] for i in order]


def score(refs: List[str], hyps: List[str], tokenize: str, lowercase: bool, rouge_beta: float = 1.2,
          detach_final_period: bool = False, rouge_tokenize: str = "space") -> dict:
    cfg = TranslationMetricsConfig(bleu_tokenize=tokenize, bleu_lowercase=lowercase, rouge_beta=rouge_beta,
                                   rouge_lowercase=lowercase, detach_final_period=detach_final_period,
                                   rouge_tokenize=rouge_tokenize)
    scorer = TranslationMetricsScorer(cfg)
    for ref, hyp in zip(refs, hyps):
        scorer.add_string(ref, hyp)
    out = {k: round(v, 2) for k, v in scorer.scores().items()}
    out["signature"] = str(scorer.bleus[4].get_signature())
    return out


def score_each(refs: List[str], hyps: List[str], tokenizations=("13a", "none"), lowercase: bool = False,
               rouge_beta: float = 1.2, detach_final_period: bool = False, rouge_tokenize: str = "space") -> dict:
    """:func:`score` under each tokenisation, keyed by it."""
    return {t: score(refs, hyps, t, lowercase, rouge_beta, detach_final_period, rouge_tokenize)
            for t in tokenizations}


def score_line(r: dict) -> str:
    """One :func:`score` result as the line slt-score prints."""
    bleu = ", ".join(f"BLEU-{n} {r[f'bleu{n}']:.2f}" for n in (1, 2, 3, 4))
    return f"{bleu} | ROUGE-L {r['rouge_l']:.2f} | {r['signature']}"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="slt-score", description=__doc__.split("\n\n")[0])
    p.add_argument("generate_output", help="what fairseq-generate printed (a file)")
    p.add_argument("--tokenize", nargs="+", default=["13a", "none"], help="sacrebleu tokenisations (default: 13a none)")
    p.add_argument("--lowercase", action="store_true", help="lower-case both sides first")
    p.add_argument("--rouge-beta", type=float, default=1.2, help="β of ROUGE-L (0: β = P/R per sentence)")
    p.add_argument("--rouge-tokenize", choices=["space", "char"], default="space",
                   help="ROUGE-L units: words, or characters (SLRT's CSL-Daily)")
    p.add_argument("--detach-final-period", action="store_true",
                   help="split a hypothesis's final period off its last word (SLRT's German post-processing)")
    p.add_argument("--slrt", choices=["word", "char"], default=None,
                   help="score as SLRT reports: lower-cased, BLEU tokenize 'none' (word) or 'char' (CSL-Daily), "
                        "ROUGE-L with beta = P/R (SLRT's Rouge.py), German final periods split off (word); "
                        "overrides --tokenize, --lowercase, --rouge-beta, --rouge-tokenize")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of text lines")
    return p


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    if args.slrt:
        args.tokenize, args.lowercase, args.rouge_beta = ["none" if args.slrt == "word" else "char"], True, 0.0
        args.rouge_tokenize = "space" if args.slrt == "word" else "char"
        args.detach_final_period = args.slrt == "word"
    try:
        refs, hyps = read_generate_output(args.generate_output)
        results = score_each(refs, hyps, args.tokenize, args.lowercase, args.rouge_beta, args.detach_final_period,
                             args.rouge_tokenize)
    except (OSError, ScoreError, ValueError) as e:
        print(f"slt-score: error: {e}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps({"sentences": len(refs), "scores": results}, ensure_ascii=False))
        return 0
    print(f"{args.generate_output}: {len(refs)} sentences")
    for r in results.values():
        print(score_line(r))
    return 0


if __name__ == "__main__":
    sys.exit(main())
