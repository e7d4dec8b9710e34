"""A Python interface to a model bundle (written by slt-export), in the spirit of fairseq's hub interface::

    from slt_plugins.translator import SignTranslator
    model = SignTranslator.from_pretrained("bundles/phoenix-s2t")
    model.translate("my_video.mp4")     # text (sign2text; gloss2text takes a gloss string)
    model.recognize("frames/folder")    # glosses (sign2gloss or sign2text)
    model.run(["a.mp4", "b/", "data_bins/x/frames.lmdb:ID"])   # one Result per input, errors included
    model.plot("my_video.mp4", "alignment.png")   # CTC gloss posteriors under the frames (sign2gloss, sign2text)

A sign2text bundle of a model trained without glosses (``slt-binarise --no-glosses``) has no gloss classifier: it
translates, recognises nothing, and its plot is the translator's cross-attention of the first decoding steps over the
clip's time steps.

Inputs are video files (decoded with PyAV), frame folders, or ``STORE.lmdb:ID`` clips of a binarised dataset. Each
is preprocessed as in evaluation: frames resized to the bundle's shorter side (as slt-binarise stored them), centre
crop, frame count rounded up to a multiple of 4. A bundle of a keypoint model (``"input": "poses"``) reads
``.pose`` files and ``poses.lmdb:ID`` entries, and extracts the keypoints of videos and frame folders itself
(MediaPipe Holistic, as slt-extract-pose); its alignment plots show skeletons.

Decoding is the same as fairseq-generate's: fairseq's beam search for text, CTC prefix beam search for glosses.
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
    """One clip as the model recognised it: what :meth:`SignTranslator.alignment` returns and plots draw. A model
    without a gloss classifier has no gloss posteriors, tokens or glosses (None), but the translator's attention."""
    input: str
    frames: torch.Tensor  # uint8 T×3×crop×crop, as the model saw them
    log_probs: Optional[torch.Tensor]  # T'×V CTC log-posteriors of the glosses, T' = T/4 steps
    tokens: Optional[List[int]]  # the decoded glosses, ids of SignTranslator.gloss_dictionary
    glosses: Optional[str]
    text: Optional[str] = None
    attention: Optional[torch.Tensor] = None  # S×T' cross-attention of the first S decoding steps (no classifier)
    pieces: Optional[List[str]] = None  # the S sub-words those steps wrote


#: what bundle.json must hold, whatever the task
REQUIRED_FIELDS = ("format", "version", "task", "input")


def read_bundle_info(bundle: str) -> dict:
    """bundle.json, checked: one line (:class:`BundleError`) for a file that is no JSON object, lacks a field, or is
    of another format, version or task."""
    path = os.path.join(bundle, "bundle.json")
    if not os.path.isfile(path):
        raise BundleError(f"{bundle}: no bundle.json; make a bundle with slt-export")
    try:
        with open(path, encoding="utf-8") as f:
            info = json.load(f)
    except (ValueError, UnicodeDecodeError) as e:  # JSONDecodeError is a ValueError
        raise BundleError(f"{path}: not JSON ({e}); export the bundle again with slt-export") from None
    if not isinstance(info, dict):
        raise BundleError(f"{path}: not a JSON object; export the bundle again with slt-export")
    if info.get("format") != BUNDLE_FORMAT or info.get("version") != BUNDLE_VERSION:
        raise BundleError(f"{bundle}: bundle format {info.get('format')!r} version {info.get('version')!r}; this "
                          f"toolkit reads {BUNDLE_FORMAT!r} version {BUNDLE_VERSION}: export it again with slt-export")
    if info.get("task") not in BUNDLE_KINDS:
        raise BundleError(f"{bundle}: a bundle of task {info.get('task')!r}, which slt-translate cannot run")
    missing = [name for name in REQUIRED_FIELDS + BUNDLE_KINDS[info["task"]].required_fields if name not in info]
    if missing:
        raise BundleError(f"{path} lacks {', '.join(missing)}; export the bundle again with slt-export")
    return info


class BundleKind:
    """How one kind of bundle (one task) reads, decodes and plots its inputs; :data:`BUNDLE_KINDS` by task."""

    task_name = ""
    required_fields: tuple = ()
    reads_video = True  # else gloss strings: nothing to plot
    writes_text = True
    writes_glosses = True

    def __init__(self, translator: "SignTranslator"):
        self.translator = translator

    def generator_args(self, beam: int, gloss_beam: Optional[int]) -> Namespace:
        return Namespace(beam=beam, gloss_beam=gloss_beam)

    def gloss_dictionary(self):
        """The CTC classifier's vocabulary (blank '<s>' = 0); None without a classifier."""
        return None

    def read(self, source: str):
        """One input as :meth:`decode` takes it; :class:`InputError` when it cannot be read."""
        return self.translator.load_clip(source)

    def decode(self, items: list) -> list:
        """(glosses, text, gloss ids, T'×V CTC log-posteriors) per item, and for a model without a gloss
        classifier (None, text, None, None, S×T' cross-attention, S sub-words)."""
        raise NotImplementedError


class SignToGloss(BundleKind):
    task_name = "sign2gloss"
    required_fields = ("crop_size", "shorter_side")
    writes_text = False

    def generator_args(self, beam, gloss_beam):
        return Namespace(beam=gloss_beam or 5)  # glosses only: the generator's beam is the CTC beam

    def gloss_dictionary(self):
        return self.translator.task.target_dictionary

    def decode(self, clips):
        t = self.translator
        return t.decoded_glosses(t.generator.posteriors(t.model, t.net_input(clips)), t.generator)


class SignToText(BundleKind):
    task_name = "sign2text"
    required_fields = ("crop_size", "shorter_side")
    attention_steps = 12  # decoding steps a plot of a model without a gloss classifier draws

    @property
    def writes_glosses(self):
        """Whether the model recognises glosses: not when it was trained on a corpus without them."""
        return getattr(self.translator.model, "has_gloss_classifier", True)

    def gloss_dictionary(self):
        return self.translator.task.ctc_dict if self.writes_glosses else None

    def decode(self, clips):
        t = self.translator
        # the glosses come with the hypotheses; the posteriors (for plots) are those of the same encoder pass
        hypos = t.generator.generate([t.model], {"id": torch.arange(len(clips)), "nsentences": len(clips),
                                                 "net_input": t.net_input(clips)})
        if not self.writes_glosses:
            return [(None, t.text(best["tokens"]), None, None, *self.attention(best, steps))
                    for (best, *_), steps in zip(hypos, self.visual_steps())]
        return [(t.gloss_dictionary.string(best["glosses"]), t.text(best["tokens"]), best["glosses"].tolist(),
                 log_probs.clone())  # a copy: an Alignment kept does not hold the whole batch
                for (best, *_), log_probs in zip(hypos, t.generator.gloss_posteriors())]

    def visual_steps(self) -> List[int]:
        """Each clip's number of encoder steps T' in the batch just decoded (its sources: T' vectors, </s>, tag)."""
        padding = self.translator.generator.model.last_encoder_outs[0]["ctc_padding_mask"][0]
        return (~padding).sum(dim=1).tolist()

    def attention(self, hypo: dict, steps: int):
        """(S×T' cross-attention of the first S decoding steps over the clip's visual steps, the S sub-words)."""
        attention = hypo.get("attention")
        if attention is None or attention.numel() == 0:
            return None, None
        count = min(self.attention_steps, len(hypo["tokens"]))
        tokens = hypo["tokens"][:count].tolist()
        pieces = [self.translator.task.target_dictionary[i] for i in tokens]
        return attention[:steps, :count].t().float().cpu().clone(), pieces


class GlossToText(BundleKind):
    task_name = "gloss2text"
    reads_video = False
    writes_glosses = False

    def read(self, source):
        return source

    def decode(self, lines):
        from fairseq.data import data_utils

        task = self.translator.task
        sources = [task.encode_glosses(line) for line in lines]
        sample = {"id": torch.arange(len(lines)), "net_input": {
            "src_tokens": data_utils.collate_tokens(sources, task.gloss_dict.pad()).to(self.translator.device),
            "src_lengths": torch.tensor([len(s) for s in sources], device=self.translator.device)}}
        hypos = self.translator.generator.generate([self.translator.model], sample)
        return [(line, self.translator.text(h[0]["tokens"]), None, None) for line, h in zip(lines, hypos)]


BUNDLE_KINDS = {kind.task_name: kind for kind in (SignToGloss, SignToText, GlossToText)}


class SignTranslator:
    def __init__(self, bundle: str, info: dict, task, model, device: torch.device, beam: int = 5,
                 gloss_beam: Optional[int] = 5):
        self.bundle, self.info, self.task, self.model, self.device = bundle, info, task, model, device
        self.kind = info["task"]
        self.handler = BUNDLE_KINDS[self.kind](self)
        self.generator = task.build_generator([model], self.handler.generator_args(beam, gloss_beam))
        self.bpe = task.build_bpe(None) if self.handler.writes_text else None

    @classmethod
    def from_pretrained(cls, bundle: str, device: Optional[str] = None, **kwargs) -> "SignTranslator":
        """Load a bundle on ``device`` (default: the GPU when there is one, else the CPU)."""
        from fairseq import checkpoint_utils

        info = read_bundle_info(bundle)
        overrides = {"data": bundle}
        if os.path.isdir(os.path.join(bundle, "vocab")):
            overrides["vocab"] = os.path.join(bundle, "vocab")
        path = os.path.join(bundle, "model.pt")
        state = checkpoint_utils.load_checkpoint_to_cpu(path, arg_overrides=overrides)
        cfg = state.get("cfg") or {}
        saved_task = (cfg.get("task") or {}).get("_name") if hasattr(cfg, "get") else None
        if saved_task != info["task"]:
            raise BundleError(f"{path} holds a {saved_task!r} model, but {bundle}/bundle.json says "
                              f"{info['task']!r}; export the bundle again with slt-export")
        models, _, task = checkpoint_utils.load_model_ensemble_and_task([path], arg_overrides=overrides, state=state)
        device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        return cls(bundle, info, task, models[0].eval().to(device), device, **kwargs)

    # --- inputs ------------------------------------------------------------------------------------------------

    @property
    def reads_poses(self) -> bool:
        return self.info.get("input") == "poses"

    def load_poses(self, source: str) -> torch.Tensor:
        """A ``.pose`` file, ``poses.lmdb:ID``, or a video or frame folder (its keypoints extracted with MediaPipe
        Holistic) → float T×K×(D+1) of the bundle's layout, normalised as slt-binarise stores them."""
        import tempfile

        from slt_plugins.data.lmdb_store import PoseStore, StoreError
        from slt_plugins.data.pose_files import PoseFileError, read_pose_array
        from slt_plugins.data.pose_layouts import get_layout
        from slt_plugins.data.pose_transforms import PoseTransform, PoseTransformConfig

        layout = get_layout(self.info["pose_layout"])
        try:
            if ".lmdb:" in source:
                store, key = source.split(".lmdb:", 1)
                store = PoseStore(store + ".lmdb")
                if store.layout()["layout"] != layout.name:
                    raise InputError(f"{source}: keypoints of layout {store.layout()['layout']!r}; the model reads "
                                     f"{layout.name!r}")
                poses = store.poses(key)
            elif source.endswith(".pose") and os.path.isfile(source):
                poses = read_pose_array(source, layout)[0]
            elif os.path.exists(source):
                from fairseq_slt.tools.extract_pose import ExtractError, HolisticWorker, extract_one

                with tempfile.TemporaryDirectory() as tmp:
                    target = os.path.join(tmp, "clip.pose")
                    worker = HolisticWorker()
                    try:
                        extract_one(worker, source, target, 25.0, False, 1)
                    except ExtractError as e:
                        raise InputError(str(e)) from None
                    finally:
                        worker.close()
                    poses = read_pose_array(target, layout)[0]
            else:
                raise InputError(f"{source}: no such file or folder")
        except (StoreError, PoseFileError) as e:
            raise InputError(str(e)) from None
        if poses.shape[-1] != self.info["pose_dims"] + 1:
            raise InputError(f"{source}: {poses.shape[-1] - 1} coordinates per point; the model reads "
                             f"{self.info['pose_dims']}")
        return PoseTransform(PoseTransformConfig(), train=False)(poses)

    def load_clip(self, source: str) -> torch.Tensor:
        """A video file, frame folder or ``STORE.lmdb:ID`` → uint8 T×3×crop×crop, as evaluation sees it: frames
        brought to the shorter side the model was trained on, centre crop (keypoints for a pose bundle)."""
        if self.reads_poses:
            return self.load_poses(source)
        from slt_plugins.data.lmdb_store import FrameStore, StoreError
        from slt_plugins.data.video_io import ClipReadError, read_clip
        from slt_plugins.data.video_transforms import ClipTransform, ClipTransformConfig

        shorter_side = self.info.get("shorter_side")
        try:
            if ".lmdb:" in source:
                store, key = source.split(".lmdb:", 1)
                frames = _resized(FrameStore(store + ".lmdb").frames(key), shorter_side)
            elif os.path.exists(source):
                frames = read_clip(source, shorter_side)
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
        return self.handler.gloss_dictionary()

    def net_input(self, clips: List[torch.Tensor]) -> dict:
        from slt_plugins.data.sign_dataset import collate_clips, collate_padded

        if self.reads_poses:
            poses, lengths = collate_padded(clips)
            return {"poses": poses.to(self.device), "pose_lengths": lengths.to(self.device)}

        frames, lengths = collate_clips(clips)
        return {"frames": frames.to(self.device), "frame_lengths": lengths.to(self.device)}

    def decoded_glosses(self, posteriors, ctc) -> list:
        """(glosses, None, gloss ids, log-posteriors) per clip from its T'×V CTC log-posteriors."""
        decoded = []
        for clip_log_probs in posteriors:
            clip_log_probs = clip_log_probs.clone()  # a copy: an Alignment kept does not hold the whole batch
            tokens = ctc.decode(clip_log_probs)[0]["tokens"]
            decoded.append((self.gloss_dictionary.string(tokens), None, tokens.tolist(), clip_log_probs))
        return decoded

    def text(self, tokens: torch.Tensor) -> str:
        text = self.task.target_dictionary.string(tokens.int().cpu(), extra_symbols_to_ignore=[self.generator.eos])
        return self.bpe.decode(text)

    def run(self, inputs: List[str], batch_size: int = 8, progress=None, on_alignment=None) -> List[Result]:
        """Every input's glosses and text, in order; an input that fails gets its error, the rest go on. Inputs are
        read ``batch_size`` at a time, so memory holds one batch of clips however many inputs there are.
        ``on_alignment(position, Alignment)`` is called for each clip decoded, as its batch is done (to plot it)."""
        if on_alignment is not None:
            self._needs_video()
        results: List[Result] = []
        for start in range(0, len(inputs), batch_size):
            chunk = inputs[start: start + batch_size]
            items, errors = [], {}  # (position in the chunk, clip or gloss line); position → error
            for k, source in enumerate(chunk):
                try:
                    items.append((k, self.handler.read(source)))
                except InputError as e:
                    errors[k] = str(e)
            with torch.no_grad():
                decoded = dict(zip([k for k, _ in items], self.handler.decode([x for _, x in items]))) if items else {}
            results += [Result(source, error=errors[k]) if k in errors else Result(source, *decoded[k][:2])
                        for k, source in enumerate(chunk)]
            if on_alignment is not None:
                for k, clip in items:
                    glosses, text, tokens, log_probs, *attention = decoded[k]
                    on_alignment(start + k, Alignment(chunk[k], clip, log_probs, tokens, glosses, text, *attention))
            if progress is not None:
                progress(len(chunk))
        return results

    def translate(self, source: str) -> str:
        """The text of one input (sign2text: a video or frames; gloss2text: a gloss string)."""
        if not self.handler.writes_text:
            raise BundleError(f"{self.bundle} is a sign2gloss bundle: it recognises glosses, use recognize()")
        return self._one(source).text

    def recognize(self, source: str) -> str:
        """The glosses of one input (sign2gloss or sign2text)."""
        if not self.handler.reads_video:
            raise BundleError(f"{self.bundle} is a {self.kind} bundle: it reads glosses, use translate()")
        if not self.handler.writes_glosses:
            raise BundleError(f"{self.bundle} was trained without glosses and has no gloss classifier: it "
                              "translates, use translate()")
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
        (title, thumbnails, width_px, height_px, dpi …), or for a model without a gloss classifier to
        :func:`~slt_plugins.alignment_plot.plot_attention`. The default title is the input and its text."""
        from slt_plugins.alignment_plot import plot_alignment, plot_attention

        kwargs.setdefault("title", alignment.input if alignment.text is None else
                          f"{alignment.input}: \"{alignment.text}\"")
        frames = alignment.frames
        if self.reads_poses:
            from slt_plugins.alignment_plot import skeleton_thumbnails
            from slt_plugins.data.pose_layouts import get_layout

            frames = skeleton_thumbnails(frames, get_layout(self.info["pose_layout"]).bones)
        if alignment.log_probs is None:
            if alignment.attention is None:
                raise ValueError("the model returned no cross-attention to draw (it has no gloss classifier either)")
            return plot_attention(frames, alignment.attention, alignment.pieces, path, **kwargs)
        return plot_alignment(frames, alignment.log_probs, self.gloss_dictionary, alignment.tokens, path,
                              **kwargs)

    def _needs_video(self) -> None:
        if not self.handler.reads_video:
            raise BundleError(f"{self.bundle} is a {self.kind} bundle: it reads glosses, so there is no video and no "
                              f"gloss posteriors to align or plot")

    def _one(self, source: str, **kwargs) -> Result:
        result = self.run([source], **kwargs)[0]
        if result.error:
            raise InputError(result.error)
        return result


def _resized(frames, shorter_side: Optional[int]):
    """T×H×W×3 frames with their shorter side ``shorter_side`` (unchanged when it already is, or when None)."""
    import numpy as np
    from PIL import Image

    from slt_plugins.data.video_io import _resize

    if not shorter_side or min(frames.shape[1:3]) == shorter_side:
        return frames
    return np.stack([_resize(Image.fromarray(frame), shorter_side) for frame in frames])
