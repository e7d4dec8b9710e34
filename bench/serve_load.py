"""Benchmark: slt-serve under load, 20 requests from 4 clients at once against the local server.

Starts ``slt-serve`` on a bundle (``--model``; by default a tiny Sign2Gloss model trained for a few updates on the
generated demo corpus and exported, which takes about a minute) and sends one clip (``--clip``; by default a test clip
of that corpus as mp4) through Gradio's own client, as a browser's page does: upload, then the ``translate`` event.

* baseline: the same number of requests from one client, one after another;
* load: ``--clients`` clients at once, ``--requests`` in all.

It prints, for both, the wall time, the latency per request (median and worst), whether every request was answered
with the same glosses, and the server's resident memory (sampled every 20 ms from /proc): after the warm-up request,
and the peak of each phase. The server runs one request at a time per model, so the load's peak memory should stay
near the baseline's (``--max-memory-ratio``, default 1.25); the load's wall time near the baseline's too (the same
work in one line), while each request waits longer. Exit status 1 when a request is not answered or memory grows
past the ratio.

    python bench/serve_load.py [--model BUNDLE] [--clip VIDEO] [--clients 4] [--requests 20]
"""

import argparse
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)  # run from anywhere

from fairseq_slt.tools.serve import model_names, wait_for_page  # noqa: E402


def tiny_bundle_and_clip(root: str):
    """A Sign2Gloss bundle trained for a few updates on a generated corpus, and one of its test clips as mp4."""
    import av
    import numpy as np

    from slt_plugins.data.lmdb_store import FrameStore
    from slt_plugins.data.manifest import read_manifest
    from fairseq_slt.tools.binarise import main as binarise
    from fairseq_slt.tools.make_demo_data import main as make_demo_data

    bin_dir = os.path.dirname(sys.executable)
    make_demo_data(["--out", f"{root}/raw", "--train", "12", "--dev", "4", "--test", "4", "--frame-size", "32", "32",
                    "--workers", "1"])
    binarise(["phoenix-2014t", "--annotations", f"{root}/raw/annotations", "--frames", f"{root}/raw/frames",
              "--out", f"{root}/bin", "--frame-size", "0", "--workers", "1"])
    env = dict(os.environ, PYTHONPATH=REPO)
    subprocess.run([os.path.join(bin_dir, "fairseq-train"), f"{root}/bin", "--user-dir", "slt_plugins", "--task",
                    "sign2gloss", "--arch", "s3d_encoder_tiny", "--crop-size", "32", "--criterion", "gloss_ctc",
                    "--optimizer", "adam", "--lr", "2e-3", "--batch-size", "4", "--max-update", "4",
                    "--valid-subset", "dev", "--no-progress-bar", "--num-workers", "0", "--no-epoch-checkpoints",
                    "--save-dir", f"{root}/s2g"], cwd=REPO, env=env, check=True, capture_output=True)
    subprocess.run([sys.executable, "-m", "fairseq_slt.tools.export", "--checkpoint", f"{root}/s2g/checkpoint_last.pt", "--out",
                    f"{root}/bundle"], cwd=REPO, env=env, check=True, capture_output=True)
    frames = FrameStore(f"{root}/bin/frames.lmdb").frames(read_manifest(f"{root}/bin/test.tsv")[0].id)
    clip = f"{root}/clip.mp4"
    with av.open(clip, "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.height, stream.width = frames.shape[1:3]
        stream.pix_fmt = "yuv420p"
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")))
        container.mux(stream.encode())
    return f"{root}/bundle", clip


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


class MemoryWatch:
    """The peak resident memory of a process, sampled every 20 ms in a thread."""

    def __init__(self, pid: int):
        self.pid, self.peak, self._stop = pid, 0.0, threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def _watch(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_mb(self.pid))
            time.sleep(0.02)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def phase(url: str, model: str, clip: str, clients: int, requests: int, pid: int) -> dict:
    """``requests`` requests spread over ``clients`` clients at once; each client one Gradio client."""
    from gradio_client import Client, handle_file

    shares = [requests // clients + (k < requests % clients) for k in range(clients)]
    answers, latencies, errors = [], [], []
    lock = threading.Lock()

    def client(n):
        try:
            gradio = Client(url, verbose=False)
            for _ in range(n):
                started = time.perf_counter()
                message, glosses, *_ = gradio.predict(model, handle_file(clip), api_name="/translate")
                with lock:
                    latencies.append(time.perf_counter() - started)
                    answers.append((message.startswith("Done"), glosses))
        except Exception as e:  # noqa: BLE001  (counted: a request not answered)
            with lock:
                errors.append(f"{type(e).__name__}: {e}")

    threads = [threading.Thread(target=client, args=(n,)) for n in shares]
    with MemoryWatch(pid) as memory:
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        wall = time.perf_counter() - started
    return {"wall": wall, "answers": answers, "errors": errors, "latencies": sorted(latencies),
            "peak_mb": memory.peak}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", help="a bundle (default: a tiny demo-trained Sign2Gloss bundle made here)")
    p.add_argument("--clip", help="the video each request sends (default: a demo test clip)")
    p.add_argument("--clients", type=int, default=4)
    p.add_argument("--requests", type=int, default=20)
    p.add_argument("--max-memory-ratio", type=float, default=1.25)
    args = p.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="serve-load-") as root:
        model, clip = args.model, args.clip
        if not (model and clip):
            print("making a tiny demo bundle and clip …", flush=True)
            made_model, made_clip = tiny_bundle_and_clip(root)
            model, clip = model or made_model, clip or made_clip
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        url = f"http://127.0.0.1:{port}/"
        log = open(os.path.join(root, "serve.log"), "w")
        server = subprocess.Popen([sys.executable, "-m", "fairseq_slt.tools.serve", "--model", model, "--port", str(port)],
                                  cwd=REPO, env=dict(os.environ, PYTHONPATH=REPO), stdout=log,
                                  stderr=subprocess.STDOUT)
        try:
            if not wait_for_page(url, server):
                print(open(log.name).read()[-3000:])
                return 1
            started_mb = rss_mb(server.pid)
            name = model_names([model])[0]  # the page's model chooser takes the bundle's folder name
            warm = phase(url, name, clip, 1, 1, server.pid)
            warm_mb = rss_mb(server.pid)
            baseline = phase(url, name, clip, 1, args.requests, server.pid)
            load = phase(url, name, clip, args.clients, args.requests, server.pid)
        finally:
            server.terminate()
            server.wait(timeout=60)
            log.close()

    expected = warm["answers"][0][1] if warm["answers"] else None
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, load "
          f"{open('/proc/loadavg').read().split()[0]}; model {model}; clip {clip}")
    print(f"server memory: {started_mb:.0f} MB at start, {warm_mb:.0f} MB after one request")
    ok = bool(warm["answers"]) and warm["answers"][0][0]
    for name, result, clients in (("baseline", baseline, 1), ("load", load, args.clients)):
        answered = sum(done and glosses == expected for done, glosses in result["answers"])
        lat = result["latencies"]
        print(f"{name:8s}: {args.requests} requests from {clients} client{'s' * (clients != 1)}: {answered} answered "
              f"alike, {len(result['errors'])} errors; wall {result['wall']:.2f} s; latency median "
              f"{statistics.median(lat) if lat else float('nan'):.2f} s, worst {max(lat) if lat else float('nan'):.2f} "
              f"s; peak memory {result['peak_mb']:.0f} MB")
        for error in result["errors"][:3]:
            print(f"  error: {error}")
        ok &= answered == args.requests
    wall_ratio = load["wall"] / baseline["wall"]
    memory_ratio = load["peak_mb"] / max(baseline["peak_mb"], warm_mb)
    print(f"load / baseline: wall time {wall_ratio:.2f}x, peak memory {memory_ratio:.2f}x "
          f"(bound {args.max_memory_ratio}x)")
    ok &= memory_ratio <= args.max_memory_ratio
    print("all answered, memory bounded" if ok else "FAILED: a request not answered, or memory past the bound")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
