"""Benchmark: multimodal knowledge distillation on the demo corpus — the same student with and without teachers.

Recognition: the two teachers of ``configs/demo/kd`` are trained first (the text→gloss teacher reads no frame; the
dialogue teacher fuses the sign stream with the preceding utterance). Then the student of
``configs/demo/kd/student.yaml`` (VAC: CNN, head, BiLSTM or transformer; ConvCTC + SeqCTC + Dist) is trained twice
with the same seed, epochs and updates: once with the four teacher weights (β, γ, δ, ε) at 0 — VAC's loss alone,
the baseline — and once with the config's weights. Both are scored on test by fairseq-generate (CTC beam 5).

Translation: a Gloss2Text model (``configs/demo/g2t.yaml``) is trained, the baseline student's backbone features
are extracted, and Sign2Text (the joint model on those features) is trained twice from the same two checkpoints,
with the same budget: with ``combined`` (``configs/demo/s2t.yaml``) and with ``translation_distillation`` from the
frozen Gloss2Text teacher (``configs/demo/kd/s2t_student.yaml``). Both are scored on test (beam 5).

The two runs of each pair go side by side, one thread each, so that they share the machine alike. Printed: each
teacher's and student's test WER / BLEU-4, and the distilled student's figure as a ratio of the baseline's, with
the wall time of each run. Outputs and logs stay in ``--work``.

    python bench/distillation.py [--epochs 40] [--student bilstm|transformer] [--work bench/out/distillation]
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
TRANSFORMER = ["model.sequence_model=transformer",
               "model.sequence_args=\"{'hidden_dim': 128, 'layers': 2, 'heads': 4, 'ff_dim': 256}\""]


def run(cmd, log, threads=1):
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    started = time.time()
    with open(log, "w") as f:
        proc = subprocess.run([str(c) for c in cmd], cwd=REPO, stdout=f, stderr=subprocess.STDOUT, env=env)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(map(str, cmd[:4]))} … failed (exit {proc.returncode}); {log}:\n"
                         f"{open(log).read()[-3000:]}")
    return time.time() - started


def train(config, data, save_dir, log, overrides, epochs):
    """fairseq-hydra-train with a demo config, ``epochs`` epochs of 40 batches (the cosine period follows)."""
    folder, name = os.path.split(config)
    return run([os.path.join(BIN, "fairseq-hydra-train"), "--config-dir", os.path.join(REPO, "configs", folder),
                "--config-name", name, f"task.data={data}", f"checkpoint.save_dir={save_dir}",
                f"optimization.max_epoch={epochs}", f"optimization.max_update={40 * epochs}",
                "dataset.num_workers=0", *overrides], log)


def generate(data, checkpoint, log, task_args, scoring):
    run([os.path.join(BIN, "fairseq-generate"), data, "--user-dir", "slt_plugins", "--gen-subset", "test", "--beam",
         "5", "--batch-size", "8", "--num-workers", "0", *task_args, "--path", checkpoint, "--scoring", scoring], log,
        threads=2)
    text = open(log).read()
    if scoring == "wer":
        return float(re.search(r"WER: ([\d.]+)", text).group(1))
    return float(re.search(r"BLEU-4 ([\d.]+)", text).group(1))


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
    args = p.parse_args()
    work = os.path.abspath(args.work)
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    data, seed = os.path.join(work, "data"), [f"common.seed={args.seed}"]
    path = {name: os.path.join(work, name, "checkpoint_best.pt") for name in
            ("text2gloss", "dialogue", "alone", "distilled", "g2t", "s2t_alone", "s2t_distilled")}
    log = {name: os.path.join(work, f"{name}.log") for name in path}
    started = time.time()

    run([os.path.join(BIN, "slt-make-demo-data"), "--out", os.path.join(work, "corpus"), "--seed", str(args.seed)],
        os.path.join(work, "corpus.log"), threads=2)
    corpus = os.path.join(work, "corpus")
    run([os.path.join(BIN, "slt-binarise"), "phoenix-2014t", "--annotations", os.path.join(corpus, "annotations"),
         "--frames", os.path.join(corpus, "frames"), "--out", data, "--frame-size", "0"],
        os.path.join(work, "binarise.log"), threads=2)

    side_by_side((train, "demo/kd/text2gloss_teacher", data, os.path.dirname(path["text2gloss"]), log["text2gloss"],
                  seed, args.epochs),
                 (train, "demo/kd/dialogue_teacher", data, os.path.dirname(path["dialogue"]), log["dialogue"], seed,
                  args.epochs))
    student = seed + [f"criterion.fusion_teacher={path['dialogue']}", f"criterion.text_teacher={path['text2gloss']}"]
    student += TRANSFORMER if args.student == "transformer" else []
    no_teachers = [f"criterion.{w}=0" for w in ("fusion_kl_weight", "fusion_feature_weight", "text_kl_weight",
                                                 "text_feature_weight")]
    wall = dict(zip(("alone", "distilled"), side_by_side(
        (train, "demo/kd/student", data, os.path.dirname(path["alone"]), log["alone"], student + no_teachers,
         args.epochs),
        (train, "demo/kd/student", data, os.path.dirname(path["distilled"]), log["distilled"], student,
         args.epochs))))
    sign = ["--task", "sign2gloss", "--crop-size", "64"]
    wer = {name: generate(data, path[name], os.path.join(work, f"{name}.test.log"), extra, "wer") for name, extra in (
        ("text2gloss", sign + ["--input", "lengths", "--text-inputs"]), ("dialogue", sign + ["--text-inputs"]),
        ("alone", sign), ("distilled", sign))}

    print(f"Distillation on the demo corpus ({args.student} student, {args.epochs} epochs each, seed {args.seed}; "
          f"test split, CTC beam 5)")
    print(f"  teacher text→gloss (reads the translation)   WER {wer['text2gloss']:6.2f} %")
    print(f"  teacher dialogue (sign + preceding text)     WER {wer['dialogue']:6.2f} %")
    print(f"  student alone (VAC loss)                     WER {wer['alone']:6.2f} %   ({wall['alone']:.0f} s)")
    print(f"  student distilled (β, γ, δ, ε of the config) WER {wer['distilled']:6.2f} %   "
          f"({wall['distilled']:.0f} s)")
    print(f"  distilled / alone: WER × {wer['distilled'] / max(wer['alone'], 1e-9):.3f}")

    if not args.skip_translation:
        train("demo/g2t", data, os.path.dirname(path["g2t"]), log["g2t"], seed, 30)
        run([os.path.join(BIN, "slt-extract-features"), "--checkpoint", path["alone"], "--data", data,
             "--batch-size", "8", "--num-workers", "0", "--quiet"], os.path.join(work, "features.log"), threads=2)
        joint = seed + [f"model.sign2gloss_checkpoint={path['alone']}", f"model.gloss2text_checkpoint={path['g2t']}"]
        wall.update(zip(("s2t_alone", "s2t_distilled"), side_by_side(
            (train, "demo/s2t", data, os.path.dirname(path["s2t_alone"]), log["s2t_alone"], joint, args.epochs),
            (train, "demo/kd/s2t_student", data, os.path.dirname(path["s2t_distilled"]), log["s2t_distilled"],
             joint + [f"criterion.gloss2text_teacher={path['g2t']}"], args.epochs))))
        s2t = ["--task", "sign2text", "--input", "features", "--features", "cnn_tconv"]
        bleu = {name: generate(data, path[name], os.path.join(work, f"{name}.test.log"), s2t, "translation_metrics")
                for name in ("s2t_alone", "s2t_distilled")}
        print(f"  Sign2Text alone (combined loss)              BLEU-4 {bleu['s2t_alone']:6.2f}   "
              f"({wall['s2t_alone']:.0f} s)")
        print(f"  Sign2Text distilled from Gloss2Text (γ, δ)   BLEU-4 {bleu['s2t_distilled']:6.2f}   "
              f"({wall['s2t_distilled']:.0f} s)")
        print(f"  distilled / alone: BLEU-4 × {bleu['s2t_distilled'] / max(bleu['s2t_alone'], 1e-9):.3f}")
    print(f"total {time.time() - started:.0f} s; logs in {work}")


if __name__ == "__main__":
    main()
