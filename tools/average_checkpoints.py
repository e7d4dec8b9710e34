"""slt-average-checkpoints: the parameter average of the last epochs' checkpoints, one checkpoint that decodes.

Averaging the weights of the last few epochs is a cheap, well-known gain for a translation model trained on a small
corpus. fairseq ships this as ``scripts/average_checkpoints.py`` in its repository, but the pip package does not
install it; this is the same operation with our error handling: the files are named on the command line (or the
``--last N`` epoch checkpoints of a folder), every one must hold the same parameters, and the output is written
under a temporary name and renamed. The newest checkpoint's configuration goes with the average, its optimizer state
does not (an average of weights has none).

    slt-average-checkpoints --dir checkpoints/g2t --last 5 --out checkpoints/g2t/checkpoint_avg5.pt
"""

import argparse
import os
import re
import sys
from typing import Dict, List, Optional

import torch

import slt_plugins  # noqa: F401  (allow-lists fairseq's checkpoint types for torch.load)
from slt_plugins.safe_checkpoint import CheckpointError, load_checkpoint_file


class AverageError(ValueError):
    pass


def last_epoch_checkpoints(folder: str, n: int) -> List[str]:
    found = sorted(((int(m.group(1)), f) for f in os.listdir(folder) if (m := re.fullmatch(r"checkpoint(\d+)\.pt", f))),
                   reverse=True)
    if len(found) < n:
        raise AverageError(f"{folder} holds {len(found)} epoch checkpoints (checkpointN.pt), fewer than --last {n}; "
                           "train with checkpoint.no_epoch_checkpoints=false and keep_last_epochs >= N")
    return [os.path.join(folder, f) for _, f in found[:n]]


def average(paths: List[str]) -> dict:
    newest, total, names = None, None, None
    for path in paths:
        try:
            state = load_checkpoint_file(path)
        except CheckpointError as e:
            raise AverageError(str(e)) from None
        model: Dict[str, torch.Tensor] = state.get("model")
        if not isinstance(model, dict) or not all(torch.is_tensor(v) for v in model.values()):
            raise AverageError(f"{path}: no model weights (a fairseq checkpoint has a 'model' dict of tensors)")
        if names is None:
            newest, names = state, set(model)
            total = {k: v.double().clone() if v.is_floating_point() else v for k, v in model.items()}
            continue
        if set(model) != names:
            raise AverageError(f"{path} holds other parameters than {paths[0]} (differ: "
                               f"{sorted(set(model) ^ names)[:5]}); average checkpoints of one training run")
        for k, v in model.items():
            if v.shape != total[k].shape:
                raise AverageError(f"{path}: parameter {k} is {tuple(v.shape)} but {tuple(total[k].shape)} in "
                                   f"{paths[0]}; average checkpoints of one model")
            if v.is_floating_point():
                total[k] += v.double()
    newest = dict(newest)
    newest["model"] = {k: (v / len(paths)).to(newest["model"][k].dtype) if v.is_floating_point() else v
                       for k, v in total.items()}
    newest["last_optimizer_state"] = None
    newest["extra_state"] = dict(newest.get("extra_state") or {}, averaged_from=[os.path.basename(p) for p in paths])
    return newest


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="slt-average-checkpoints", description=__doc__.split("\n\n")[0])
    p.add_argument("inputs", nargs="*", help="checkpoint files to average")
    p.add_argument("--dir", help="folder of a training run: average its --last N epoch checkpoints")
    p.add_argument("--last", type=int, default=5)
    p.add_argument("--out", required=True, help="the averaged checkpoint")
    args = p.parse_args(argv)
    try:
        paths = list(args.inputs) + (last_epoch_checkpoints(args.dir, args.last) if args.dir else [])
        if not paths:
            raise AverageError("name checkpoint files, or --dir with --last N")
        overwritten = [x for x in paths if os.path.realpath(x) == os.path.realpath(args.out)]
        if overwritten:
            raise AverageError(f"--out {args.out} is one of the checkpoints to average ({overwritten[0]}); write the "
                               "average to a new file")
        state = average(paths)
    except AverageError as e:
        print(f"slt-average-checkpoints: error: {e}", file=sys.stderr)
        return 2
    tmp = f"{args.out}.tmp-{os.getpid()}"
    torch.save(state, tmp)
    os.replace(tmp, args.out)
    print(f"{args.out}: the average of {', '.join(os.path.basename(x) for x in paths)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
