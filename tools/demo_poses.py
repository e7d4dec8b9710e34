"""The demo corpus's keypoints: the scene slt-make-demo-data draws, as MediaPipe Holistic would see it, written as
``.pose`` files with pose-format.

Components and point names are MediaPipe Holistic's as pose-format writes them (``POSE_LANDMARKS`` with its 33
body points, ``LEFT_HAND_LANDMARKS`` and ``RIGHT_HAND_LANDMARKS`` with 21 each; no face), in pixels (x, y, z with
z = 0) with a confidence, at 25 fps. The body stands where the drawn torso and head are; the signer's right hand
follows the drawn hand's path, and its handshape carries what the drawn hand's look carries: its finger
configuration is the drawn shape (disc: open hand, square: fist, diamond: index finger, ring: thumb and index
closed to an O) and the palm's rotation the colour's category (so neither the path nor the handshape alone names a
gloss, as in the frames). The left hand rests. The legs, below the frame, are undetected (confidence 0).
"""

from typing import Sequence

import numpy as np

FPS = 25.0
# MediaPipe's names, as slt_plugins.data.pose_layouts has them too (not imported from there: that would import
# fairseq, seconds of start-up for a data generator; a test checks that both agree)
HAND_POINTS = ("WRIST", "THUMB_CMC", "THUMB_MCP", "THUMB_IP", "THUMB_TIP", "INDEX_FINGER_MCP", "INDEX_FINGER_PIP",
               "INDEX_FINGER_DIP", "INDEX_FINGER_TIP", "MIDDLE_FINGER_MCP", "MIDDLE_FINGER_PIP", "MIDDLE_FINGER_DIP",
               "MIDDLE_FINGER_TIP", "RING_FINGER_MCP", "RING_FINGER_PIP", "RING_FINGER_DIP", "RING_FINGER_TIP",
               "PINKY_MCP", "PINKY_PIP", "PINKY_DIP", "PINKY_TIP")
HAND_BONES = ((0, 1), (1, 2), (2, 3), (3, 4), (0, 5), (5, 6), (6, 7), (7, 8), (5, 9), (9, 10), (10, 11), (11, 12),
              (9, 13), (13, 14), (14, 15), (15, 16), (13, 17), (17, 18), (18, 19), (19, 20), (0, 17))
BODY_POINTS = ("NOSE", "LEFT_EYE_INNER", "LEFT_EYE", "LEFT_EYE_OUTER", "RIGHT_EYE_INNER", "RIGHT_EYE",
               "RIGHT_EYE_OUTER", "LEFT_EAR", "RIGHT_EAR", "MOUTH_LEFT", "MOUTH_RIGHT", "LEFT_SHOULDER",
               "RIGHT_SHOULDER", "LEFT_ELBOW", "RIGHT_ELBOW", "LEFT_WRIST", "RIGHT_WRIST", "LEFT_PINKY", "RIGHT_PINKY",
               "LEFT_INDEX", "RIGHT_INDEX", "LEFT_THUMB", "RIGHT_THUMB", "LEFT_HIP", "RIGHT_HIP", "LEFT_KNEE",
               "RIGHT_KNEE", "LEFT_ANKLE", "RIGHT_ANKLE", "LEFT_HEEL", "RIGHT_HEEL", "LEFT_FOOT_INDEX",
               "RIGHT_FOOT_INDEX")
BODY_BONES = ((11, 12), (11, 13), (13, 15), (12, 14), (14, 16), (11, 23), (12, 24), (23, 24), (0, 2), (0, 5),
              (2, 7), (5, 8), (9, 10))
HAND_LENGTH = 0.2  # wrist to middle fingertip, as a fraction of the frame's shorter side
LEFT_HAND_REST = (0.3, 0.9)
KEYPOINT_NOISE = 0.002

# finger base (MCP; thumb: CMC) of each finger in the palm's frame: (across, along) in hand lengths
_BASES = np.array([[-0.22, 0.12], [-0.17, 0.45], [-0.04, 0.48], [0.08, 0.46], [0.19, 0.42]])
_SEGMENTS = np.array([[0.14, 0.12, 0.1], [0.2, 0.13, 0.1], [0.22, 0.14, 0.1], [0.2, 0.13, 0.1], [0.15, 0.1, 0.08]])
_FAN = np.radians([-40.0, -10.0, 0.0, 8.0, 18.0])  # each extended finger's direction from the palm's axis
# how far each finger is extended (1) or curled (0), per drawn shape (disc, square, diamond, ring) and at rest
_EXTENSION = np.array([[1, 1, 1, 1, 1], [0, 0, 0, 0, 0], [0, 1, 0, 0, 0], [0.4, 0.4, 1, 1, 1],
                       [0.5, 0.5, 0.5, 0.5, 0.5]])
_CATEGORY_ROTATION = np.radians([0.0, 30.0, 60.0, -30.0, -60.0, 15.0])  # per colour category; the last: rest


def hand_points(wrist: np.ndarray, shape: np.ndarray, category: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """T×21×2 hand keypoints (fractions of the frame) from the wrist (T×2), the shape index (0–3; 4: rest) and the
    colour category (0–4; 5: rest) of each frame; ``scale`` turns hand lengths into fractions of the frame (x, y)."""
    out = np.zeros((len(wrist), 21, 2))
    for t in range(len(wrist)):
        angle = _CATEGORY_ROTATION[category[t]]
        along = np.array([np.sin(angle), -np.cos(angle)])  # up the screen when the angle is 0
        across = np.array([-along[1], along[0]])
        hand = [np.zeros(2)]  # MediaPipe's order: the wrist, then per finger its base and three joints
        for finger in range(5):
            extension = _EXTENSION[shape[t], finger]
            joint = _BASES[finger, 0] * across + _BASES[finger, 1] * along
            heading = angle + _FAN[finger] * extension
            step = np.array([np.sin(heading), -np.cos(heading)])
            bend = (1 - extension) * np.radians(100.0)  # a curled finger folds back towards the palm
            turn = np.array([[np.cos(bend), -np.sin(bend)], [np.sin(bend), np.cos(bend)]])
            hand.append(joint)
            for segment in _SEGMENTS[finger]:
                step = turn @ step
                joint = joint + segment * step
                hand.append(joint)
        hand = np.array(hand)
        if shape[t] == 3:  # ring: the thumb's tip meets the index finger's
            hand[4] = hand[8] = (hand[4] + hand[8]) / 2
        out[t] = wrist[t] + scale * hand
    return out


def scene_keypoints(xy: np.ndarray, shape: np.ndarray, category: np.ndarray, centre_x: float, offset_y: float,
                    height: int, width: int, rng: np.random.Generator):
    """(T×75×3 pixel coordinates, T×75 confidence): body (33), left hand (21), right hand (21)."""
    frames = len(xy)
    aspect = np.array([min(height, width) / width, min(height, width) / height])  # hand lengths → fractions
    body = np.zeros((frames, 33, 2))
    confidence = np.ones((frames, 75))
    head = np.array([centre_x, 0.2 + offset_y])
    named = {"NOSE": head + [0, 0.02], "LEFT_EYE": head + [0.04, -0.02], "RIGHT_EYE": head + [-0.04, -0.02],
             "LEFT_EYE_INNER": head + [0.02, -0.02], "RIGHT_EYE_INNER": head + [-0.02, -0.02],
             "LEFT_EYE_OUTER": head + [0.06, -0.02], "RIGHT_EYE_OUTER": head + [-0.06, -0.02],
             "LEFT_EAR": head + [0.1, 0.0], "RIGHT_EAR": head + [-0.1, 0.0], "MOUTH_LEFT": head + [0.03, 0.06],
             "MOUTH_RIGHT": head + [-0.03, 0.06], "LEFT_SHOULDER": [centre_x + 0.2, 0.45 + offset_y],
             "RIGHT_SHOULDER": [centre_x - 0.2, 0.45 + offset_y], "LEFT_HIP": [centre_x + 0.14, 0.98 + offset_y],
             "RIGHT_HIP": [centre_x - 0.14, 0.98 + offset_y]}
    for name, point in named.items():
        body[:, BODY_POINTS.index(name)] = point
    rest = np.array(LEFT_HAND_REST) + [centre_x - 0.5, offset_y]
    left = hand_points(np.tile(rest, (frames, 1)), np.full(frames, 4), np.full(frames, 5), HAND_LENGTH * aspect)
    # the drawn hand is the palm: the wrist lies below its centre
    right = hand_points(xy + [0, 0.4 * HAND_LENGTH * aspect[1]], shape, category, HAND_LENGTH * aspect)
    for side, hand in (("LEFT", left), ("RIGHT", right)):
        shoulder = body[:, BODY_POINTS.index(f"{side}_SHOULDER")]
        wrist = hand[:, 0]
        body[:, BODY_POINTS.index(f"{side}_WRIST")] = wrist
        body[:, BODY_POINTS.index(f"{side}_ELBOW")] = (shoulder + wrist) / 2 + [0.08 if side == "LEFT" else -0.08,
                                                                                 0.1]
        for finger, point in (("INDEX", 8), ("PINKY", 20), ("THUMB", 4)):
            body[:, BODY_POINTS.index(f"{side}_{finger}")] = hand[:, point]
    legs = [BODY_POINTS.index(p) for p in BODY_POINTS[25:]]
    confidence[:, legs] = 0.0
    points = np.concatenate([body, left, right], axis=1)
    points = points + rng.normal(0.0, KEYPOINT_NOISE, size=points.shape)
    points[:, legs] = 0.0
    pixels = np.concatenate([points * [width, height], np.zeros((frames, 75, 1))], axis=-1)
    return pixels, confidence


def write_pose(path: str, pixels: np.ndarray, confidence: np.ndarray, height: int, width: int,
               fps: float = FPS) -> None:
    """T×75×3 and T×75 → a .pose file (pose-format, one person), points of confidence 0 masked."""
    from pose_format import Pose
    from pose_format.numpy.pose_body import NumPyPoseBody
    from pose_format.pose_header import PoseHeader, PoseHeaderComponent, PoseHeaderDimensions

    def component(name: str, points: Sequence[str], bones) -> PoseHeaderComponent:
        return PoseHeaderComponent(name, list(points), list(bones), [(255, 0, 0)] * len(bones), "XYZC")

    header = PoseHeader(0.1, PoseHeaderDimensions(width, height, width), [
        component("POSE_LANDMARKS", BODY_POINTS, BODY_BONES),
        component("LEFT_HAND_LANDMARKS", HAND_POINTS, HAND_BONES),
        component("RIGHT_HAND_LANDMARKS", HAND_POINTS, HAND_BONES)])
    mask = np.repeat((confidence == 0)[:, None, :, None], 3, axis=-1)
    data = np.ma.masked_array(pixels[:, None].astype(np.float32), mask=mask)
    body = NumPyPoseBody(fps, data, confidence[:, None].astype(np.float32))
    with open(path, "wb") as f:
        Pose(header, body).write(f)
