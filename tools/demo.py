"""slt-demo: the whole pipeline on the generated demo corpus, through the same commands a user types.

make the corpus (slt-make-demo-data) → binarise it (slt-binarise) → train Sign2Gloss and Gloss2Text
(fairseq-hydra-train with ``configs/demo``) → extract the Sign2Gloss backbone's features (slt-extract-features) →
train Sign2Text from both checkpoints on those features → decode the test split (fairseq-generate) → print the
WER, BLEU-4 and ROUGE-L of each stage → export the Sign2Text model as a bundle (slt-export), write one test clip as
a video file and translate it with slt-translate, drawing its alignment picture. Each step's output lands in
``--workdir``; a step whose output is already there is skipped, so a second run only evaluates (``--fresh`` starts
over).

On a terminal each step keeps one status line up to date: the training epoch k/N, the updates, the time spent and
left, the last dev metric; the clips done of binarising, feature extraction and decoding. Its full output goes to
``--workdir/logs/<step>.log``. Not on a terminal (a log file, CI), it prints one line as each step starts and ends.
"""

import argparse
import concurrent.futures
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from typing import Callable, List, Optional, Tuple, TypeVar

from fairseq_slt.tools.progress import FORCE_VARIABLE

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.dirname(sys.executable)
DEMO_CONFIGS = os.path.join(REPO, "configs", "demo")
FRAME_SIZE = 0  # slt-binarise keeps the corpus's 64×64 frames (configs/demo/s2g.yaml crops 64×64)
T = TypeVar("T")
U = TypeVar("U")


class StepFailed(RuntimeError):
    pass


def shown(path: str) -> str:
    """A path as the user reads it best: relative to the current folder when it lies inside it."""
    relative = os.path.relpath(path)
    return path if relative.startswith("..") else relative


def in_repo(path: str) -> str:
    relative = os.path.relpath(path, REPO)
    return path if relative.startswith("..") else relative


def clock(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 60}:{seconds % 60:02d}"


class CountWatch:
    """Progress of a tool that counts work items: the last ``k/N`` (tqdm's bar) or ``k / N`` (fairseq's simple
    progress) in its output."""

    pattern = re.compile(r"(?<![\d.])(\d+) ?/ ?(\d+)(?![\d.])")

    def __init__(self, unit: str = "clips"):
        self.unit = unit
        self.done = self.total = 0

    def feed(self, line: str) -> None:
        found = self.pattern.findall(line)
        if found:
            self.done, self.total = (int(x) for x in found[-1])

    def fraction(self) -> Optional[float]:
        return self.done / self.total if self.total else None

    def describe(self) -> str:
        return f"{self.done}/{self.total} {self.unit}" if self.total else ""


class TrainWatch:
    """Progress of fairseq-train from its simple log format: ``epoch 003:     20 / 40 …`` lines each
    ``log_interval`` updates, and ``valid on 'dev' subset | … | wer 12.3 |`` after each epoch."""

    inner = re.compile(r"epoch (\d+):\s+(\d+) / (\d+)")
    valid = re.compile(r"epoch (\d+) \| valid on '[^']+' subset \|(.*)")

    def __init__(self, max_epoch: int, metric: str):
        self.max_epoch, self.metric = max_epoch, metric
        self.epoch, self.update, self.per_epoch = 1, 0, 0
        self.dev = ""

    def feed(self, line: str) -> None:
        inner = self.inner.search(line)
        if inner:
            self.epoch, self.update, self.per_epoch = (int(x) for x in inner.groups())
            return
        valid = self.valid.search(line)
        if valid:
            self.epoch, self.update = int(valid.group(1)), self.per_epoch
            value = re.search(rf"\| {self.metric} ([\d.]+)", valid.group(2) + " |")
            if value:
                self.dev = f"dev {self.metric.upper() if self.metric == 'wer' else self.metric} {value.group(1)}"

    def fraction(self) -> Optional[float]:
        if not self.per_epoch:
            return None
        return ((self.epoch - 1) * self.per_epoch + self.update) / (self.max_epoch * self.per_epoch)

    def describe(self) -> str:
        parts = [f"epoch {self.epoch}/{self.max_epoch}"]
        if self.per_epoch:
            parts.append(f"update {self.update}/{self.per_epoch}")
        return ", ".join(parts + ([self.dev] if self.dev else []))


class Estimate:
    """Time left from the rate since the first progress seen: a tool's start-up (imports, loading data) is not
    work done, and counting it would inflate the estimate of the work left."""

    def __init__(self):
        self.first = None  # (time, fraction) of the first progress report

    def left(self, now: float, fraction: Optional[float]) -> Optional[float]:
        if fraction is None:
            return None
        if self.first is None:
            self.first = (now, fraction)
        since, done = now - self.first[0], fraction - self.first[1]
        return since / done * (1 - fraction) if done > 0 and since > 0 else None


class Status:
    """One line on the terminal, rewritten in place at most twice a second; silent when stdout is no terminal."""

    def __init__(self, live: bool):
        self.live = live
        self.shown = 0.0
        self.width = 0
        self.lock = threading.Lock()  # the output reader and the clock both update the line

    def show(self, text: str, force: bool = False) -> None:
        with self.lock:
            if not self.live or (not force and time.time() - self.shown < 0.5):
                return
            self.shown = time.time()
            columns = shutil.get_terminal_size((100, 20)).columns - 1
            text = text[:columns]
            sys.stdout.write("\r" + text.ljust(self.width))
            sys.stdout.flush()
            self.width = len(text)

    def clear(self) -> None:
        with self.lock:
            self._clear()

    def say(self, text: str) -> None:
        """Print a line of its own: the status line steps aside and is redrawn at the next update."""
        with self.lock:
            self._clear()
            print(text, flush=True)

    def _clear(self) -> None:
        if self.live and self.width:
            sys.stdout.write("\r" + " " * self.width + "\r")
            sys.stdout.flush()
            self.width = 0


class Demo:
    def __init__(self, work: str, live: bool):
        self.work = work
        self.logs = os.path.join(work, "logs")
        self.status = Status(live)
        os.makedirs(self.logs, exist_ok=True)

    def path(self, *parts: str) -> str:
        return os.path.join(self.work, *parts)

    def run(self, step: str, cmd: List[str], watch=None, threads: Optional[int] = None) -> str:
        """Run one command, its output (stdout and stderr) into ``logs/<step>.log`` and, through ``watch``, into
        the status line; returns the output. ``threads``: its intra-op threads (OMP_NUM_THREADS). In a thread of
        :meth:`beside`, the step keeps off the status line and only says when it starts and ends."""
        log_path = os.path.join(self.logs, f"{step}.log")
        words = " ".join(os.path.basename(c) if i == 0 else shown(c) if os.path.isabs(c) else c
                         for i, c in enumerate(cmd))
        self.status.say(f"[demo] {step}: {words}")
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        if threads is not None:
            env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = str(threads)
        shows = self.status.live and threading.current_thread() is threading.main_thread()
        if shows:
            env[FORCE_VARIABLE] = "1"  # the tools' bars come through the pipe; we draw them on our status line
        started = time.time()
        eta = Estimate()
        lines: List[str] = []
        with open(log_path, "w", encoding="utf-8") as log:
            proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
            done = threading.Event()
            clock_thread = threading.Thread(target=self._clock, args=(step, started, watch, eta, done), daemon=True)
            if shows:  # the elapsed time moves on while a step prints nothing (the corpus, start-up)
                clock_thread.start()
            for line in _lines(proc.stdout):
                if not line.endswith("\r"):  # a bar's intermediate states are not kept
                    log.write(line)
                    lines.append(line)
                if watch is not None:
                    watch.feed(line)
                if shows:
                    self._tick(step, started, watch, eta)
            proc.wait()
            done.set()
            if clock_thread.is_alive():
                clock_thread.join()
        output = "".join(lines)
        if proc.returncode != 0:
            tail = "".join(lines[-15:])
            raise StepFailed(f"step '{step}' failed (exit {proc.returncode}); last lines of {log_path}:\n{tail}")
        self.status.say(f"[demo] {step}: done in {time.time() - started:.0f} s")
        return output

    def beside(self, main: Callable[[], T], side: Callable[[], U]) -> Tuple[T, U]:
        """``main()`` here and ``side()`` in a thread beside it, each on one core: the demo's long training runs
        one intra-op thread about as fast as two (its small convolutions barely use a second one), so the steps
        that do not wait for it run on the other core. Returns both results; a failure of either is raised once
        both have ended."""
        with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="demo-side") as pool:
            side_result = pool.submit(side)
            result = main()  # a failure here is raised once the side has ended (the pool waits for it)
        return result, side_result.result()

    def _clock(self, step: str, started: float, watch, eta: "Estimate", done: threading.Event) -> None:
        while not done.wait(1.0):
            self._tick(step, started, watch, eta)

    def _tick(self, step: str, started: float, watch, eta: "Estimate") -> None:
        now = time.time()
        parts = [f"[demo] {step}:"]
        if watch is not None and watch.describe():
            parts.append(watch.describe() + ",")
        parts.append(f"{clock(now - started)} elapsed")
        left = eta.left(now, watch.fraction() if watch is not None else None)
        if left is not None:
            parts.append(f"~{clock(left)} left")
        self.status.show(" ".join(parts))

    def train(self, step: str, config: str, data: str, save_dir: str, extra: List[str], metric: str,
              threads: Optional[int] = None) -> None:
        if os.path.isfile(os.path.join(save_dir, "checkpoint_best.pt")):
            self.status.say(f"[demo] {step}: {shown(save_dir)}/checkpoint_best.pt exists, skipped")
            return
        watch = TrainWatch(max_epoch(config, extra), metric)
        self.run(step, [script("fairseq-hydra-train"), "--config-dir", DEMO_CONFIGS, "--config-name", config,
                        f"task.data={data}", f"checkpoint.save_dir={save_dir}", *extra], watch, threads)


def _lines(stream) -> "iter":
    """Text lines of a byte stream, a carriage return ending one as a newline does (tqdm redraws with it)."""
    buffer = b""
    while True:
        chunk = stream.read1(65536)
        if not chunk:
            break
        buffer += chunk
        parts = re.split(rb"(?<=[\r\n])", buffer)
        buffer = parts.pop()
        for part in parts:
            yield part.decode("utf-8", "replace")
    if buffer:
        yield buffer.decode("utf-8", "replace")


def max_epoch(config: str, overrides: List[str]) -> int:
    for item in overrides:
        if item.startswith("optimization.max_epoch="):
            return int(item.split("=", 1)[1])
    from omegaconf import OmegaConf

    return int(OmegaConf.load(os.path.join(DEMO_CONFIGS, f"{config}.yaml")).optimization.max_epoch)


def bfloat16_is_faster() -> bool:
    """The probe of Sign2Gloss's task (``task.bf16_autocast``), on one thread as its training runs on one where
    bfloat16 wins: there one thread is about as fast as two (8.5 and 8.0 s an epoch on a 2-core AMD EPYC), so the
    other core is left to Gloss2Text; in float32 a second thread pays (13.1 against 8.6 s an epoch there)."""
    import torch

    from slt_plugins.tasks.bf16_autocast import time_cpu_products

    torch.set_num_threads(1)  # this process runs no other torch work
    float32_ms, bfloat16_ms = time_cpu_products()
    return bfloat16_ms < float32_ms


def script(name: str) -> str:
    return os.path.join(BIN, name)


def metric(output: str, name: str) -> str:
    """The last figure after ``name`` (Sign2Text's gloss WER: the last running total is the run's)."""
    found = re.findall(re.escape(name) + r" ([\d.]+)", output)
    if not found:
        raise StepFailed(f"no '{name}' figure in the decoding output")
    return found[-1]


def first_test_clip(corpus: str):
    """Id, glosses and text of the corpus's first test clip, from its Phoenix-style annotations."""
    path = os.path.join(corpus, "annotations", "PHOENIX-2014-T.test.corpus.csv")
    with open(path, encoding="utf-8") as f:
        fields = f.read().splitlines()[1].split("|")
    return fields[0], fields[5], fields[6]


def write_example_video(corpus: str, key: str, out: str) -> None:
    """The clip's frames as the corpus generator drew them (64×64), enlarged to 256×256, as an H.264 video: what a
    user would hand to slt-translate."""
    import av
    from PIL import Image

    folder = os.path.join(corpus, "frames", "test", key)
    names = sorted(n for n in os.listdir(folder) if n.endswith(".png"))
    tmp = out + ".tmp.mp4"
    with av.open(tmp, "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 256, 256, "yuv420p"
        stream.options = {"crf": "16"}
        for name in names:
            image = Image.open(os.path.join(folder, name)).convert("RGB").resize((256, 256), Image.BICUBIC)
            container.mux(stream.encode(av.VideoFrame.from_image(image)))
        container.mux(stream.encode())
    os.replace(tmp, out)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="slt-demo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", default="demo", help="where the corpus, data and checkpoints go (default: demo)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--fresh", action="store_true", help="delete --workdir first")
    args = parser.parse_args(argv)

    work = os.path.abspath(args.workdir)
    if args.fresh:
        shutil.rmtree(work, ignore_errors=True)
    demo = Demo(work, live=sys.stdout.isatty())
    raw, data = demo.path("corpus"), demo.path("data")
    s2g_ckpt, g2t_ckpt, s2t_ckpt = (demo.path(stage, "checkpoint_best.pt") for stage in ("s2g", "g2t", "s2t"))
    started = time.time()
    # timed while the corpus is drawn: importing the plugin and two products take a few seconds
    bfloat16 = concurrent.futures.ThreadPoolExecutor(1).submit(bfloat16_is_faster)
    try:
        if not os.path.isdir(os.path.join(raw, "annotations")):
            demo.run("corpus", [script("slt-make-demo-data"), "--out", raw, "--seed", str(args.seed)])
        if not os.path.isfile(os.path.join(data, "meta.json")):
            demo.run("binarise", [script("slt-binarise"), "phoenix-2014t", "--annotations",
                                  os.path.join(raw, "annotations"), "--frames", os.path.join(raw, "frames"),
                                  "--out", data, "--frame-size", str(FRAME_SIZE)], CountWatch())
        seed = [f"common.seed={args.seed}"]
        # generation reads in the main process (--num-workers 0): it is quick, and fairseq-generate leaves its
        # loader's worker running at exit, where we saw a rare abort ("terminate called without an active exception")
        generate = [script("fairseq-generate"), data, "--user-dir", "slt_plugins", "--gen-subset", "test", "--beam",
                    "5", "--batch-size", "8", "--num-workers", "0", "--log-format", "simple", "--log-interval", "1"]

        # two cores: Sign2Gloss trains on one (on both in float32: bfloat16_is_faster), Gloss2Text trains and
        # decodes beside it (Demo.beside)
        def gloss2text() -> str:
            demo.train("gloss2text", "g2t", data, demo.path("g2t"), seed, "loss", threads=1)
            return demo.run("gloss2text-test", generate + [
                "--task", "gloss2text", "--path", g2t_ckpt, "--scoring", "translation_metrics"], CountWatch("batches"),
                threads=1)

        def sign2gloss() -> None:
            # float32 said once here, so that the training's own probe cannot decide otherwise on two threads
            threads, precision = (1, []) if bfloat16.result() else (2, ["task.bf16_autocast=false"])
            demo.train("sign2gloss", "s2g", data, demo.path("s2g"), seed + precision, "wer", threads=threads)

        _, g2t = demo.beside(sign2gloss, gloss2text)
        _, s2g = demo.beside(
            lambda: demo.run("features", [script("slt-extract-features"), "--checkpoint", s2g_ckpt, "--data", data,
                                          "--batch-size", "8", "--num-workers", "0"], CountWatch(), threads=1),
            lambda: demo.run("sign2gloss-test", generate + [
                "--task", "sign2gloss", "--path", s2g_ckpt, "--scoring", "wer"], CountWatch("batches"), threads=1))
        demo.train("sign2text", "s2t", data, demo.path("s2t"), seed + [
            f"model.sign2gloss_checkpoint={s2g_ckpt}", f"model.gloss2text_checkpoint={g2t_ckpt}"], "bleu")

        # the next step, beside the last decoding: the model as a bundle, run on a video file as a user would run
        # it on their own
        bundle, video, picture = demo.path("bundle"), demo.path("example.mp4"), demo.path("example-alignment.png")
        key, glosses, text = first_test_clip(raw)

        def export_and_translate() -> str:
            demo.run("export", [script("slt-export"), "--checkpoint", s2t_ckpt, "--backbone-checkpoint", s2g_ckpt,
                                "--out", bundle], threads=1)
            write_example_video(raw, key, video)
            # relative to the repository (the tools' working folder) where it can: the picture's title names the
            # video
            return demo.run("translate", [script("slt-translate"), "--model", bundle, in_repo(video), "--plot",
                                          picture], threads=1)

        s2t, translated = demo.beside(lambda: demo.run("sign2text-test", generate + [
            "--task", "sign2text", "--input", "features", "--features", "cnn_tconv", "--path", s2t_ckpt,
            "--scoring", "translation_metrics"], CountWatch("batches"), threads=1), export_and_translate)
        results = (f"[demo]   Sign2Gloss  WER {metric(s2g, 'WER:')} %\n"
                   f"[demo]   Gloss2Text  BLEU-4 {metric(g2t, 'BLEU-4')}  ROUGE-L {metric(g2t, 'ROUGE-L')}  "
                   "(reference glosses in)\n"
                   f"[demo]   Sign2Text   BLEU-4 {metric(s2t, 'BLEU-4')}  ROUGE-L {metric(s2t, 'ROUGE-L')}  "
                   f"WER {metric(s2t, 'Gloss WER so far:')} %  (video features in)")
    except StepFailed as e:
        demo.status.clear()
        print(f"[demo] {e}", file=sys.stderr)
        return 1

    print(f"\n[demo] demo corpus, test split ({time.time() - started:.0f} s; logs and hypotheses in "
          f"{shown(demo.logs)})")
    print(results)
    print(f"\n[demo] {shown(video)} (test clip {key}) through the exported model:")
    print("\n".join("[demo]   " + line.strip() for line in translated.splitlines()[1:] if line.strip()))
    print(f"[demo]   reference glosses: {glosses}")
    print(f"[demo]   reference text:    {text}")
    print(f"[demo] the model bundle: {shown(bundle)}/   its alignment picture: {shown(picture)}")
    print("[demo] translate your own video with it:")
    print(f"  {shown(script('slt-translate'))} --model {shown(bundle)} YOUR_VIDEO.mp4 --plot alignment.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
