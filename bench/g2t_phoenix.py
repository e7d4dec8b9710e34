"""Benchmark: Gloss2Text on Phoenix-2014T from scratch — our recipe against a plain fairseq transformer.

Both systems train on the same split (train, 7096 sentences), with the same wall-clock budget on the same cores,
decode dev with the same beam, and are scored by the same code (``slt-score``: sacrebleu BLEU under 13a and
'none', ROUGE-L). Both keep the checkpoint with the best greedy dev BLEU (``--eval-bleu``). Each is scored twice:
with fairseq's default length penalty (``--lenpen 1``) and with the length penalty chosen on dev by
``slt-tune-lenpen``, cross-fitted (each half of dev ranked with the lenpen best on the other half, from the same
``--nbest`` decode), so that no sentence's penalty was picked with its own reference.

- ours: ``configs/phoenix-2014t/g2t_scratch.yaml`` through fairseq-hydra-train (task ``gloss2text``, arch
  ``mbart_translator``, language tokens, the recipe that config documents);
- baseline: what a user without this toolkit would run — ``fairseq-preprocess`` on the same glosses and the same
  sentencepiece text, then fairseq's ``translation`` task with its ``transformer`` arch at 3+3 layers × 256
  (the size of the plain baseline in issue 5), fairseq's IWSLT recipe otherwise (dropout 0.3, label smoothing 0.1,
  Adam (0.9, 0.98), inverse-sqrt schedule, weight decay 1e-4) with lr 1e-3 and warm-up 1000 scaled to this corpus.

The figure is BLEU-4 on dev (the shared data has no test split), printed for both with the difference and the
ratio. For ours, the average of the last 5 epochs (``slt-average-checkpoints``) is scored as well. Outputs, logs
and checkpoints stay in ``--work``.

Our recipe's learning rate decays to zero at its last epoch, so its epochs are fixed before it starts. By default
(``--epochs auto``) the bench first times 60 of its updates on this machine, in as many processes as will train side
by side, and plans as many epochs as fill 86 % of the budget, at most the config's: how many fit depends on the CPU
(bfloat16 with AMX or float32 without), and a schedule the budget cuts short never reaches its low learning rates.

    python bench/g2t_phoenix.py [--minutes 60] [--threads 2] [--parallel] [--epochs auto|N] [--seed 1]
                                [--systems ours baseline]
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.dirname(sys.executable)
CONFIGS = os.path.join(REPO, "configs", "phoenix-2014t")
sys.path[:0] = [REPO, os.path.dirname(os.path.abspath(__file__))]  # the repo, and bench/ for g2t_train_speed

BASELINE_ARGS = [
    "--arch", "transformer", "--encoder-layers", "3", "--decoder-layers", "3", "--encoder-embed-dim", "256",
    "--decoder-embed-dim", "256", "--encoder-ffn-embed-dim", "1024", "--decoder-ffn-embed-dim", "1024",
    "--encoder-attention-heads", "4", "--decoder-attention-heads", "4", "--share-decoder-input-output-embed",
    "--dropout", "0.3", "--attention-dropout", "0.1", "--activation-dropout", "0.1",
    "--criterion", "label_smoothed_cross_entropy", "--label-smoothing", "0.1",
    "--optimizer", "adam", "--adam-betas", "(0.9,0.98)", "--lr", "1e-3", "--lr-scheduler", "inverse_sqrt",
    "--warmup-updates", "1000", "--weight-decay", "0.0001", "--clip-norm", "1.0", "--batch-size", "32",
]


def run(cmd, log, threads, cwd=REPO):
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    with open(log, "w") as f:
        proc = subprocess.run([str(c) for c in cmd], cwd=cwd, stdout=f, stderr=subprocess.STDOUT, env=env)
    if proc.returncode != 0:
        tail = open(log).read()[-3000:]
        raise SystemExit(f"{' '.join(map(str, cmd[:3]))} … failed (exit {proc.returncode}); {log}:\n{tail}")


def training_summary(log: str) -> dict:
    text = open(log).read()
    epochs = re.findall(r"epoch (\d+) \| valid on", text)
    updates = re.findall(r"num_updates (\d+)", text)
    seconds = re.findall(r"done training in ([\d.]+) seconds", text)
    bleus = [float(x) for x in re.findall(r"valid on '\w+' subset .*?\| bleu ([\d.]+)", text)]
    return {"epochs": int(epochs[-1]) if epochs else 0, "updates": int(updates[-1]) if updates else 0,
            "train_minutes": round(float(seconds[-1]) / 60, 1) if seconds else None,
            "best_greedy_dev_bleu": max(bleus) if bleus else None}


def planned_epochs(args) -> int:
    """The epochs our recipe's schedule decays over: --epochs (once ``auto`` is resolved), else the config's."""
    return args.epochs or recipe_config().optimization.max_epoch


def epochs_arg(value: str):
    """--epochs: a positive number, or ``auto`` (as many as this machine trains in the budget, timed first)."""
    if value == "auto":
        return value
    if not value.isdigit() or int(value) < 1:
        raise argparse.ArgumentTypeError(f"--epochs {value!r}: give a positive number of epochs, or auto")
    return int(value)


def batches_per_epoch(data: str) -> int:
    from slt_plugins.data.manifest import read_manifest

    return -(-len(read_manifest(os.path.join(data, "train.tsv"))) // recipe_config().dataset.batch_size)


BUDGET_SHARE = 0.86  # of the time budget that --epochs auto fills with our updates (fit_epochs says why)


def fit_epochs(budget_seconds: float, batches: int, seconds_per_update: float, cap: int,
               share=BUDGET_SHARE) -> int:
    """The most epochs whose updates fill ``share`` of the budget, at least 1 and at most ``cap`` (the config's: more
    were never tuned). The rest is for what is not an update (start-up, checkpoint saves, dev decoding from epoch 21)
    and for the estimate's error. On a Xeon the estimate from 60 updates came 1 to 3 % below whole epochs and dev
    decoding took about 5 s an epoch, and 92 % fitted; on an AMD EPYC (Zen 4, bf16; declared run r19) whole epochs
    took 9 % longer than estimated (78 s on average, 69 to 89, against 71.5) and dev decoding about 10 s, so the
    budget stopped the 42 epochs planned at 92 % at epoch 40. 86 % leaves room for both."""
    return max(1, min(cap, int(share * budget_seconds / (batches * seconds_per_update))))


def time_updates(args, copies: int, warmup=10, updates=60) -> float:
    """Wall seconds per update of our recipe on this machine over an epoch (the batches' loading included), estimated
    by bench/g2t_train_speed.py from timed updates and their batches' lengths, with the task deciding bf16 as in a
    real run, in ``copies`` processes at once (as many as will train side by side, so that they share the machine as
    the run will): the slowest."""
    from g2t_train_speed import child_command, read_result

    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads))
    logs, procs = [], []
    for i in range(copies):
        save = os.path.join(args.work, f"time_updates{i}")
        os.makedirs(save, exist_ok=True)
        logs.append(open(os.path.join(save, "child.log"), "w+"))
        cmd = child_command(args.data, save, warmup, updates, [f"common.seed={args.seed}", *args.set], probe=True)
        procs.append(subprocess.Popen(cmd, cwd=REPO, env=env, stdout=logs[-1], stderr=subprocess.STDOUT))
    seconds = []
    for proc, log in zip(procs, logs):
        proc.wait()
        log.seek(0)
        result = read_result(log.read())
        log.close()
        if result is None:
            raise SystemExit(f"timing our recipe's updates failed (exit {proc.returncode}); see {log.name}")
        seconds.append(result["epoch_wall_seconds_per_update"])
    return max(seconds)


def schedule_cut_short(trained: int, planned: int):
    """A warning where the time budget stopped our recipe before its schedule's last epoch (its learning rate then
    never reached zero, and the figure is not the recipe's), else None."""
    if trained >= planned:
        return None
    return (f"ours stopped at epoch {trained} of the {planned} its schedule decays over: this CPU trains fewer "
            f"epochs in the budget, so the learning rate never reached zero; run again with --epochs "
            f"{max(1, trained - 1)} (python bench/g2t_train_speed.py gives the seconds per update)")


def score(gen_out: str) -> dict:
    """slt-score's figures (BLEU-1..4, ROUGE-L under sacrebleu's 13a and 'none') of the --lenpen 1 1-best, and
    slt-tune-lenpen's: the same of the 1-best under the cross-fitted length penalty (also written beside)."""
    from fairseq_slt.tools.score import score_each
    from fairseq_slt.tools.tune_lenpen import read_nbest, tune, write_generate_like

    samples = read_nbest(gen_out)
    tuned = tune(samples)
    refs, first = tuned["references"], [samples[i].texts[0] for i in tuned["ids"]]  # fairseq's lenpen-1 1-best
    write_generate_like(os.path.splitext(gen_out)[0] + ".xfit.gen", tuned["ids"], refs, tuned["cross_fitted"])
    return {"sentences": len(refs), "scores": score_each(refs, first),
            "lenpen": {"best_on_dev": tuned["best_lenpen"], "cross_fitted_halves": tuned["fold_lenpens"],
                       "scores": score_each(refs, tuned["cross_fitted"])}}


def recipe_config():
    """configs/phoenix-2014t/g2t_scratch.yaml as OmegaConf reads it."""
    from omegaconf import OmegaConf

    return OmegaConf.load(os.path.join(CONFIGS, "g2t_scratch.yaml"))


def train_average_decode(data, save, overrides, threads, beam, config_dir=CONFIGS, config_name="g2t_scratch"):
    """fairseq-hydra-train of the recipe (with ``overrides``) into ``save``, the last 5 epochs averaged (where 5 were
    kept), and dev decoded with ``beam`` (n-best) from the best and the averaged checkpoint: {name: output path}."""
    os.makedirs(save, exist_ok=True)
    run([os.path.join(BIN, "fairseq-hydra-train"), "--config-dir", config_dir, "--config-name", config_name,
         f"task.data={os.path.abspath(data)}", f"checkpoint.save_dir={save}", *overrides],
        os.path.join(save, "train.log"), threads)
    checkpoints = ["best"]
    try:  # also scored: the weights of the last 5 epochs, averaged
        run([os.path.join(BIN, "slt-average-checkpoints"), "--dir", save, "--last", "5", "--out",
             os.path.join(save, "checkpoint_avg5.pt")], os.path.join(save, "average.log"), threads)
        checkpoints.append("avg5")
    except SystemExit:  # fewer than 5 epochs kept (a short schedule): the best checkpoint alone
        pass
    gens = {name: os.path.join(save, f"dev.{name}.gen") for name in checkpoints}
    for name, gen in gens.items():
        run([os.path.join(BIN, "fairseq-generate"), data, "--user-dir", "slt_plugins", "--task", "gloss2text",
             "--path", os.path.join(save, f"checkpoint_{name}.pt"), "--gen-subset", "dev", "--beam", str(beam),
             "--nbest", str(beam), "--batch-size", "64", "--num-workers", "0", "--scoring", "sacrebleu"],
            gen, threads)
    return gens


def train_ours(args, work):
    save = os.path.join(work, "ours")
    overrides = [f"optimization.stop_time_hours={args.minutes / 60}", f"common.seed={args.seed}"]
    if args.epochs:  # the schedule decays to zero at max_update: move both
        overrides += [f"optimization.max_epoch={args.epochs}",
                      f"optimization.max_update={args.epochs * batches_per_epoch(args.data)}"]
    return save, train_average_decode(args.data, save, [*overrides, *args.set], args.threads, args.beam)


def train_baseline(args, work):
    import sentencepiece as spm

    from slt_plugins.data.manifest import read_manifest

    save = os.path.join(work, "baseline")
    text_dir = os.path.join(save, "text")
    os.makedirs(text_dir, exist_ok=True)
    sp = spm.SentencePieceProcessor(model_file=os.path.join(args.data, "spm.model"))
    for split in ("train", "dev"):
        rows = read_manifest(os.path.join(args.data, f"{split}.tsv"))
        with open(os.path.join(text_dir, f"{split}.gloss"), "w", encoding="utf-8") as f:
            f.writelines(r.gloss + "\n" for r in rows)
        with open(os.path.join(text_dir, f"{split}.text"), "w", encoding="utf-8") as f:
            f.writelines(" ".join(sp.encode(r.text, out_type=str)) + "\n" for r in rows)
    binarised = os.path.join(save, "bin")
    shutil.rmtree(binarised, ignore_errors=True)
    run([os.path.join(BIN, "fairseq-preprocess"), "--source-lang", "gloss", "--target-lang", "text", "--trainpref",
         os.path.join(text_dir, "train"), "--validpref", os.path.join(text_dir, "dev"), "--destdir", binarised,
         "--workers", str(args.threads)], os.path.join(save, "preprocess.log"), args.threads)
    # --user-dir slt_plugins only for its torch>=2.6 checkpoint-loading and remainder-batch fixes (see docs/install.md)
    common = ["--user-dir", "slt_plugins", "--task", "translation", "-s", "gloss", "-t", "text"]
    run([os.path.join(BIN, "fairseq-train"), binarised, *common, *BASELINE_ARGS, "--max-epoch", str(args.max_epoch),
         "--stop-time-hours", str(args.minutes / 60), "--save-dir", save, "--no-epoch-checkpoints",
         "--eval-bleu", "--eval-bleu-remove-bpe", "sentencepiece", "--eval-bleu-args", '{"beam": 1}',
         "--best-checkpoint-metric", "bleu", "--maximize-best-checkpoint-metric", "--num-workers", "0",
         "--seed", str(args.seed), "--log-format", "simple", "--log-interval", "100"],
        os.path.join(save, "train.log"), args.threads)
    gen = os.path.join(save, "dev.best.gen")
    run([os.path.join(BIN, "fairseq-generate"), binarised, *common, "--path", os.path.join(save, "checkpoint_best.pt"),
         "--gen-subset", "valid", "--beam", str(args.beam), "--nbest", str(args.beam), "--batch-size", "64",
         "--num-workers", "0", "--post-process", "sentencepiece"], gen, args.threads)
    return save, {"best": gen}


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--annotations", default=os.path.join(REPO, "..", "shared", "data", "phoenix-2014t"),
                   help="folder with PHOENIX-2014-T.{train,dev}.corpus.csv")
    p.add_argument("--data", default="data_bins/phoenix-2014t", help="binarised dataset (made if missing)")
    p.add_argument("--work", default="bench/out/g2t_phoenix", help="logs, checkpoints and outputs")
    p.add_argument("--minutes", type=float, default=60, help="training budget of each system, wall clock")
    p.add_argument("--max-epoch", type=int, default=200,
                   help="epoch cap of the baseline, whose schedule has no end (ours: the config's)")
    p.add_argument("--epochs", type=epochs_arg, default="auto",
                   help="epochs of our recipe's schedule, or auto (default): its updates timed here first, as many "
                        f"epochs as fill {BUDGET_SHARE * 100:.0f}%% of --minutes, at most the config's")
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                   help="further Hydra overrides of our recipe, e.g. task.gloss_dropout=0.1")
    p.add_argument("--threads", type=int, default=2, help="CPU threads of each run")
    p.add_argument("--parallel", action="store_true",
                   help="train the systems at the same time (give each --threads 1 on a 2-core machine)")
    p.add_argument("--beam", type=int, default=5)
    p.add_argument("--seed", type=int, default=1, help="seed of both systems (initialisation, batches, sampling)")
    p.add_argument("--systems", nargs="+", default=["ours", "baseline"], choices=["ours", "baseline"])
    args = p.parse_args()
    os.chdir(REPO)
    if not os.path.isfile(os.path.join(args.data, "meta.json")):
        run([os.path.join(BIN, "slt-binarise"), "phoenix-2014t", "--annotations", args.annotations, "--out",
             args.data], os.path.join(args.work + ".binarise.log"), args.threads)
    os.makedirs(args.work, exist_ok=True)
    if args.epochs == "auto":
        args.epochs = 0
        if "ours" in args.systems:
            args.seconds_per_update = time_updates(args, len(args.systems) if args.parallel else 1)
            args.epochs = fit_epochs(args.minutes * 60, batches_per_epoch(args.data), args.seconds_per_update,
                                     recipe_config().optimization.max_epoch)
            print(f"ours: {args.seconds_per_update * 1000:.0f} ms per update here → --epochs {args.epochs} in "
                  f"{args.minutes:g} min", flush=True)

    def one(system):
        started = time.time()
        save, gens = (train_ours if system == "ours" else train_baseline)(args, args.work)
        result = {**training_summary(os.path.join(save, "train.log")),
                  "checkpoints": {name: score(gen) for name, gen in gens.items()},
                  "total_minutes": round((time.time() - started) / 60, 1)}
        print(f"{system}: {json.dumps(result)}", flush=True)
        return result

    if args.parallel:  # side by side, each on its own --threads cores: the same budget, half the wall time
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(len(args.systems)) as pool:
            results = dict(zip(args.systems, pool.map(one, args.systems)))
    else:
        results = {system: one(system) for system in args.systems}
    with open(os.path.join(args.work, "results.json"), "w") as f:
        json.dump({"args": vars(args), "results": results}, f, indent=2)
    report(args, results)


def report(args, results):
    print(f"\nGloss2Text, Phoenix-2014T dev ({args.threads} thread(s) each{', side by side' if args.parallel else ''}, "
          f"seed {args.seed}, "
          f"{args.minutes:g} min of training each, "
          f"beam {args.beam}, best greedy dev BLEU checkpoint):")
    print(f"  {'system':38s} {'epochs':>6s} {'train min':>9s} {'lenpen':>9s} {'BLEU-4 13a':>10s} "
          f"{'BLEU-4 none':>11s} {'BLEU-1':>7s} {'ROUGE-L':>7s}")
    for system, r in results.items():
        for name, scored in r["checkpoints"].items():
            label = f"{system} ({'best dev checkpoint' if name == 'best' else 'last 5 epochs averaged'})"
            halves = "/".join(f"{x:g}" for x in scored["lenpen"]["cross_fitted_halves"])
            for lenpen, s in (("1", scored["scores"]), (halves, scored["lenpen"]["scores"])):
                print(f"  {label:38s} {r['epochs']:6d} {r['train_minutes'] or 0:9.1f} {lenpen:>9s} "
                      f"{s['13a']['bleu4']:10.2f} {s['none']['bleu4']:11.2f} {s['13a']['bleu1']:7.2f} "
                      f"{s['13a']['rouge_l']:7.2f}")
    print("  (lenpen a/b: even/odd dev ids ranked with the length penalty best on the other half, slt-tune-lenpen)")
    if len(results) == 2:
        base = results["baseline"]["checkpoints"]["best"]
        for name, scored in results["ours"]["checkpoints"].items():
            for how, pick in (("lenpen 1", lambda c: c["scores"]),
                              ("cross-fitted lenpen", lambda c: c["lenpen"]["scores"])):
                ours, theirs = pick(scored)["13a"]["bleu4"], pick(base)["13a"]["bleu4"]
                print(f"  ours ({name}) − baseline, {how}: {ours - theirs:+.2f} BLEU-4 (13a) = "
                      f"{ours / theirs:.3f}× the baseline")
    if "ours" in results:
        warning = schedule_cut_short(results["ours"]["epochs"], planned_epochs(args))
        if warning:
            print(f"  WARNING: {warning}")
    first = next(iter(results.values()))["checkpoints"]["best"]["scores"]
    print(f"  signatures: {first['13a']['signature']}; {first['none']['signature']}")


if __name__ == "__main__":
    main()
