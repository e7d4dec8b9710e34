"""slt-extract-features: a Sign2Gloss checkpoint's backbone over a binarised dataset → ``features/<name>.lmdb``.

Every clip of every split is read as in evaluation (centre crop, all frames), passed through the backbone (S3D: blocks
1–4, T/4×832) and stored as float16 T'×C under its id, with ``index.json`` (each T', the width, the checkpoint)
beside the data. Training Sign2Text on these (``--input features``) is SingleStream-SLT's recipe.

- batched: clips sorted by length, ``--batch-size`` clips and at most ``--max-frames`` padded frames per batch. A 3D
  backbone (S3D) sees the zero padding after a shorter clip, so its last feature vectors can differ slightly from
  the clip's features alone; ``--batch-size 1`` is exact.
- resumable: the store is written into ``<name>.lmdb.partial`` in committed batches and renamed into place when
  every clip is in; run the same command again after a kill and it goes on where it stopped. The partial store
  records the checkpoint (its sha256) and the settings that change the values (``extraction.json``); a resume with
  another checkpoint or settings is refused, so a store never mixes two models' features. A finished store is left
  alone unless ``--overwrite``.
- distributed: under ``torchrun --nproc_per_node N`` each process takes every N-th clip on its own GPU and all
  write into the same store (LMDB serialises the commits); process 0 writes the index.

A joint (sign2text) checkpoint works too: its sign encoder holds the same backbone, also when it was trained
without glosses. Without any checkpoint, ``--backbone NAME --backbone-weights FILE`` runs a registered backbone
from its weights file alone (the S3D Kinetics-400 file: the first stage of the gloss-free recipe, where no
Sign2Gloss model exists); ``--backbone-args`` and ``--crop-size`` then say how it is built and what it sees.
"""

import argparse
import hashlib
import json
import os
import shutil
import sys
import time
from typing import Dict, List

import torch
import torch.distributed as dist

from fairseq_slt.tools.progress import progress_bar


class ExtractError(ValueError):
    """Stops the run with one line that names the file and the fix."""


def sign_encoder(model):
    """The sign encoder of a sign2gloss (``s3d_encoder``) or sign2text (``joint``) model."""
    encoder = model.encoder
    encoder = getattr(encoder, "sign", encoder)
    if getattr(encoder, "backbone", None) is None:
        raise ExtractError("the checkpoint's model has no visual backbone (it was trained on features); give a "
                           "checkpoint trained on frames")
    return encoder


class BackboneOnly(torch.nn.Module):
    """A visual backbone by itself, with the sign encoder's ``visual_features`` (what training on frames sees)."""

    def __init__(self, backbone):
        super().__init__()
        self.backbone = backbone

    def visual_features(self, frames: torch.Tensor, frame_lengths: torch.Tensor):
        return self.backbone(frames, frame_lengths)


def load_backbone(name: str, weights: str, options: str, crop_size: int):
    """(a backbone by registered name with its weights file, a config whose ``task.crop_size`` is ``crop_size``)."""
    import ast
    from types import SimpleNamespace

    from fairseq_slt.registry import RegistryError, build_visual_backbone

    if not os.path.isfile(weights):
        raise ExtractError(f"--backbone-weights {weights}: no such file")
    try:
        values = ast.literal_eval(options or "{}")
    except (ValueError, SyntaxError):
        values = None
    if not isinstance(values, dict):
        raise ExtractError(f"--backbone-args {options!r}: not a dict literal such as \"{{'output_dim': 64}}\"")
    try:
        backbone = build_visual_backbone(name, dict(values, pretrained=weights))
    except (RegistryError, ValueError, RuntimeError) as e:
        raise ExtractError(f"--backbone {name} --backbone-weights {weights}: {str(e).splitlines()[0]}") from None
    return BackboneOnly(backbone), SimpleNamespace(task=SimpleNamespace(crop_size=crop_size))


def load_checkpoint(path: str, data: str):
    from fairseq import checkpoint_utils

    if not os.path.isfile(path):
        raise ExtractError(f"--checkpoint {path}: no such file")
    overrides = {"data": data, "input": "frames"}
    models, cfg, task = checkpoint_utils.load_model_ensemble_and_task([path], arg_overrides=overrides)
    cfg.task.crop_size = task.cfg.crop_size  # resolved by the task where the checkpoint's config leaves it unset
    return sign_encoder(models[0]), cfg


def split_rows(data: str, splits: List[str]):
    from slt_plugins.data.manifest import manifest_path, read_manifest

    if not splits:
        meta_path = os.path.join(data, "meta.json")
        if not os.path.isfile(meta_path):
            raise ExtractError(f"{meta_path} is missing: binarise the dataset with slt-binarise first")
        with open(meta_path, encoding="utf-8") as f:
            splits = list(json.load(f).get("splits", []))
    rows, seen = [], set()
    for split in splits:
        path = manifest_path(data, split)
        if not os.path.isfile(path):
            raise ExtractError(f"{path}: no such split; the dataset has {', '.join(splits)}")
        for row in read_manifest(path):
            if row.id not in seen:
                seen.add(row.id)
                rows.append(row)
    return rows


def write_index(path: str, info: Dict) -> int:
    """``index.json`` with every clip's T', read from the arrays' headers (all processes' clips); returns the count."""
    from slt_plugins.data.lmdb_store import FeatureStore

    store = FeatureStore(path)
    keys = list(store.keys())
    lengths = dict(zip(keys, store.lengths(keys)))
    store.close()
    tmp = os.path.join(path, "index.json.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(dict(info, count=len(lengths), lengths=lengths), f)
    os.replace(tmp, os.path.join(path, "index.json"))
    return len(lengths)


SETTINGS_FILE = "extraction.json"  # in <name>.lmdb.partial: what the features are made with, checked on resume


def file_sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def extraction_settings(args, cfg, encoder) -> Dict:
    """Everything the stored values depend on: the checkpoint's bytes, the backbone, the crop, the precision and the
    batching (a 3D backbone sees the padding of a batch)."""
    return {"checkpoint_sha256": file_sha256(weights_file(args)), "backbone": encoder.backbone.__registry_name__,
            "crop_size": int(cfg.task.crop_size), "fp16": bool(args.fp16), "batch_size": int(args.batch_size),
            "max_frames": int(args.max_frames)}


def weights_file(args) -> str:
    """The file the features' values come from: the checkpoint, or the backbone's weights."""
    return args.checkpoint or args.backbone_weights


def check_resume(partial: str, settings: Dict) -> None:
    """A partial store may only be completed with the checkpoint and settings it was begun with."""
    path = os.path.join(partial, SETTINGS_FILE)
    if os.path.isfile(path):
        try:
            with open(path, encoding="utf-8") as f:
                begun = json.load(f)
        except (ValueError, UnicodeDecodeError):
            begun = None
        if not isinstance(begun, dict):
            raise ExtractError(f"{path} is damaged, so the features in {partial} cannot be matched to a checkpoint; "
                               "--overwrite to extract again")
        differ = [f"{k} {begun.get(k)!r} then, {v!r} now" for k, v in settings.items() if begun.get(k) != v]
        if differ:
            raise ExtractError(f"{partial} was begun with another checkpoint or settings ({'; '.join(differ)}): "
                               "resume with the same ones, or --overwrite to extract again")
    elif os.path.isfile(os.path.join(partial, "data.mdb")) and stored_count(partial):
        raise ExtractError(f"{partial} holds features but no {SETTINGS_FILE} saying what made them; --overwrite to "
                           "extract again")


def stored_count(path: str) -> int:
    import lmdb

    env = lmdb.open(path, readonly=True, lock=False)
    try:
        return env.stat()["entries"]
    finally:
        env.close()


def write_settings(partial: str, settings: Dict) -> None:
    os.makedirs(partial, exist_ok=True)
    path = os.path.join(partial, SETTINGS_FILE)
    if not os.path.isfile(path):
        with open(path + ".tmp", "w", encoding="utf-8") as f:
            json.dump(settings, f, indent=1)
        os.replace(path + ".tmp", path)


def setup_distributed():
    """(rank, world size, device) from torchrun's environment; one process on the best device otherwise."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    rank = dist.get_rank() if world > 1 else 0
    if torch.cuda.is_available():
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        return rank, world, torch.device("cuda", local)
    return rank, world, torch.device("cpu")


def extract(args) -> Dict:
    from slt_plugins.data.lmdb_store import FrameStore, LmdbWriter
    from slt_plugins.data.sign_dataset import SignFrameDataset

    rank, world, device = setup_distributed()
    if args.checkpoint:
        encoder, cfg = load_checkpoint(args.checkpoint, args.data)
    else:
        encoder, cfg = load_backbone(args.backbone, args.backbone_weights, args.backbone_args, args.crop_size)
    name = args.name or encoder.backbone.__registry_name__
    final = os.path.join(args.data, "features", f"{name}.lmdb")
    partial = final + ".partial"
    if os.path.lexists(final) and not os.path.isfile(os.path.join(final, "data.mdb")) and not args.overwrite:
        raise ExtractError(f"{final}: exists and is not a feature store (no data.mdb); choose another --name, or pass "
                           "--overwrite to replace it")
    if os.path.isfile(os.path.join(final, "index.json")) and not args.overwrite:
        if rank == 0:
            print(f"{final} is complete; --overwrite to extract again")
        return {"path": final, "written": 0}
    if rank == 0 and args.overwrite:
        shutil.rmtree(partial, ignore_errors=True)
    settings = extraction_settings(args, cfg, encoder)
    if not args.overwrite:  # (rank 0 has removed the partial store otherwise)
        check_resume(partial, settings)  # every rank: all refuse alike
    if world > 1:
        dist.barrier()
    if rank == 0:
        write_settings(partial, settings)
    if world > 1:
        dist.barrier()

    rows = split_rows(args.data, args.splits.split(",") if args.splits else [])
    with LmdbWriter(partial, commit_every=args.commit_every) as writer:
        done = set(writer.keys())
        todo = [r for i, r in enumerate(rows) if i % world == rank and r.id not in done]
        dataset = SignFrameDataset(FrameStore(os.path.join(args.data, "frames.lmdb")), todo, train=False,
                                   crop_size=cfg.task.crop_size)
        # by length, at most --batch-size clips and --max-frames padded frames (a longer clip goes alone)
        batches = dataset.batch_by_size(dataset.ordered_indices(), max_sentences=args.batch_size,
                                        max_tokens=int(dataset.sizes.max(initial=args.max_frames)))
        loader = torch.utils.data.DataLoader(dataset, batch_sampler=batches, collate_fn=dataset.collater,
                                             num_workers=args.num_workers)
        encoder.eval().to(device)
        if rank == 0 and done:
            print(f"resuming: {len(done)} of {len(rows)} clips are already in {partial}")
        started, written = time.time(), 0
        with torch.inference_mode(), progress_bar(total=len(todo), unit="clip", quiet=rank != 0 or args.quiet,
                                                  desc=f"{name} features") as progress:
            for batch in loader:
                net = batch["net_input"]
                with torch.autocast(device.type, dtype=torch.float16, enabled=args.fp16 and device.type == "cuda"):
                    features, lengths = encoder.visual_features(net["frames"].to(device),
                                                                net["frame_lengths"].to(device))
                features = features.to(torch.float16).cpu()
                for k, (i, n) in enumerate(zip(batch["id"].tolist(), lengths.tolist())):
                    writer.put_array(todo[i].id, features[k, :n].numpy())
                written += len(lengths)
                progress.update(len(lengths))
    if world > 1:
        dist.barrier()
    if rank == 0:
        missing = len(rows) - write_index(partial, {
            "dim": int(encoder.backbone.output_dim), "dtype": "float16", "backbone": encoder.backbone.__registry_name__,
            "crop_size": int(cfg.task.crop_size), "checkpoint": os.path.abspath(weights_file(args)),
            "extraction": settings})
        if missing > 0:
            raise ExtractError(f"{partial}: {missing} clips are missing after extraction; run again to resume")
        if os.path.exists(final):
            shutil.rmtree(final)
        os.rename(partial, final)
        print(f"{final}: {len(rows)} clips ({written} extracted now, {time.time() - started:.0f} s)")
    if world > 1:
        dist.barrier()
    return {"path": final, "written": written}


def _plain_name(name: str) -> str:
    """``--name`` becomes a folder name under features/: it may not lead elsewhere."""
    from fairseq_slt.tools.corpora import PLAIN_NAME

    if name and not PLAIN_NAME.fullmatch(name):
        raise argparse.ArgumentTypeError(f"{name!r} is not a plain name (letters, digits, '_', '-', '.')")
    return name


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="slt-extract-features", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="\n\n".join(__doc__.split("\n\n")[1:]))
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--checkpoint", help="a sign2gloss (or sign2text) checkpoint trained on frames")
    source.add_argument("--backbone", help="instead of a checkpoint: a registered visual backbone (s3d, …), with "
                        "--backbone-weights")
    p.add_argument("--backbone-weights", help="with --backbone: its weights, e.g. S3D_kinetics400.pt")
    p.add_argument("--backbone-args", default="{}", help="with --backbone: its options as a dict literal")
    p.add_argument("--crop-size", type=int, default=224, help="with --backbone: the centre crop it sees (default: "
                   "224; a checkpoint brings its own)")
    p.add_argument("--data", required=True, help="the binarised dataset (data_bins/NAME) with frames.lmdb")
    p.add_argument("--name", default="", type=_plain_name,
                   help="features/<name>.lmdb (default: the backbone's name, e.g. s3d)")
    p.add_argument("--splits", default="", help="comma-separated splits (default: all in meta.json)")
    p.add_argument("--batch-size", type=int, default=4, help="clips per batch (1: exact for 3D backbones)")
    p.add_argument("--max-frames", type=int, default=2000, help="padded frames per batch at most")
    p.add_argument("--num-workers", type=int, default=2, help="data-loader processes decoding JPEGs")
    p.add_argument("--commit-every", type=int, default=32, help="clips per LMDB commit (what a kill may lose)")
    p.add_argument("--fp16", action="store_true", help="autocast the backbone to float16 on a GPU")
    p.add_argument("--overwrite", action="store_true",
                   help="extract again over a finished store (or replace a folder there that is not a store)")
    p.add_argument("--quiet", action="store_true", help="no progress bar (there is none when stderr is no terminal)")
    args = p.parse_args(argv)
    if args.backbone and not args.backbone_weights:
        p.error("--backbone needs --backbone-weights (features of a random backbone would mean nothing)")
    import slt_plugins  # noqa: F401  (registers the tasks and models the checkpoint names)
    from slt_plugins.safe_checkpoint import CheckpointError

    try:
        extract(args)
    except (ExtractError, CheckpointError) as e:
        print(f"slt-extract-features: {e}", file=sys.stderr)
        return 1
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
