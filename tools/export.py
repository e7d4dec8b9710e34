"""slt-export: a trained checkpoint → a model bundle, one folder that translates on a machine without the data.

The bundle holds ``model.pt`` (the checkpoint without its optimizer state), the vocabularies the task reads
(``dict.gloss.txt``; ``dict.text.txt`` and ``spm.model``, or the pruned mBART's ``vocab/``), the dataset's
``meta.json`` and ``bundle.json``: the task, the preprocessing (the frames' shorter side as binarised, the crop)
and the toolkit version. ``SignTranslator.from_pretrained(BUNDLE)`` and ``slt-translate --model BUNDLE`` read it.

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


class ExportError(ValueError):
    """Stops the export with one line that names the file and the fix."""


def _copy(src_dir: str, names, dst_dir: str) -> None:
    os.makedirs(dst_dir, exist_ok=True)
    for name in names:
        src = os.path.join(src_dir, name)
        if not os.path.isfile(src):
            raise ExportError(f"{src} is missing; pass --data with the dataset the model was trained on")
        shutil.copy(src, os.path.join(dst_dir, name))


def export(checkpoint: str, out: str, data: str = "", backbone_checkpoint: str = "", overwrite: bool = False) -> dict:
    import torch
    from fairseq import checkpoint_utils
    from omegaconf import OmegaConf, open_dict

    import slt_plugins
    from tools.atomic import Owner, check_output, staging

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
    if task == "sign2text" and cfg.task.input == "features":
        if not backbone_checkpoint:
            raise ExportError(f"{checkpoint} reads cached features; pass --backbone-checkpoint with the sign2gloss "
                              "checkpoint that made them, so the bundle can read video")
        backbone = checkpoint_utils.load_checkpoint_to_cpu(backbone_checkpoint)
        weights = {f"encoder.sign.{k[len('encoder.'):]}": v for k, v in backbone["model"].items()
                   if k.startswith("encoder.backbone.")}
        if not weights:
            raise ExportError(f"--backbone-checkpoint {backbone_checkpoint} has no visual backbone")
        state["model"].update(weights)
        with open_dict(cfg):
            cfg.task.input = "frames"
            cfg.task.crop_size = backbone["cfg"].task.crop_size
    with open(os.path.join(data, "meta.json"), encoding="utf-8") as f:
        meta = json.load(f)
    state.pop("last_optimizer_state", None)
    with staging(out, owner, inputs=[checkpoint, data, backbone_checkpoint, vocab], overwrite=overwrite) as tmp:
        _copy(data, ["meta.json", "dict.gloss.txt"], tmp)
        if task != "sign2gloss":
            if vocab:
                _copy(vocab, ["dict.txt", "sentence.bpe.model", "meta.json"], os.path.join(tmp, "vocab"))
            else:
                _copy(data, ["dict.text.txt", "spm.model"], tmp)
        with open_dict(cfg):
            cfg.task.data = "."  # set to the bundle's folder when it is loaded
            if vocab:
                cfg.task.vocab = "vocab"
        state["cfg"] = OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)  # as fairseq saves it
        torch.save(state, os.path.join(tmp, "model.pt"))
        info = {
            "format": BUNDLE_FORMAT, "version": BUNDLE_VERSION, "task": task, "toolkit": slt_plugins.__version__,
            "input": "glosses" if task == "gloss2text" else "frames",
            "shorter_side": (meta.get("frames") or {}).get("shorter_side"),
            "crop_size": int(cfg.task.crop_size) if task != "gloss2text" else None,
            "source_checkpoint": os.path.abspath(checkpoint),
        }
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
    p.add_argument("--backbone-checkpoint", default="", help="sign2text on features: the sign2gloss checkpoint")
    args = p.parse_args(argv)
    from tools.atomic import OutputError

    try:
        info = export(args.checkpoint, args.out, args.data, args.backbone_checkpoint, args.overwrite)
    except (ExportError, OutputError, OSError) as e:
        print(f"slt-export: {e}", file=sys.stderr)
        return 1
    print(f"{args.out}: {info['task']} bundle (input {info['input']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
