"""A Python interface to a model bundle (written by slt-export), in the spirit of fairseq's hub interface::

    from slt_plugins.translator import SignTranslator
    model = SignTranslator.from_pretrained("bundles/phoenix-s2t")
    model.translate("my_video.mp4")     # text (sign2text; gloss2text takes a gloss string)
    model.recognize("frames/folder")    # glosses (sign2gloss or sign2text)
    model.run(["a.mp4", "b/", "data_bins/x/frames.lmdb:ID"])   # one Result per input, errors included
    model.plot("my_video.mp4", "alignment.png")   # CTC gloss posteriors under the frames (sign2gloss, sign2text)

Inputs are video files (decoded with PyAV), frame folders, or ``STORE.lmdb:ID`` clips of a binarised dataset. Each
is preprocessed as in evaluation: frames resized to the bundle's shorter side (as slt-binarise stored them), centre
crop, frame count rounded up to a multiple of 4. Decoding is the same as fairseq-generate's: fairseq's beam search
for text, CTC prefix beam search for glosses.
"""

import json
import os
from argparse import Namespace
from typing import List, NamedTuple, Optional

import torch

BUNDLE_FORMAT, BUNDLE_VERSION = "fairseq-slt-bundle", 1
MIN_FRAMES = 4  # one output step of the visual backbones (T/4)


class BundleError(ValueError):
    """A folder that is not a bundle this version can read."""


class InputError(ValueError):
    """One input that cannot be translated (the others of a batch still are)."""


class Result(NamedTuple):
    input: str
    glosses: Optional[str] = None
    text: Optional[str] = None
    error: Optional[str] = None


class Alignment(NamedTuple):
    """One clip as the model recognised it: what :meth:`SignTranslator.alignment` returns and plots draw."""
    input: str
    frames: torch.Tensor  # uint8 T×3×crop×crop, as the model saw them
    log_probs: torch.Tensor  # T'×V CTC log-posteriors of the glosses, T' = T/4 steps
    tokens: List[int]  # the decoded glosses, ids of SignTranslator.gloss_dictionary
    glosses: str
    text: Optional[str] = None


def read_bundle_info(bundle: str) -> dict:
    path = os.path.join(bundle, "bundle.json")
    if not os.path.isfile(path):
        raise BundleError(f"{bundle}: no bundle.json; make a bundle with slt-export")
    with open(path, encoding="utf-8") as f:
        info = json.load(f)
    if info.get("format") != BUNDLE_FORMAT or info.get("version") != BUNDLE_VERSION:
        raise BundleError(f"{bundle}: bundle format {info.get('format')!r} version {info.get('version')!r}; this "
                          f"toolkit reads {BUNDLE_FORMAT!r} version {BUNDLE_VERSION}: export it again with slt-export")
    if info.get("task") not in ("sign2gloss", "gloss2text", "sign2text"):
        raise BundleError(f"{bundle}: a bundle of task {info.get('task')!r}, which slt-translate cannot run")
    return info


class SignTranslator:
    def __init__(self, bundle: str, info: dict, task, model, device: torch.device, beam: int = 5,
                 gloss_beam: int = 5):
        self.bundle, self.info, self.task, self.model, self.device = bundle, info, task, model, device
        self.kind = info["task"]
        # sign2gloss decodes glosses only, with the CTC beam; the others search text with ``beam``
        args = Namespace(beam=gloss_beam) if self.kind == "sign2gloss" else Namespace(beam=beam, gloss_beam=gloss_beam)
        self.generator = task.build_generator([model], args)
        if self.kind != "sign2gloss":
            self.bpe = task.build_bpe(None)

    @classmethod
    def from_pretrained(cls, bundle: str, device: Optional[str] = None, **kwargs) -> "SignTranslator":
        """Load a bundle on ``device`` (default: the GPU when there is one, else the CPU)."""
        from fairseq import checkpoint_utils

        info = read_bundle_info(bundle)
        overrides = {"data": bundle}
        if os.path.isdir(os.path.join(bundle, "vocab")):
            overrides["vocab"] = os.path.join(bundle, "vocab")
        models, _, task = checkpoint_utils.load_model_ensemble_and_task(
            [os.path.join(bundle, "model.pt")], arg_overrides=overrides)
        device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        return cls(bundle, info, task, models[0].eval().to(device), device, **kwargs)

    # --- inputs ------------------------------------------------------------------------------------------------

    def load_clip(self, source: str) -> torch.Tensor:
        """A video file, frame folder or ``STORE.lmdb:ID`` → uint8 T×3×crop×crop, as evaluation sees it."""
        from slt_plugins.data.lmdb_store import FrameStore, StoreError
        from slt_plugins.data.video_io import ClipReadError, read_clip
        from slt_plugins.data.video_transforms import ClipTransform, ClipTransformConfig

        try:
            if ".lmdb:" in source:
                store, key = source.split(".lmdb:", 1)
                frames = FrameStore(store + ".lmdb").frames(key)
            elif os.path.exists(source):
                frames = read_clip(source, self.info.get("shorter_side"))
            else:
                raise InputError(f"{source}: no such file or folder")
        except (ClipReadError, StoreError) as e:
            raise InputError(str(e)) from None
        if len(frames) < MIN_FRAMES:
            raise InputError(f"{source}: {len(frames)} frames; the model needs at least {MIN_FRAMES}")
        transform = ClipTransform(ClipTransformConfig(crop_size=self.info["crop_size"]), train=False)
        return transform(frames[transform.frame_indices(len(frames))])

    # --- decoding ----------------------------------------------------------------------------------------------

    @property
    def gloss_dictionary(self):
        """The CTC classifier's vocabulary (blank '<s>' = 0); None for gloss2text, which has no classifier."""
        return {"sign2gloss": self.task.target_dictionary, "sign2text": getattr(self.task, "ctc_dict", None)}.get(
            self.kind)

    @torch.no_grad()
    def _decode_clips(self, clips: List[torch.Tensor]):
        """(glosses, text, gloss ids, T'×V CTC log-posteriors) per clip, all from one encoder pass."""
        from slt_plugins.data.sign_dataset import collate_clips

        frames, lengths = collate_clips(clips)
        net_input = {"frames": frames.to(self.device), "frame_lengths": lengths.to(self.device)}
        if self.kind == "sign2gloss":
            posteriors, hypos, ctc = self.generator.posteriors(self.model, net_input), None, self.generator
        else:  # the gloss logits of the encoder pass the beam search made
            hypos = self.generator.generate([self.model], {"id": torch.arange(len(clips)), "nsentences": len(clips),
                                                           "net_input": net_input})
            posteriors, ctc = self.generator.gloss_posteriors(), self.generator.ctc
        decoded = []
        for i, clip_log_probs in enumerate(posteriors):
            clip_log_probs = clip_log_probs.clone()  # a copy: an Alignment kept does not hold the whole batch
            tokens = ctc.decode(clip_log_probs)[0]["tokens"]
            text = None if hypos is None else self._text(hypos[i][0]["tokens"])
            decoded.append((self.gloss_dictionary.string(tokens), text, tokens.tolist(), clip_log_probs))
        return decoded

    @torch.no_grad()
    def _translate_glosses(self, lines: List[str]):
        from fairseq.data import data_utils

        sources = [self.task.encode_glosses(line) for line in lines]
        sample = {"id": torch.arange(len(lines)), "net_input": {
            "src_tokens": data_utils.collate_tokens(sources, self.task.gloss_dict.pad()).to(self.device),
            "src_lengths": torch.tensor([len(s) for s in sources], device=self.device)}}
        return [(line, self._text(h[0]["tokens"])) for line, h in zip(lines, self.generator.generate([self.model],
                                                                                                    sample))]

    def _text(self, tokens: torch.Tensor) -> str:
        text = self.task.target_dictionary.string(tokens.int().cpu(), extra_symbols_to_ignore=[self.generator.eos])
        return self.bpe.decode(text)

    def run(self, inputs: List[str], batch_size: int = 8, progress=None, on_alignment=None) -> List[Result]:
        """Every input's glosses and text, in order; an input that fails gets its error, the rest go on. Inputs are
        read ``batch_size`` at a time, so memory holds one batch of clips however many inputs there are.
        ``on_alignment(position, Alignment)`` is called for each clip decoded, as its batch is done (to plot it)."""
        if on_alignment is not None:
            self._needs_video()
        decode = self._translate_glosses if self.kind == "gloss2text" else self._decode_clips
        results: List[Result] = []
        for start in range(0, len(inputs), batch_size):
            chunk = inputs[start: start + batch_size]
            items, errors = [], {}  # (position in the chunk, clip or gloss line); position → error
            for k, source in enumerate(chunk):
                try:
                    items.append((k, source if self.kind == "gloss2text" else self.load_clip(source)))
                except InputError as e:
                    errors[k] = str(e)
            decoded = dict(zip([k for k, _ in items], decode([x for _, x in items]))) if items else {}
            results += [Result(source, error=errors[k]) if k in errors else Result(source, *decoded[k][:2])
                        for k, source in enumerate(chunk)]
            if on_alignment is not None:
                for k, clip in items:
                    glosses, text, tokens, log_probs = decoded[k]
                    on_alignment(start + k, Alignment(chunk[k], clip, log_probs, tokens, glosses, text))
            if progress is not None:
                progress(len(chunk))
        return results

    def translate(self, source: str) -> str:
        """The text of one input (sign2text: a video or frames; gloss2text: a gloss string)."""
        if self.kind == "sign2gloss":
            raise BundleError(f"{self.bundle} is a sign2gloss bundle: it recognises glosses, use recognize()")
        return self._one(source).text

    def recognize(self, source: str) -> str:
        """The glosses of one input (sign2gloss or sign2text)."""
        if self.kind == "gloss2text":
            raise BundleError(f"{self.bundle} is a gloss2text bundle: it reads glosses, use translate()")
        return self._one(source).glosses

    def alignment(self, source: str) -> Alignment:
        """One clip's frames, CTC gloss posteriors and decoding (sign2gloss or sign2text), from the pass that
        decodes it."""
        found = []
        self._one(source, on_alignment=lambda k, alignment: found.append(alignment))
        return found[0]

    def plot(self, source: str, path: str, **kwargs) -> Alignment:
        """Draw one clip's gloss posteriors under its frames into the PNG ``path`` (see :meth:`plot_alignment`)."""
        alignment = self.alignment(source)
        self.plot_alignment(alignment, path, **kwargs)
        return alignment

    def plot_alignment(self, alignment: Alignment, path: str, **kwargs) -> str:
        """Write the PNG of an alignment; ``kwargs`` go to :func:`slt_plugins.alignment_plot.plot_alignment`
        (title, thumbnails, width_px, height_px, dpi …). The default title is the input and its text."""
        from slt_plugins.alignment_plot import plot_alignment

        kwargs.setdefault("title", alignment.input if alignment.text is None else
                          f"{alignment.input}: \"{alignment.text}\"")
        return plot_alignment(alignment.frames, alignment.log_probs, self.gloss_dictionary, alignment.tokens, path,
                              **kwargs)

    def _needs_video(self) -> None:
        if self.kind == "gloss2text":
            raise BundleError(f"{self.bundle} is a gloss2text bundle: it reads glosses, so there is no video and no "
                              f"gloss posteriors to align or plot")

    def _one(self, source: str, **kwargs) -> Result:
        result = self.run([source], **kwargs)[0]
        if result.error:
            raise InputError(result.error)
        return result
