"""The MediaPipe side of slt-extract-pose, run as its own process: ``python -m fairseq_slt.tools.holistic_worker``.

MediaPipe 0.10.14 needs protobuf < 5, while the toolkit's sentencepiece reads its model with protobuf 7, and one
process can hold only one. So MediaPipe lives in a folder of its own (``make install-pose`` puts it in
``.venv/pose-site``; ``SLT_MEDIAPIPE_SITE`` names another), put first on this process's path, and this module
imports neither fairseq nor the toolkit's plugins: only numpy, pose-format and MediaPipe.

Protocol: one JSON job per line on stdin, ``{"frames": "F.npy", "out": "P.pose", "fps": 25.0, "reduce": false,
"model_complexity": 1}`` (frames uint8 T×H×W×3, read without pickle), one JSON line back per job, ``{"frames": T}``
or ``{"error": "…"}``; the Holistic graph is built once and kept for every job.
"""

import json
import sys


def run_job(job: dict) -> dict:
    import numpy as np
    from pose_format.utils.holistic import load_holistic

    frames = np.load(job["frames"], allow_pickle=False)
    height, width = frames.shape[1:3]
    pose = load_holistic(list(frames), fps=float(job["fps"]), width=width, height=height,
                         progress=False, additional_holistic_config={"model_complexity": int(job["model_complexity"])})
    if job.get("reduce"):
        from pose_format.utils.generic import reduce_holistic

        pose = reduce_holistic(pose)
    with open(job["out"], "wb") as f:
        pose.write(f)
    return {"frames": int(len(frames))}


def main() -> int:
    try:
        import mediapipe  # noqa: F401
        from pose_format.utils.holistic import load_holistic  # noqa: F401
    except Exception as e:  # noqa: BLE001  (an ImportError, or a protobuf that does not fit: AttributeError …)
        print(json.dumps({"fatal": f"{type(e).__name__}: {e}"}), flush=True)
        return 1
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        try:
            reply = run_job(json.loads(line))
        except Exception as e:  # noqa: BLE001  (one bad clip is that clip's error line, the worker goes on)
            reply = {"error": f"{type(e).__name__}: {e}"}
        print(json.dumps(reply), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
