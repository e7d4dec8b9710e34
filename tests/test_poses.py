"""Keypoints as an input: .pose files read through pose-format into poses.lmdb, bad files as bad rows, the pose
augmentation, the pose backbones' contract, the demo's keypoints, and the pose route learning end to end
(fairseq-train then fairseq-generate) on the learnable demo corpus."""

import json
import re

import numpy as np
import pytest
import torch

from pose_format import Pose  # a dependency of the project (setup.cfg): never skipped
from pose_format.numpy.pose_body import NumPyPoseBody
from pose_format.pose_header import PoseHeader, PoseHeaderComponent, PoseHeaderDimensions

from conftest import LEARNABLE_GLOSSES, SHARED_DATA, require_shared_data
from fairseq_slt.registry import build_visual_backbone
from slt_plugins.data.lmdb_store import PoseStore
from slt_plugins.data.pose_files import read_pose_array
from slt_plugins.data.pose_layouts import LAYOUTS, SHOULDERS, get_layout
from slt_plugins.data.pose_transforms import PoseTransform, PoseTransformConfig
from test_learning import generate, train, untrained
from fairseq_slt.tools import demo_poses
from fairseq_slt.tools.binarise import main as binarise_main
from fairseq_slt.tools.make_demo_data import main as make_demo_data

POSE_S2G = ["--task", "sign2gloss", "--input", "poses", "--criterion", "gloss_ctc"]


@pytest.fixture(scope="module", autouse=True)
def one_thread_per_run():
    """fairseq-train of these tiny models on one intra-op thread: on two busy cores torch's thread pool spins
    (measured at load 15: 198 s of training with the default threads, 10 s with one)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("OMP_NUM_THREADS", "1")
        yield


# --- reading .pose files -----------------------------------------------------------------------------------------

def test_reads_the_shared_mediapipe_file_normalised_by_shoulder_width():
    path = f"{require_shared_data(SHARED_DATA)}/video/mediapipe.pose"
    for name, layout in LAYOUTS.items():
        poses, fps = read_pose_array(path, layout)
        assert poses.dtype == np.float16 and poses.shape == (170, len(layout), 4) and fps == 24, name
        right, left = (layout.points.index(p) for p in SHOULDERS)
        both = (poses[:, right, 3] > 0) & (poses[:, left, 3] > 0)
        shoulders = poses[both][:, [right, left], :3].astype(np.float64)
        # pose-format's normalize: the mean shoulder distance is 1, their mean midpoint the origin
        assert np.linalg.norm(shoulders[:, 0] - shoulders[:, 1], axis=-1).mean() == pytest.approx(1.0, abs=0.01)
        assert np.abs(shoulders.mean(axis=(0, 1))[:2]).max() < 0.01
        hidden = poses[..., 3] == 0
        assert hidden.any() and not poses[hidden].any()  # undetected points: coordinates and confidence 0


def _pose_file(path, components, frames, fill=1.0):
    """A .pose file written with pose-format: ``components`` name → point names, every value ``fill``."""
    header = PoseHeader(0.1, PoseHeaderDimensions(64, 64, 64),
                        [PoseHeaderComponent(name, list(points), [], [], "XYZC")
                         for name, points in components.items()])
    count = sum(len(p) for p in components.values())
    data = np.full((frames, 1, count, 3), fill, dtype=np.float32)
    body = NumPyPoseBody(25.0, data, np.ones((frames, 1, count), dtype=np.float32))
    with open(path, "wb") as f:
        Pose(header, body).write(f)
    return path


def test_bad_pose_files_are_bad_rows_named_by_file_and_row(tmp_path, capsys):
    raw = tmp_path / "raw"
    assert make_demo_data(["--out", str(raw), "--train", "3", "--dev", "1", "--test", "1", "--frame-size", "16", "16",
                           "--workers", "1", "--glosses", *LEARNABLE_GLOSSES]) in (None, 0)
    good = sorted((raw / "poses" / "train").iterdir())
    holistic = {c: p for c, p in get_layout("upper_body_hands").components.items()}
    bad = {"empty": _pose_file(tmp_path / "empty.pose", holistic, 0),
           "openpose": _pose_file(tmp_path / "openpose.pose", {"pose_keypoints_2d": ["Nose", "Neck"]}, 5),
           "nan": _pose_file(tmp_path / "nan.pose", holistic, 5, fill=np.nan),
           "garbage": tmp_path / "garbage.pose"}
    bad["garbage"].write_bytes(b"not a pose file")
    lines = ["id\tvideo\tgloss\ttext\tsigner\tsplit\tpose"]
    lines += [f"ok{i}\t\tHEUTE\theute\tS1\ttrain\t{p}" for i, p in enumerate(good)]
    lines += [f"{name}\t\tHEUTE\theute\tS1\ttrain\t{p}" for name, p in bad.items()]
    (tmp_path / "corpus.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = tmp_path / "bin"
    args = ["tsv", "--manifest", str(tmp_path / "corpus.tsv"), "--out", str(out), "--workers", "1"]

    assert binarise_main(args) == 2
    assert f"corpus.tsv, row {len(good) + 2}: {bad['empty']}: no frames" in capsys.readouterr().err

    assert binarise_main(args + ["--skip-invalid"]) == 0
    skipped = {row.split("\t")[0]: row for row in (out / "skipped.tsv").read_text().splitlines()[1:]}
    assert set(skipped) == set(bad)
    assert "keypoints of another layout (components pose_keypoints_2d)" in skipped["openpose"]
    assert "NaN or undetected everywhere" in skipped["nan"] and "not a .pose file" in skipped["garbage"]
    assert all(re.search(r"corpus\.tsv, row \d+", row) for row in skipped.values())
    store = PoseStore(str(out / "poses.lmdb"))
    assert sorted(store.keys()) == [f"ok{i}" for i in range(len(good))]
    assert store.layout()["layout"] == "upper_body_hands" and store.poses("ok0").shape[1:] == (48, 4)
    meta = json.loads((out / "meta.json").read_text())
    assert meta["poses"]["stored"] and not meta["frames"]["stored"]


# --- augmentation and backbones ----------------------------------------------------------------------------------

def test_pose_augmentation_keeps_hidden_points_hidden_and_is_seeded():
    poses = np.random.default_rng(0).normal(size=(10, 48, 4)).astype(np.float16)
    poses[..., 3] = 1  # detected, but
    poses[:, 5, :] = 0  # never detected
    train = PoseTransform(PoseTransformConfig(), train=True)
    a, b = (train(poses, np.random.default_rng(7)) for _ in range(2))
    assert torch.equal(a, b) and a.shape[0] % 4 == 0 and 4 <= a.shape[0] <= 16
    assert not a[:, 5].any() and (a[..., 3] == 0).float().mean() > 0.03  # keypoint dropout hides about 5 %
    evaluation = PoseTransform(PoseTransformConfig(), train=False)(poses)
    assert evaluation.shape == (12, 48, 4) and torch.equal(evaluation[:10], torch.from_numpy(poses).float())
    rotate_only = PoseTransform(PoseTransformConfig(temporal_scale=(1, 1), scale=(1, 1), shear=0, point_dropout=0,
                                                    rotation=90), train=True)(poses[:8], np.random.default_rng(1))
    distances = lambda x: torch.cdist(x[..., :2].float(), x[..., :2].float())  # noqa: E731
    assert torch.allclose(distances(rotate_only), distances(torch.from_numpy(poses[:8]).float()), atol=1e-2)


@pytest.mark.parametrize("name", ["pose_tconv", "pose_stgcn", "pose_bilstm"])
def test_pose_backbones_keep_the_rgb_backbones_contract(name):
    torch.manual_seed(0)
    backbone = build_visual_backbone(name, {"layout": "upper_body_hands_face", "dims": 3})
    poses, lengths = torch.randn(2, 13, 70, 4), torch.tensor([13, 6])
    poses[1, 6:] = 0
    features, out_lengths = backbone(poses, lengths)
    assert features.shape == (2, 4, backbone.output_dim) and out_lengths.tolist() == [4, 2]
    assert torch.equal(backbone.output_lengths(lengths), out_lengths)
    backbone.eval()
    alone, _ = backbone(poses[1:, :6], lengths[1:])
    assert torch.allclose(backbone(poses, lengths)[0][1, :2], alone[0], atol=1e-5)  # padding changes nothing
    with pytest.raises(ValueError, match="48 keypoints|70 keypoints"):
        backbone(torch.randn(1, 8, 48, 4), torch.tensor([8]))


def test_demo_keypoints_use_the_layouts_names_and_leave_the_frames_unchanged(tmp_path):
    layout = get_layout("upper_body_hands")
    assert list(demo_poses.HAND_POINTS) == [p for c, p in layout.points if c == "RIGHT_HAND_LANDMARKS"]
    args = ["--train", "2", "--dev", "1", "--test", "1", "--frame-size", "16", "16", "--workers", "1"]
    assert make_demo_data(["--out", str(tmp_path / "a"), *args]) in (None, 0)
    assert make_demo_data(["--out", str(tmp_path / "b"), "--no-poses", *args]) in (None, 0)
    frames_a = sorted(p for p in (tmp_path / "a" / "frames").rglob("*.png"))
    assert frames_a and all(p.read_bytes() == (tmp_path / "b" / p.relative_to(tmp_path / "a")).read_bytes()
                            for p in frames_a)
    assert not (tmp_path / "b" / "poses").exists()
    pose_files = sorted((tmp_path / "a" / "poses").rglob("*.pose"))
    assert len(pose_files) == 4
    poses, fps = read_pose_array(str(pose_files[0]), layout)
    n_frames = len(list((tmp_path / "a" / "frames" / pose_files[0].parent.name / pose_files[0].stem).iterdir()))
    assert poses.shape == (n_frames, 48, 4) and fps == demo_poses.FPS and (poses[..., 3] == 1).all()


# --- end to end --------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def pose_data(tmp_path_factory):
    """The learnable demo corpus (8 glosses, 24/6/12 clips) binarised from its keypoints alone."""
    root = tmp_path_factory.mktemp("pose_learnable")
    assert make_demo_data(["--out", str(root / "raw"), "--train", "24", "--dev", "6", "--test", "12", "--frame-size",
                           "32", "32", "--workers", "1", "--glosses", *LEARNABLE_GLOSSES]) in (None, 0)
    assert binarise_main(["phoenix-2014t", "--annotations", str(root / "raw" / "annotations"), "--poses",
                          str(root / "raw" / "poses"), "--out", str(root / "bin"), "--workers", "1"]) == 0
    return root / "bin"


def pose_wer(data, checkpoint):
    out = generate(data, checkpoint, "--task", "sign2gloss", "--beam", "3", "--scoring", "wer")
    assert len(re.findall(r"^D-\d+\t", out, flags=re.M)) == 12
    return float(re.search(r"^Generate test with beam=3: WER: ([\d.]+)$", out, flags=re.M).group(1))


@pytest.fixture(scope="module")
def trained(pose_data):
    """Each pose arch trained 30 epochs (180 updates) on the keypoints, at the first use."""
    done = {}

    def get(arch):
        if arch not in done:
            save = pose_data.parent / arch
            train(pose_data, save, *POSE_S2G, "--arch", arch, "--lr", "5e-3", "--max-epoch", "30",
                  "--disable-validation", "--save-interval", "30")
            done[arch] = save / "checkpoint_last.pt"
        return done[arch]
    return get


@pytest.mark.parametrize("arch", ["pose_tconv_tiny", "pose_stgcn_tiny"])
def test_sign2gloss_learns_from_keypoints(pose_data, trained, arch):
    """fairseq-generate reads --input poses from the checkpoint; the untrained twin is decoded the same way."""
    wer = pose_wer(pose_data, trained(arch))
    initial = pose_wer(pose_data, untrained(pose_data, pose_data.parent / f"{arch}-untrained", *POSE_S2G,
                                            "--arch", arch))
    print(f"{arch}: test WER untrained {initial}, trained {wer}")
    # measured (one thread): untrained 123.1 / 118.0 %, trained 38.5 / 41.0 % (pose_tconv / pose_stgcn)
    assert wer <= 70 and wer <= initial - 20, (initial, wer)


def test_a_pose_bundle_reads_pose_files_and_store_entries_and_plots_skeletons(pose_data, trained, tmp_path):
    from fairseq_slt.tools.export import main as export

    assert export(["--checkpoint", str(trained("pose_tconv_tiny")), "--out", str(tmp_path / "bundle")]) == 0
    info = json.loads((tmp_path / "bundle" / "bundle.json").read_text())
    assert info["input"] == "poses" and info["pose_layout"] == "upper_body_hands" and info["pose_dims"] == 3
    from slt_plugins.translator import SignTranslator

    model = SignTranslator.from_pretrained(str(tmp_path / "bundle"), device="cpu")
    test_id = (pose_data / "test.tsv").read_text().splitlines()[1].split("\t")[0]
    pose_file = pose_data.parent / "raw" / "poses" / "test" / f"{test_id}.pose"
    results = model.run([str(pose_file), f"{pose_data}/poses.lmdb:{test_id}", str(tmp_path / "missing.pose")])
    assert results[0].glosses == results[1].glosses and results[0].glosses  # the same keypoints, either way
    assert "missing.pose: no such file" in results[2].error
    alignment = model.plot(str(pose_file), str(tmp_path / "plot.png"))
    assert alignment.frames.shape[1:] == (48, 4) and (tmp_path / "plot.png").stat().st_size > 10_000


def test_sign2text_and_the_student_read_keypoints(pose_data):
    """The joint model and a distillation-style student (BiLSTM after the head) train and decode on poses."""
    root = pose_data.parent
    train(pose_data, root / "student", *POSE_S2G, "--arch", "pose_tconv_tiny", "--sequence-model", "bilstm",
          "--sequence-args", "{'hidden_dim': 32, 'layers': 1}", "--lr", "1e-3", "--max-update", "2",
          "--disable-validation")
    train(pose_data, root / "g2t", "--task", "gloss2text", "--arch", "mbart_translator_tiny", "--criterion",
          "label_smoothed_cross_entropy", "--lr", "1e-3", "--max-update", "2", "--disable-validation")
    train(pose_data, root / "s2t", "--task", "sign2text", "--input", "poses", "--arch", "joint",
          "--sign2gloss-checkpoint", root / "student" / "checkpoint_last.pt", "--gloss2text-checkpoint",
          root / "g2t" / "checkpoint_last.pt", "--criterion", "combined", "--lr", "1e-3", "--max-update", "2",
          "--disable-validation")
    out = generate(pose_data, root / "s2t" / "checkpoint_last.pt", "--task", "sign2text", "--beam", "2",
                   "--scoring", "translation_metrics")
    assert len(re.findall(r"^H-\d+\t", out, flags=re.M)) == len(re.findall(r"^G-\d+\t", out, flags=re.M)) == 12
