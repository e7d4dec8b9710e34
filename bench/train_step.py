"""Benchmark: Sign2Gloss training steps on the CPU, the fast way against the plain way, in the same run.

Two steps, each a forward pass, CTC loss, backward and an Adam step on a batch read through the training dataset
(frames.lmdb → decode → SLRT augmentation → crop):

- paper: the paper-size ``s3d_encoder`` (S3D blocks 1–4, block 1 frozen, head 512/2048, 1100 glosses), batch 1
  clip of T frames (default 64) at 224×224;
- demo: the demo's ``cnn_tconv`` model on every frame (configs/demo/s2g.yaml takes every second: stages 32-64-128-128,
  4×4 grid, head 128/256), batch 8 clips of 48 frames at 64×64.

The fast way is the default: tensors channels last, S3D's separable convolutions and max-pools run as 2-D ones
(slt_plugins/models/backbones/conv_as_2d.py). The plain way is the same model with ``channels_last=False``:
float32 in PyTorch's default layout through Conv3d / MaxPool3d, as the reference code runs it. Both start from the
same weights; after a warm-up step each, their steps alternate (plain, fast, plain, …) with the same random seed
(dropout), and the figures are medians, so that load from other processes falls on both alike. The first step's
loss of both ways is printed: the same numbers up to float rounding (tests/test_conv_as_2d.py compares outputs and
every gradient). ``--bf16`` adds the fast way under bfloat16 autocast, which is faster on CPUs with AVX512-BF16 or
AMX but does not give the same numbers; it is reported apart.

    python bench/train_step.py [--frames 64] [--steps 3] [--threads 2] [--only s3d|cnn_tconv] [--bf16]
"""

import argparse
import os
import resource
import sys
import tempfile
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import slt_plugins  # noqa: E402,F401
from slt_plugins.data.lmdb_store import FrameStore, LmdbWriter  # noqa: E402
from slt_plugins.data.manifest import ManifestRow  # noqa: E402
from slt_plugins.data.sign_dataset import SignFrameDataset  # noqa: E402
from slt_plugins.models.s3d_encoder import SignEncoder, SignEncoderConfig  # noqa: E402
from bench._machine import cpu_flags, cpu_name, load_average  # noqa: E402

DEMO_BACKBONE = "'channels': [32, 64, 128, 128], 'output_dim': 128, 'pool_grid': 4"


def max_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def make_batch(tmp, name, clips, frames, crop, size):
    """A batch of ``clips`` clips of ``frames`` frames through the training dataset; the loading time too."""
    rng = np.random.default_rng(0)
    store_path = os.path.join(tmp, f"{name}.lmdb")
    rows, targets = [], []
    with LmdbWriter(store_path) as writer:
        for i in range(clips):
            clip = rng.integers(0, 255, (frames, size, size, 3), dtype=np.uint8)
            writer.put_clip(f"clip{i}", (clip // 32 * 32).astype(np.uint8))  # JPEG sizes closer to real frames
            rows.append(ManifestRow(f"clip{i}", frames, "S", "A B C", "a b c"))
            targets.append(torch.arange(4, 4 + min(5, max(1, frames // 8))))  # 5 glosses; fewer than T/4 for CTC
    # training augmentation (random resized crop) with the temporal rescaling held at 1: the step sees T frames
    dataset = SignFrameDataset(FrameStore(store_path), rows, targets, train=True, crop_size=crop,
                               temporal_scale=(1.0, 1.0))

    def load():
        return dataset.collater([dataset[i] for i in range(clips)])

    load()
    started = time.perf_counter()
    batch = load()
    return batch, time.perf_counter() - started


class Way:
    """One way of running the model: its encoder, its optimiser, its step times."""

    def __init__(self, name, encoder, batch, autocast=False):
        self.name, self.encoder, self.batch, self.autocast = name, encoder.train(), batch, autocast
        self.optimizer = torch.optim.Adam([p for p in encoder.parameters() if p.requires_grad], lr=1e-3)
        self.times, self.cpu_times, self.losses = [], [], []

    def step(self, seed):
        torch.manual_seed(seed)  # the same dropout masks in every way
        started, cpu_started = time.perf_counter(), time.process_time()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.autocast):
            out = self.encoder(**self.batch["net_input"])
        log_probs = out["encoder_out"].float().log_softmax(-1)
        lengths = (~out["padding_mask"]).sum(-1)
        loss = torch.nn.functional.ctc_loss(log_probs, self.batch["target"], lengths, self.batch["target_lengths"],
                                            blank=0, reduction="sum", zero_infinity=True)
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        self.times.append(time.perf_counter() - started)
        self.cpu_times.append(time.process_time() - cpu_started)
        self.losses.append(loss.item())


def compare(title, cfg_fast, cfg_plain, batch, load_time, steps, glosses, bf16):
    torch.manual_seed(0)
    fast = SignEncoder(cfg_fast, list(range(glosses)), "frames")
    plain = SignEncoder(cfg_plain, list(range(glosses)), "frames")
    plain.load_state_dict(fast.state_dict())
    ways = [Way("plain", plain, batch), Way("fast", fast, batch)]
    if bf16:
        twin = SignEncoder(cfg_fast, list(range(glosses)), "frames")
        twin.load_state_dict(fast.state_dict())
        ways.append(Way("fast + bf16 autocast", twin, batch, autocast=True))

    rss = max_rss_mib()
    for way in [ways[1], ways[0], *ways[2:]]:  # warm-up (allocator, oneDNN's kernels), the fast way first: the
        way.step(0)  # process's peak memory then grows by what the fast step needs
        if way is ways[1]:
            growth = max_rss_mib() - rss
    for seed in range(1, steps + 1):
        for way in ways:
            way.step(seed)

    shape = tuple(batch["net_input"]["frames"].shape)
    print(f"\n{title}: input {shape} (B×T×3×H×W), loading the batch (decode + augment) {load_time:.3f} s")
    plain_wall, plain_cpu = float(np.median(ways[0].times[1:])), float(np.median(ways[0].cpu_times[1:]))
    print(f"  {'way':22s} {'wall s':>8s} {'speed-up':>9s} {'CPU s':>8s} {'speed-up':>9s}   first step's loss")
    for way in ways:
        wall, cpu = float(np.median(way.times[1:])), float(np.median(way.cpu_times[1:]))
        print(f"  {way.name:22s} {wall:8.3f} {plain_wall / wall:8.2f}× {cpu:8.3f} {plain_cpu / cpu:8.2f}×   "
              f"{way.losses[0]:.6g}")
    print("  wall times of every step (s), warm-up first: " +
          "; ".join(f"{way.name} {' '.join(f'{t:.2f}' for t in way.times)}" for way in ways))
    print(f"  peak memory growth in the fast way's warm-up step: {growth:.0f} MiB")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=64, help="clip length of the paper-size step")
    parser.add_argument("--crop", type=int, default=224, help="crop of the paper-size step")
    parser.add_argument("--steps", type=int, default=3, help="timed steps per way (after one warm-up step)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own)")
    parser.add_argument("--only", choices=("s3d", "cnn_tconv"), default=None)
    parser.add_argument("--bf16", action="store_true", help="also time the fast way under bfloat16 autocast")
    parser.add_argument("--glosses", type=int, default=1100, help="classifier size (Phoenix-2014T: about 1100)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"Sign2Gloss training steps, fast against plain: {cpu_name()} ({cpu_flags()}), "
          f"{torch.get_num_threads()} threads, torch {torch.__version__}, load average {load_average()} at the "
          f"start; medians of {args.steps} alternating steps per way, wall-clock and the process's CPU time")
    print("  plain: float32 in PyTorch's default layout (S3D: Conv3d, MaxPool3d), as the reference code runs it\n"
          "  fast:  the default, channels last (S3D: its convolutions and pools as 2-D ones); the same numbers\n"
          "  fast + bf16 autocast (--bf16): opt-in, faster where bfloat16 is, but not the same numbers")

    with tempfile.TemporaryDirectory() as tmp:
        if args.only in (None, "s3d"):
            batch, load_time = make_batch(tmp, "paper", 1, args.frames, args.crop, 256)
            cfg = dict(visual_backbone="s3d")
            compare(f"paper size: S3D blocks 1-4 + head 512/2048 + CTC + Adam, batch 1 × {args.frames} frames",
                    SignEncoderConfig(**cfg), SignEncoderConfig(**cfg, backbone_args="{'channels_last': False}"),
                    batch, load_time, args.steps, args.glosses, args.bf16)
        if args.only in (None, "cnn_tconv"):
            batch, load_time = make_batch(tmp, "demo", 8, 48, 64, 64)
            cfg = dict(visual_backbone="cnn_tconv", head_dim=128, head_ff_dim=256)
            compare("demo: cnn_tconv 32-64-128-128 (4×4 grid) + head 128/256 + CTC + Adam, batch 8 × 48 frames",
                    SignEncoderConfig(**cfg, backbone_args="{" + DEMO_BACKBONE + "}"),
                    SignEncoderConfig(**cfg, backbone_args="{" + DEMO_BACKBONE + ", 'channels_last': False}"),
                    batch, load_time, args.steps, 50, args.bf16)
    print(f"\nload average at the end: {load_average()}")


if __name__ == "__main__":
    main()
