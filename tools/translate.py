"""slt-translate: run a model bundle (made by slt-export) on your own videos, frame folders or stored clips.

    slt-translate --model BUNDLE my_video.mp4 frames/folder/ data_bins/x/frames.lmdb:ID
    slt-translate --model G2T_BUNDLE "REGEN MORGEN NORD"       # a gloss2text bundle reads gloss strings

Prints, per input, the recognised glosses and the text (``--json``: one JSON object per line). An input that cannot
be read is reported on one line and the others are still translated; the exit status is 1 when any failed.
"""

import argparse
import json
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
    args = p.parse_args(argv)

    import slt_plugins  # noqa: F401  (registers the tasks and models)
    from slt_plugins.translator import BundleError, SignTranslator

    try:
        model = SignTranslator.from_pretrained(args.model, device=args.device, beam=args.beam,
                                               gloss_beam=args.gloss_beam)
    except (BundleError, OSError) as e:
        print(f"slt-translate: {e}", file=sys.stderr)
        return 1
    quiet = args.quiet or len(args.inputs) < 2 or not sys.stderr.isatty()
    with tqdm(total=len(args.inputs), unit="input", disable=quiet, file=sys.stderr) as bar:
        results = model.run(args.inputs, batch_size=args.batch_size, progress=bar.update)
    for r in results:
        if r.error:
            print(f"slt-translate: {r.error}", file=sys.stderr)
        if args.json:
            print(json.dumps(r._asdict(), ensure_ascii=False))
        elif not r.error:
            print(r.input)
            if r.glosses is not None and model.kind != "gloss2text":
                print(f"  glosses: {r.glosses}")
            if r.text is not None:
                print(f"  text:    {r.text}")
    return 1 if any(r.error for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
