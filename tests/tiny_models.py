"""Tiny models shared by the decode-settings and bundle tests, trained once per session: conftest's ``tiny_trained``
(a generated corpus whose frames are stored at their original size, ``--frame-size 0``, 32×32, a Sign2Gloss model
on 32×32 crops and a Gloss2Text model), the Sign2Gloss model's features, and a Sign2Text model trained on those
features with greedy CTC glosses and the Phoenix clean-up."""

from conftest import TINY_TRAIN as COMMON, dataset_view, run_script

_TRAINED = {}
_BUNDLES = {}


def tiny_models(tmp_path_factory, tiny_trained) -> dict:
    """Paths of the corpus (a view of ``tiny_trained``'s with the features) and the checkpoints (trained at the
    first call of the session)."""
    if _TRAINED:
        return _TRAINED
    root = tmp_path_factory.mktemp("tiny_models")
    data = dataset_view(tiny_trained["data"], root / "bin")
    s2g, g2t = tiny_trained["s2g"], tiny_trained["g2t"]
    run_script("slt-extract-features", "--checkpoint", s2g, "--data", data, "--num-workers", "0", "--quiet")
    run_script("fairseq-train", data, *COMMON, "--task", "sign2text", "--input", "features", "--features",
               "cnn_tconv", "--gloss-beam", "1", "--gloss-cleanup", "phoenix-2014t", "--arch", "joint",
               "--sign2gloss-checkpoint", s2g, "--gloss2text-checkpoint", g2t, "--criterion", "combined",
               "--label-smoothing", "0.1", "--lr", "1e-3", "--max-update", "2", "--save-dir", root / "s2t")
    _TRAINED.update(root=root, data=data, s2g=s2g, g2t=g2t, s2t=root / "s2t" / "checkpoint_last.pt")
    return _TRAINED


def tiny_bundles(tmp_path_factory, tiny_trained) -> dict:
    """Bundles of the tiny models (made at the first call of the session): the Sign2Gloss model, and the
    features-trained Sign2Text model reading video through the Sign2Gloss backbone."""
    if _BUNDLES:
        return _BUNDLES
    trained = tiny_models(tmp_path_factory, tiny_trained)
    root = tmp_path_factory.mktemp("bundles")
    run_script("slt-export", "--checkpoint", trained["s2g"], "--out", root / "s2g")
    run_script("slt-export", "--checkpoint", trained["s2t"], "--out", root / "s2t", "--backbone-checkpoint",
               trained["s2g"])
    _BUNDLES.update(s2g=root / "s2g", s2t=root / "s2t")
    return _BUNDLES
