"""Keypoint layouts: which points of a MediaPipe Holistic ``.pose`` file a pose dataset keeps, and its skeleton.

A layout names its points as ``(component, point)`` pairs of pose-format's holistic header (``POSE_LANDMARKS``,
``LEFT_HAND_LANDMARKS``, ``RIGHT_HAND_LANDMARKS``, ``FACE_LANDMARKS`` with the face mesh's numbered points), and
lists the bones between them, by index into that list. slt-binarise selects the points of its ``--pose-layout`` and
records the name in ``poses.lmdb/index.json``; the pose backbones build their graph (``pose_stgcn``) and input size
from the same name, so a model and its store always agree.

The layouts keep only points that pose-format's ``reduce_holistic`` keeps too (the arms and shoulders of the body,
both hands, the face's contours), so files reduced that way (like the 178-point example of pose-format) and full
543-point files both fit. Legs, hips and the face mesh's inner points carry little of a sign and are left out.

* ``upper_body_hands`` (48 points): shoulders, elbows, wrists (6) and both hands (2 × 21);
* ``upper_body_hands_face`` (70 points): the same and 22 face points: eyebrows (6), eye corners (4), lips (10),
  forehead and chin (2), for the non-manual signals (mouthing, brows).
"""

from dataclasses import dataclass
from typing import Dict, List, Tuple

BODY = "POSE_LANDMARKS"
LEFT_HAND, RIGHT_HAND = "LEFT_HAND_LANDMARKS", "RIGHT_HAND_LANDMARKS"
FACE = "FACE_LANDMARKS"

#: MediaPipe's 21 hand landmarks, in its order (pose-format names them so)
HAND_POINTS = ("WRIST", "THUMB_CMC", "THUMB_MCP", "THUMB_IP", "THUMB_TIP", "INDEX_FINGER_MCP", "INDEX_FINGER_PIP",
               "INDEX_FINGER_DIP", "INDEX_FINGER_TIP", "MIDDLE_FINGER_MCP", "MIDDLE_FINGER_PIP", "MIDDLE_FINGER_DIP",
               "MIDDLE_FINGER_TIP", "RING_FINGER_MCP", "RING_FINGER_PIP", "RING_FINGER_DIP", "RING_FINGER_TIP",
               "PINKY_MCP", "PINKY_PIP", "PINKY_DIP", "PINKY_TIP")
#: the bones of a hand: each finger a chain from the wrist, and the palm across the knuckles
HAND_BONES = ((0, 1), (1, 2), (2, 3), (3, 4), (0, 5), (5, 6), (6, 7), (7, 8), (5, 9), (9, 10), (10, 11), (11, 12),
              (9, 13), (13, 14), (14, 15), (15, 16), (13, 17), (17, 18), (18, 19), (19, 20), (0, 17))
UPPER_BODY = ("LEFT_SHOULDER", "RIGHT_SHOULDER", "LEFT_ELBOW", "RIGHT_ELBOW", "LEFT_WRIST", "RIGHT_WRIST")
UPPER_BODY_BONES = ((0, 1), (0, 2), (2, 4), (1, 3), (3, 5))
#: face-mesh points (all among its contours): brows, eye corners, lips (outer ring), forehead, chin
FACE_POINTS = ("70", "105", "107", "336", "334", "300",  # right brow outer→inner, left brow inner→outer
               "33", "133", "362", "263",  # eye corners
               "61", "40", "37", "0", "267", "270", "291", "314", "17", "84",  # lips, round from the right corner
               "10", "152")  # forehead, chin
FACE_BONES = ((0, 1), (1, 2), (3, 4), (4, 5), (6, 7), (8, 9), (10, 11), (11, 12), (12, 13), (13, 14), (14, 15),
              (15, 16), (16, 17), (17, 18), (18, 19), (19, 10), (20, 2), (20, 3), (21, 18))

#: pose-format's shoulders, between which its ``normalize`` measures the scale (``pose_normalization_info``)
SHOULDERS = ((BODY, "RIGHT_SHOULDER"), (BODY, "LEFT_SHOULDER"))


@dataclass(frozen=True)
class PoseLayout:
    name: str
    points: Tuple[Tuple[str, str], ...]  # (component, point) in store order
    bones: Tuple[Tuple[int, int], ...]  # indices into points

    @property
    def components(self) -> Dict[str, List[str]]:
        """component → its points, in store order: what pose-format's ``get_components`` selects."""
        out: Dict[str, List[str]] = {}
        for component, point in self.points:
            out.setdefault(component, []).append(point)
        return out

    def __len__(self):
        return len(self.points)


def _build(name: str, parts) -> PoseLayout:
    points, bones = [], []
    for component, names, part_bones in parts:
        base = len(points)
        points += [(component, p) for p in names]
        bones += [(base + a, base + b) for a, b in part_bones]
    index = {p: i for i, p in enumerate(points)}
    for side, hand in (("LEFT", LEFT_HAND), ("RIGHT", RIGHT_HAND)):  # the body's wrist holds the hand
        bones.append((index[(BODY, f"{side}_WRIST")], index[(hand, "WRIST")]))
    return PoseLayout(name, tuple(points), tuple(bones))


_BODY_HANDS = [(BODY, UPPER_BODY, UPPER_BODY_BONES), (LEFT_HAND, HAND_POINTS, HAND_BONES),
               (RIGHT_HAND, HAND_POINTS, HAND_BONES)]
LAYOUTS: Dict[str, PoseLayout] = {
    layout.name: layout for layout in (
        _build("upper_body_hands", _BODY_HANDS),
        _build("upper_body_hands_face", _BODY_HANDS + [(FACE, FACE_POINTS, FACE_BONES)]),
    )
}
DEFAULT_LAYOUT = "upper_body_hands"


def get_layout(name: str) -> PoseLayout:
    if name not in LAYOUTS:
        raise ValueError(f"unknown pose layout {name!r}; known: {', '.join(sorted(LAYOUTS))}")
    return LAYOUTS[name]
