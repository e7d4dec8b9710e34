"""Serving a bundle to many users at once, without the web page: what slt-serve's page calls.

* :func:`check_upload` refuses a file that is empty, too large, not a video, shorter than the model's minimum or
  longer than the time limit, with one line for the page, before any frame is decoded: the duration is read from the
  packets' timestamps (demuxing only), so a file whose header lies about its length is still caught.
* :class:`ServedModel` runs one request at a time per model: each model has its own single worker thread, whose
  queue is the line of waiting requests, so two users never hold two clips and two forward passes of one model in
  memory. A :class:`Job` that is cancelled while it waits never runs; one that runs stops at the model's next
  module (a forward pre-hook raises :class:`Cancelled`), so a long clip's beam search does not run on for nobody.
* An upload is deleted when its job ends, whichever way it ends (answered, refused, failed or cancelled), unless
  another job still reads the same file (:class:`Uploads`: Gradio stores uploads by content, so two users who send
  the same bytes share one file).

The answer is ``SignTranslator.run``'s for that one file, as ``slt-translate`` prints it.
"""

import os
import sys
import threading
import time
import uuid
from concurrent.futures import CancelledError, Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable, Dict, NamedTuple, Optional

from slt_plugins.translator import MIN_FRAMES, SignTranslator

MB = 1 << 20


class UploadError(ValueError):
    """A request the page answers with one line: the upload's name, what is wrong and what to do."""


class Cancelled(Exception):
    """Raised inside the model's forward pass when the request that runs it has been cancelled."""


@dataclass
class UploadLimits:
    max_mb: float = 50.0
    max_seconds: float = 60.0


def check_upload(path: str, name: str, limits: UploadLimits) -> float:
    """The video's duration in seconds, or :class:`UploadError` naming ``name`` (the file as the user called it)."""
    import av

    if not os.path.isfile(path):
        raise UploadError(f"{name} is no longer on the server (an upload is deleted after its request): upload it "
                          f"again")
    size = os.path.getsize(path)
    if size == 0:
        raise UploadError(f"{name} is empty (0 bytes): upload a video file")
    if size > limits.max_mb * MB:
        raise UploadError(f"{name} is {size / MB:.1f} MB, over the limit of {limits.max_mb:g} MB: upload a shorter "
                          f"or smaller video")
    try:
        container = av.open(path)
    except (av.error.FFmpegError, OSError, UnicodeDecodeError, ValueError):
        raise UploadError(f"{name} is not a video that FFmpeg can read: upload a video file (mp4, webm, mov, avi, "
                          f"mkv …)") from None
    with container:
        if not container.streams.video:
            found = ", ".join(sorted({s.type for s in container.streams})) or "no stream"
            raise UploadError(f"{name} has no video stream ({found}): upload a video file")
        stream = container.streams.video[0]
        frames, first, seconds = 0, None, 0.0
        try:
            for packet in container.demux(stream):
                if packet.size == 0:  # the demuxer's final empty packet
                    continue
                frames += 1
                if packet.pts is not None and packet.time_base is not None:
                    first = packet.pts if first is None else min(first, packet.pts)
                    seconds = max(seconds, float((packet.pts - first) * packet.time_base))
                elif stream.average_rate:
                    seconds = frames / float(stream.average_rate)
                if seconds > limits.max_seconds:
                    raise UploadError(f"{name} is longer than the limit of {limits.max_seconds:g} s: upload a "
                                      f"shorter clip (one sentence)")
        except av.error.FFmpegError as e:
            raise UploadError(f"{name} is damaged after {frames} frames ({e.strerror or type(e).__name__}): "
                              f"upload the video again or another one") from None
    if frames < MIN_FRAMES:
        raise UploadError(f"{name} has {frames} frame{'s' * (frames != 1)}; the model needs at least {MIN_FRAMES}: "
                          f"upload a longer clip")
    return seconds


class Answer(NamedTuple):
    glosses: Optional[str]
    text: Optional[str]
    picture: Optional[str]  # the alignment PNG in the server's temporary folder (the caller deletes it), or None
    seconds: float  # reading the video and the model, as slt-translate would spend them
    picture_seconds: float
    waited_seconds: float


class Job:
    """One request in a model's line: :meth:`cancel` stops it wherever it is."""

    def __init__(self, served: "ServedModel"):
        self.served = served
        self.cancelled = threading.Event()
        self.submitted = time.perf_counter()
        self.future: Future = None  # set by ServedModel.submit

    def ahead(self) -> int:
        """Requests of this model that run before this one (0: it runs now or is done)."""
        return self.served.ahead(self)

    def cancel(self) -> None:
        self.cancelled.set()
        self.future.cancel()  # a job still waiting never starts


class ServedModel:
    """A :class:`SignTranslator` behind a line of requests: one runs at a time, in the order they came."""

    def __init__(self, name: str, translator: SignTranslator, workdir: str, limits: UploadLimits):
        if not translator.handler.reads_video:
            raise ValueError(f"{translator.bundle} is a {translator.kind} bundle: it reads glosses, not video; "
                             f"serve a sign2gloss or sign2text bundle")
        self.name, self.translator, self.workdir, self.limits = name, translator, workdir, limits
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"slt-serve-{name}")
        self._lock = threading.Lock()
        self._line = []  # jobs submitted and not yet finished, in order
        self._running: Optional[Job] = None
        for module in translator.model.modules():
            module.register_forward_pre_hook(self._stop_if_cancelled)

    def _stop_if_cancelled(self, module, inputs):
        running = self._running
        if running is not None and running.cancelled.is_set():
            raise Cancelled()

    def ahead(self, job: Job) -> int:
        with self._lock:
            return self._line.index(job) if job in self._line else 0

    def waiting(self) -> int:
        with self._lock:
            return len(self._line)

    def submit(self, path: str, name: str, done: Optional[Callable[[], None]] = None) -> Job:
        """Queue the video ``path`` (called ``name`` on the page); ``done()`` is called when the job ends, before its
        answer is handed out, whichever way it ends (to delete the upload)."""
        job = Job(self)
        with self._lock:
            self._line.append(job)
        job.future = self._worker.submit(self._run, job, path, name, done)
        # a job cancelled before it started never runs _run: it ends here
        job.future.add_done_callback(lambda future: future.cancelled() and self._finished(job, done))
        return job

    def _run(self, job: Job, path: str, name: str, done: Optional[Callable[[], None]]) -> Answer:
        try:
            return self._answer(job, path, name)
        finally:  # before the answer is handed out: whoever reads it finds the upload gone
            self._finished(job, done)

    def _finished(self, job: Job, done: Optional[Callable[[], None]]) -> None:
        with self._lock:
            if job in self._line:
                self._line.remove(job)
        if done is not None:
            done()

    def _answer(self, job: Job, path: str, name: str) -> Answer:
        waited = time.perf_counter() - job.submitted
        if job.cancelled.is_set():
            raise Cancelled()
        started = time.perf_counter()
        check_upload(path, name, self.limits)
        found = []
        self._running = job
        try:
            result = self.translator.run([path], batch_size=1, on_alignment=lambda k, a: found.append(a))[0]
        finally:
            self._running = None
        if result.error:
            raise UploadError(result.error.replace(path, name))
        seconds = time.perf_counter() - started
        if job.cancelled.is_set():
            raise Cancelled()
        started = time.perf_counter()
        picture = os.path.join(self.workdir, f"alignment-{uuid.uuid4().hex}.png")
        try:
            self.translator.plot_alignment(found[0]._replace(input=name), picture)
        except (OSError, ValueError) as e:  # the answer stands without its picture
            print(f"slt-serve: {name}: no alignment picture ({e})", file=sys.stderr, flush=True)
            picture = None
        return Answer(result.glosses, result.text, picture, seconds, time.perf_counter() - started, waited)

    def close(self) -> None:
        with self._lock:
            line = list(self._line)
        for job in line:
            job.cancel()
        self._worker.shutdown(wait=True, cancel_futures=True)


class Uploads:
    """Uploads in use: a file is deleted when the last job that reads it ends."""

    def __init__(self, workdir: str):
        self.workdir = workdir
        self._lock = threading.Lock()
        self._readers: Dict[str, int] = {}

    def hold(self, path: str) -> Callable[[], None]:
        """Count one more job reading ``path``; returns what that job calls when it ends."""
        with self._lock:
            self._readers[path] = self._readers.get(path, 0) + 1
        return lambda: self._release(path)

    def _release(self, path: str) -> None:
        with self._lock:
            self._readers[path] -= 1
            last = self._readers[path] == 0
            if last:
                del self._readers[path]
                remove_upload(path, self.workdir)


def remove_upload(path: str, workdir: str) -> None:
    """Delete an uploaded file, and the folder the upload made for it inside ``workdir`` when that is left empty."""
    try:
        os.remove(path)
    except OSError:
        return
    folder, root = os.path.realpath(os.path.dirname(path)), os.path.realpath(workdir)
    if folder != root and folder.startswith(root + os.sep):
        try:
            os.rmdir(folder)
        except OSError:  # not empty: another upload of the same content
            pass


def result_of(job: Job) -> Answer:
    """The job's answer; :class:`UploadError` or :class:`Cancelled` as it ended."""
    try:
        return job.future.result()
    except CancelledError:
        raise Cancelled() from None
