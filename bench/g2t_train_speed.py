"""Benchmark: seconds per update of the from-scratch Gloss2Text recipe on a CPU, with each speed option on and off.

Trains ``configs/phoenix-2014t/g2t_scratch.yaml`` on the binarised Phoenix-2014T data through fairseq-hydra-train,
in a fresh process per variant, and times fairseq's ``Trainer.train_step`` (forward, backward, optimiser step) over
``--updates`` updates after ``--warmup`` untimed ones; the batches are the recipe's, so every variant times the same
sentences. The baseline, measured in the same run, is torch's own dropout in float32; the figures are ratios
against it:

- ``--bf16-autocast`` (the recipe's products in bfloat16; 0.69× on a CPU with AVX512-BF16 but no AMX, where the task
  switches it off unless the timing probe is bypassed, as here);
- ``--uniform-mask-dropout`` (dropout masks drawn from uniform random integers, not with ``bernoulli_``);
- ``--optimizer fused_adamw`` (fairseq's Adam rule in torch's fused kernel, not fairseq's per-tensor loop);
- all three, which is the shipped recipe on a CPU with AMX, and the last two, which it is on one without.

    python bench/g2t_train_speed.py [--data data_bins/phoenix-2014t] [--threads 1] [--updates 100]
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FAIRSEQ_ADAM = "optimizer._name=adam"
VARIANTS = {  # name: Hydra overrides of the recipe
    "float32, torch dropout, fairseq adam (baseline)": ["task.bf16_autocast=false", "model.uniform_mask_dropout=false",
                                                        FAIRSEQ_ADAM],
    "bf16 autocast": ["task.bf16_autocast=true", "model.uniform_mask_dropout=false", FAIRSEQ_ADAM],
    "uniform-mask dropout": ["task.bf16_autocast=false", "model.uniform_mask_dropout=true", FAIRSEQ_ADAM],
    "fused AdamW": ["task.bf16_autocast=false", "model.uniform_mask_dropout=false"],
    "uniform-mask dropout + fused AdamW": ["task.bf16_autocast=false", "model.uniform_mask_dropout=true"],
    "all three": ["task.bf16_autocast=true", "model.uniform_mask_dropout=true"],
}


def epoch_update_seconds(times, tokens, epoch_tokens) -> float:
    """The mean seconds of an update over a whole epoch, from a few timed ones: a line a + b·tokens fitted to the timed
    updates' seconds and their batches' padded sizes (source + target positions), read at the mean padded size of
    the epoch's batches. A seeded shuffle's first batches are no fair sample of them: with batches sorted by the
    epoch's target lengths, the first 60 of seed 1 held 752 padded target positions on average and the epoch 861, and
    their plain mean said 327 ms where the whole epoch took 380 (the fit: 368)."""
    times, tokens = np.asarray(times, dtype=float), np.asarray(tokens, dtype=float)
    if np.ptp(tokens) == 0:  # batches all alike: no slope to fit
        return float(times.mean())
    slope = np.polyfit(tokens, times, 1)[0]
    return float(times.mean() + slope * (float(np.mean(epoch_tokens)) - tokens.mean()))


def padded_batch_tokens(dataset, batches) -> np.ndarray:
    """Each batch's source and target positions with padding, as the collater makes them (to the longest item)."""
    return np.array([len(b) * (int(dataset.src_sizes[b].max()) + int(dataset.tgt_sizes[b].max())) for b in batches])


def child_command(data, save_dir, warmup, updates, overrides, probe=False):
    """The command line of one timing child: the recipe with ``overrides``, ``updates`` timed after ``warmup``; with
    ``probe`` the task decides bf16 as a real run does."""
    return [sys.executable, os.path.abspath(__file__), "--child", *(["--probe"] if probe else []), "--data", data,
            "--warmup", str(warmup), "--updates", str(updates), "--save-dir", save_dir, "--", *overrides]


def read_result(output: str):
    """The figures a child printed (its last ``RESULT`` line) as a dict, or None where it printed none."""
    lines = [line for line in output.splitlines() if line.startswith("RESULT ")]
    return json.loads(lines[-1][len("RESULT "):]) if lines else None


def child(args):
    """Train with the given overrides; print the timed updates' mean seconds (and the epoch's estimate) as JSON."""
    from fairseq.tasks import FairseqTask
    from fairseq.trainer import Trainer
    from fairseq_cli.hydra_train import cli_main

    original, times, starts, tokens, epoch_tokens = Trainer.train_step, [], [], [], []
    make_iterator = FairseqTask.get_batch_iterator

    def recording_iterator(self, dataset, *args, **kwargs):
        """fairseq's batch iterator; the first one for the training split leaves its batches' padded sizes."""
        iterator = make_iterator(self, dataset, *args, **kwargs)
        if not epoch_tokens and dataset is self.datasets.get("train"):
            epoch_tokens.extend(padded_batch_tokens(dataset, iterator.frozen_batches))
        return iterator

    def timed_step(self, samples, raise_oom=False):
        tokens.append(sum(s["net_input"]["src_tokens"].numel() + s["target"].numel() for s in samples if s))
        starts.append(time.perf_counter())
        out = original(self, samples, raise_oom)
        times.append(time.perf_counter() - starts[-1])
        if len(times) == args.warmup + args.updates:
            timed = times[args.warmup:]  # and wall: with the batches' loading between the steps, as in training
            wall = (time.perf_counter() - starts[args.warmup]) / args.updates
            epoch = epoch_update_seconds(timed, tokens[args.warmup:], epoch_tokens)
            print("RESULT " + json.dumps({"seconds_per_update": sum(timed) / len(timed),
                                          "wall_seconds_per_update": wall,
                                          "epoch_wall_seconds_per_update": epoch + wall - sum(timed) / len(timed)}),
                  flush=True)
            os._exit(0)  # the measurement is taken: no checkpoint, no validation
        return out

    Trainer.train_step, FairseqTask.get_batch_iterator = timed_step, recording_iterator
    from slt_plugins.tasks import bf16_autocast

    if not args.probe:  # time bfloat16 where the task would switch it off, too
        bf16_autocast.cpu_bf16_is_faster = lambda: True
    sys.argv = ["fairseq-hydra-train", "--config-dir", os.path.join(REPO, "configs", "phoenix-2014t"),
                "--config-name", "g2t_scratch", f"task.data={os.path.abspath(args.data)}",
                f"checkpoint.save_dir={args.save_dir}", "dataset.validate_after_updates=1000000",
                "checkpoint.no_save=true", *args.overrides]
    cli_main()


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default="data_bins/phoenix-2014t", help="binarised Phoenix-2014T (slt-binarise)")
    p.add_argument("--threads", type=int, default=1, help="CPU threads (the bench of issue 5 gives each system 1)")
    p.add_argument("--updates", type=int, default=100, help="timed updates per variant")
    p.add_argument("--warmup", type=int, default=20, help="untimed updates first")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--probe", action="store_true", help=argparse.SUPPRESS)  # child: bf16 as a real run decides it
    p.add_argument("--save-dir", help=argparse.SUPPRESS)
    p.add_argument("overrides", nargs="*", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        return child(args)
    os.chdir(REPO)
    if not os.path.isfile(os.path.join(args.data, "train.tsv")):
        raise SystemExit(f"{args.data}: no binarised dataset; run python bench/g2t_phoenix.py once, or slt-binarise "
                         "phoenix-2014t --annotations ../shared/data/phoenix-2014t --out data_bins/phoenix-2014t")
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads))
    results = {}
    for name, overrides in VARIANTS.items():
        with tempfile.TemporaryDirectory() as save_dir:
            cmd = child_command(args.data, save_dir, args.warmup, args.updates, overrides)
            proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
        result = read_result(proc.stdout)
        if result is None:
            raise SystemExit(f"{name}: the training run printed no result (exit {proc.returncode}):\n"
                             f"{proc.stderr[-3000:]}")
        results[name] = result["seconds_per_update"]
        print(f"  {name}: {results[name] * 1000:.0f} ms per update", flush=True)
    base = results["float32, torch dropout, fairseq adam (baseline)"]
    print(f"\nGloss2Text from-scratch recipe, Phoenix-2014T batches of 32, {args.threads} thread(s), "
          f"{args.updates} updates after {args.warmup}; speed-up = baseline time / variant time:")
    for name, seconds in results.items():
        print(f"  {name:48s} {seconds * 1000:6.0f} ms/update  {base / seconds:5.2f}×")


if __name__ == "__main__":
    main()
