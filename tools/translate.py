"""slt-translate: run a model bundle (made by slt-export) on your own videos, frame folders or stored clips.

    slt-translate --model BUNDLE my_video.mp4 frames/folder/ data_bins/x/frames.lmdb:ID
    slt-translate --model G2T_BUNDLE "REGEN MORGEN NORD"       # a gloss2text bundle reads gloss strings
    slt-translate --model BUNDLE my_video.mp4 --plot alignment.png

Prints, per input, the recognised glosses and the text (``--json``: one JSON object per line). An input that cannot
be read is reported on one line and the others are still translated; the exit status is 1 when any failed. A frame
that declares more than 4096×4096 pixels, or a clip of more than 2^30 pixels in all, is refused before it is decoded
(environment SLT_MAX_FRAME_PIXELS, SLT_MAX_CLIP_PIXELS to change the limits).

``--plot FILE.png`` draws each input's CTC gloss posteriors over time under thumbnails of its frames, the decoded
glosses marked (sign2gloss and sign2text bundles); for a model trained without glosses (no gloss classifier), the
translator's cross-attention of its first decoding steps over the clip's time steps. With one input the picture is FILE.png; with several it is
FILE-1.png, FILE-2.png …, numbered by the input's position on the command line. An input that fails has no picture.
"""

import argparse
import json
import os
import sys

from tqdm import tqdm


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="slt-translate", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="\n\n".join(__doc__.split("\n\n")[1:]))
    p.add_argument("--model", required=True, help="a bundle folder written by slt-export")
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="video file, frame folder, STORE.lmdb:ID or glosses")
    p.add_argument("--beam", type=int, default=5, help="beam of the text search")
    p.add_argument("--gloss-beam", type=int, default=5, help="CTC prefix beam for the glosses (1: greedy)")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 … (default: a GPU when there is one)")
    p.add_argument("--json", action="store_true", help="one JSON object per input and line")
    p.add_argument("--quiet", action="store_true", help="no progress bar (there is none when stderr is no terminal)")
    p.add_argument("--plot", metavar="FILE.png", help="draw the gloss posteriors (without a gloss classifier: the "
                   "translator's attention) under the frames into FILE.png (several inputs: FILE-1.png, FILE-2.png … "
                   "by position; see below)")
    args = p.parse_args(argv)

    import slt_plugins  # noqa: F401  (registers the tasks and models)
    from slt_plugins.safe_checkpoint import CheckpointError
    from slt_plugins.translator import BundleError, SignTranslator

    try:
        model = SignTranslator.from_pretrained(args.model, device=args.device, beam=args.beam,
                                               gloss_beam=args.gloss_beam)
    except (BundleError, CheckpointError, OSError) as e:
        print(f"slt-translate: {e}", file=sys.stderr)
        return 1
    if args.plot and model.kind == "gloss2text":
        print(f"slt-translate: --plot draws the gloss posteriors of a video; {args.model} is a gloss2text bundle, "
              f"it reads glosses", file=sys.stderr)
        return 1
    plots, plot_errors = {}, {}  # input position → picture written, or why not

    def plot(k, alignment):
        path = plot_path(args.plot, k, len(args.inputs))
        try:
            plots[k] = model.plot_alignment(alignment, path)
        except (OSError, ValueError) as e:
            plot_errors[k] = f"--plot {path}: {e}"

    quiet = args.quiet or len(args.inputs) < 2 or not sys.stderr.isatty()
    with tqdm(total=len(args.inputs), unit="input", disable=quiet, file=sys.stderr) as bar:
        results = run_each(model, args.inputs, args.batch_size, bar.update, plot if args.plot else None)
    for k, r in enumerate(results):
        for error in (r.error, plot_errors.get(k)):
            if error:
                print(f"slt-translate: {error}", file=sys.stderr)
        if args.json:
            print(json.dumps(dict(r._asdict(), **({"plot": plots.get(k)} if args.plot else {})), ensure_ascii=False))
        elif not r.error:
            print(r.input)
            if r.glosses is not None and model.kind != "gloss2text":
                print(f"  glosses: {r.glosses}")
            if r.text is not None:
                print(f"  text:    {r.text}")
            if k in plots:
                print(f"  plot:    {plots[k]}")
    return 1 if any(r.error for r in results) or plot_errors else 0


def run_each(model, inputs, batch_size, progress, on_alignment):
    """``model.run`` a batch at a time; a batch that fails as a whole (an input no reader anticipated) is run again
    one input at a time, so that only the inputs that fail alone get an error line and the others are translated."""
    from slt_plugins.translator import Result

    results = []
    for start in range(0, len(inputs), batch_size):
        chunk = inputs[start: start + batch_size]
        shifted = None if on_alignment is None else (lambda s: lambda k, a: on_alignment(s + k, a))
        try:
            results += model.run(chunk, batch_size=batch_size, on_alignment=shifted and shifted(start))
        except Exception:  # noqa: BLE001  (rerun alone: the error then belongs to one input)
            for k, source in enumerate(chunk):
                try:
                    results += model.run([source], batch_size=1, on_alignment=shifted and shifted(start + k))
                except Exception as e:  # noqa: BLE001
                    message = str(e).splitlines()[0] if str(e) else ""
                    results.append(Result(source, error=f"{source}: {type(e).__name__}: {message}"))
        progress(len(chunk))
    return results


def plot_path(plot: str, position: int, count: int) -> str:
    """FILE.png for a single input, FILE-<n>.png (n from 1) for the n-th of several."""
    if count == 1:
        return plot
    stem, ext = os.path.splitext(plot)
    return f"{stem}-{position + 1}{ext or '.png'}"


if __name__ == "__main__":
    sys.exit(main())
