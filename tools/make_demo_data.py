"""Generate a small synthetic sign-language corpus in the official Phoenix-2014T layout, for demos and tests.

The real corpora are large and licensed, so the demo trains on this instead; because it is written exactly like
Phoenix-2014T, the binariser reads it with the Phoenix reader and no special case::

    OUT/annotations/PHOENIX-2014-T.{train,dev,test}.corpus.csv   name|video|start|end|speaker|orth|translation
    OUT/frames/<split>/<name>/images0001.png …                   RGB frames
    OUT/poses/<split>/<name>.pose                                keypoints of the same scene (pose-format)
    OUT/demo_data.json                                           what made it (also marks OUT as replaceable)

Binarise it with ``slt-binarise`` pointing the Phoenix reader at ``OUT/annotations`` and ``OUT/frames`` (and
``--poses OUT/poses`` for the keypoints).

With ``--no-glosses`` the same corpus (same seed: the same clips and texts) is written as a corpus without glosses
is distributed (How2Sign, YouTube-ASL: video and text only), one How2Sign-style TSV per split::

    OUT/annotations/<split>.tsv      id  video  text  signer      (video: the frame folder, relative to the TSV)

for ``slt-binarise tsv --no-glosses --manifest train=OUT/annotations/train.tsv …``.

What is in it, and why:

* Vocabulary: 28 German weather-forecast glosses (time, region, weather, intensity, temperature, numbers, BIS,
  GRAD). Sentences come from three templates of 2–7 glosses; the German text follows from the glosses
  deterministically but not monotonically (intensity moves before the noun, function words are inserted, BIS
  becomes "bis" or "zwischen … und"), so a translation model has to learn reordering and insertion.
* Video: a static "signer" (background, torso, head; colours per ``speaker``) and one moving "hand". Each gloss is
  a distinct motion (line, arc, circle, zig-zag, tap, shake) of a hand whose colour marks the gloss's category and
  whose shape (disc, square, diamond, ring) varies within it, so neither colour nor shape nor path alone names a
  gloss. A gloss lasts 6–10 frames, ±30 % per sample; 1–3 transition frames (skin-coloured resting hand) lie
  between glosses and 2–4 rest frames at either end. Per sample the camera offset, each gloss's scale and
  position, the hand colours, the brightness and the pixel noise vary, so a model must generalise.
* Frame size: 64×64 by default. At that size the hand (radius ≈ 5 px) and its shape are still clearly visible,
  while a tiny CPU CNN processes a whole clip of ~50 frames in milliseconds; a frame is a ~3.5 KB PNG (the
  luminance noise is what costs bytes), the default corpus ~20,000 frames and ~80 MB on disk.
* Keypoints: the same scene as MediaPipe Holistic would give it (body, both hands; tools/demo_poses.py): the
  signer's right hand follows the drawn hand's path, its handshape stands for the drawn shape and colour.
  Written from the clip's own track, so the frames are the same with or without them (``--no-poses``).
* Recordings: every recording (one signer, a preferred time of day) holds 3–6 consecutive utterances named
  ``demo_recordingNNN-<k>``, so each but the first has a preceding utterance, which the dialogue teacher reads
  as context. A recording lies in one split.
* Splits are disjoint by sentence; the training sentences are chosen to cover every gloss, and dev/test use
  only glosses that occur in training.

Deterministic: the same seed and sizes give byte-identical files (each clip draws from its own random stream, so
the number of worker processes does not matter). Written atomically (tools/atomic.py): built in ``OUT.tmp-<pid>``,
then renamed into place; an existing OUT is replaced only once the new corpus is complete, and only if it is empty
or itself a demo corpus (or with ``--overwrite``).
"""

import argparse
import csv
import json
import math
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence, Set, Tuple

import numpy as np
from PIL import Image

from fairseq_slt.tools.atomic import Owner, staging

MARKER = "demo_data.json"
SPLITS = ("train", "dev", "test")
PHOENIX_HEADER = ["name", "video", "start", "end", "speaker", "orth", "translation"]

# --- language: glosses, text phrases, sentence templates ---------------------------------------------------------

TIMES = {"HEUTE": "heute", "MORGEN": "morgen", "ABEND": "am abend", "NACHT": "in der nacht"}
REGIONS = {"NORD": "im norden", "SUED": "im süden", "WEST": "im westen", "OST": "im osten",
           "BERG": "in den bergen", "KUESTE": "an der küste"}
# weather gloss -> noun phrase without intensity, with STARK, with SCHWACH
WEATHER = {"REGEN": ("regen", "kräftigen regen", "leichten regen"),
           "SCHNEE": ("schnee", "viel schnee", "etwas schnee"),
           "SONNE": ("sonnenschein", "viel sonnenschein", "wenig sonnenschein"),
           "WOLKE": ("wolken", "dichte wolken", "einzelne wolken"),
           "WIND": ("wind", "stürmischen wind", "schwachen wind"),
           "GEWITTER": ("gewitter", "heftige gewitter", "einzelne gewitter"),
           "NEBEL": ("nebel", "dichten nebel", "leichten nebel")}
INTENSITIES = ("STARK", "SCHWACH")
TEMPERATURES = {"KALT": "kalt", "WARM": "warm"}
NUMBERS = {"FUENF": "fünf", "ZEHN": "zehn", "FUENFZEHN": "fünfzehn", "ZWANZIG": "zwanzig", "DREISSIG": "dreißig"}

GLOSSES = (*TIMES, *REGIONS, *WEATHER, *INTENSITIES, *TEMPERATURES, *NUMBERS, "BIS", "GRAD")
MIN_GLOSSES, MAX_GLOSSES = 2, 7


@dataclass(frozen=True)
class Sentence:
    glosses: Tuple[str, ...]
    text: str


def _maybe(rng: np.random.Generator, p: float, options: Sequence[str]) -> Optional[str]:
    return str(rng.choice(options)) if rng.random() < p else None


def _time_slot(rng: np.random.Generator, preferred_time: str) -> Optional[str]:
    """A recording keeps to one time of day mostly, so the preceding utterance is informative context."""
    if rng.random() >= 0.6:
        return None
    return preferred_time if rng.random() < 0.75 else str(rng.choice(list(TIMES)))


def _weather_phrase(weather: str, intensity: Optional[str]) -> str:
    plain, strong, weak = WEATHER[weather]
    return {None: plain, "STARK": strong, "SCHWACH": weak}[intensity]


def _weather_sentence(rng: np.random.Generator, preferred_time: str) -> Sentence:
    """[TIME] [REGION] WEATHER [INTENSITY] -> "morgen gibt es im norden kräftigen regen"."""
    when, where = _time_slot(rng, preferred_time), _maybe(rng, 0.7, list(REGIONS))
    weather, intensity = str(rng.choice(list(WEATHER))), _maybe(rng, 0.5, INTENSITIES)
    glosses = tuple(g for g in (when, where, weather, intensity) if g)
    place = [REGIONS[where]] if where else []
    phrase = _weather_phrase(weather, intensity)
    words = [TIMES[when], "gibt es", *place] if when else [*place, "gibt es"] if where else ["es gibt"]
    return Sentence(glosses, " ".join([*words, phrase]))


def _temperature_sentence(rng: np.random.Generator, preferred_time: str) -> Sentence:
    """[TIME] [REGION] [KALT|WARM] NUMBER [BIS NUMBER] GRAD -> "morgen wird es im norden warm mit zehn bis zwanzig
    grad" or, without KALT/WARM, "die temperaturen liegen morgen zwischen zehn und zwanzig grad"."""
    when, where = _time_slot(rng, preferred_time), _maybe(rng, 0.6, list(REGIONS))
    feel = _maybe(rng, 0.5, list(TEMPERATURES))
    numbers = list(NUMBERS)
    if rng.random() < 0.5:
        low, high = sorted(rng.choice(len(numbers), size=2, replace=False))
        values = (numbers[low], "BIS", numbers[high])
    else:
        values = (str(rng.choice(numbers)),)
    glosses = tuple(g for g in (when, where, feel) if g) + values + ("GRAD",)
    place = [REGIONS[where]] if where else []
    spoken = [NUMBERS[values[0]]] + (["bis", NUMBERS[values[2]]] if len(values) == 3 else [])
    if feel:
        lead = [TIMES[when], "wird es", *place] if when else [*place, "wird es"] if where else ["es wird"]
        words = [*lead, TEMPERATURES[feel], "mit", *spoken, "grad"]
    else:
        amount = ["zwischen", spoken[0], "und", spoken[2]] if len(spoken) == 3 else ["bei", spoken[0]]
        words = ["die temperaturen liegen", *([TIMES[when]] if when else []), *place, *amount, "grad"]
    return Sentence(glosses, " ".join(words))


def _contrast_sentence(rng: np.random.Generator, preferred_time: str) -> Sentence:
    """[TIME] REGION WEATHER [INTENSITY] REGION WEATHER [INTENSITY] -> "morgen gibt es im norden regen und im
    süden viel sonnenschein"."""
    when = _time_slot(rng, preferred_time)
    first, second = (str(r) for r in rng.choice(list(REGIONS), size=2, replace=False))
    parts = []
    for where in (first, second):
        weather, intensity = str(rng.choice(list(WEATHER))), _maybe(rng, 0.4, INTENSITIES)
        parts.append((where, weather, intensity))
    glosses = ((when,) if when else ()) + tuple(g for part in parts for g in part if g)
    (r1, w1, i1), (r2, w2, i2) = parts
    lead = [TIMES[when], "gibt es", REGIONS[r1]] if when else [REGIONS[r1], "gibt es"]
    words = [*lead, _weather_phrase(w1, i1), "und", REGIONS[r2], _weather_phrase(w2, i2)]
    return Sentence(glosses, " ".join(words))


TEMPLATES: Tuple[Tuple[Callable[[np.random.Generator, str], Sentence], float], ...] = (
    (_weather_sentence, 0.4), (_temperature_sentence, 0.35), (_contrast_sentence, 0.25))


def draw_sentence(rng: np.random.Generator, preferred_time: str) -> Sentence:
    """One sentence of the grammar with MIN_GLOSSES..MAX_GLOSSES glosses."""
    makers, weights = zip(*TEMPLATES)
    while True:
        sentence = makers[rng.choice(len(makers), p=weights)](rng, preferred_time)
        if MIN_GLOSSES <= len(sentence.glosses) <= MAX_GLOSSES:
            return sentence


# --- vision: how each gloss looks --------------------------------------------------------------------------------
# Coordinates are fractions of the frame, y downwards. A path maps t in [0, 1] (n values) to n×2 (x, y) points.

Path = Callable[[np.ndarray], np.ndarray]


def _line(x0: float, y0: float, x1: float, y1: float) -> Path:
    return lambda t: np.stack([x0 + (x1 - x0) * t, y0 + (y1 - y0) * t], axis=1)


def _arc(cx: float, cy: float, r: float, start_deg: float, end_deg: float) -> Path:
    """Counter-clockwise on screen for end > start; a full circle is an arc of ±360°."""
    def path(t):
        angle = np.radians(start_deg + (end_deg - start_deg) * t)
        return np.stack([cx + r * np.cos(angle), cy - r * np.sin(angle)], axis=1)
    return path


def _zigzag(x0: float, y0: float, x1: float, y1: float, amplitude: float, teeth: float) -> Path:
    """A line with a triangle wave across it."""
    length = math.hypot(x1 - x0, y1 - y0)
    across = np.array([-(y1 - y0), x1 - x0]) / length
    line = _line(x0, y0, x1, y1)
    return lambda t: line(t) + amplitude * (2 / np.pi) * np.arcsin(np.sin(2 * np.pi * teeth * t))[:, None] * across


def _tap(x: float, y: float, dx: float, dy: float, taps: int = 1) -> Path:
    """Out to (x+dx, y+dy) and back, ``taps`` times."""
    return lambda t: np.array([x, y]) + np.abs(np.sin(np.pi * taps * t))[:, None] * np.array([dx, dy])


def _shake(x: float, y: float, amplitude: float, cycles: float) -> Path:
    return lambda t: np.stack([x + amplitude * np.sin(2 * np.pi * cycles * t), np.full_like(t, y)], axis=1)


SHAPES = ("disc", "square", "diamond", "ring")
# the hand's colour names the gloss's category
YELLOW, GREEN, BLUE, RED, ORANGE = (235, 205, 40), (50, 185, 70), (45, 95, 235), (215, 45, 45), (245, 130, 25)


@dataclass(frozen=True)
class Sign:
    path: Path
    shape: str
    colour: Tuple[int, int, int]
    frames: int  # typical duration


SIGNS: Dict[str, Sign] = {
    "HEUTE": Sign(_tap(0.5, 0.45, 0.0, 0.2), "disc", YELLOW, 6),
    "MORGEN": Sign(_line(0.35, 0.5, 0.7, 0.35), "disc", YELLOW, 8),
    "ABEND": Sign(_arc(0.5, 0.6, 0.22, 0, 180), "square", YELLOW, 9),
    "NACHT": Sign(_arc(0.5, 0.45, 0.14, 90, -270), "diamond", YELLOW, 10),
    "NORD": Sign(_line(0.5, 0.7, 0.5, 0.25), "disc", GREEN, 7),
    "SUED": Sign(_line(0.5, 0.3, 0.5, 0.78), "disc", GREEN, 7),
    "WEST": Sign(_line(0.72, 0.5, 0.25, 0.5), "square", GREEN, 7),
    "OST": Sign(_line(0.28, 0.5, 0.75, 0.5), "square", GREEN, 7),
    "BERG": Sign(_zigzag(0.25, 0.65, 0.75, 0.65, 0.15, 2), "diamond", GREEN, 10),
    "KUESTE": Sign(_shake(0.5, 0.6, 0.17, 2), "diamond", GREEN, 9),
    "REGEN": Sign(_tap(0.5, 0.35, 0.0, 0.3, taps=2), "disc", BLUE, 9),
    "SCHNEE": Sign(_zigzag(0.5, 0.22, 0.5, 0.75, 0.08, 3), "diamond", BLUE, 10),
    "SONNE": Sign(_arc(0.5, 0.38, 0.17, 90, 450), "disc", BLUE, 10),
    "WOLKE": Sign(_arc(0.5, 0.5, 0.2, 180, 0), "square", BLUE, 9),
    "WIND": Sign(_line(0.25, 0.35, 0.75, 0.62), "square", BLUE, 6),
    "GEWITTER": Sign(_zigzag(0.62, 0.2, 0.4, 0.8, 0.14, 1), "ring", BLUE, 8),
    "NEBEL": Sign(_shake(0.5, 0.45, 0.2, 1), "ring", BLUE, 9),
    "STARK": Sign(_line(0.38, 0.38, 0.58, 0.72), "square", RED, 6),
    "SCHWACH": Sign(_tap(0.5, 0.55, 0.0, 0.08), "ring", RED, 7),
    "KALT": Sign(_shake(0.5, 0.5, 0.08, 3), "diamond", RED, 8),
    "WARM": Sign(_arc(0.5, 0.6, 0.12, 90, -270), "disc", RED, 9),
    "FUENF": Sign(_tap(0.65, 0.5, 0.0, -0.16), "disc", ORANGE, 6),
    "ZEHN": Sign(_tap(0.65, 0.5, 0.0, -0.16, taps=2), "disc", ORANGE, 8),
    "FUENFZEHN": Sign(_line(0.68, 0.5, 0.32, 0.5), "square", ORANGE, 7),
    "ZWANZIG": Sign(_arc(0.6, 0.42, 0.1, 90, 450), "square", ORANGE, 8),
    "DREISSIG": Sign(_zigzag(0.3, 0.45, 0.7, 0.45, 0.08, 2), "diamond", ORANGE, 9),
    "BIS": Sign(_line(0.3, 0.62, 0.7, 0.62), "ring", ORANGE, 7),
    "GRAD": Sign(_arc(0.7, 0.3, 0.08, 90, -270), "ring", ORANGE, 7),
}

DURATION_JITTER = 0.3  # a gloss lasts its typical frames × U(1 - j, 1 + j), at least MIN_SIGN_FRAMES
MIN_SIGN_FRAMES = 4
TRANSITION_FRAMES = (1, 3)  # between glosses, and between rest and the first/last gloss
REST_FRAMES = (2, 4)  # at the start and at the end
REST_POSITION = (0.62, 0.9)
REST_COLOUR = (222, 180, 150)  # the resting hand; a signed gloss has its category's colour
HAND_RADIUS = 0.12  # of the shorter side: shapes stay distinct after a CNN's first strides
NOISE_SIGMA = (1.0, 4.0)  # per-clip luminance noise; its 2×2-pixel grain halves the PNG size of per-pixel noise


@dataclass(frozen=True)
class Signer:
    name: str
    background: Tuple[int, int, int]
    clothes: Tuple[int, int, int]
    skin: Tuple[int, int, int]
    shift: float  # where the signer stands, as a fraction of the width


SIGNERS = (
    Signer("Signer01", (190, 198, 206), (38, 42, 58), (226, 184, 152), 0.0),
    Signer("Signer02", (205, 196, 178), (70, 40, 40), (196, 146, 112), -0.04),
    Signer("Signer03", (170, 182, 170), (30, 30, 30), (236, 200, 172), 0.03),
    Signer("Signer04", (150, 160, 175), (90, 80, 60), (150, 105, 75), -0.02),
    Signer("Signer05", (215, 210, 215), (25, 55, 60), (210, 165, 135), 0.04),
    Signer("Signer06", (120, 128, 140), (200, 200, 190), (232, 190, 160), 0.0),
    Signer("Signer07", (185, 170, 160), (45, 45, 80), (120, 84, 60), -0.03),
    Signer("Signer08", (160, 175, 190), (85, 30, 55), (218, 176, 140), 0.02),
    Signer("Signer09", (200, 205, 185), (60, 60, 65), (180, 130, 100), -0.01),
)


@dataclass(frozen=True)
class Utterance:
    split: str
    name: str
    signer: Signer
    sentence: Sentence
    stream: int  # index of the clip's own random stream


def _hand_track(rng: np.random.Generator, glosses: Sequence[str], offset: np.ndarray):
    """Hand centre (n×2, fractions), shape index (n) and colour (n×3) per frame: rest, then each gloss's path
    (jittered in speed, scale and place) with transitions between, then rest."""
    rest = np.array(REST_POSITION) + offset
    points, shapes, colours = [], [], []

    def add(xy, shape, colour):
        points.append(xy)
        shapes.append(np.full(len(xy), SHAPES.index(shape)))
        colours.append(np.tile(np.asarray(colour, dtype=np.float32), (len(xy), 1)))

    def move(src, dst, colour):
        k = int(rng.integers(TRANSITION_FRAMES[0], TRANSITION_FRAMES[1] + 1))
        add(src + (dst - src) * (np.arange(1, k + 1) / (k + 1))[:, None], "disc", colour)

    skin = rng.uniform(0.9, 1.1) * np.asarray(REST_COLOUR, dtype=np.float32)
    add(np.tile(rest, (int(rng.integers(REST_FRAMES[0], REST_FRAMES[1] + 1)), 1)), "disc", skin)
    previous = rest
    for gloss in glosses:
        sign = SIGNS[gloss]
        n = max(MIN_SIGN_FRAMES, round(sign.frames * rng.uniform(1 - DURATION_JITTER, 1 + DURATION_JITTER)))
        xy = sign.path(np.linspace(0.0, 1.0, n))
        centre = xy.mean(axis=0)
        xy = centre + (xy - centre) * rng.uniform(0.85, 1.15) + rng.uniform(-0.03, 0.03, size=2) + offset
        move(previous, xy[0], skin)
        add(xy, sign.shape, np.clip(np.asarray(sign.colour) + rng.uniform(-15, 15, size=3), 0, 255))
        previous = xy[-1]
    move(previous, rest, skin)
    add(np.tile(rest, (int(rng.integers(REST_FRAMES[0], REST_FRAMES[1] + 1)), 1)), "disc", skin)
    xy = np.concatenate(points)
    return xy + rng.normal(0.0, 0.004, size=xy.shape), np.concatenate(shapes), np.concatenate(colours)


def _signed_distance(shape: np.ndarray, dx: np.ndarray, dy: np.ndarray, r: float) -> np.ndarray:
    """Pixels from the edge of the hand (negative inside), per frame's shape; the shapes have about equal area."""
    dist = np.sqrt(dx * dx + dy * dy)
    by_shape = np.stack([
        dist - r,  # disc
        np.maximum(np.abs(dx), np.abs(dy)) - 0.886 * r,  # square
        (np.abs(dx) + np.abs(dy) - 1.25 * r) / math.sqrt(2),  # diamond
        np.abs(dist - 0.75 * r) - 0.4 * r,  # ring
    ])
    return np.take_along_axis(by_shape, shape[None, :, None, None], axis=0)[0]


def _signer_image(signer: Signer, height: int, width: int, offset: np.ndarray) -> np.ndarray:
    """The static scene, H×W×3 float: a softly lit background, a torso and a head."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    x, y = x / width - offset[0] - signer.shift, y / height - offset[1]
    image = np.empty((height, width, 3), dtype=np.float32)
    image[:] = np.asarray(signer.background, dtype=np.float32) * (1.08 - 0.16 * y)[..., None]
    torso = ((x - 0.5) / 0.27) ** 2 + ((y - 1.05) / 0.7) ** 2 <= 1
    head = ((x - 0.5) * width) ** 2 + ((y - 0.2) * height) ** 2 <= (0.11 * min(height, width)) ** 2
    image[torso] = signer.clothes
    image[head] = signer.skin
    return image


def clip_track(utterance: Utterance, seed: int):
    """The clip's random stream and what it draws first: the camera offset and the hand's track (centre, shape,
    colour per frame); the frames and the keypoints are both drawn from it."""
    rng = np.random.default_rng([seed, 1, utterance.stream])
    offset = rng.uniform(-0.05, 0.05, size=2)
    hand_offset = offset + np.array([utterance.signer.shift, 0.0])  # the hand moves with the signer
    xy, shape, colour = _hand_track(rng, utterance.sentence.glosses, hand_offset)
    return rng, offset, xy, shape, colour


def render_clip(utterance: Utterance, seed: int, height: int, width: int) -> np.ndarray:
    """The clip's frames, uint8 T×H×W×3, from the clip's own random stream."""
    rng, offset, xy, shape, colour = clip_track(utterance, seed)
    background = _signer_image(utterance.signer, height, width, offset)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    dx = x[None] + 0.5 - xy[:, 0, None, None] * width
    dy = y[None] + 0.5 - xy[:, 1, None, None] * height
    alpha = np.clip(0.5 - _signed_distance(shape, dx, dy, HAND_RADIUS * min(height, width)), 0, 1)[..., None]
    frames = background[None] * (1 - alpha) + colour[:, None, None, :] * alpha
    frames *= rng.uniform(0.9, 1.1)
    grain = rng.normal(0.0, rng.uniform(*NOISE_SIGMA), size=(len(frames), (height + 1) // 2, (width + 1) // 2, 1))
    frames += grain.repeat(2, axis=1).repeat(2, axis=2)[:, :height, :width]
    return np.clip(np.rint(frames), 0, 255).astype(np.uint8)


CATEGORY_COLOURS = np.array([YELLOW, GREEN, BLUE, RED, ORANGE, REST_COLOUR], dtype=np.float32)


def clip_keypoints(utterance: Utterance, seed: int, height: int, width: int):
    """The clip's keypoints (pixels T×75×3, confidence T×75; tools/demo_poses.py), from the same track as its
    frames; the keypoint noise comes from a stream of its own, so the frames do not depend on it."""
    from fairseq_slt.tools.demo_poses import scene_keypoints

    _, offset, xy, shape, colour = clip_track(utterance, seed)
    category = np.argmin(((colour[:, None, :] - CATEGORY_COLOURS[None]) ** 2).sum(-1), axis=1)
    shape = np.where(category == len(CATEGORY_COLOURS) - 1, len(SHAPES), shape)  # the resting hand's own shape
    centre_x = 0.5 + offset[0] + utterance.signer.shift
    return scene_keypoints(xy, shape, category, centre_x, offset[1], height, width,
                           np.random.default_rng([seed, 2, utterance.stream]))


# --- the corpus plan ---------------------------------------------------------------------------------------------

UTTERANCES_PER_RECORDING = (3, 6)
CANDIDATES = 16  # sentences weighed per training utterance while some gloss is still missing
MAX_DRAWS = 2000


def _next_sentence(rng: np.random.Generator, preferred_time: str, seen: Set[Tuple[str, ...]],
                   allowed: Set[str], missing: Set[str]) -> Sentence:
    """An unseen sentence of allowed glosses; while glosses are missing, the candidate that adds most of them."""
    best, candidates = None, 0
    for _ in range(MAX_DRAWS):
        sentence = draw_sentence(rng, preferred_time)
        if sentence.glosses in seen or not allowed.issuperset(sentence.glosses):
            continue
        if not missing:
            return sentence
        if best is None or len(missing.intersection(sentence.glosses)) > len(missing.intersection(best.glosses)):
            best = sentence
        candidates += 1
        if candidates == CANDIDATES:
            break
    if best is None:
        raise ValueError(f"no unseen sentence left after {MAX_DRAWS} draws; ask for fewer samples")
    return best


def plan_corpus(seed: int, sizes: Dict[str, int], glosses: Sequence[str] = GLOSSES) -> List[Utterance]:
    """Recordings of consecutive utterances, split by split (train first, so that it covers the vocabulary);
    sentences use only ``glosses`` (a subset gives a corpus that a test's model learns in seconds)."""
    rng = np.random.default_rng([seed, 0])
    seen: Set[Tuple[str, ...]] = set()
    train_glosses: Set[str] = set()
    utterances: List[Utterance] = []
    recording = 0
    for split in SPLITS:
        allowed = set(glosses) if split == "train" else train_glosses
        made = 0
        while made < sizes[split]:
            recording += 1
            signer = SIGNERS[rng.integers(len(SIGNERS))]
            preferred_time = str(rng.choice(list(TIMES)))
            count = min(sizes[split] - made, int(rng.integers(UTTERANCES_PER_RECORDING[0],
                                                              UTTERANCES_PER_RECORDING[1] + 1)))
            for k in range(1, count + 1):
                missing = set(glosses) - train_glosses if split == "train" else set()
                sentence = _next_sentence(rng, preferred_time, seen, allowed, missing)
                seen.add(sentence.glosses)
                if split == "train":
                    train_glosses.update(sentence.glosses)
                utterances.append(Utterance(split, f"demo_recording{recording:03d}-{k}", signer, sentence,
                                            len(utterances)))
            made += count
    return utterances


# --- writing -----------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ClipJob:
    utterance: Utterance
    folder: str
    seed: int
    height: int
    width: int
    pose_path: Optional[str] = None


def write_clip(job: ClipJob) -> int:
    """Render one clip into its frame folder (and its keypoints into ``pose_path``); returns its frame count."""
    frames = render_clip(job.utterance, job.seed, job.height, job.width)
    os.makedirs(job.folder)
    for i, frame in enumerate(frames, start=1):
        Image.fromarray(frame).save(os.path.join(job.folder, f"images{i:04d}.png"), compress_level=1)
    if job.pose_path:
        from fairseq_slt.tools.demo_poses import write_pose

        pixels, confidence = clip_keypoints(job.utterance, job.seed, job.height, job.width)
        os.makedirs(os.path.dirname(job.pose_path), exist_ok=True)
        write_pose(job.pose_path, pixels, confidence, job.height, job.width)
    return len(frames)


GLOSS_FREE_HEADER = ["id", "video", "text", "signer"]


def write_annotations(folder: str, utterances: Sequence[Utterance], glosses: bool = True) -> None:
    os.makedirs(folder)
    if not glosses:
        for split in SPLITS:
            with open(os.path.join(folder, f"{split}.tsv"), "w", encoding="utf-8", newline="") as f:
                writer = csv.writer(f, delimiter="\t", quoting=csv.QUOTE_NONE, lineterminator="\n")
                writer.writerow(GLOSS_FREE_HEADER)
                writer.writerows([u.name, f"../frames/{split}/{u.name}", u.sentence.text, u.signer.name]
                                 for u in utterances if u.split == split)
        return
    for split in SPLITS:
        path = os.path.join(folder, f"PHOENIX-2014-T.{split}.corpus.csv")
        with open(path, "w", encoding="utf-8", newline="") as f:
            writer = csv.writer(f, delimiter="|", quoting=csv.QUOTE_NONE, lineterminator="\n")
            writer.writerow(PHOENIX_HEADER)
            for u in utterances:
                if u.split == split:
                    writer.writerow([u.name, f"{u.name}/1/*.png", -1, -1, u.signer.name,
                                     " ".join(u.sentence.glosses), u.sentence.text])


OWNER = Owner("slt-make-demo-data", MARKER, "generator")


def build(out: str, seed: int, sizes: Dict[str, int], height: int, width: int, workers: int,
          overwrite: bool = False, glosses: Sequence[str] = GLOSSES, write_glosses: bool = True,
          poses: bool = True) -> Dict[str, int]:
    """Write the corpus to ``out`` atomically (tools/atomic.py); returns the frame count per split. An existing
    ``out`` that is not a demo corpus is refused unless ``overwrite``. ``write_glosses=False``: annotations as a
    corpus without glosses (How2Sign-style TSVs); the clips and texts are the same."""
    with staging(out, OWNER, overwrite=overwrite) as tmp:
        utterances = plan_corpus(seed, sizes, glosses)
        write_annotations(os.path.join(tmp, "annotations"), utterances, write_glosses)
        jobs = [ClipJob(u, os.path.join(tmp, "frames", u.split, u.name), seed, height, width,
                        os.path.join(tmp, "poses", u.split, f"{u.name}.pose") if poses else None)
                for u in utterances]
        if workers > 1:
            with ProcessPoolExecutor(workers) as pool:
                lengths = list(pool.map(write_clip, jobs, chunksize=8))
        else:
            lengths = [write_clip(job) for job in jobs]
        frames = {split: sum(n for u, n in zip(utterances, lengths) if u.split == split) for split in SPLITS}
        meta = {"generator": "slt-make-demo-data", "seed": seed, "frame_size": [height, width],
                "samples": sizes, "frames": frames, "glosses": list(glosses), "annotated_glosses": write_glosses,
                "poses": poses,
                "text_vocabulary": sorted({w for u in utterances for w in u.sentence.text.split()})}
        with open(os.path.join(tmp, MARKER), "w", encoding="utf-8") as f:
            json.dump(meta, f, ensure_ascii=False, indent=1)
            f.write("\n")
    return frames


# --- command line ------------------------------------------------------------------------------------------------

def _count(minimum: int):
    def parse(value: str) -> int:
        number = int(value)
        if number < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {number}")
        return number
    return parse


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="slt-make-demo-data",
        description="Generate a synthetic weather-forecast sign-language corpus in the Phoenix-2014T layout "
                    "(OUT/annotations/*.corpus.csv, OUT/frames/<split>/<name>/images*.png), for demos and tests.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--out", required=True, help="corpus folder to create; an existing demo corpus there is "
                        "replaced once the new one is complete, any other existing folder only with --overwrite")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace --out even if it is not a demo corpus (its files are lost)")
    parser.add_argument("--seed", type=_count(0), default=1, help="same seed and sizes give identical files")
    parser.add_argument("--train", type=_count(1), default=320, help="training utterances")
    parser.add_argument("--dev", type=_count(0), default=40, help="development utterances")
    parser.add_argument("--test", type=_count(0), default=40, help="test utterances")
    parser.add_argument("--frame-size", type=_count(16), nargs=2, default=[64, 64], metavar=("H", "W"),
                        help="frame height and width in pixels")
    parser.add_argument("--glosses", nargs="+", choices=GLOSSES, default=list(GLOSSES), metavar="GLOSS",
                        help="write sentences of these glosses only (a small vocabulary learnt in seconds, for tests)")
    parser.add_argument("--no-glosses", dest="write_glosses", action="store_false",
                        help="write the annotations as a corpus without glosses: OUT/annotations/<split>.tsv with "
                             "id, video, text, signer (How2Sign-style), for slt-binarise tsv --no-glosses; the clips "
                             "and texts are those of the same seed with glosses")
    parser.add_argument("--no-poses", dest="poses", action="store_false",
                        help="write no keypoints (OUT/poses/<split>/<name>.pose); the frames are the same either way")
    parser.add_argument("--workers", type=_count(1), default=min(2, os.cpu_count() or 1),
                        help="processes that render and write frames (the output does not depend on it)")
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> None:
    args = parse_args(argv)
    sizes = {"train": args.train, "dev": args.dev, "test": args.test}
    start = time.perf_counter()
    try:
        frames = build(args.out, args.seed, sizes, *args.frame_size, workers=args.workers, overwrite=args.overwrite,
                       glosses=args.glosses, write_glosses=args.write_glosses, poses=args.poses)
    except (FileExistsError, ValueError) as e:
        sys.exit(f"slt-make-demo-data: error: {e}")
    counts = ", ".join(f"{split} {sizes[split]} ({frames[split]} frames)" for split in SPLITS)
    print(f"wrote {os.path.abspath(args.out)}: {counts}; {len(args.glosses)} glosses"
          f"{'' if args.write_glosses else ' (not annotated)'}; "
          f"{time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
