"""Benchmark: continuous fingerspelling from real MediaPipe keypoints — pose_tconv and pose_stgcn against a plain
BiLSTM-CTC baseline, the same budget, in the same run.

The data: the ``spoken-to-signed`` wheel (PyPI, installed by ``make bench``; only its files are read) holds real
MediaPipe Holistic recordings of fingerspelled letters, one per letter and sign language (``index.csv``). For one
sign language (``--language``, default ``ase``: American Sign Language, 26 letters) this builds words: random
letter strings of 3–6 letters, each spelled by concatenating the letters' real recordings, every occurrence with its
own seeded augmentation (speed ×0.75–1.33, a small rotation, scale and shift in the image plane, keypoint jitter,
and 0–2 frames of linear transition between letters). The words are written as ``.pose`` files (pose-format), listed
in a TSV with a ``pose`` column and binarised with ``slt-binarise tsv`` (layout ``upper_body_hands``); train and
test words are different strings.

What it measures, and what not: real hand shapes and real motion of each letter, in sequences that are synthetic.
The same recordings make the training and the test words (under other augmentations and in other contexts), so the
figure says how well a model segments and recognises known letter recordings in a continuous stream, not how it
generalises to new signers.

Three Sign2Gloss models are trained with fairseq-train, ``--input poses``, CTC, the same epochs, batch size and
learning rate, side by side (``--threads`` each): ``pose_tconv``, ``pose_stgcn`` and the baseline ``pose_bilstm``
(the raw keypoints into a 2-layer BiLSTM); all three have the same visual head. Each is scored on test by
fairseq-generate (CTC beam 5): the letter error rate (the WER over letters). Printed: LER of each, its ratio to
the baseline's, the wall time of its run (training and decoding, start-up included), its training time per update
(fairseq's "done training in", start-up excluded) as a ratio to the baseline's, and the machine's load.

    python bench/pose_fingerspelling.py [--language ase] [--train 400] [--test 100] [--epochs 30] [--threads 1]
                                        [--work bench/out/pose_fingerspelling]
"""

import argparse
import csv
import importlib.util
import os
import re
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.dirname(sys.executable)
sys.path.insert(0, REPO)
MODELS = {
    "pose_tconv": ["--visual-backbone", "pose_tconv", "--backbone-args", "{'hidden_dim': 128, 'output_dim': 128}"],
    "pose_stgcn": ["--visual-backbone", "pose_stgcn", "--backbone-args",
                   "{'channels': [16, 32, 64], 'strides': [1, 2, 2], 'temporal_kernel': 5}"],
    "pose_bilstm (baseline)": ["--visual-backbone", "pose_bilstm", "--backbone-args",
                               "{'hidden_dim': 128, 'layers': 2}"],
}


def lexicon() -> str:
    """The fingerspelling lexicon folder of the installed spoken-to-signed wheel (its code is not imported)."""
    spec = importlib.util.find_spec("spoken_to_signed")
    if spec is None:
        sys.exit("bench/pose_fingerspelling.py: the spoken-to-signed wheel is not installed (make bench installs it: "
                 "pip install --no-deps spoken-to-signed==0.4.0)")
    return os.path.join(list(spec.submodule_search_locations)[0], "assets", "fingerspelling_lexicon")


def letters(language: str):
    """letter → pose-format Pose of its recording (the layout's components only), for one sign language."""
    from slt_plugins.data.pose_files import read_pose
    from slt_plugins.data.pose_layouts import get_layout

    layout = get_layout("upper_body_hands")
    root, out = lexicon(), {}
    with open(os.path.join(root, "index.csv"), encoding="utf-8") as f:
        for row in csv.DictReader(f):
            if row["signed_language"] == language and len(row["words"]) == 1 and row["words"].isalpha():
                pose = read_pose(os.path.join(root, row["path"]))
                out.setdefault(row["words"].upper(), pose.get_components(list(layout.components),
                                                                         layout.components))
    if not out:
        sys.exit(f"no letters of sign language {language!r} in {root}/index.csv")
    return out


def augmented(pose, rng):
    """One occurrence of a letter: data T×1×K×D (masked) and confidence, re-timed, moved and jittered."""
    data, confidence = pose.body.data, pose.body.confidence
    speed = rng.uniform(0.75, 1.33)
    steps = max(2, round(len(data) / speed))
    index = np.minimum(np.round(np.linspace(0, len(data) - 1, steps)).astype(int), len(data) - 1)
    data, confidence = data[index].copy(), confidence[index].copy()
    width, height = pose.header.dimensions.width, pose.header.dimensions.height
    centre = np.array([width / 2, height / 2])
    angle = np.radians(rng.uniform(-8, 8))
    matrix = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]]) * rng.uniform(0.9, 1.1)
    xy = np.ma.getdata(data)[..., :2]
    moved = (xy - centre) @ matrix.T + centre + rng.uniform(-0.03, 0.03, size=2) * [width, height]
    moved += rng.normal(0, 0.004 * width, size=moved.shape)
    values = np.ma.getdata(data).copy()
    values[..., :2] = moved
    return np.ma.array(values, mask=np.ma.getmaskarray(data)), confidence


def write_word(path: str, word: str, recordings, rng) -> None:
    from pose_format import Pose
    from pose_format.numpy.pose_body import NumPyPoseBody

    parts, confs = [], []
    for k, letter in enumerate(word):
        data, confidence = augmented(recordings[letter], rng)
        if k and rng.random() < 0.7:  # a short movement from the last letter's end to this one's start
            n = int(rng.integers(1, 3))
            weights = (np.arange(1, n + 1) / (n + 1))[:, None, None, None]
            bridge = parts[-1][-1:] * (1 - weights) + data[:1] * weights
            parts.append(bridge)
            confs.append(np.minimum(confs[-1][-1:], confidence[:1]).repeat(n, axis=0))
        parts.append(data)
        confs.append(confidence)
    first = recordings[word[0]]
    body = NumPyPoseBody(first.body.fps, np.ma.concatenate(parts), np.concatenate(confs))
    with open(path, "wb") as f:
        Pose(first.header, body).write(f)


def build_corpus(work: str, language: str, sizes, seed: int) -> str:
    recordings = letters(language)
    alphabet = sorted(recordings)
    rng = np.random.default_rng(seed)
    seen, rows = set(), []
    os.makedirs(os.path.join(work, "poses"), exist_ok=True)
    for split, count in sizes.items():
        made = 0
        while made < count:
            word = "".join(rng.choice(alphabet, size=int(rng.integers(3, 7))))
            if word in seen:
                continue
            seen.add(word)
            name = f"{split}-{made:04d}"
            write_word(os.path.join(work, "poses", f"{name}.pose"), word, recordings, rng)
            rows.append((name, " ".join(word), word.lower(), split))
            made += 1
    tsv = os.path.join(work, "words.tsv")
    with open(tsv, "w", encoding="utf-8") as f:
        f.write("id\tvideo\tgloss\ttext\tsigner\tsplit\tpose\n")
        f.writelines(f"{i}\t\t{g}\t{t}\tS\t{s}\tposes/{i}.pose\n" for i, g, t, s in rows)
    data = os.path.join(work, "bin")
    run(["slt-binarise", "tsv", "--manifest", tsv, "--out", data, "--workers", "1", "--pose-layout",
         "upper_body_hands"], os.path.join(work, "binarise.log"), 1)
    return data


def run(cmd, log, threads):
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), PYTHONPATH=REPO)
    with open(log, "w") as f:
        proc = subprocess.run([os.path.join(BIN, cmd[0]), *cmd[1:]], cwd=REPO, stdout=f, stderr=subprocess.STDOUT,
                              env=env)
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed; see {log}")
    with open(log) as f:
        return f.read()


def train_and_score(name, extra, data, work, args):
    save = os.path.join(work, re.sub(r"\W+", "_", name).strip("_"))
    started = time.time()
    log = run(["fairseq-train", data, "--user-dir", "slt_plugins", "--task", "sign2gloss", "--input", "poses",
               "--arch", "s3d_encoder_tiny", *extra, "--criterion", "gloss_ctc", "--optimizer", "adam", "--lr",
               str(args.lr), "--batch-size", "8", "--max-epoch", str(args.epochs), "--save-interval",
               str(args.epochs), "--disable-validation", "--no-epoch-checkpoints", "--num-workers", "0",
               "--no-progress-bar", "--log-format", "simple", "--seed", str(args.seed), "--save-dir", save],
              save + ".train.log", args.threads)
    seconds = time.time() - started
    updates = int(re.findall(r"num_updates (\d+)", log)[-1])
    training = float(re.search(r"done training in ([\d.]+) seconds", log).group(1))  # without start-up
    params = re.search(r"; ([\d.]+)M parameters", log)
    out = run(["fairseq-generate", data, "--user-dir", "slt_plugins", "--path",
               os.path.join(save, "checkpoint_last.pt"),
               "--task", "sign2gloss", "--gen-subset", "test", "--beam", "5", "--scoring", "wer", "--batch-size", "8",
               "--num-workers", "0"], save + ".generate.log", args.threads)
    ler = float(re.search(r"WER: ([\d.]+)", out).group(1))
    return {"ler": ler, "seconds": seconds, "per_update": training / max(updates, 1), "updates": updates,
            "params": params.group(1) if params else "?"}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--language", default="ase", help="signed_language of index.csv (ase, gsg, bfi …)")
    p.add_argument("--train", type=int, default=400)
    p.add_argument("--dev", type=int, default=0)
    p.add_argument("--test", type=int, default=100)
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--threads", type=int, default=1, help="intra-op threads of each of the three runs")
    p.add_argument("--work", default=os.path.join(REPO, "bench", "out", "pose_fingerspelling"))
    args = p.parse_args(argv)
    os.makedirs(args.work, exist_ok=True)
    started = time.time()
    data = build_corpus(args.work, args.language, {"train": args.train, "test": args.test,
                                                    **({"dev": args.dev} if args.dev else {})}, args.seed)
    print(f"corpus: {args.train} train / {args.test} test words of {args.language} letters, "
          f"{time.time() - started:.0f} s; load {open('/proc/loadavg').read().split()[:3]}")
    with ThreadPoolExecutor(len(MODELS)) as pool:
        results = dict(zip(MODELS, pool.map(lambda item: train_and_score(*item, data, args.work, args),
                                            MODELS.items())))
    base = results["pose_bilstm (baseline)"]
    print(f"test letter error rate (CTC beam 5), {args.epochs} epochs, batch 8, lr {args.lr}, "
          f"{args.threads} thread(s) each, side by side:")
    for name, r in results.items():
        print(f"  {name:24s} LER {r['ler']:6.2f} %  ({r['ler'] / max(base['ler'], 1e-9):.2f}× baseline)  "
              f"{r['params']}M params  {r['updates']} updates, run {r['seconds']:.0f} s, "
              f"{r['per_update'] * 1000:.0f} ms/update "
              f"({r['per_update'] / base['per_update']:.2f}× baseline)")
    print(f"load after: {open('/proc/loadavg').read().split()[:3]}")


if __name__ == "__main__":
    main()
