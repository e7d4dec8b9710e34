"""Tiny models shared by the decode-settings and bundle tests, trained once per session: a generated corpus whose
frames are stored at their original size (``--frame-size 0``, 32×32), a Sign2Gloss model on 32×32 crops, its
features, a Gloss2Text model, and a Sign2Text model trained on those features with greedy CTC glosses and the
Phoenix clean-up."""

from conftest import run_script, tiny_demo_bin

COMMON = ["--user-dir", "slt_plugins", "--optimizer", "adam", "--batch-size", "4", "--valid-subset", "dev",
          "--no-progress-bar", "--num-workers", "0", "--no-epoch-checkpoints", "--log-format", "simple"]
_TRAINED = {}
_BUNDLES = {}


def mark_every_reference(data):
    """Start each utterance's glosses with the Phoenix marker ``__ON__`` (and give it a dictionary row), so that the
    Phoenix clean-up visibly changes the references: one gloss fewer per utterance."""
    for split in ("train", "dev", "test"):
        path = data / f"{split}.tsv"
        lines = path.read_text(encoding="utf-8").splitlines()
        rows = [line.split("\t") for line in lines[1:]]
        for row in rows:
            row[3] = "__ON__ " + row[3]
        path.write_text("\n".join([lines[0]] + ["\t".join(r) for r in rows]) + "\n", encoding="utf-8")
    with open(data / "dict.gloss.txt", "a", encoding="utf-8") as f:
        f.write("__ON__ 21\n")


def tiny_models(tmp_path_factory) -> dict:
    """Paths of the corpus and the checkpoints (trained at the first call of the session)."""
    if _TRAINED:
        return _TRAINED
    root = tmp_path_factory.mktemp("tiny_models")
    data = tiny_demo_bin(root)
    mark_every_reference(data)
    run_script("fairseq-train", data, *COMMON, "--task", "sign2gloss", "--arch", "s3d_encoder_tiny", "--crop-size",
               "32", "--criterion", "gloss_ctc", "--lr", "2e-3", "--max-update", "2", "--save-dir", root / "s2g")
    run_script("fairseq-train", data, *COMMON, "--task", "gloss2text", "--arch", "mbart_translator_tiny",
               "--criterion", "label_smoothed_cross_entropy", "--lr", "1e-3", "--max-update", "2",
               "--save-dir", root / "g2t")
    s2g, g2t = root / "s2g" / "checkpoint_last.pt", root / "g2t" / "checkpoint_last.pt"
    run_script("slt-extract-features", "--checkpoint", s2g, "--data", data, "--num-workers", "0", "--quiet")
    run_script("fairseq-train", data, *COMMON, "--task", "sign2text", "--input", "features", "--features",
               "cnn_tconv", "--gloss-beam", "1", "--gloss-cleanup", "phoenix-2014t", "--arch", "joint",
               "--sign2gloss-checkpoint", s2g, "--gloss2text-checkpoint", g2t, "--criterion", "combined",
               "--label-smoothing", "0.1", "--lr", "1e-3", "--max-update", "2", "--save-dir", root / "s2t")
    _TRAINED.update(root=root, data=data, s2g=s2g, g2t=g2t, s2t=root / "s2t" / "checkpoint_last.pt")
    return _TRAINED


def tiny_bundles(tmp_path_factory) -> dict:
    """Bundles of the tiny models (made at the first call of the session): the Sign2Gloss model, and the
    features-trained Sign2Text model reading video through the Sign2Gloss backbone."""
    if _BUNDLES:
        return _BUNDLES
    trained = tiny_models(tmp_path_factory)
    root = tmp_path_factory.mktemp("bundles")
    run_script("slt-export", "--checkpoint", trained["s2g"], "--out", root / "s2g")
    run_script("slt-export", "--checkpoint", trained["s2t"], "--out", root / "s2t", "--backbone-checkpoint",
               trained["s2g"])
    _BUNDLES.update(s2g=root / "s2g", s2t=root / "s2t")
    return _BUNDLES
