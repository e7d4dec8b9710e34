"""Benchmark: one Sign2Gloss training step on the CPU — time, peak memory, and the share spent loading data.

A clip of T frames (default 64) is written to a frames.lmdb at 256×256 (as slt-binarise stores frames), read back
through the training dataset (decode + SLRT augmentation + 224×224 crop) and pushed through the paper-size
``s3d_encoder`` (S3D blocks 1–4, head 512/2048, block 1 frozen) with CTC loss, backward and an Adam step.
Figures are ratios against baselines measured in the same run: the step against a forward pass alone, and the
data loading against the whole step. Peak memory is the growth of the process's maximum resident set during the
steps (``ru_maxrss``), which is where the activations of the backward pass live.

    python bench/train_step.py [--frames 64] [--crop 224] [--steps 3] [--backbone s3d]
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


def max_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def timed(fn, repeats):
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return float(np.median(times))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=64)
    parser.add_argument("--crop", type=int, default=224)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--backbone", default="s3d")
    parser.add_argument("--glosses", type=int, default=1100, help="classifier size (Phoenix-2014T: about 1100)")
    args = parser.parse_args()
    torch.manual_seed(0)
    rng = np.random.default_rng(0)

    with tempfile.TemporaryDirectory() as tmp:
        store_path = os.path.join(tmp, "frames.lmdb")
        clip = rng.integers(0, 255, (args.frames, 256, 256, 3), dtype=np.uint8)
        clip = (clip // 32 * 32).astype(np.uint8)  # fewer distinct values: JPEG sizes closer to real frames
        with LmdbWriter(store_path) as writer:
            writer.put_clip("clip", clip)
        row = ManifestRow("clip", args.frames, "S", "A B C", "a b c")
        targets = [torch.tensor([4, 5, 6, 7, 8])]
        # training augmentation (random resized crop) with the temporal rescaling held at 1, so the step sees T frames
        dataset = SignFrameDataset(FrameStore(store_path), [row], targets, train=True, crop_size=args.crop,
                                   temporal_scale=(1.0, 1.0))

        def load():
            return dataset.collater([dataset[0]])

        load()
        load_time = timed(load, args.steps * 2)
        batch = load()

        cfg = SignEncoderConfig(visual_backbone=args.backbone)
        encoder = SignEncoder(cfg, list(range(args.glosses)), "frames").train()
        optimizer = torch.optim.Adam([p for p in encoder.parameters() if p.requires_grad], lr=1e-3)
        net_input = batch["net_input"]

        def forward_only():
            with torch.no_grad():
                encoder(**net_input)

        def step():
            out = encoder(**net_input)
            log_probs = out["encoder_out"].log_softmax(-1)
            lengths = (~out["padding_mask"]).sum(-1)
            loss = torch.nn.functional.ctc_loss(log_probs, batch["target"], lengths, batch["target_lengths"],
                                                blank=0, reduction="sum", zero_infinity=True)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()

        rss_before = max_rss_mib()
        step()  # warm-up: allocator, oneDNN kernels
        forward_time = timed(forward_only, args.steps)
        step_time = timed(step, args.steps)
        peak = max_rss_mib() - rss_before

    frames_in = tuple(batch["net_input"]["frames"].shape)
    print(f"Sign2Gloss training step on the CPU ({torch.get_num_threads()} threads): backbone {args.backbone}, "
          f"batch 1 clip of {args.frames} frames, input {frames_in}, {args.glosses} glosses, median of "
          f"{args.steps}")
    print(f"  {'data loading (decode + augment)':36s} {load_time:8.3f} s")
    print(f"  {'forward pass alone (baseline)':36s} {forward_time:8.3f} s")
    print(f"  {'training step (fwd + bwd + Adam)':36s} {step_time:8.3f} s   = {step_time / forward_time:.1f}× forward")
    print(f"  {'share spent loading data':36s} {load_time / (load_time + step_time):8.1%}")
    print(f"  {'peak memory growth during steps':36s} {peak:8.0f} MiB")


if __name__ == "__main__":
    main()
