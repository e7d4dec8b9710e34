"""Task ``sign2gloss``: recognise the gloss sequence of a sign clip (continuous sign language recognition).

Reads a binarised dataset (``data_bins/NAME``): the split manifests, ``dict.gloss.txt`` and either
``frames.lmdb`` (``--input frames``, augmented in training), ``features/<name>.lmdb`` (``--input features``) or
``poses.lmdb`` (``--input poses``: keypoints, augmented in training; docs/keypoints.md).
Targets are gloss ids without end-of-sentence; the dictionary's ``<s>`` (index 0) is the CTC blank.
fairseq-generate decodes with CTC greedy (``--beam 1``) or prefix beam search.
"""

import logging
import os
from dataclasses import dataclass, field
from typing import Optional

from fairseq.data import Dictionary
from fairseq.tasks import FairseqTask, register_task
from omegaconf import II, MISSING

from slt_plugins.data.dataset_meta import require_glosses
from slt_plugins.data.lmdb_store import POSE_STORE, FeatureStore, FrameStore, PoseStore
from slt_plugins.data.manifest import manifest_path, read_manifest
from slt_plugins.data.sign_dataset import SignFeatureDataset, SignFrameDataset, SignLengthDataset, SignPoseDataset
from slt_plugins.data.text_inputs import TextInputs
from slt_plugins.tasks.bf16_autocast import Bf16Autocast, Bf16AutocastConfig
from slt_plugins.tasks.checkpoint_settings import CheckpointSettings

logger = logging.getLogger(__name__)

INPUT_KINDS = ("frames", "features", "poses", "lengths")


def load_gloss_dictionary(data: str) -> Dictionary:
    """``dict.gloss.txt`` of a binarised dataset: the CTC vocabulary, ``<s>`` (index 0) the blank."""
    path = os.path.join(data, "dict.gloss.txt")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path} is missing: binarise the dataset with slt-binarise first")
    gloss_dict = Dictionary.load(path)
    logger.info(f"gloss dictionary: {len(gloss_dict)} entries (blank '<s>' = 0)")
    return gloss_dict


@dataclass
class Sign2GlossConfig(Bf16AutocastConfig):
    data: str = field(default=MISSING, metadata={
        "help": "binarised dataset folder (data_bins/NAME) with <split>.tsv, dict.gloss.txt and frames.lmdb or "
                "features/<name>.lmdb"})
    # a string, not a ChoiceEnum that could be None: fairseq's flat command line shares --input with
    # fairseq-interactive, whose field must hold a string
    input: str = field(default="", metadata={
        "help": f"{' | '.join(INPUT_KINDS)}: read video frames (end to end), pre-extracted features, keypoints "
                "(poses.lmdb), or only each clip's frame count (for a model that reads text alone: the text→gloss teacher); default: the "
                "checkpoint's, else frames"})
    text_inputs: bool = field(default=False, metadata={
        "help": "also give the model each utterance's translation and the preceding utterance's (net_input "
                "text_tokens, context_tokens): what the distillation teachers read"})
    features: Optional[str] = field(default=None, metadata={
        "help": "with --input features: features/<name>.lmdb; default: the checkpoint's, else s3d"})
    crop_size: Optional[int] = field(default=None, metadata={
        "help": "frames are cropped to crop_size × crop_size; default: the checkpoint's, else 224"})
    temporal_scale_min: float = field(default=0.5, metadata={
        "help": "training: clips are resampled to between min and max times their frame count (SLRT: 0.5-1.5)"})
    temporal_scale_max: float = field(default=1.5)
    crop_area_min: float = field(default=0.7, metadata={
        "help": "training: a random crop keeps at least this fraction of the frame's area (SLRT: 0.7)"})
    pose_rotation: float = field(default=15.0, metadata={
        "help": "training on poses: rotate each clip's keypoints by up to this many degrees either way"})
    pose_scale_min: float = field(default=0.8, metadata={
        "help": "training on poses: scale x and y each by a factor between min and max"})
    pose_scale_max: float = field(default=1.2)
    pose_shear: float = field(default=0.15, metadata={"help": "training on poses: shear by up to this factor"})
    pose_point_dropout: float = field(default=0.05, metadata={
        "help": "training on poses: hide each keypoint in each frame with this probability"})
    persistent_workers: bool = field(default=False, metadata={
        "help": "keep data-loader workers across epochs (fairseq's default): they would never learn the new epoch, "
                "so the training augmentation would repeat itself; off, workers restart each epoch"})
    max_frames: int = field(default=1000, metadata={"help": "skip longer clips in training (in input steps)"})
    max_glosses: int = field(default=200, metadata={"help": "skip utterances with more glosses in training"})
    seed: int = II("common.seed")


class SignInput(CheckpointSettings):
    """What the tasks that read sign clips share (sign2gloss, sign2text): the store and the dataset over a split.
    Mixed into a FairseqTask whose config extends :class:`Sign2GlossConfig`. The input kind, the feature store and
    the crop are the checkpoint's unless the command line gives them (:mod:`checkpoint_settings`)."""

    checkpoint_settings = {"input": "frames", "features": "s3d", "crop_size": 224}
    _store = None
    _text_inputs = None
    _feature_dim = None

    def checkpoint_settings_changed(self, names) -> None:
        if self.cfg.input not in INPUT_KINDS:
            raise ValueError(f"--input {self.cfg.input}: choose one of {', '.join(INPUT_KINDS)}")
        self._store = self._feature_dim = None  # opened for another input kind or store

    @property
    def feature_dim(self):
        """C of the feature arrays (None when reading frames); read when a model is built, once the checkpoint
        (if any) has said which store the model reads."""
        if self._feature_dim is None:
            self._feature_dim = self.feature_dim_of_store()
        return self._feature_dim

    @property
    def store(self):
        """The frame or feature store, opened once and shared by every split."""
        if self._store is None:
            if self.cfg.input == "lengths":
                return None
            if self.cfg.input == "frames":
                self._store = FrameStore(os.path.join(self.cfg.data, "frames.lmdb"))
            elif self.cfg.input == "poses":
                self._store = PoseStore(os.path.join(self.cfg.data, POSE_STORE))
            else:
                self._store = FeatureStore(os.path.join(self.cfg.data, "features", f"{self.cfg.features}.lmdb"))
        return self._store

    @property
    def pose_input(self):
        """With --input poses: the store's keypoint layout and coordinate count, which the pose backbone is built
        for ({"layout", "dims", "points"}); else None."""
        return self.store.layout() if self.cfg.input == "poses" else None

    def feature_dim_of_store(self):
        """C of the feature arrays (None when reading frames)."""
        if self.cfg.input != "features":
            return None
        index = self.store.index()
        return int(index["dim"]) if "dim" in index else int(self.store.array(next(self.store.keys())).shape[-1])

    def sign_dataset(self, split: str, rows, targets, pad_idx: int, eos_idx=None, gloss_targets=None):
        """Frames (augmented when the split is a training split), features or frame counts of ``rows``, with their
        targets (and texts, with ``--text-inputs``)."""
        train = split.startswith("train")
        texts = None
        if self.cfg.text_inputs:
            texts = self.text_inputs.for_rows(rows, split)
            if self.text_inputs.dictionary.pad() != pad_idx:  # the dataset pads texts and targets alike
                raise ValueError(f"{self.cfg.data}: dict.text.txt pads with {self.text_inputs.dictionary.pad()}, the "
                                 f"targets with {pad_idx}; binarise the dataset again with slt-binarise")
        if self.cfg.input == "frames":
            return SignFrameDataset(
                self.store, rows, targets, train=train, crop_size=self.cfg.crop_size, seed=self.cfg.seed,
                pad_idx=pad_idx, eos_idx=eos_idx, gloss_targets=gloss_targets, token_inputs=texts,
                crop_area=(self.cfg.crop_area_min, 1.0),
                temporal_scale=(self.cfg.temporal_scale_min, self.cfg.temporal_scale_max))
        if self.cfg.input == "poses":
            return SignPoseDataset(
                self.store, rows, targets, train=train, seed=self.cfg.seed, pad_idx=pad_idx, eos_idx=eos_idx,
                gloss_targets=gloss_targets, token_inputs=texts,
                temporal_scale=(self.cfg.temporal_scale_min, self.cfg.temporal_scale_max),
                rotation=self.cfg.pose_rotation, scale=(self.cfg.pose_scale_min, self.cfg.pose_scale_max),
                shear=self.cfg.pose_shear, point_dropout=self.cfg.pose_point_dropout)
        if self.cfg.input == "lengths":
            if eos_idx is not None or gloss_targets is not None:
                raise ValueError("--input lengths is for models that read text alone (sign2gloss)")
            return SignLengthDataset(rows, targets, pad_idx=pad_idx, shuffle=train, token_inputs=texts)
        return SignFeatureDataset(self.store, rows, targets, pad_idx=pad_idx, eos_idx=eos_idx, shuffle=train,
                                  gloss_targets=gloss_targets, token_inputs=texts)

    @property
    def text_inputs(self) -> TextInputs:
        """The text vocabulary and sub-word model of the dataset, loaded once."""
        if self._text_inputs is None:
            self._text_inputs = TextInputs(self.cfg.data)
        return self._text_inputs

    def begin_epoch(self, epoch, model):
        """Remember the epoch: the distillation criteria switch their terms on at a configured one."""
        super().begin_epoch(epoch, model)
        self.epoch = epoch


@register_task("sign2gloss", dataclass=Sign2GlossConfig)
class Sign2GlossTask(Bf16Autocast, SignInput, FairseqTask):
    cfg: Sign2GlossConfig
    blank_symbol = "<s>"  # fairseq's ctc criterion looks the blank up by this name

    def __init__(self, cfg: Sign2GlossConfig, gloss_dict: Dictionary):
        super().__init__(cfg)
        self.gloss_dict = gloss_dict
        self.init_checkpoint_settings()

    @classmethod
    def setup_task(cls, cfg: Sign2GlossConfig, **kwargs):
        require_glosses(cfg.data, "task sign2gloss", "train sign2text with --ctc-weight 0 instead")
        return cls(cfg, load_gloss_dictionary(cfg.data))

    def encode_glosses(self, glosses: str):
        return self.gloss_dict.encode_line(glosses, add_if_not_exist=False, append_eos=False).long()

    def load_dataset(self, split, epoch=1, combine=False, **kwargs):
        rows = read_manifest(manifest_path(self.cfg.data, split))
        targets = [self.encode_glosses(r.gloss) for r in rows]
        self.datasets[split] = self.sign_dataset(split, rows, targets, self.gloss_dict.pad())
        source = self.store.path if self.store is not None else "the manifest (frame counts only)"
        logger.info(f"{split}: {len(rows)} utterances from {source}")

    def build_generator(self, models, args, **unused):
        from slt_plugins.decoding.ctc_decoder import CTCSequenceGenerator

        return CTCSequenceGenerator(self.target_dictionary, beam=getattr(args, "beam", 1),
                                    nbest=getattr(args, "nbest", 1))

    def max_positions(self):
        return self.cfg.max_frames, self.cfg.max_glosses

    @property
    def source_dictionary(self):
        return None

    @property
    def target_dictionary(self):
        return self.gloss_dict
