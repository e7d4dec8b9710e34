"""``.pose`` files (pose-format's binary format) → the keypoint arrays that ``poses.lmdb`` stores.

pose-format reads the file (never parsed here by hand); of its first person, the points of a layout
(:mod:`slt_plugins.data.pose_layouts`) are selected and normalised as pose-format's ``normalize`` does: moved so the
mean midpoint of the shoulders over the clip is the origin, scaled so their mean distance is 1. The result is float16
T×K×(D+1): the D coordinates of each point, then its confidence (0 for a point not detected in that frame, whose
coordinates are then 0).

A file that cannot serve (unreadable, no frames, points of another layout, no shoulders in any frame, or not one
finite coordinate) is a :class:`PoseFileError` with one line naming it.
"""

import os
from typing import Tuple

import numpy as np

from slt_plugins.data.pose_layouts import SHOULDERS, PoseLayout

MAX_POSE_BYTES = 1 << 31  # a .pose file larger than 2 GiB is no clip's keypoints


class PoseFileError(ValueError):
    """A .pose file that cannot be read as a clip's keypoints; the message names it."""


def _pose_format():
    try:
        from pose_format import Pose
    except ImportError:
        raise PoseFileError("reading .pose files needs pose-format, a dependency of fairseq-slt: "
                            "pip install 'pose-format>=0.15,<0.16'") from None
    return Pose


def read_pose(path: str):
    """The file as pose-format's Pose (NumPy body)."""
    Pose = _pose_format()
    try:
        size = os.path.getsize(path)
    except OSError as e:
        raise PoseFileError(f"{path}: cannot read ({e.strerror or e})") from None
    if size > MAX_POSE_BYTES:
        raise PoseFileError(f"{path}: {size:,} bytes, more than a clip's keypoints can be")
    with open(path, "rb") as f:
        data = f.read()
    try:
        return Pose.read(data)
    except Exception as e:  # noqa: BLE001  (pose-format raises whatever its struct reads hit on a damaged file)
        raise PoseFileError(f"{path}: not a .pose file pose-format can read ({type(e).__name__}: {e}); extract the "
                            "keypoints again (slt-extract-pose)") from None


def pose_to_array(pose, layout: PoseLayout, what: str) -> Tuple[np.ndarray, float]:
    """A pose-format Pose → (float16 T×K×(D+1), fps); ``what`` names the source in errors."""
    header_points = {(c.name, p) for c in pose.header.components for p in c.points}
    missing = [f"{c}:{p}" for c, p in layout.points if (c, p) not in header_points]
    if missing:
        kinds = ", ".join(c.name for c in pose.header.components)
        raise PoseFileError(f"{what}: keypoints of another layout (components {kinds}); layout {layout.name!r} needs "
                            f"{len(missing)} points it lacks, e.g. {', '.join(missing[:3])} (a MediaPipe Holistic "
                            "file: slt-extract-pose)")
    frames = pose.body.data.shape[0]
    if frames == 0:
        raise PoseFileError(f"{what}: no frames")
    if pose.body.data.shape[1] == 0:
        raise PoseFileError(f"{what}: no person in any frame")
    # the layout's points in its order (get_components keeps the order asked for), of the first person
    selected = pose.get_components(list(layout.components), layout.components)
    data = np.ma.getdata(selected.body.data[:, :1]).astype(np.float64)  # T×1×K×D
    confidence = np.asarray(selected.body.confidence[:, :1], dtype=np.float64)  # T×1×K
    valid = np.isfinite(data).all(axis=-1) & np.isfinite(confidence) & (confidence > 0) \
        & ~np.ma.getmaskarray(selected.body.data[:, :1]).any(axis=-1)
    if not valid.any():
        raise PoseFileError(f"{what}: no finite keypoint in any of its {frames} frames (NaN or undetected "
                            "everywhere)")
    index = {point: i for i, point in enumerate(layout.points)}
    right, left = (index[p] for p in SHOULDERS)
    if not (valid[:, 0, right] & valid[:, 0, left]).any():
        raise PoseFileError(f"{what}: the shoulders are in no frame, so the pose cannot be normalised by their "
                            "width")
    mask = np.repeat(~valid[..., None], data.shape[-1], axis=-1)
    selected.body.data = np.ma.array(np.where(mask, 0.0, data), mask=mask)
    selected.body.confidence = np.where(valid, confidence, 0.0)
    # pose-format's own normalisation: the undetected (masked) points stay out of its means
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        selected.normalize(selected.header.normalization_info(p1=SHOULDERS[0], p2=SHOULDERS[1]))
    coords = np.where(valid[..., None], np.ma.getdata(selected.body.data), 0.0)[:, 0]
    if not np.isfinite(coords).all() or np.abs(coords).max() > 6e4:  # beyond float16
        raise PoseFileError(f"{what}: the shoulders lie on one point, so the pose cannot be normalised by their "
                            "width")
    out = np.concatenate([coords, np.where(valid, confidence, 0.0)[:, 0, :, None]], axis=-1)
    return out.astype(np.float16), float(pose.body.fps)


def read_pose_array(path: str, layout: PoseLayout) -> Tuple[np.ndarray, float]:
    """A .pose file → (float16 T×K×(D+1), fps); see the module docstring."""
    return pose_to_array(read_pose(path), layout, path)
