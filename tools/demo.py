"""slt-demo: the whole pipeline on the generated demo corpus, through the same commands a user types.

make the corpus (slt-make-demo-data) → binarise it (slt-binarise) → train Sign2Gloss and Gloss2Text
(fairseq-hydra-train with ``configs/demo``) → extract the Sign2Gloss backbone's features (slt-extract-features) →
train Sign2Text from both checkpoints on those features → decode the test split (fairseq-generate) → print the
WER, BLEU-4 and ROUGE-L of each stage. Each step's output lands in ``--workdir``; a step whose output is already
there is skipped, so a second run only evaluates (``--fresh`` starts over).
"""

import argparse
import os
import re
import shutil
import subprocess
import sys
import time
from typing import List

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.dirname(sys.executable)


class StepFailed(RuntimeError):
    pass


def run(step: str, cmd: List[str], log_dir: str) -> str:
    """Run one command, its output teed to ``log_dir/<step>.log``; returns the output."""
    log_path = os.path.join(log_dir, f"{step}.log")
    print(f"[demo] {step}: {' '.join(os.path.basename(c) if i == 0 else c for i, c in enumerate(cmd))}", flush=True)
    started = time.time()
    with open(log_path, "w", encoding="utf-8") as log:
        proc = subprocess.run(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        log.write(proc.stdout)
    if proc.returncode != 0:
        tail = "\n".join(proc.stdout.splitlines()[-15:])
        raise StepFailed(f"step '{step}' failed (exit {proc.returncode}); last lines of {log_path}:\n{tail}")
    print(f"[demo] {step}: done in {time.time() - started:.0f} s", flush=True)
    return proc.stdout


def script(name: str) -> str:
    return os.path.join(BIN, name)


def train(step: str, config: str, data: str, save_dir: str, logs: str, extra: List[str]) -> None:
    if os.path.isfile(os.path.join(save_dir, "checkpoint_best.pt")):
        print(f"[demo] {step}: {save_dir}/checkpoint_best.pt exists, skipped")
        return
    run(step, [script("fairseq-hydra-train"), "--config-dir", os.path.join(REPO, "configs", "demo"),
               "--config-name", config, f"task.data={data}", f"checkpoint.save_dir={save_dir}", *extra], logs)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="slt-demo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", default="demo", help="where the corpus, data and checkpoints go (default: demo)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--fresh", action="store_true", help="delete --workdir first")
    args = parser.parse_args(argv)

    work = os.path.abspath(args.workdir)
    if args.fresh:
        shutil.rmtree(work, ignore_errors=True)
    logs = os.path.join(work, "logs")
    os.makedirs(logs, exist_ok=True)
    raw, data = os.path.join(work, "corpus"), os.path.join(work, "data")
    started = time.time()
    try:
        if not os.path.isdir(os.path.join(raw, "annotations")):
            run("corpus", [script("slt-make-demo-data"), "--out", raw, "--seed", str(args.seed)], logs)
        if not os.path.isfile(os.path.join(data, "meta.json")):
            run("binarise", [script("slt-binarise"), "phoenix-2014t", "--annotations", os.path.join(raw, "annotations"),
                             "--frames", os.path.join(raw, "frames"), "--out", data, "--frame-size", "0"], logs)
        seed = [f"common.seed={args.seed}"]
        train("sign2gloss", "s2g", data, os.path.join(work, "s2g"), logs, seed)
        train("gloss2text", "g2t", data, os.path.join(work, "g2t"), logs, seed)
        run("features", [script("slt-extract-features"), "--checkpoint",
                         os.path.join(work, "s2g", "checkpoint_best.pt"), "--data", data, "--batch-size", "8",
                         "--num-workers", "1", "--quiet"], logs)
        train("sign2text", "s2t", data, os.path.join(work, "s2t"), logs, seed + [
            f"model.sign2gloss_checkpoint={os.path.join(work, 's2g', 'checkpoint_best.pt')}",
            f"model.gloss2text_checkpoint={os.path.join(work, 'g2t', 'checkpoint_best.pt')}"])

        # generation reads in the main process (--num-workers 0): it is quick, and fairseq-generate leaves its
        # loader's worker running at exit, where we saw a rare abort ("terminate called without an active exception")
        generate = [script("fairseq-generate"), data, "--user-dir", "slt_plugins", "--gen-subset", "test", "--beam",
                    "5", "--batch-size", "8", "--num-workers", "0"]
        s2g = run("sign2gloss-test", generate + [
            "--task", "sign2gloss", "--crop-size", "64", "--path", os.path.join(work, "s2g", "checkpoint_best.pt"),
            "--scoring", "wer"], logs)
        g2t = run("gloss2text-test", generate + [
            "--task", "gloss2text", "--path", os.path.join(work, "g2t", "checkpoint_best.pt"),
            "--scoring", "translation_metrics"], logs)
        s2t = run("sign2text-test", generate + [
            "--task", "sign2text", "--input", "features", "--features", "cnn_tconv",
            "--path", os.path.join(work, "s2t", "checkpoint_best.pt"), "--scoring", "translation_metrics"], logs)
    except StepFailed as e:
        print(f"[demo] {e}", file=sys.stderr)
        return 1

    def metric(output: str, name: str) -> str:
        """The last figure after ``name`` (Sign2Text's gloss WER: the last running total is the run's)."""
        return re.findall(re.escape(name) + r" ([\d.]+)", output)[-1]

    print(f"\n[demo] demo corpus, test split ({time.time() - started:.0f} s; logs and hypotheses in {logs})")
    print(f"[demo]   Sign2Gloss  WER {metric(s2g, 'WER:')} %")
    print(f"[demo]   Gloss2Text  BLEU-4 {metric(g2t, 'BLEU-4')}  ROUGE-L {metric(g2t, 'ROUGE-L')}  "
          "(reference glosses in)")
    print(f"[demo]   Sign2Text   BLEU-4 {metric(s2t, 'BLEU-4')}  ROUGE-L {metric(s2t, 'ROUGE-L')}  "
          f"WER {metric(s2t, 'Gloss WER so far:')} %  (video features in)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
