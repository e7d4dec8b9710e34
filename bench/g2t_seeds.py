"""Benchmark: variants of the from-scratch Gloss2Text recipe over several seeds, as means against the recipe itself.

One 55-minute run of the recipe lands within about ±0.4 BLEU-4 of its mean on 519 dev sentences (docs/gloss2text.md), which
is the size of most changes worth trying. This runs each variant with each seed (``--seeds 1 2 3``), as many runs
at once as ``--jobs`` allows, and prints per variant the seeds' dev BLEU-4 (beam 5, best greedy-dev-BLEU
checkpoint, and the last 5 epochs averaged), their mean and standard deviation, the hypothesis/reference length
ratio, and the mean's difference and ratio against the first variant (the baseline, measured in the same run).

Each run is a plain ``fairseq-hydra-train`` of ``configs/phoenix-2014t/g2t_scratch.yaml`` with the variant's Hydra
overrides; decoding is ``fairseq-generate --beam 5``, scored by ``slt-score``'s code (sacrebleu 13a). On a GPU
machine, runs share the GPU (each on one CPU core): 14 runs of the 50-epoch recipe took about 20 minutes on one
H100 with 16 cores. On a 2-core CPU each run takes the recipe's ~52 minutes. A run whose ``result.json`` exists in
``--work`` is read back, not run again, so an interrupted sweep continues where it stopped.

    python bench/g2t_seeds.py --seeds 1 2 3 --variant recipe --variant dropout0.2 model.dropout=0.2 [--jobs 14]
"""

import argparse
import json
import os
import statistics
import sys
from concurrent.futures import ThreadPoolExecutor

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [REPO, os.path.dirname(os.path.abspath(__file__))]

from g2t_phoenix import train_average_decode  # noqa: E402  (the phoenix bench's steps for our recipe)


def train_and_score(args, name, overrides, seed):
    """One run: train, average the last 5 epochs, decode dev from both checkpoints; its figures as a dict."""
    from fairseq_slt.tools.score import read_generate_output, score

    save = os.path.join(args.work, name, f"seed{seed}")
    done = os.path.join(save, "result.json")
    if os.path.isfile(done):
        with open(done) as f:
            return json.load(f)
    gens = train_average_decode(args.data, save, [f"common.seed={seed}", *args.set, *overrides], args.threads,
                                args.beam, args.config_dir, args.config_name)
    result = {"variant": name, "seed": seed, "overrides": overrides}
    for which, gen in gens.items():
        refs, hyps = read_generate_output(gen)  # the first of each n-best: the lenpen-1 1-best
        scored = score(refs, hyps, "13a", False)
        words = sum(len(r.split()) for r in refs)
        result[which] = {"bleu4": scored["bleu4"], "bleu1": scored["bleu1"], "rouge_l": scored["rouge_l"],
                         "length_ratio": round(sum(len(h.split()) for h in hyps) / words, 3)}
    tmp = done + ".tmp"
    with open(tmp, "w") as f:
        json.dump(result, f, indent=1)
    os.replace(tmp, done)
    return result


def summarise(results, variants):
    """Per variant and checkpoint: the seeds' BLEU-4, mean, sd, mean length ratio, and the mean against the first
    variant's (difference and ratio)."""
    rows = []
    for name, _ in variants:
        runs = [r for r in results if r["variant"] == name]
        for which in ("best", "avg5"):
            scored = [r[which] for r in runs if which in r]
            if not scored:
                continue
            bleus = [s["bleu4"] for s in scored]
            rows.append({"variant": name, "checkpoint": which, "seeds": [r["seed"] for r in runs if which in r],
                         "bleu4": bleus, "mean": statistics.mean(bleus),
                         "sd": statistics.stdev(bleus) if len(bleus) > 1 else 0.0,
                         "length_ratio": statistics.mean(s["length_ratio"] for s in scored)})
    for row in rows:
        base = next(r for r in rows if r["checkpoint"] == row["checkpoint"])
        row["difference"] = row["mean"] - base["mean"]
        row["ratio"] = row["mean"] / base["mean"] if base["mean"] else None  # a baseline at 0 BLEU has no ratio
    return rows


def parse_variants(specs):
    """``--variant NAME [KEY=VALUE …]`` → [(name, overrides)]; default: the recipe as configured."""
    variants = [(spec[0], list(spec[1:])) for spec in specs] or [("recipe", [])]
    names = [name for name, _ in variants]
    if len(set(names)) != len(names):
        raise SystemExit(f"g2t_seeds: variant names must differ: {names}")
    for name, overrides in variants:
        bad = [o for o in overrides if "=" not in o]
        if bad or "/" in name:
            raise SystemExit(f"g2t_seeds: --variant {name}: a name without '/', then Hydra overrides KEY=VALUE "
                             f"(not {bad})")
    return variants


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default="data_bins/phoenix-2014t", help="binarised Phoenix-2014T (slt-binarise)")
    p.add_argument("--work", default="bench/out/g2t_seeds", help="checkpoints, logs and results")
    p.add_argument("--variant", nargs="+", action="append", default=[], metavar="NAME [KEY=VALUE]",
                   help="a name and its Hydra overrides; the first variant is the baseline")
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="overrides of every variant")
    p.add_argument("--config-dir", default=os.path.join(REPO, "configs", "phoenix-2014t"))
    p.add_argument("--config-name", default="g2t_scratch")
    p.add_argument("--jobs", type=int, default=max(1, (os.cpu_count() or 2) - 1), help="runs at once")
    p.add_argument("--threads", type=int, default=1, help="CPU threads of each run")
    p.add_argument("--beam", type=int, default=5)
    args = p.parse_args()
    variants = parse_variants(args.variant)
    if not os.path.isfile(os.path.join(args.data, "train.tsv")):
        raise SystemExit(f"g2t_seeds: {args.data}/train.tsv not found; binarise first: slt-binarise phoenix-2014t "
                         f"--annotations ../shared/data/phoenix-2014t --out {args.data}")
    os.makedirs(args.work, exist_ok=True)
    jobs = [(name, overrides, seed) for name, overrides in variants for seed in args.seeds]
    with ThreadPoolExecutor(min(args.jobs, len(jobs))) as pool:
        results = list(pool.map(lambda job: train_and_score(args, *job), jobs))
    rows = summarise(results, variants)
    with open(os.path.join(args.work, "results.json"), "w") as f:
        json.dump({"args": vars(args), "runs": results, "summary": rows}, f, indent=1)
    print(f"\nGloss2Text, Phoenix-2014T dev, beam {args.beam}, BLEU-4 (13a), seeds {args.seeds}; "
          f"baseline: '{variants[0][0]}', measured in the same run")
    print(f"  {'variant':16s} {'checkpoint':10s} {'per seed':24s} {'mean':>6s} {'sd':>5s} {'len':>6s} "
          f"{'vs base':>8s} {'ratio':>6s}")
    for r in rows:
        seeds = " ".join(f"{b:.2f}" for b in r["bleu4"])
        ratio = "—" if r["ratio"] is None else f"{r['ratio']:.3f}×"
        print(f"  {r['variant']:16s} {r['checkpoint']:10s} {seeds:24s} {r['mean']:6.2f} {r['sd']:5.2f} "
              f"{r['length_ratio']:6.3f} {r['difference']:+8.2f} {ratio:>6s}")


if __name__ == "__main__":
    main()
