"""slt-export: a trained checkpoint → a model bundle, one folder that translates on a machine without the data.

The bundle holds ``model.pt`` (the checkpoint without its optimizer state), the vocabularies the task reads
(``dict.gloss.txt``; ``dict.text.txt`` and ``spm.model``, or the pruned mBART's ``vocab/``), the dataset's
``meta.json`` and ``bundle.json``: the task, the geometry the model was trained on (the shorter side of the stored
frames — read from the store when the dataset kept the frames at their original size — and the crop) and the
toolkit version. Nothing in it names a file of the exporting machine: paths in the model's config that only a
fresh model reads (the checkpoints it started from, pretrained weights) and the dataset's source paths are left
out. ``SignTranslator.from_pretrained(BUNDLE)`` and ``slt-translate --model BUNDLE`` read it.

A Sign2Text model trained on cached features cannot read video by itself: ``--backbone-checkpoint`` names the
Sign2Gloss checkpoint whose backbone made the features, and its weights go into the bundle's model.
"""

import argparse
import json
import os
import shutil
import sys

BUNDLE_FORMAT = "fairseq-slt-bundle"
BUNDLE_VERSION = 1
TASKS = ("sign2gloss", "gloss2text", "sign2text")
#: model options that name files a fresh model reads; a checkpoint brings their weights, a bundle leaves them out
MODEL_FILE_OPTIONS = {"sign2gloss_checkpoint": "", "gloss2text_checkpoint": "", "backbone_pretrained": None,
                      "pretrained_mbart": None}


class ExportError(ValueError):
    """Stops the export with one line that names the file and the fix."""


def _copy(src_dir: str, names, dst_dir: str) -> None:
    os.makedirs(dst_dir, exist_ok=True)
    for name in names:
        src = os.path.join(src_dir, name)
        if not os.path.isfile(src):
            raise ExportError(f"{src} is missing; pass --data with the dataset the model was trained on")
        shutil.copy(src, os.path.join(dst_dir, name))


def trained_shorter_side(data: str, meta: dict, manifest_split: str = "train") -> int:
    """The shorter side of the frames the model was trained on: as slt-binarise resized them, or, where it kept
    them at their original size (``--frame-size 0``), as the first training clip in the store has it."""
    from slt_plugins.data.lmdb_store import FrameStore
    from slt_plugins.data.manifest import manifest_path, read_manifest

    side = (meta.get("frames") or {}).get("shorter_side")
    if side:
        return int(side)
    store, manifest = os.path.join(data, "frames.lmdb"), manifest_path(data, manifest_split)
    if not os.path.isdir(store) or not os.path.isfile(manifest):
        raise ExportError(f"{data}: meta.json records no frame size and {store} or {manifest} is missing, so the "
                          "frames the model was trained on cannot be measured; pass --data with the binarised "
                          "dataset the model was trained on")
    rows = read_manifest(manifest)
    frames = FrameStore(store).frames(rows[0].id, [0])
    return int(min(frames.shape[1:3]))


def export(checkpoint: str, out: str, data: str = "", backbone_checkpoint: str = "", overwrite: bool = False) -> dict:
    import torch
    from fairseq import checkpoint_utils
    from omegaconf import OmegaConf, open_dict

    import slt_plugins
    from slt_plugins.tasks.checkpoint_settings import STATE_KEY, saved_settings
    from slt_plugins.tasks.sign2gloss import SignInput
    from fairseq_slt.tools.atomic import Owner, check_output, staging

    if not os.path.isfile(checkpoint):
        raise ExportError(f"--checkpoint {checkpoint}: no such file")
    owner = Owner("slt-export", "bundle.json", "format", BUNDLE_FORMAT)
    check_output(out, owner, [checkpoint, data, backbone_checkpoint], overwrite)  # before the slow loading
    state = checkpoint_utils.load_checkpoint_to_cpu(checkpoint)
    cfg = state["cfg"]
    task = cfg.task._name
    if task not in TASKS:
        raise ExportError(f"{checkpoint}: a {task!r} checkpoint; bundles hold {', '.join(TASKS)} models")
    data = data or cfg.task.data
    vocab = getattr(cfg.task, "vocab", "") or ""
    settings = saved_settings(state, SignInput.checkpoint_settings) if task != "gloss2text" else {}
    if task == "sign2text" and settings["input"] == "features":
        if not backbone_checkpoint:
            raise ExportError(f"{checkpoint} reads cached features; pass --backbone-checkpoint with the sign2gloss "
                              "(or sign2text) checkpoint that made them, so the bundle can read video")
        backbone = checkpoint_utils.load_checkpoint_to_cpu(backbone_checkpoint)
        weights = {f"encoder.sign.{k[len('encoder.'):]}": v for k, v in backbone["model"].items()
                   if k.startswith("encoder.backbone.")}  # a sign2gloss checkpoint's
        weights.update({k: v for k, v in backbone["model"].items()  # a sign2text one's (with or without glosses)
                        if k.startswith("encoder.sign.backbone.")})
        if not weights:
            raise ExportError(f"--backbone-checkpoint {backbone_checkpoint} has no visual backbone")
        state["model"].update(weights)
        settings.update(input="frames", crop_size=saved_settings(backbone, SignInput.checkpoint_settings)["crop_size"])
    meta_path = os.path.join(data, "meta.json")
    if not os.path.isfile(meta_path):
        raise ExportError(f"{meta_path} is missing; pass --data with the dataset the model was trained on")
    with open(meta_path, encoding="utf-8") as f:
        meta = json.load(f)
    reads_poses = settings.get("input") == "poses"
    shorter_side = trained_shorter_side(data, meta) if task != "gloss2text" and not reads_poses else None
    pose_index = {}
    if reads_poses:  # the layout the model was built for: a store index without keypoints, which the task reads
        from slt_plugins.data.lmdb_store import POSE_STORE, PoseStore

        pose_index = PoseStore(os.path.join(data, POSE_STORE)).layout()
    state.pop("last_optimizer_state", None)
    with staging(out, owner, inputs=[checkpoint, data, backbone_checkpoint, vocab], overwrite=overwrite) as tmp:
        _copy(data, ["dict.gloss.txt"], tmp)
        if pose_index:
            from slt_plugins.data.lmdb_store import FEATURE_INDEX, POSE_STORE

            os.makedirs(os.path.join(tmp, POSE_STORE))
            with open(os.path.join(tmp, POSE_STORE, FEATURE_INDEX), "w", encoding="utf-8") as f:
                json.dump(dict(pose_index, lengths={}), f)
        source = meta.get("source")
        meta = dict(meta, source={"format": source.get("format")} if isinstance(source, dict) else source)
        if task != "gloss2text" and not reads_poses:  # the frames a video bundle's inputs are brought to
            meta["frames"] = dict(meta.get("frames") or {}, shorter_side=shorter_side)
        with open(os.path.join(tmp, "meta.json"), "w", encoding="utf-8") as f:
            json.dump(meta, f, indent=1, ensure_ascii=False)
        if task != "sign2gloss":
            if vocab:
                _copy(vocab, ["dict.txt", "sentence.bpe.model", "meta.json"], os.path.join(tmp, "vocab"))
            else:
                _copy(data, ["dict.text.txt", "spm.model"], tmp)
        with open_dict(cfg):
            cfg.task.data = "."  # set to the bundle's folder when it is loaded
            if vocab:
                cfg.task.vocab = "vocab"
            for name, value in settings.items():  # the settings the model was trained with, all given
                cfg.task[name] = value
            for name, empty in MODEL_FILE_OPTIONS.items():
                if name in cfg.model:  # a Hydra config or an argparse Namespace (mbart_translator)
                    setattr(cfg.model, name, empty)
        if settings:
            recorded = (state.get("task_state") or {}).get(STATE_KEY) or {}
            state["task_state"] = dict(state.get("task_state") or {}, **{STATE_KEY: dict(recorded, **settings)})
        state["cfg"] = OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)  # as fairseq saves it
        torch.save(state, os.path.join(tmp, "model.pt"))
        info = {
            "format": BUNDLE_FORMAT, "version": BUNDLE_VERSION, "task": task, "toolkit": slt_plugins.__version__,
            "input": "glosses" if task == "gloss2text" else "poses" if reads_poses else "frames",
            "shorter_side": shorter_side,
            "crop_size": int(settings["crop_size"]) if task != "gloss2text" and not reads_poses else None,
        }
        if reads_poses:
            info.update(pose_layout=pose_index["layout"], pose_dims=pose_index["dims"])
        with open(os.path.join(tmp, "bundle.json"), "w", encoding="utf-8") as f:
            json.dump(info, f, indent=1)
    return info


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="slt-export", description=__doc__.split("\n\n")[0],
                                epilog="\n\n".join(__doc__.split("\n\n")[1:]))
    p.add_argument("--checkpoint", required=True, help="a sign2gloss, gloss2text or sign2text checkpoint")
    p.add_argument("--out", required=True, help="the bundle folder to write (replaced whole when done); an existing "
                   "folder that is not a bundle is refused unless --overwrite, one holding an input always")
    p.add_argument("--overwrite", action="store_true", help="replace --out even if it is not a bundle")
    p.add_argument("--data", default="", help="the binarised dataset (default: the one in the checkpoint)")
    p.add_argument("--backbone-checkpoint", default="", help="sign2text on features: the sign2gloss (or sign2text) "
                   "checkpoint whose backbone made them")
    args = p.parse_args(argv)
    from fairseq_slt.tools.atomic import OutputError

    try:
        info = export(args.checkpoint, args.out, args.data, args.backbone_checkpoint, args.overwrite)
    except (ExportError, OutputError, OSError) as e:
        print(f"slt-export: {e}", file=sys.stderr)
        return 1
    print(f"{args.out}: {info['task']} bundle (input {info['input']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
