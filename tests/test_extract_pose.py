"""slt-extract-pose on the real shared video: MediaPipe Holistic through pose-format's runner, checked against
pose-format's own ``video_to_pose`` (pose_format.bin.pose_estimation.pose_video) on the same file; several inputs,
one line per bad input, and resuming after a kill."""

import os
import subprocess
import sys

import numpy as np
import pytest
from pose_format import Pose

from conftest import REPO, SHARED_DATA, require_shared_data
from fairseq_slt.tools.extract_pose import ExtractError, HolisticWorker, main as extract_pose, mediapipe_site


@pytest.fixture(scope="module")
def holistic():
    """MediaPipe is there (make install-pose); under CI=true its absence fails, elsewhere it skips."""
    try:
        HolisticWorker().close()
    except ExtractError as e:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{e}; CI=true needs it (make install-pose)", pytrace=False)
        pytest.skip(str(e))


def read(path):
    with open(path, "rb") as f:
        return Pose.read(f.read())


def test_extracts_the_shared_video_as_pose_formats_video_to_pose_does(holistic, tmp_path, capsys):
    video = os.path.join(require_shared_data(SHARED_DATA), "video", "test_video.mp4")
    out = tmp_path / "poses"
    out.mkdir()
    (out / "test_video.pose.tmp-999999999").write_bytes(b"half a file of a killed run")
    frames = tmp_path / "clip7"
    frames.mkdir()
    (frames / "images0001.png").write_bytes(b"not a png")
    assert extract_pose([video, str(frames), str(tmp_path / "missing.mp4"), "--out", str(out)]) == 1
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2 and all(line.startswith("slt-extract-pose: error: ") for line in err)
    assert "clip7" in err[1] or "clip7" in err[0]
    assert sorted(os.listdir(out)) == ["test_video.pose"]  # the killed run's leftover is gone

    ours = read(out / "test_video.pose")
    assert ours.body.data.shape == (58, 1, 576, 3)
    assert (ours.body.confidence[:, 0, :33] > 0).any(axis=1).all()  # a body in each of the 58 frames

    reference = tmp_path / "reference.pose"
    code = ("from pose_format.bin.pose_estimation import pose_video; import sys; "
            "pose_video(sys.argv[1], sys.argv[2], 'mediapipe', {'model_complexity': 1}, progress=False)")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([mediapipe_site(), REPO]), GLOG_minloglevel="2")
    subprocess.run([sys.executable, "-c", code, video, str(reference)], check=True, env=env, capture_output=True)
    theirs = read(reference)
    assert ours.body.fps == theirs.body.fps and ours.header.dimensions.width == theirs.header.dimensions.width
    assert [c.name for c in ours.header.components] == [c.name for c in theirs.header.components]
    assert np.array_equal(ours.body.confidence > 0, theirs.body.confidence > 0)
    seen = ours.body.confidence > 0
    assert np.abs(np.ma.getdata(ours.body.data)[seen] - np.ma.getdata(theirs.body.data)[seen]).max() < 1.0  # pixels

    # resumed: what is there is not extracted again
    assert extract_pose([video, "--out", str(out)]) == 0
    assert "0 extracted, 1 already there, 0 failed" in capsys.readouterr().out
