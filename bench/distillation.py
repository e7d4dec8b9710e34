"""Benchmark: multimodal knowledge distillation on the demo corpus — the same student with and without teachers.

Recognition: the two teachers of ``configs/demo/kd`` are trained first (the text→gloss teacher reads no frame; the
dialogue teacher fuses the sign stream with the preceding utterance). Then the student of
``configs/demo/kd/student.yaml`` (VAC: CNN, head, BiLSTM or transformer; ConvCTC + SeqCTC + Dist) is trained with
the same seed, epochs and updates: with the four teacher weights (β, γ, δ, ε) at 0 — VAC's loss alone, the
baseline — and with the config's weights; each under two settings side by side: the demo recipe as written, and
the published method's Dist weight (VAC's 25, which on the demo's 28 glosses and short clips pulls about 22 times
harder against ConvCTC than on Phoenix's 1,296 classes; the demo recipe's weight is 0). All are scored on test by
fairseq-generate (CTC beam 5); the best dev figure of each run is read from its training log.

Translation: a Gloss2Text model (``configs/demo/g2t.yaml``) is trained, the first setting's baseline student's
backbone features are extracted, and Sign2Text (the joint model on those features) is trained from the same two
checkpoints with the same budget: with ``combined`` (``configs/demo/s2t.yaml``) and with
``translation_distillation`` from the frozen Gloss2Text teacher (``configs/demo/kd/s2t_student.yaml``), at the
recipe's weights and at the published ones (γ = δ = 1, T = 8). All are scored on test (beam 5).

The runs of each stage go side by side, ``--threads`` each, so that they share the machine alike. Printed: each
teacher's and student's test WER / BLEU-4, and the distilled student's figure as a ratio of the baseline's, with
the wall time of each run. Outputs and logs stay in ``--work``.

    python bench/distillation.py [--epochs 40] [--student bilstm|transformer] [--settings recipe|published|both]
                                 [--threads 1] [--skip-translation] [--work bench/out/distillation]
"""

import argparse
import os
import re
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.dirname(sys.executable)
# the demo recipes as written, and the published methods' weights on the same student
RECOGNITION = {"recipe": [], "published": ["criterion.dist_weight=25"]}
TRANSLATION = {"recipe": [], "published": ["criterion.kd_kl_weight=1", "criterion.kd_feature_weight=1",
                                           "criterion.kd_temperature=8"]}
SETTING_NAMES = {"recipe": "demo recipe: configs/demo/kd/student.yaml",
                 "published": "published: VAC's Dist weight 25"}
TRANSLATION_NAMES = {"recipe": "configs/demo/kd/s2t_student.yaml", "published": "published: γ = δ = 1, T = 8"}
TRANSFORMER = ["model.sequence_model=transformer",
               "model.sequence_args=\"{'hidden_dim': 128, 'layers': 2, 'heads': 4, 'ff_dim': 256}\""]


def run(cmd, log, threads=1):
    """Run one step from the repository with ``threads`` intra-op threads, its output in ``log``; seconds taken."""
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads),
               PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    started = time.time()
    with open(log, "w") as f:
        proc = subprocess.run([str(c) for c in cmd], cwd=REPO, stdout=f, stderr=subprocess.STDOUT, env=env)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(map(str, cmd[:4]))} … failed (exit {proc.returncode}); {log}:\n"
                         f"{open(log).read()[-3000:]}")
    return time.time() - started


def train(config, data, save_dir, log, overrides, epochs, threads=1):
    """fairseq-hydra-train with a demo config, ``epochs`` epochs of 40 batches (the cosine period follows)."""
    folder, name = os.path.split(config)
    return run([os.path.join(BIN, "fairseq-hydra-train"), "--config-dir", os.path.join(REPO, "configs", folder),
                "--config-name", name, f"task.data={data}", f"checkpoint.save_dir={save_dir}",
                f"optimization.max_epoch={epochs}", f"optimization.max_update={40 * epochs}",
                "dataset.num_workers=0", *overrides], log, threads)


def generate(data, checkpoint, log, task_args, scoring, threads=2):
    run([os.path.join(BIN, "fairseq-generate"), data, "--user-dir", "slt_plugins", "--gen-subset", "test", "--beam",
         "5", "--batch-size", "8", "--num-workers", "0", *task_args, "--path", checkpoint, "--scoring", scoring], log,
        threads=threads)
    text = open(log).read()
    if scoring == "wer":
        return float(re.search(r"WER: ([\d.]+)", text).group(1))
    return float(re.search(r"BLEU-4 ([\d.]+)", text).group(1))


def best_dev(log, metric):
    """The best dev figure of a training run, as fairseq logged it (``best_wer``, ``best_bleu``)."""
    found = re.findall(rf"best_{metric} ([\d.]+)", open(log).read())
    return float(found[-1]) if found else float("nan")


def side_by_side(*jobs):
    with ThreadPoolExecutor(len(jobs)) as pool:
        return [f.result() for f in [pool.submit(*job) for job in jobs]]


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--work", default=os.path.join(REPO, "bench", "out", "distillation"))
    p.add_argument("--epochs", type=int, default=40, help="epochs of every teacher and student (default 40)")
    p.add_argument("--student", choices=["bilstm", "transformer"], default="bilstm")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--skip-translation", action="store_true")
    p.add_argument("--settings", choices=["recipe", "published", "both"], default="both",
                   help="the demo recipes' weights, the published ones (VAC's Dist 25; γ = δ = 1, T = 8), or both")
    p.add_argument("--threads", type=int, default=1, help="threads of each training run (default 1)")
    args = p.parse_args()
    work = os.path.abspath(args.work)
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    data, seed = os.path.join(work, "data"), [f"common.seed={args.seed}"]
    path = {name: os.path.join(work, name, "checkpoint_best.pt") for name in ("text2gloss", "dialogue", "g2t")}
    log = {name: os.path.join(work, f"{name}.log") for name in path}
    started = time.time()

    run([os.path.join(BIN, "slt-make-demo-data"), "--out", os.path.join(work, "corpus"), "--seed", str(args.seed)],
        os.path.join(work, "corpus.log"), threads=2)
    corpus = os.path.join(work, "corpus")
    run([os.path.join(BIN, "slt-binarise"), "phoenix-2014t", "--annotations", os.path.join(corpus, "annotations"),
         "--frames", os.path.join(corpus, "frames"), "--out", data, "--frame-size", "0"],
        os.path.join(work, "binarise.log"), threads=2)

    side_by_side((train, "demo/kd/text2gloss_teacher", data, os.path.dirname(path["text2gloss"]), log["text2gloss"],
                  seed, args.epochs, args.threads),
                 (train, "demo/kd/dialogue_teacher", data, os.path.dirname(path["dialogue"]), log["dialogue"], seed,
                  args.epochs, args.threads))
    student = seed + [f"criterion.fusion_teacher={path['dialogue']}", f"criterion.text_teacher={path['text2gloss']}"]
    student += TRANSFORMER if args.student == "transformer" else []
    no_teachers = [f"criterion.{w}=0" for w in ("fusion_kl_weight", "fusion_feature_weight", "text_kl_weight",
                                                 "text_feature_weight")]
    settings = [name for name in ("recipe", "published") if args.settings in (name, "both")]
    runs = {f"{kind}_{name}": overrides + (no_teachers if kind == "alone" else []) + RECOGNITION[name]
            for name in settings for kind, overrides in (("alone", student), ("distilled", student))}
    for name in runs:
        path[name] = os.path.join(work, name, "checkpoint_best.pt")
    wall = dict(zip(runs, side_by_side(*[(train, "demo/kd/student", data, os.path.dirname(path[name]),
                                          os.path.join(work, f"{name}.log"), overrides, args.epochs, args.threads)
                                         for name, overrides in runs.items()])))
    sign = ["--task", "sign2gloss", "--crop-size", "64"]
    wer = {name: generate(data, path[name], os.path.join(work, f"{name}.test.log"), extra, "wer", args.threads)
           for name, extra in [("text2gloss", sign + ["--input", "lengths", "--text-inputs"]),
                               ("dialogue", sign + ["--text-inputs"])] + [(name, sign) for name in runs]}

    print(f"Distillation on the demo corpus ({args.student} student, {args.epochs} epochs each, seed {args.seed}; "
          f"test split, CTC beam 5)")
    print(f"  teacher text→gloss (reads the translation)   WER {wer['text2gloss']:6.2f} %")
    print(f"  teacher dialogue (sign + preceding text)     WER {wer['dialogue']:6.2f} %")
    print(f"  {'student WER % (best dev / test, wall time)':44} {'alone (VAC loss)':>24} "
          f"{'distilled (β γ δ ε)':>24} {'test ratio':>10}")
    for name in settings:
        row = []
        for kind in ("alone", "distilled"):
            run_name = f"{kind}_{name}"
            dev = best_dev(os.path.join(work, f"{run_name}.log"), "wer")
            row.append(f"{dev:6.2f} / {wer[run_name]:6.2f} ({wall[run_name]:4.0f} s)")
        ratio = wer[f"distilled_{name}"] / max(wer[f"alone_{name}"], 1e-9)
        print(f"  {SETTING_NAMES[name]:44} {row[0]:>24} {row[1]:>24} {ratio:10.3f}")

    if not args.skip_translation:
        visual = path[f"alone_{settings[0]}"]
        train("demo/g2t", data, os.path.dirname(path["g2t"]), log["g2t"], seed, 30, args.threads)
        run([os.path.join(BIN, "slt-extract-features"), "--checkpoint", visual, "--data", data,
             "--batch-size", "8", "--num-workers", "0", "--quiet"], os.path.join(work, "features.log"),
            threads=args.threads)
        joint = seed + [f"model.sign2gloss_checkpoint={visual}", f"model.gloss2text_checkpoint={path['g2t']}"]
        teacher = [f"criterion.gloss2text_teacher={path['g2t']}"]
        jobs = {"s2t_alone": ("demo/s2t", joint)}
        jobs.update({f"s2t_{name}": ("demo/kd/s2t_student", joint + teacher + TRANSLATION[name]) for name in settings})
        for name in jobs:
            path[name] = os.path.join(work, name, "checkpoint_best.pt")
        wall.update(zip(jobs, side_by_side(*[(train, config, data, os.path.dirname(path[name]),
                                              os.path.join(work, f"{name}.log"), overrides, args.epochs,
                                              args.threads) for name, (config, overrides) in jobs.items()])))
        s2t = ["--task", "sign2text", "--input", "features", "--features", "cnn_tconv"]
        bleu = {name: generate(data, path[name], os.path.join(work, f"{name}.test.log"), s2t, "translation_metrics",
                               args.threads) for name in jobs}
        print(f"  Sign2Text on the features of the student alone, {SETTING_NAMES[settings[0]]}")
        for name, label in [("s2t_alone", "alone (combined loss)")] + [
                (f"s2t_{name}", "distilled, " + TRANSLATION_NAMES[name]) for name in settings]:
            dev = best_dev(os.path.join(work, f"{name}.log"), "bleu")
            print(f"  {label:44} BLEU-4 dev {dev:6.2f} / test {bleu[name]:6.2f}   ({wall[name]:.0f} s)   "
                  f"test × {bleu[name] / max(bleu['s2t_alone'], 1e-9):.3f}")
    print(f"total {time.time() - started:.0f} s; logs in {work}")


if __name__ == "__main__":
    main()
