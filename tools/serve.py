"""slt-serve: a web page for trying model bundles on a video, in a browser.

    slt-serve --model bundles/phoenix-s2t                        # then open http://127.0.0.1:7860
    slt-serve --model bundles/s2t --model bundles/s2g --examples clips/ --max-mb 20 --max-seconds 30

Upload a video, record one with the webcam (where the browser allows it) or pick an example clip (the videos of
``--examples DIR``), and the page shows the recognised glosses, the translation, the alignment picture (the CTC gloss
posteriors under the frames, as ``slt-translate --plot`` draws it) and the time taken. With several ``--model`` the
page has a model chooser. The glosses and text are ``slt-translate``'s for the same file and options.

A file that is not a video, has fewer than 4 frames, weighs more than ``--max-mb`` or lasts longer than
``--max-seconds`` gets one line on the page; the server goes on serving. Requests run one at a time per model, in
the order they came (the page says how many are ahead); Stop cancels a request, waiting or running. Uploads are
deleted when their request ends; everything the server writes (uploads, pictures, the multipart spool, matplotlib's
cache) lies in one temporary folder, deleted at exit. The server listens on 127.0.0.1 unless ``--host`` says
otherwise (``--host 0.0.0.0`` opens it to the network: anyone who reaches the port can use the models).

Needs the optional extra ``web`` (``pip install -e .[web]``: Gradio).
"""

import argparse
import filecmp
import os
import shutil
import signal
import sys
import tempfile
import time
import urllib.request
from typing import Dict, List, Optional

from fairseq_slt.tools.serving import MB, Cancelled, ServedModel, UploadError, UploadLimits, Uploads, result_of

POLL_SECONDS = 0.25  # how often a waiting request updates its line on the page (and notices a Stop)


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="slt-serve", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="\n\n".join(__doc__.split("\n\n")[1:]))
    p.add_argument("--model", action="append", required=True, metavar="BUNDLE",
                   help="a sign2gloss or sign2text bundle folder written by slt-export (repeat for several)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=7860)
    p.add_argument("--examples", metavar="DIR", help="a folder of example video clips shown on the page")
    p.add_argument("--max-mb", type=float, default=50.0, help="largest upload in MB (default 50)")
    p.add_argument("--max-seconds", type=float, default=60.0, help="longest video in seconds (default 60)")
    p.add_argument("--beam", type=int, default=5, help="beam of the text search (as slt-translate)")
    p.add_argument("--gloss-beam", type=int, default=5, help="CTC prefix beam for the glosses (as slt-translate)")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 … (default: a GPU when there is one)")
    return p.parse_args(argv)


def wait_for_page(url: str, server, seconds: float = 180) -> bool:
    """Whether a started slt-serve ``server`` (a ``subprocess.Popen``) answers ``url`` within ``seconds`` (False as
    soon as it exits): what its load bench and its browser test wait for before their first request."""
    deadline = time.time() + seconds
    while True:
        try:
            urllib.request.urlopen(url, timeout=5).close()
            return True
        except OSError:
            if server.poll() is not None or time.time() > deadline:
                return False
            time.sleep(0.5)


def model_names(bundles: List[str]) -> List[str]:
    """The bundles' folder names, made unique with a number where two are alike."""
    names = []
    for bundle in bundles:
        base = os.path.basename(os.path.normpath(bundle)) or "model"
        name, k = base, 2
        while name in names:
            name, k = f"{base}-{k}", k + 1
        names.append(name)
    return names


def example_clips(folder: Optional[str]) -> List[str]:
    from slt_plugins.data.video_io import is_video_file

    if not folder:
        return []
    if not os.path.isdir(folder):
        raise ValueError(f"--examples {folder}: no such folder")
    clips = sorted(os.path.join(folder, n) for n in os.listdir(folder) if is_video_file(os.path.join(folder, n)))
    if not clips:
        raise ValueError(f"--examples {folder}: no video files in it")
    return clips


class Page:
    """The page's handler: one request → the model's line → what the page shows, step by step."""

    def __init__(self, models: Dict[str, ServedModel], examples: List[str], uploads: Uploads):
        self.models, self.examples, self.uploads = models, examples, uploads

    def is_example(self, path: str) -> bool:
        """An example's copy in Gradio's cache (kept: the page offers it again), not an upload to delete."""
        name = os.path.basename(path)
        return any(os.path.basename(e) == name and filecmp.cmp(e, path, shallow=False) for e in self.examples)

    async def translate(self, choice: str, video: Optional[str]):
        """An async generator of page updates: the line, then the answer or one message."""
        import asyncio

        from PIL import Image

        message, glosses, text, timing, picture = self.outputs
        if not video:
            yield {message: "Upload a video, record one or pick an example first."}
            return
        served = self.models.get(choice) or next(iter(self.models.values()))
        name = os.path.basename(video)
        job = served.submit(video, name, done=None if self.is_example(video) else self.uploads.hold(video))
        done = asyncio.wrap_future(job.future)
        done.add_done_callback(lambda f: f.cancelled() or f.exception())  # read here: result_of(job) raises it
        try:
            while not done.done():
                ahead = job.ahead()
                yield {message: f"Waiting: {ahead} request{'s' * (ahead != 1)} ahead of yours for {served.name} …"
                       if ahead else f"Translating {name} with {served.name} …",
                       glosses: "", text: "", timing: "", picture: None}
                await asyncio.wait({done}, timeout=POLL_SECONDS)
            answer = result_of(job)
        except UploadError as e:
            yield {message: f"**Cannot translate:** {e}", glosses: "", text: "", timing: "", picture: None}
            return
        except Cancelled:
            yield {message: "Stopped.", glosses: "", text: "", timing: "", picture: None}
            return
        except Exception as e:  # noqa: BLE001  (the page says what went wrong; the server goes on serving)
            first = str(e).splitlines()[0].replace(video, name) if str(e) else ""
            print(f"slt-serve: {name}: {type(e).__name__}: {first}", file=sys.stderr, flush=True)
            yield {message: f"**Failed:** {name}: {type(e).__name__}: {first}", glosses: "", text: "", timing: "",
                   picture: None}
            return
        finally:
            if not job.future.done():  # Stop pressed, or the page went away: stop the work
                job.cancel()
        image = None
        if answer.picture:
            with Image.open(answer.picture) as image:
                image.load()
            os.remove(answer.picture)
        kind = served.translator.kind
        yield {message: f"Done: {name} ({served.name}, {kind}).",
               glosses: answer.glosses or "",
               text: answer.text if answer.text is not None else "(a sign2gloss model: glosses only)",
               timing: f"**{answer.seconds:.2f} s** to read the video and run the model; the picture "
                       f"{answer.picture_seconds:.2f} s; waited {answer.waited_seconds:.2f} s in line",
               picture: image}

    def build(self, limits: UploadLimits):
        import gradio as gr

        names = list(self.models)
        with gr.Blocks(title="fairseq-slt: sign language translation", delete_cache=(600, 600)) as page:
            gr.Markdown("## Sign language recognition and translation\nUpload a video of one signed sentence, record "
                        "one with the webcam, or pick an example; then press **Translate**. Videos up to "
                        f"{limits.max_mb:g} MB and {limits.max_seconds:g} s; the upload is deleted after use.")
            with gr.Row():
                with gr.Column():
                    choice = gr.Dropdown(choices=[(f"{n} ({self.models[n].translator.kind})", n) for n in names],
                                         value=names[0], label="Model", visible=len(names) > 1, elem_id="model")
                    video = gr.Video(sources=["upload", "webcam"], include_audio=True, label="Video", height=360,
                                     elem_id="video")
                    with gr.Row():
                        run = gr.Button("Translate", variant="primary", elem_id="translate")
                        stop = gr.Button("Stop", variant="stop", elem_id="stop")
                    if self.examples:
                        gr.Examples([[e] for e in self.examples], inputs=[video], label="Example clips")
                with gr.Column():
                    message = gr.Markdown(elem_id="message")
                    glosses = gr.Textbox(label="Recognised glosses", interactive=False, elem_id="glosses")
                    text = gr.Textbox(label="Translation", interactive=False, elem_id="text")
                    timing = gr.Markdown(elem_id="timing")
                    picture = gr.Image(label="Alignment: gloss posteriors under the frames", type="pil",
                                       format="png", interactive=False, elem_id="alignment")
            self.outputs = (message, glosses, text, timing, picture)
            # no concurrency limit here: each model's own line (ServedModel) runs its requests one at a time
            event = run.click(self.translate, [choice, video], list(self.outputs), concurrency_limit=None,
                              api_name="translate")
            stop.click(None, cancels=[event])
        return page


def _interrupt(signum, frame):
    raise KeyboardInterrupt()


def _ignore_signals() -> None:
    try:
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, signal.SIG_IGN)
    except ValueError:  # not the main thread: nothing of ours to guard
        pass


def main(argv=None) -> int:
    args = parse_args(argv)
    limits = UploadLimits(max_mb=args.max_mb, max_seconds=args.max_seconds)
    workdir = tempfile.mkdtemp(prefix="slt-serve-")
    # everything written while serving lands in workdir: Gradio's uploads and cache, the multipart spool, matplotlib
    os.environ["GRADIO_TEMP_DIR"] = workdir
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    os.environ.setdefault("MPLCONFIGDIR", os.path.join(workdir, "matplotlib"))
    os.environ["TMPDIR"] = tempfile.tempdir = workdir
    models = {}
    try:
        try:
            import gradio  # noqa: F401
        except ImportError:
            print("slt-serve: Gradio is not installed; install the web extra: pip install -e '.[web]'",
                  file=sys.stderr)
            return 1
        import slt_plugins  # noqa: F401  (registers the tasks and models)
        from slt_plugins.safe_checkpoint import CheckpointError
        from slt_plugins.translator import BundleError, SignTranslator

        try:
            examples = example_clips(args.examples)
            for name, bundle in zip(model_names(args.model), args.model):
                translator = SignTranslator.from_pretrained(bundle, device=args.device, beam=args.beam,
                                                            gloss_beam=args.gloss_beam)
                models[name] = ServedModel(name, translator, workdir, limits)
        except (BundleError, CheckpointError, OSError, ValueError) as e:
            print(f"slt-serve: {e}", file=sys.stderr)
            return 1
        page = Page(models, examples, Uploads(workdir)).build(limits)
        page.queue(default_concurrency_limit=None)
        # SIGTERM ends the server as Ctrl-C does, so that the temporary folder is deleted
        signal.signal(signal.SIGTERM, _interrupt)
        print(f"slt-serve: {len(models)} model{'s' * (len(models) != 1)} ({', '.join(models)}); temporary files in "
              f"{workdir} (deleted at exit)", flush=True)
        page.launch(server_name=args.host, server_port=args.port, max_file_size=int(args.max_mb * MB),
                    show_error=False, quiet=False, allowed_paths=[], inbrowser=False)
        return 0
    except KeyboardInterrupt:
        return 0
    finally:
        _ignore_signals()  # a second Ctrl-C or SIGTERM (a wrapper forwarding one) must not cut the clean-up short
        for served in models.values():
            served.close()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
