"""Bundles (slt-export → slt-translate): the geometry the model was trained on travels with the bundle and every input
is brought to it; nothing in a bundle names a file of the exporting machine; a Sign2Text model trained on features
reads video through --backbone-checkpoint; a broken bundle.json is one line."""

import json

import numpy as np
import pytest
import torch
from fairseq import checkpoint_utils

from conftest import run_script
from slt_plugins.data.lmdb_store import FrameStore
from slt_plugins.data.manifest import read_manifest
from tiny_models import tiny_bundles, tiny_models


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_trained):
    return tiny_models(tmp_path_factory, tiny_trained)


@pytest.fixture(scope="module")
def bundles(trained, tmp_path_factory, tiny_trained):
    """A Sign2Gloss bundle, and a bundle of the features-trained Sign2Text model reading video through the
    Sign2Gloss backbone (shared with the other tests of the session)."""
    return tiny_bundles(tmp_path_factory, tiny_trained)


@pytest.fixture(scope="module")
def large_video(trained, tmp_path_factory):
    """A test clip as a 720×540 video: each stored 32×32 frame scaled to 540×540, in the middle of a grey picture
    (the signer filling the height, as in a camera's 4:3 picture)."""
    import av
    from PIL import Image

    data = trained["data"]
    key = read_manifest(data / "test.tsv")[0].id
    frames = FrameStore(str(data / "frames.lmdb")).frames(key)
    path = tmp_path_factory.mktemp("video") / "large.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 720, 540, "yuv420p"
        stream.options = {"crf": "12"}
        for frame in frames:
            canvas = Image.new("RGB", (720, 540), (128, 128, 128))
            canvas.paste(Image.fromarray(frame).resize((540, 540), Image.BICUBIC), (90, 0))
            container.mux(stream.encode(av.VideoFrame.from_image(canvas)))
        container.mux(stream.encode())
    return {"path": path, "stored": f"{data}/frames.lmdb:{key}"}


def test_bundle_records_the_trained_geometry_and_no_path_of_the_exporting_machine(trained, bundles):
    """Before: a --frame-size 0 dataset left shorter_side null, and bundle.json held the checkpoint's absolute path."""
    for name in ("s2g", "s2t"):
        info = json.loads((bundles[name] / "bundle.json").read_text())
        assert info["shorter_side"] == 32 and info["crop_size"] == 32, info
        for file in ("bundle.json", "meta.json"):
            text = (bundles[name] / file).read_text()
            assert str(trained["root"]) not in text and "/tmp" not in text, (file, text)
        model_cfg = checkpoint_utils.load_checkpoint_to_cpu(str(bundles[name] / "model.pt"))["cfg"]["model"]
        assert not model_cfg.get("sign2gloss_checkpoint") and not model_cfg.get("gloss2text_checkpoint")


def test_a_large_video_is_brought_to_the_trained_geometry(bundles, large_video):
    """Before: the 720×540 video kept its size and the 32×32 centre crop was a patch of the signer's middle."""
    from slt_plugins.translator import SignTranslator

    model = SignTranslator.from_pretrained(str(bundles["s2g"]), device="cpu")
    video, stored = model.load_clip(str(large_video["path"])), model.load_clip(large_video["stored"])
    assert video.shape == stored.shape and video.shape[-2:] == (32, 32)
    difference = (video.float() - stored.float()).abs().mean().item()
    # the whole signer at the trained scale: what remains is the codec's and two resizings' error (a patch of the
    # middle, as before the fix, differs by tens of grey levels)
    assert difference < 12, difference
    results = model.run([str(large_video["path"]), large_video["stored"]])
    assert [r.error for r in results] == [None, None]


def test_features_trained_sign2text_reads_video_through_the_backbone_checkpoint(trained, bundles, large_video,
                                                                                tmp_path):
    from slt_plugins.translator import SignTranslator

    # the bundle's model holds the Sign2Gloss backbone's weights, so it reads frames
    bundled = checkpoint_utils.load_checkpoint_to_cpu(str(bundles["s2t"] / "model.pt"))
    backbone = {k[len("encoder."):]: v for k, v in checkpoint_utils.load_checkpoint_to_cpu(str(trained["s2g"]))[
        "model"].items() if k.startswith("encoder.backbone.")}
    assert backbone and all(torch.equal(bundled["model"][f"encoder.sign.{k}"], v) for k, v in backbone.items())
    assert json.loads((bundles["s2t"] / "bundle.json").read_text())["input"] == "frames"
    model = SignTranslator.from_pretrained(str(bundles["s2t"]), device="cpu")
    assert model.task.cfg.input == "frames" and model.model.encoder.sign.backbone is not None
    results = model.run([str(large_video["path"]), large_video["stored"]])
    assert all(r.error is None and r.text is not None and r.glosses is not None for r in results), results
    cli = run_script("slt-translate", "--model", bundles["s2t"], large_video["stored"], "--json").stdout
    assert json.loads(cli) == results[1]._asdict()
    # without it the export stops with one line
    proc = run_script("slt-export", "--checkpoint", trained["s2t"], "--out", tmp_path / "b", check=False)
    assert proc.returncode == 1 and len(proc.stderr.strip().splitlines()) == 1
    assert "--backbone-checkpoint" in proc.stderr and not (tmp_path / "b").exists()


def _not_json(info):
    return "{\"format\": "


def _without_task(info):
    return json.dumps({k: v for k, v in info.items() if k != "task"})


def _without_input(info):
    return json.dumps({k: v for k, v in info.items() if k != "input"})


def _other_task(info):
    return json.dumps(dict(info, task="sign2text"))


#: hostile bundle.json contents (from the good one) and what the one line must say; extend freely
BROKEN_BUNDLES = [
    (_not_json, "bundle.json: not JSON"),
    (_without_task, "a bundle of task None"),
    (_without_input, "bundle.json lacks input"),
    (_other_task, "holds a 'sign2gloss' model, but"),
]


@pytest.mark.parametrize("breaking, message", BROKEN_BUNDLES, ids=[b.__name__.strip("_") for b, _ in BROKEN_BUNDLES])
def test_a_broken_bundle_is_one_line(bundles, trained, tmp_path, breaking, message):
    import shutil

    broken = tmp_path / "bundle"
    shutil.copytree(bundles["s2g"], broken)
    info = json.loads((broken / "bundle.json").read_text())
    (broken / "bundle.json").write_text(breaking(info))
    clip = f"{trained['data']}/frames.lmdb:{read_manifest(trained['data'] / 'test.tsv')[0].id}"
    proc = run_script("slt-translate", "--model", broken, clip, check=False)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 1 and len(lines) == 1 and message in lines[0], proc.stderr[-2000:]
    assert lines[0].startswith("slt-translate: ")
