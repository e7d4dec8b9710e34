"""Benchmark: reading training clips from ``frames.lmdb`` against Phoenix-style PNG folders.

Generates synthetic clips that look like Phoenix-2014T frames (210×260, grey gradient, a dark signer with moving
hands, camera noise, video compression; their PNGs weigh and decode like real ones) and stores them twice:

* PNG folders in the Phoenix layout (``<clip>/images0001.png …``), frames at their original size;
* ``frames.lmdb`` through :class:`LmdbWriter`, frames resized once to the binarised size (256×256), JPEG, read
  with the store's decoder (simplejpeg) and, as a second baseline, with Pillow's.

All paths are read by the same :class:`SignFrameDataset` in training mode (temporal rescaling, random resized crop
to 224, the same draws everywhere), which decodes only the frames it keeps. The PNG paths decode PNG and resize to
256×256 first, as a loader of the raw dataset must: frame by frame with PIL, or the whole clip at once (the
strongest baseline); the LMDB paths decode JPEG. The ratio is the cost of the storage format and the decoder.
Goal: LMDB ≥ 4× the vectorised PNG path.

    python bench/data_loading.py [--clips 24] [--frames 64] [--epochs 2] [--workers 0]
"""

import argparse
import glob
import io
import os
import sys
import tempfile
import time
from typing import Dict, Iterable, List, Optional

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # run from anywhere

from slt_plugins.data.lmdb_store import FrameStore, LmdbWriter, decode_jpeg, encode_jpeg  # noqa: E402
from slt_plugins.data.manifest import ManifestRow  # noqa: E402
from slt_plugins.data.sign_dataset import SignFrameDataset  # noqa: E402
from bench._machine import cpu_name  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED_DATA = os.environ.get("SLT_SHARED_DATA", os.path.join(REPO, "..", "shared", "data"))


def synthetic_clip(rng: np.random.Generator, n: int, height: int = 210, width: int = 260) -> np.ndarray:
    """A grey gradient, a dark torso and a face, two hands moving along random curves, camera noise, then a JPEG
    round trip for the broadcast video's compression: PNGs of these weigh, encode and decode like real ones."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    background = 150 + 60 * (1 - yy / height) + rng.uniform(-15, 15) * (xx / width - 0.5)
    frame = np.repeat(background[..., None], 3, axis=2)
    cx, cy = width / 2 + rng.uniform(-15, 15), height * 0.8
    frame[((xx - cx) / 85) ** 2 + ((yy - cy) / 90) ** 2 < 1] = (25, 25, 30)
    frame[((xx - cx) / 22) ** 2 + ((yy - height * 0.3) / 28) ** 2 < 1] = (205, 160, 140)
    clip = np.repeat(frame[None], n, axis=0)
    phase, speed = rng.uniform(0, 2 * np.pi, 4), rng.uniform(0.05, 0.2, 4)
    for t in range(n):
        for hand in range(2):
            hx = cx + (2 * hand - 1) * 50 + 40 * np.sin(speed[hand] * t + phase[hand])
            hy = height * 0.6 + 50 * np.sin(speed[hand + 2] * t + phase[hand + 2])
            clip[t][((xx - hx) / 14) ** 2 + ((yy - hy) / 18) ** 2 < 1] = (215, 170, 150)
    clip = np.clip(clip + rng.normal(0, 3, clip.shape), 0, 255).astype(np.uint8)
    return np.stack([decode_jpeg(encode_jpeg(f, quality=85)) for f in clip])


def resize(frame: np.ndarray, size: int) -> np.ndarray:
    return np.asarray(Image.fromarray(frame).resize((size, size), Image.BILINEAR))


class PngFolders:
    """Duck-types FrameStore over ``root/<clip>/imagesNNNN.png``, resizing the decoded frames to the binarised
    size, as a dataset reading the raw Phoenix folders must: frame by frame with PIL, as loaders of the raw data
    commonly do, or ``vectorised``, the whole clip at once like the augmentation (the strongest baseline)."""

    def __init__(self, root: str, size: int, vectorised: bool):
        self.path, self.size, self.vectorised = root, size, vectorised

    def frames(self, key: str, indices: Iterable[int]) -> np.ndarray:
        images = [Image.open(os.path.join(self.path, key, f"images{i + 1:04d}.png")).convert("RGB") for i in indices]
        if not self.vectorised:
            return np.stack([resize(np.asarray(image), self.size) for image in images])
        clip = torch.from_numpy(np.stack([np.asarray(image) for image in images])).permute(0, 3, 1, 2)
        clip = F.interpolate(clip, size=(self.size, self.size), mode="bilinear", align_corners=False, antialias=True)
        return clip.permute(0, 2, 3, 1).numpy()  # channels last, as crop_resize resizes: T×H×W×3 without a copy


class PillowFrameStore(FrameStore):
    """frames.lmdb decoded frame by frame with Pillow (the store's decoder before simplejpeg), same frames."""

    def frames(self, key: str, indices: Iterable[int]) -> np.ndarray:
        jpegs = self.jpegs(key)
        return np.stack([np.asarray(Image.open(io.BytesIO(jpegs[int(i)]), formats=("JPEG",))) for i in indices])


def write_stores(root: str, args) -> List[ManifestRow]:
    rng = np.random.default_rng(args.seed)
    rows = []
    with LmdbWriter(os.path.join(root, "frames.lmdb")) as writer:
        for c in range(args.clips):
            key = f"clip{c:03d}"
            clip = synthetic_clip(rng, args.frames)
            os.makedirs(os.path.join(root, "png", key))
            for t, frame in enumerate(clip):
                Image.fromarray(frame).save(os.path.join(root, "png", key, f"images{t + 1:04d}.png"))
            writer.put_clip(key, (resize(f, args.size) for f in clip))
            rows.append(ManifestRow(key, args.frames, "s", "", ""))
    return rows


def png_figures(paths: List[str]) -> str:
    """Mean size and decode time of PNG files, to compare the synthetic frames with real ones."""
    data = [open(p, "rb").read() for p in paths]
    start = time.perf_counter()
    for d in data:
        Image.open(io.BytesIO(d)).convert("RGB").load()
    seconds = (time.perf_counter() - start) / len(data)
    return f"{np.mean([len(d) for d in data]) / 1024:.0f} KiB, decoded in {1000 * seconds:.2f} ms"


def describe_frames(root: str, args) -> None:
    pngs = sorted(glob.glob(os.path.join(root, "png", "*", "images*.png")))[:: max(1, args.frames // 8)]
    real = sorted(glob.glob(os.path.join(SHARED_DATA, "real-frames", "*", "images*.png")))
    print(f"PNG frames {png_figures(pngs)}" + (f" (a real Phoenix frame: {png_figures(real * 8)})" if real else ""))
    lmdb_bytes = os.path.getsize(os.path.join(root, "frames.lmdb", "data.mdb"))
    print(f"frames.lmdb {lmdb_bytes / (args.clips * args.frames) / 1024:.0f} KiB per {args.size}×{args.size} frame "
          f"(JPEG q90, LMDB file size)")


def read(ds: SignFrameDataset, clip: Optional[int], workers: int) -> int:
    """Output frames of one clip, or (``clip`` None) of every clip through a DataLoader in batches of 4."""
    if clip is not None:
        return len(ds[clip]["frames"])
    loader = torch.utils.data.DataLoader(ds, batch_size=4, num_workers=workers, collate_fn=ds.collater)
    return sum(int(batch["net_input"]["frame_lengths"].sum()) for batch in loader)


def measure(datasets: Dict[str, SignFrameDataset], args) -> Dict[str, tuple]:
    """Seconds and output frames per path over ``args.epochs`` passes. The paths take turns clip by clip (epoch by
    epoch through a DataLoader), so that a busy machine slows them alike."""
    seconds = dict.fromkeys(datasets, 0.0)
    frames = dict.fromkeys(datasets, 0)
    for epoch in range(1, args.epochs + 1):
        for ds in datasets.values():
            ds.set_epoch(epoch)
        for clip in range(args.clips) if args.workers == 0 else [None]:
            for name, ds in datasets.items():
                start = time.perf_counter()
                frames[name] += read(ds, clip, args.workers)
                seconds[name] += time.perf_counter() - start
    return {name: (seconds[name], frames[name]) for name in datasets}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clips", type=int, default=24)
    parser.add_argument("--frames", type=int, default=64, help="frames per clip")
    parser.add_argument("--size", type=int, default=256, help="binarised frame size (square)")
    parser.add_argument("--crop", type=int, default=224)
    parser.add_argument("--epochs", type=int, default=2, help="passes over the clips, each with new augmentation")
    parser.add_argument("--workers", type=int, default=0, help="0: this process; N: a DataLoader with N workers")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (a data-loader worker has 1)")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory(prefix="slt-bench-") as root:
        rows = write_stores(root, args)
        print(f"CPU: {cpu_name()}, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}; "
              f"torch threads {args.threads}; "
              f"{'single process' if args.workers == 0 else f'DataLoader, {args.workers} workers, batches of 4'}")
        print(f"{args.clips} clips × {args.frames} frames of 210×260, {args.epochs} epochs of the training transform "
              f"(temporal ×0.5–1.5, random resized crop to {args.crop}); warm page cache")
        describe_frames(root, args)
        print(f"PNG: read + decode PNG 210×260 + resize to {args.size}×{args.size} + augment;  "
              f"frames.lmdb: read + decode JPEG {args.size}×{args.size} + augment (same frames, same draws)")
        datasets = {
            "PNG, PIL resize": PngFolders(os.path.join(root, "png"), args.size, vectorised=False),
            "PNG, vectorised": PngFolders(os.path.join(root, "png"), args.size, vectorised=True),
            "lmdb, Pillow": PillowFrameStore(os.path.join(root, "frames.lmdb")),
            "frames.lmdb": FrameStore(os.path.join(root, "frames.lmdb")),
        }
        datasets = {name: SignFrameDataset(store, rows, train=True, crop_size=args.crop, seed=args.seed)
                    for name, store in datasets.items()}
        print(f"\n{'path':<16} {'clips/s':>9} {'frames/s':>10} {'ms/clip':>9}   (frames: output frames)")
        speed = {}
        for name, (seconds, frames) in measure(datasets, args).items():
            clips = args.clips * args.epochs
            speed[name] = clips / seconds
            print(f"{name:<16} {clips / seconds:9.1f} {frames / seconds:10.0f} {1000 * seconds / clips:9.1f}")
        print("\nframes.lmdb / baseline = " + ", ".join(f"{speed['frames.lmdb'] / speed[name]:.2f}× ({name})"
                                                     for name in datasets if name != "frames.lmdb")
              + "; goal ≥ 4× (PNG, vectorised)")


if __name__ == "__main__":
    main()
