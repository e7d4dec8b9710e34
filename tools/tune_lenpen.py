"""slt-tune-lenpen: choose fairseq-generate's ``--lenpen`` on dev from one n-best decode, with a fair dev figure.

In fairseq's beam search the length penalty does not change which hypotheses finish; it only ranks them at the end
(score / length^lenpen). One ``fairseq-generate --beam 5 --nbest 5`` output therefore holds the 1-best under every
lenpen, and a grid of them is compared without decoding again. Translators trained on a small corpus tend to stop
early (BLEU's brevity penalty < 1), and the length penalty is the knob Sign Language Transformers (Camgoz et al.,
2020) tune on dev. Two figures come out:

- the lenpen with the best BLEU-4 on all sentences of the file: the ``--lenpen`` to decode another split with;
- a cross-fitted score of the file itself: its sentences split in two by id parity, each half ranked with the lenpen
  that is best on the other half. No sentence's lenpen was chosen with its own reference, so this figure, unlike
  the best one of the grid, does not flatter the set it was tuned on.

    fairseq-generate DATA … --gen-subset dev --beam 5 --nbest 5 > dev.gen
    slt-tune-lenpen dev.gen [--write dev.xfit.gen]      # then: slt-score dev.xfit.gen
"""

import argparse
import json
import os
import re
import sys
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import sacrebleu

from fairseq_slt.tools.score import score_each, score_line

GRID = tuple(i / 4 for i in range(13))  # 0 (sum of log-probabilities, favours short) … 3 (favours long)


class TuneError(ValueError):
    pass


@dataclass
class Sample:
    reference: Optional[str] = None
    texts: List[str] = field(default_factory=list)
    log_probs: List[float] = field(default_factory=list)  # unnormalised, base 2: what the length penalty divides
    lengths: List[int] = field(default_factory=list)  # tokens with </s>: fairseq's `step + 1`


def read_nbest(path: str, decoded_lenpen: float = 1.0) -> Dict[int, Sample]:
    """Every hypothesis of a fairseq-generate output, with its log-probability and length."""
    samples: Dict[int, Sample] = {}
    pending: Dict[int, float] = {}  # sample → the normalised score of its last D- line, waiting for its P- line
    with open(path, encoding="utf-8") as f:
        for row, line in enumerate(f, 1):
            match = re.match(r"^([TDP])-(\d+)\t(.*)$", line.rstrip("\n"))
            if not match:
                continue
            kind, sid, rest = match.group(1), int(match.group(2)), match.group(3)
            sample = samples.setdefault(sid, Sample())
            if kind == "T":
                sample.reference = rest
            elif kind == "D":
                normalised, _, text = rest.partition("\t")
                sample.texts.append(text)
                pending[sid] = float(normalised)
            else:
                if sid not in pending:
                    raise TuneError(f"{path}, line {row}: a P- line without its D- line; the file is not what "
                                    "fairseq-generate printed")
                positional = [float(x) for x in rest.split()]
                normalised, n = pending.pop(sid), len(positional)
                log_prob = normalised * n ** decoded_lenpen  # full precision; the P- line has 4 decimals
                if abs(log_prob - sum(positional)) > 1e-3 + 1e-4 * n:
                    raise TuneError(f"{path}, line {row}: the score is not the positional scores' sum / length^"
                                    f"{decoded_lenpen:g}; pass the --lenpen the file was decoded with as "
                                    "--decoded-lenpen (0 for --unnormalized)")
                sample.log_probs.append(log_prob)
                sample.lengths.append(n)
    samples = {i: s for i, s in samples.items() if s.reference is not None}
    if not samples:
        raise TuneError(f"{path}: no 'T-<id>' reference lines; decode a split with targets")
    if pending or any(len(s.log_probs) != len(s.texts) or not s.texts for s in samples.values()):
        raise TuneError(f"{path}: some hypotheses lack their 'P-' line or the file is cut short; decode without "
                        "--quiet and keep the whole output")
    if max(len(s.texts) for s in samples.values()) < 2:
        raise TuneError(f"{path}: one hypothesis per sentence, nothing to rank; decode with --nbest equal to --beam")
    return samples


def rank(sample: Sample, lenpen: float) -> str:
    """fairseq's 1-best under this lenpen (ties keep fairseq's order)."""
    scores = [lp / n ** lenpen for lp, n in zip(sample.log_probs, sample.lengths)]
    return sample.texts[max(range(len(scores)), key=lambda k: (scores[k], -k))]


def bleu(samples: Sequence[Sample], lenpen: float, tokenize: str) -> sacrebleu.metrics.bleu.BLEUScore:
    return sacrebleu.corpus_bleu([rank(s, lenpen) for s in samples], [[s.reference for s in samples]],
                                 tokenize=tokenize)


def best_lenpen(samples: Sequence[Sample], grid: Sequence[float], tokenize: str) -> Tuple[float, List[dict]]:
    """The grid point with the highest BLEU-4 (ties: the one nearest fairseq's default 1.0), and the whole table."""
    table = []
    for lenpen in grid:
        b = bleu(samples, lenpen, tokenize)
        table.append({"lenpen": lenpen, "bleu4": b.score, "bp": b.bp, "length_ratio": b.sys_len / max(b.ref_len, 1)})
    best = max(table, key=lambda r: (round(r["bleu4"], 6), -abs(r["lenpen"] - 1.0)))
    return best["lenpen"], table


def tune(samples: Dict[int, Sample], grid: Sequence[float] = GRID, tokenize: str = "13a") -> dict:
    """The grid on all sentences, and the cross-fitted 1-best of each sentence (ids in order)."""
    ids = sorted(samples)
    lenpen, table = best_lenpen([samples[i] for i in ids], grid, tokenize)
    halves = {parity: [i for i in ids if i % 2 == parity] for parity in (0, 1)}
    # each half ranked with the lenpen that the other half prefers
    fold_lenpens = {parity: best_lenpen([samples[i] for i in halves[1 - parity]], grid, tokenize)[0]
                    for parity in (0, 1)}
    chosen = {i: rank(samples[i], fold_lenpens[i % 2]) for i in ids}
    return {"ids": ids, "best_lenpen": lenpen, "grid": table, "fold_lenpens": [fold_lenpens[0], fold_lenpens[1]],
            "references": [samples[i].reference for i in ids], "cross_fitted": [chosen[i] for i in ids]}


def write_generate_like(path: str, ids: List[int], refs: List[str], hyps: List[str]) -> None:
    """T- and D- lines, as slt-score reads them; written under a temporary name, then renamed."""
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        for i, ref, hyp in zip(ids, refs, hyps):
            f.write(f"T-{i}\t{ref}\nD-{i}\t0\t{hyp}\n")
    os.replace(tmp, path)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="slt-tune-lenpen", description=__doc__.split("\n\n")[0])
    p.add_argument("generate_output", help="fairseq-generate's output with --nbest equal to --beam (a file)")
    p.add_argument("--grid", type=float, nargs="+", default=list(GRID), help="lenpen values (default 0, 0.25 … 3)")
    p.add_argument("--tokenize", default="13a", help="sacrebleu tokenisation the choice maximises BLEU-4 under")
    p.add_argument("--decoded-lenpen", type=float, default=1.0, help="the --lenpen the file was decoded with")
    p.add_argument("--write", metavar="FILE", help="the cross-fitted 1-best as T-/D- lines, for slt-score")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of text lines")
    return p


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        samples = read_nbest(args.generate_output, args.decoded_lenpen)
        result = tune(samples, args.grid, args.tokenize)
        scores = score_each(result["references"], result["cross_fitted"])
    except (OSError, TuneError, ValueError) as e:
        print(f"slt-tune-lenpen: error: {e}", file=sys.stderr)
        return 2
    if args.write:
        write_generate_like(args.write, result["ids"], result["references"], result["cross_fitted"])
    if args.json:
        print(json.dumps({"sentences": len(samples), "best_lenpen": result["best_lenpen"], "grid": result["grid"],
                          "fold_lenpens": result["fold_lenpens"], "cross_fitted": scores}, ensure_ascii=False))
        return 0
    nbest = max(len(s.texts) for s in samples.values())
    print(f"{args.generate_output}: {len(samples)} sentences, up to {nbest} hypotheses each; BLEU-4 ({args.tokenize}) "
          "of the 1-best under each lenpen:")
    for r in result["grid"]:
        mark = "  <- best" if r["lenpen"] == result["best_lenpen"] else ""
        print(f"  lenpen {r['lenpen']:5.2f}  BLEU-4 {r['bleu4']:6.2f}  BP {r['bp']:.3f}  "
              f"length ratio {r['length_ratio']:.3f}{mark}")
    print(f"decode other splits with --lenpen {result['best_lenpen']:g}")
    even, odd = result["fold_lenpens"]
    print(f"cross-fitted (even ids ranked with lenpen {even:g}, odd ids with {odd:g}, each chosen on the other half):")
    for r in scores.values():
        print(f"  {score_line(r)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
