"""slt-extract-pose: videos and frame folders → ``.pose`` files (pose-format) of MediaPipe Holistic keypoints.

Each input (a video file, a folder of frame images, or a folder of videos, each of which is one input) becomes
``OUT/<name>.pose``, named after the video file's stem or the frame folder: the ids slt-binarise's ``--poses``
folder expects. MediaPipe Holistic runs through pose-format's own runner (``load_holistic``, in a worker process:
tools/holistic_worker.py), so the file is what
pose-format's ``video_to_pose`` writes for the same frames: body (33), face (468), both hands (21 each) and the
body's world landmarks; ``--reduce`` keeps pose-format's ``reduce_holistic`` subset (178 points, legs and the inner
face mesh dropped).

MediaPipe 0.10.14 is the pinned version: its wheels (Python 3.9–3.12) carry the Holistic models inside the package,
so nothing is downloaded at run time (the 1.x wheels no longer ship the legacy Holistic solution), and with
``--no-deps`` and its real needs (absl-py, attrs, flatbuffers, protobuf<5, OpenCV, matplotlib; not jax) it runs
with numpy 2. ``make install-pose`` installs it so.

Resumable: each file is written under a temporary name and renamed when complete, and an input whose ``.pose``
exists is skipped (``--overwrite`` redoes it), so a killed run goes on where it stopped. An input that cannot be
read is one line on stderr naming it; the others are still extracted, and the exit status is 1.
"""

import argparse
import json
import os
import subprocess
import sys
import time
from typing import Iterable, List, Optional, Tuple

import numpy as np
from tqdm import tqdm

from slt_plugins.data.video_io import ClipReadError, is_video_file, iter_clip_frames, list_frame_files

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # where ``tools`` is importable from
DEFAULT_FPS = 25.0
MEDIAPIPE_PIN = "mediapipe==0.10.14"


class ExtractError(ValueError):
    """One input that cannot be extracted; the message names it."""


def mediapipe_site() -> str:
    """The folder that holds MediaPipe and its protobuf (tools/holistic_worker.py says why it is apart)."""
    return os.environ.get("SLT_MEDIAPIPE_SITE") or os.path.join(sys.prefix, "pose-site")


class HolisticWorker:
    """tools/holistic_worker.py in its own process, with MediaPipe's folder first on its path; one per run."""

    def __init__(self):
        site = mediapipe_site()
        path = [site] if os.path.isdir(site) else []
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(path + [ROOT] + [p for p in [os.environ.get(
            "PYTHONPATH")] if p]), GLOG_minloglevel="2", TF_CPP_MIN_LOG_LEVEL="2")
        self.process = subprocess.Popen([sys.executable, "-m", "fairseq_slt.tools.holistic_worker"], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env,
                                        cwd=ROOT)
        reply = self._reply()
        if "ready" not in reply:
            self.close()
            raise ExtractError(f"slt-extract-pose needs MediaPipe Holistic ({reply.get('fatal', 'no reply')}); "
                               f"make install-pose puts {MEDIAPIPE_PIN} with protobuf<5 into {site}")

    def _reply(self) -> dict:
        line = self.process.stdout.readline()
        return json.loads(line) if line.strip() else {"fatal": "the worker stopped"}

    def run(self, frames_path: str, out: str, fps: float, reduce: bool, model_complexity: int) -> int:
        job = {"frames": frames_path, "out": out, "fps": fps, "reduce": reduce, "model_complexity": model_complexity}
        self.process.stdin.write(json.dumps(job) + "\n")
        self.process.stdin.flush()
        reply = self._reply()
        if "frames" not in reply:
            raise ExtractError(reply.get("error") or reply.get("fatal"))
        return reply["frames"]

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.stdin.close()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()


def expand_inputs(inputs: Iterable[str]) -> Tuple[List[Tuple[str, str]], List[str]]:
    """(name, source) of each clip, a folder of videos giving one per video; and one line per input that is none."""
    clips, problems = [], []
    for path in inputs:
        if os.path.isfile(path):
            if is_video_file(path):
                clips.append((os.path.splitext(os.path.basename(path))[0], path))
            else:
                problems.append(f"{path}: not a video file (by its extension) nor a frame folder")
        elif os.path.isdir(path):
            videos = sorted(f for f in os.listdir(path) if is_video_file(os.path.join(path, f)))
            if list_frame_files(path):
                clips.append((os.path.basename(os.path.normpath(path)), path))
            elif videos:
                clips += [(os.path.splitext(v)[0], os.path.join(path, v)) for v in videos]
            else:
                problems.append(f"{path}: a folder with neither frame images nor videos")
        else:
            problems.append(f"{path}: no such file or folder")
    seen = {}
    unique = []
    for name, source in clips:
        if name in seen:
            problems.append(f"{source}: its output {name}.pose would be {seen[name]}'s too; rename one")
            continue
        seen[name] = source
        unique.append((name, source))
    return unique, problems


def video_fps(source: str, default: float) -> float:
    """The video's frame rate (PyAV), else ``default`` (frame folders have none)."""
    if not os.path.isfile(source):
        return default
    import av

    try:
        with av.open(source) as container:
            rate = container.streams.video[0].average_rate
        return float(rate) if rate else default
    except (av.error.FFmpegError, IndexError, ValueError):
        return default


def extract_one(worker: HolisticWorker, source: str, target: str, fps: float, reduce: bool,
                model_complexity: int) -> int:
    """Holistic keypoints of ``source`` → ``target`` (atomically); returns the frame count."""
    try:
        frames = np.stack(list(iter_clip_frames(source)))
    except ClipReadError as e:
        raise ExtractError(str(e)) from None
    except ValueError:  # nothing to stack, or frames of different sizes (video_io checks the sizes)
        raise ExtractError(f"{source}: no frames could be decoded") from None
    temporary = f"{target}.tmp-{os.getpid()}"
    try:
        np.save(f"{temporary}.npy", frames, allow_pickle=False)
        try:
            count = worker.run(f"{temporary}.npy", temporary, video_fps(source, fps), reduce, model_complexity)
        except ExtractError as e:
            raise ExtractError(f"{source}: MediaPipe Holistic failed ({e})") from None
        os.replace(temporary, target)
    finally:
        for leftover in (temporary, f"{temporary}.npy"):
            if os.path.exists(leftover):
                os.remove(leftover)
    return count


def remove_leftovers(out: str) -> None:
    """Temporary files of earlier runs that were killed (their process is gone)."""
    for name in os.listdir(out):
        head, sep, pid = name.removesuffix(".npy").rpartition(".tmp-")
        if sep and head.endswith(".pose") and pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
            os.remove(os.path.join(out, name))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def extract(inputs: List[str], out: str, fps: float = DEFAULT_FPS, reduce: bool = False, model_complexity: int = 1,
            overwrite: bool = False, progress: Optional[bool] = None) -> Tuple[int, int, List[str]]:
    """Extract every input into ``out``; returns (extracted, skipped as done, one line per failed input)."""
    clips, problems = expand_inputs(inputs)
    os.makedirs(out, exist_ok=True)
    remove_leftovers(out)
    done = skipped = 0
    todo = [(name, source) for name, source in clips
            if overwrite or not os.path.exists(os.path.join(out, f"{name}.pose"))]
    skipped = len(clips) - len(todo)
    if not todo:
        return 0, skipped, problems
    worker = HolisticWorker()
    try:
        bar = tqdm(todo, desc="poses", unit="clip", disable=None if progress is None else not progress)
        for name, source in bar:
            bar.set_postfix_str(name[-30:])
            try:
                extract_one(worker, source, os.path.join(out, f"{name}.pose"), fps, reduce, model_complexity)
                done += 1
            except ExtractError as e:
                problems.append(str(e))
                if worker.process.poll() is not None:  # the worker died (out of memory?): a new one
                    worker = HolisticWorker()
    finally:
        worker.close()
    return done, skipped, problems


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="slt-extract-pose", description=__doc__.split("\n\n")[0])
    parser.add_argument("inputs", nargs="+", metavar="INPUT",
                        help="video files, frame folders, or folders of videos")
    parser.add_argument("--out", required=True, help="folder for the .pose files (<name>.pose per input)")
    parser.add_argument("--fps", type=float, default=DEFAULT_FPS,
                        help="frame rate recorded for frame folders (videos keep their own) (default: 25)")
    parser.add_argument("--reduce", action="store_true",
                        help="keep pose-format's reduce_holistic points (178): no legs, the face's contours only")
    parser.add_argument("--model-complexity", type=int, choices=(0, 1, 2), default=1,
                        help="MediaPipe Holistic's pose model: 0 fastest, 2 most accurate (default: 1)")
    parser.add_argument("--overwrite", action="store_true", help="extract inputs whose .pose exists again")
    args = parser.parse_args(argv)
    started = time.time()
    try:
        done, skipped, problems = extract(args.inputs, args.out, args.fps, args.reduce, args.model_complexity,
                                          args.overwrite)
    except ExtractError as e:  # MediaPipe missing: the same for every input
        print(f"slt-extract-pose: error: {e}", file=sys.stderr)
        return 2
    for problem in problems:
        print(f"slt-extract-pose: error: {problem}", file=sys.stderr)
    print(f"{args.out}: {done} extracted, {skipped} already there, {len(problems)} failed; "
          f"{time.time() - started:.1f} s")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
