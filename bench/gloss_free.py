"""Benchmark: what glosses buy on the demo corpus — Sign2Text with glosses against Sign2Text without, same run.

One demo corpus (``slt-make-demo-data``, seed and sizes below) is written twice from the same seed, so the clips
and texts are the same: once with its glosses (the Phoenix layout) and once without (``--no-glosses``: How2Sign-style
TSVs), and each is binarised (the second with ``slt-binarise tsv --no-glosses``).

- Gloss route (the project's recipe): Sign2Gloss on frames (``--s2g-epochs``), Gloss2Text (``--g2t-epochs``), then
  Sign2Text from both checkpoints with the combined loss (CTC weight 1, ``--s2t-epochs``).
- Gloss-free route: Sign2Text from scratch on frames with ``--ctc-weight 0``, no Sign2Gloss and no Gloss2Text
  checkpoint, for as many epochs as the gloss route trains its visual side (``--s2g-epochs + --s2t-epochs``), so
  both see the clips as often.

The models are the demo's tiny ones (a per-frame CNN with temporal convolutions, a 2+2-layer mBART-shaped
translator), trained with the same seed, batch size and learning rates. Both are scored on test by fairseq-generate
(beam 5, ``translation_metrics``: BLEU-4 with sacrebleu's 13a tokenizer, ROUGE-L); the gloss route's line also holds
its gloss WER. Printed side by side, with the gloss-free BLEU-4 as a ratio of the gloss route's and the wall time of
each route (the two routes run side by side, ``--threads`` each); outputs and logs stay in ``--work``.

    python bench/gloss_free.py [--train 24 --dev 6 --test 24] [--s2g-epochs 20 --g2t-epochs 12 --s2t-epochs 8]
                               [--all-glosses] [--threads 1] [--work bench/out/gloss_free]
"""

import argparse
import os
import re
import shutil
import sys
import time
from concurrent.futures import ThreadPoolExecutor

from distillation import run  # bench/ is this script's folder: the same step runner

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.dirname(sys.executable)
LEARNABLE_GLOSSES = ("HEUTE", "MORGEN", "NORD", "WEST", "REGEN", "WIND", "NEBEL", "STARK")
COMMON = ["--user-dir", "slt_plugins", "--optimizer", "adam", "--batch-size", "4", "--valid-subset", "dev",
          "--no-progress-bar", "--num-workers", "0", "--no-epoch-checkpoints", "--log-format", "simple", "--seed", "1",
          "--disable-validation"]
VISUAL = "{'visual_backbone': 'cnn_tconv', 'backbone_args': \"{'output_dim': 64}\", 'head_dim': 64, 'head_ff_dim': 128}"


def script(name):
    return os.path.join(BIN, name)


def make_corpora(args, work):
    """(dataset with glosses, dataset without) of the same seed."""
    sizes = ["--train", args.train, "--dev", args.dev, "--test", args.test, "--frame-size", "32", "32",
             "--workers", "1", "--seed", args.seed, *([] if args.all_glosses else ["--glosses", *LEARNABLE_GLOSSES])]
    raw, raw_free = os.path.join(work, "raw"), os.path.join(work, "raw_free")
    glossed, free = os.path.join(work, "bin"), os.path.join(work, "bin_free")
    py = [sys.executable, "-m"]
    run([*py, "fairseq_slt.tools.make_demo_data", "--out", raw, *sizes], os.path.join(work, "make.log"), args.threads)
    run([*py, "fairseq_slt.tools.make_demo_data", "--out", raw_free, *sizes, "--no-glosses"], os.path.join(work, "make_free.log"),
        args.threads)
    run([*py, "fairseq_slt.tools.binarise", "phoenix-2014t", "--annotations", os.path.join(raw, "annotations"), "--frames",
         os.path.join(raw, "frames"), "--out", glossed, "--frame-size", "0", "--workers", "1"],
        os.path.join(work, "binarise.log"), args.threads)
    manifests = [f"--manifest={s}={os.path.join(raw_free, 'annotations', s + '.tsv')}"
                 for s in ("train", "dev", "test")]
    run([*py, "fairseq_slt.tools.binarise", "tsv", "--no-glosses", *manifests, "--out", free, "--frame-size", "0", "--language",
         "de", "--workers", "1"], os.path.join(work, "binarise_free.log"), args.threads)
    return glossed, free


def scores(data, checkpoint, log, threads):
    run([script("fairseq-generate"), data, "--user-dir", "slt_plugins", "--path", checkpoint, "--task", "sign2text",
         "--gen-subset", "test", "--num-workers", "0", "--batch-size", "8", "--beam", "5", "--scoring",
         "translation_metrics"], log, threads)
    text = open(log).read()
    line = re.search(r"^Generate test with beam=5: (.*)$", text, flags=re.M).group(1)
    found = {"bleu4": float(re.search(r"BLEU-4 ([\d.]+)", line).group(1)),
             "rouge": float(re.search(r"ROUGE-L ([\d.]+)", line).group(1))}
    wer = re.search(r"WER ([\d.]+)", line)
    found["wer"] = float(wer.group(1)) if wer else None
    found["g_lines"] = len(re.findall(r"^G-\d+\t", text, flags=re.M))
    return found


def gloss_route(args, data, work):
    started = time.time()
    s2g, g2t, s2t = (os.path.join(work, name) for name in ("s2g", "g2t", "s2t"))
    train = script("fairseq-train")
    run([train, data, *COMMON, "--task", "sign2gloss", "--arch", "s3d_encoder_tiny", "--crop-size", "32",
         "--criterion", "gloss_ctc", "--lr", args.visual_lr, "--max-epoch", args.s2g_epochs, "--save-dir", s2g],
        os.path.join(work, "s2g.log"), args.threads)
    run([train, data, *COMMON, "--task", "gloss2text", "--arch", "mbart_translator_tiny", "--criterion",
         "label_smoothed_cross_entropy", "--label-smoothing", "0.1", "--dropout", "0.1", "--lr", args.visual_lr,
         "--max-epoch", args.g2t_epochs, "--save-dir", g2t], os.path.join(work, "g2t.log"), args.threads)
    run([train, data, *COMMON, "--task", "sign2text", "--arch", "joint", "--crop-size", "32",
         "--sign2gloss-checkpoint", os.path.join(s2g, "checkpoint_last.pt"), "--gloss2text-checkpoint",
         os.path.join(g2t, "checkpoint_last.pt"), "--criterion", "combined", "--label-smoothing", "0.1",
         "--lr", args.s2t_lr, "--max-epoch", args.s2t_epochs, "--save-dir", s2t], os.path.join(work, "s2t.log"),
        args.threads)
    found = scores(data, os.path.join(s2t, "checkpoint_last.pt"), os.path.join(work, "generate.log"), args.threads)
    return dict(found, seconds=time.time() - started)


def gloss_free_route(args, data, work):
    started = time.time()
    save = os.path.join(work, "s2t_free")
    run([script("fairseq-train"), data, *COMMON, "--task", "sign2text", "--arch", "joint", "--crop-size", "32",
         "--translator-arch", "mbart_translator_tiny", "--visual-args", VISUAL, "--criterion", "combined",
         "--ctc-weight", "0", "--label-smoothing", "0.1", "--lr", args.visual_lr,
         "--max-epoch", int(args.s2g_epochs) + int(args.s2t_epochs), "--save-dir", save],
        os.path.join(work, "s2t_free.log"), args.threads)
    found = scores(data, os.path.join(save, "checkpoint_last.pt"), os.path.join(work, "generate_free.log"),
                   args.threads)
    return dict(found, seconds=time.time() - started)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--train", default="24")
    p.add_argument("--dev", default="6")
    p.add_argument("--test", default="24")
    p.add_argument("--seed", default="1", help="the corpus's seed (training uses seed 1)")
    p.add_argument("--all-glosses", action="store_true", help="the demo grammar's 28 glosses (default: the learning "
                   "tests' 8, which allow at most about 60 distinct sentences)")
    p.add_argument("--s2g-epochs", default="20")
    p.add_argument("--g2t-epochs", default="12")
    p.add_argument("--s2t-epochs", default="8")
    p.add_argument("--visual-lr", default="5e-3", help="Sign2Gloss, Gloss2Text and the gloss-free Sign2Text")
    p.add_argument("--s2t-lr", default="1e-3", help="the gloss route's Sign2Text (from two trained checkpoints)")
    p.add_argument("--threads", type=int, default=1, help="per route")
    p.add_argument("--work", default=os.path.join(REPO, "bench", "out", "gloss_free"))
    args = p.parse_args(argv)
    shutil.rmtree(args.work, ignore_errors=True)
    os.makedirs(args.work)
    load = open("/proc/loadavg").read().split()[:3] if os.path.exists("/proc/loadavg") else ["?"]
    print(f"demo corpus: train {args.train}, dev {args.dev}, test {args.test} clips of 32×32 frames, "
          f"{28 if args.all_glosses else len(LEARNABLE_GLOSSES)} glosses, seed {args.seed}; load average "
          f"{' '.join(load)}", flush=True)
    glossed, free = make_corpora(args, args.work)
    with ThreadPoolExecutor(2) as pool:  # side by side, so that both routes share the machine alike
        with_glosses = pool.submit(gloss_route, args, glossed, args.work)
        without = pool.submit(gloss_free_route, args, free, args.work)
        with_glosses, without = with_glosses.result(), without.result()
    assert without["g_lines"] == 0 and without["wer"] is None, without  # text only, no gloss WER
    epochs = int(args.s2g_epochs) + int(args.s2t_epochs)
    rows = [(f"with glosses: S2G {args.s2g_epochs} ep + G2T {args.g2t_epochs} ep + S2T {args.s2t_epochs} ep",
             with_glosses),
            (f"without glosses: S2T from scratch, --ctc-weight 0, {epochs} ep", without)]
    print(f"\n{'route (test, beam 5)':<62} {'BLEU-4':>7} {'ROUGE-L':>8} {'gloss WER':>10} {'wall s':>8}")
    for name, r in rows:
        wer = f"{r['wer']:.2f}" if r["wer"] is not None else "-"
        print(f"{name:<62} {r['bleu4']:>7.2f} {r['rouge']:>8.2f} {wer:>10} {r['seconds']:>8.0f}")
    ratio = without["bleu4"] / with_glosses["bleu4"] if with_glosses["bleu4"] else float("nan")
    print(f"\ngloss-free BLEU-4 / gloss route BLEU-4: {ratio:.2f}")


if __name__ == "__main__":
    main()
