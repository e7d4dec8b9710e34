"""Datasets over a binarised dataset (``data_bins/NAME``): sign clips from ``frames.lmdb`` or cached visual features
from ``features/<name>.lmdb``, one item per manifest row, with optional targets (gloss or text token ids).

A batch is a dict in fairseq's layout::

    {"id": LongTensor B, "nsentences": B, "ntokens": int,
     "net_input": {"frames": uint8 B×T×3×H×W, "frame_lengths": LongTensor B}        # SignFrameDataset
               or {"features": float B×T'×C, "feature_lengths": LongTensor B}      # SignFeatureDataset
               or {"poses": float B×T×K×(D+1), "pose_lengths": LongTensor B},      # SignPoseDataset
                  (+ "prev_output_tokens": B×L when the dataset has an ``eos_idx``)
     "target": LongTensor B×L padded with pad_idx, "target_lengths": LongTensor B,  # both None without targets
     "gloss_target": …, "gloss_target_lengths": …}  # only with ``gloss_targets`` (sign2text: CTC beside the text)

With ``token_inputs`` (name → one LongTensor per row, e.g. ``text_tokens``) the net_input also holds each padded
B×L and its ``…_lengths`` (``text_lengths``): the texts the distillation teachers read. ``SignLengthDataset`` gives
no visual input at all, only ``frame_lengths``, for a model that reads text alone.

Inputs are zero beyond each length; models derive their padding masks from the lengths.
Frames are channels last in memory (B×T×H×W×3 seen as B×T×3×H×W; see video_transforms.crop_resize): ``view`` may
merge B and T, other reshapes need ``reshape``; permuted to B×3×T×H×W they are what cuDNN's channels_last_3d wants.
``ntokens`` is the number of target tokens, or of input steps when there are no targets.

Sizes (what ``--max-tokens`` counts): frames from the manifest's ``n_frames`` for clips, whatever the augmentation
does to them; for features, the arrays' own lengths T', from the index that slt-extract-features writes beside the
store (``FeatureStore.lengths``), else read from the arrays' headers once: exact whatever backbone made them.
"""

from typing import Dict, List, Optional, Sequence

import numpy as np
import torch
from fairseq.data import FairseqDataset, data_utils

from slt_plugins.data.lmdb_store import FeatureStore, FrameStore, PoseStore
from slt_plugins.data.manifest import ManifestRow
from slt_plugins.data.pose_transforms import PoseTransform, PoseTransformConfig
from slt_plugins.data.video_transforms import ClipTransform, ClipTransformConfig, item_rng


def collate_padded(inputs: List[torch.Tensor]):
    """Stacks T_i×… tensors into B×max(T)×… with zeros beyond each length; returns it and the lengths."""
    lengths = torch.tensor([x.size(0) for x in inputs], dtype=torch.long)
    out = torch.zeros((len(inputs), int(lengths.max())) + tuple(inputs[0].shape[1:]), dtype=inputs[0].dtype)
    for i, x in enumerate(inputs):
        out[i, : x.size(0)] = x
    return out, lengths


def collate_clips(clips: List[torch.Tensor]):
    """T×3×H×W clips → B×T×3×H×W, channels last in memory like the clips (B×T×H×W×3): packing them is a plain copy."""
    frames, lengths = collate_padded([x.permute(0, 2, 3, 1) for x in clips])
    return frames.permute(0, 1, 4, 2, 3), lengths


class _SignDataset(FairseqDataset):
    """What both datasets share: rows, sizes, ordering and the collation of ids and targets."""

    input_name = ""  # net_input keys: "frames", "frame_lengths" or "features", "feature_lengths"
    lengths_name = ""

    def __init__(self, rows: List[ManifestRow], targets: Optional[List[torch.LongTensor]], sizes: Sequence[int],
                 pad_idx: int, eos_idx: Optional[int], shuffle: bool,
                 gloss_targets: Optional[List[torch.LongTensor]] = None,
                 token_inputs: Optional[Dict[str, List[torch.LongTensor]]] = None):
        token_inputs = token_inputs or {}
        for name, values in (("targets", targets), ("gloss targets", gloss_targets), *token_inputs.items()):
            if values is not None and len(values) != len(rows):
                raise ValueError(f"{len(values)} {name} for {len(rows)} manifest rows")
        self.rows = rows
        self.targets = targets
        self.gloss_targets = gloss_targets
        self.token_inputs = token_inputs
        self._sizes = np.asarray(sizes, dtype=np.int64)
        self.pad_idx = pad_idx
        self.eos_idx = eos_idx
        self.shuffle = shuffle
        self.epoch = 1

    def __len__(self):
        return len(self.rows)

    def _item(self, index: int, source: torch.Tensor) -> Dict:
        target = None if self.targets is None else self.targets[index]
        item = {"id": index, self.input_name: source, "target": target}
        if self.gloss_targets is not None:
            item["gloss_target"] = self.gloss_targets[index]
        for name, values in self.token_inputs.items():
            item[name] = values[index]
        return item

    def collate_inputs(self, inputs: List[torch.Tensor]):
        return collate_padded(inputs)

    def collater(self, samples: List[Dict]) -> Dict:
        if len(samples) == 0:
            return {}
        inputs, lengths = self.collate_inputs([s[self.input_name] for s in samples])
        net_input = {self.input_name: inputs, self.lengths_name: lengths}
        for name in self.token_inputs:  # e.g. text_tokens, text_lengths
            tokens = [s[name] for s in samples]
            net_input[name] = data_utils.collate_tokens(tokens, self.pad_idx)
            net_input[name.replace("_tokens", "_lengths")] = torch.tensor([t.numel() for t in tokens])
        target = target_lengths = None
        ntokens = int(lengths.sum())
        if self.targets is not None:
            targets = [s["target"] for s in samples]
            target = data_utils.collate_tokens(targets, self.pad_idx)
            target_lengths = torch.tensor([t.numel() for t in targets], dtype=torch.long)
            ntokens = int(target_lengths.sum())
            if self.eos_idx is not None:
                net_input["prev_output_tokens"] = data_utils.collate_tokens(
                    targets, self.pad_idx, self.eos_idx, move_eos_to_beginning=True)
        batch = {
            "id": torch.tensor([s["id"] for s in samples], dtype=torch.long),
            "nsentences": len(samples),
            "ntokens": ntokens,
            "net_input": net_input,
            "target": target,
            "target_lengths": target_lengths,
        }
        if self.gloss_targets is not None:
            glosses = [s["gloss_target"] for s in samples]
            batch["gloss_target"] = data_utils.collate_tokens(glosses, self.pad_idx)
            batch["gloss_target_lengths"] = torch.tensor([g.numel() for g in glosses], dtype=torch.long)
        return batch

    @property
    def sizes(self) -> np.ndarray:
        return self._sizes

    def num_tokens(self, index: int) -> int:
        return int(self._sizes[index])

    def num_tokens_vec(self, indices: np.ndarray) -> np.ndarray:
        return self._sizes[indices]

    def size(self, index: int):
        """(input steps, target tokens), matched against a task's (max_source, max_target) positions."""
        return int(self._sizes[index]), 0 if self.targets is None else self.targets[index].numel()

    def ordered_indices(self) -> np.ndarray:
        """By length, so that batches waste little padding; ties in random order when shuffling."""
        order = np.random.permutation(len(self)) if self.shuffle else np.arange(len(self))
        return order[np.argsort(self._sizes[order], kind="mergesort")]

    def set_epoch(self, epoch: int):
        self.epoch = epoch


class SignFrameDataset(_SignDataset):
    """Clips of ``frames.lmdb``, augmented in training (see :mod:`slt_plugins.data.video_transforms`)."""

    input_name, lengths_name = "frames", "frame_lengths"

    def __init__(self, store: FrameStore, rows: List[ManifestRow], targets: Optional[List[torch.LongTensor]] = None,
                 train: bool = False, crop_size: int = 224, min_frames: int = 4, seed: int = 1, pad_idx: int = 1,
                 eos_idx: Optional[int] = None, shuffle: Optional[bool] = None,
                 gloss_targets: Optional[List[torch.LongTensor]] = None,
                 token_inputs: Optional[Dict[str, List[torch.LongTensor]]] = None, **transform_options):
        empty = [r.id for r in rows if r.n_frames < 1]
        if empty:
            raise ValueError(f"{store.path}: {len(empty)} manifest rows without frames (n_frames < 1), e.g. "
                             f"{empty[:3]}; a frame dataset needs the videos binarised")
        super().__init__(rows, targets, [r.n_frames for r in rows], pad_idx, eos_idx,
                         train if shuffle is None else shuffle, gloss_targets, token_inputs)
        self.store = store
        self.transform = ClipTransform(
            ClipTransformConfig(crop_size=crop_size, min_frames=min_frames, **transform_options), train)
        self.seed = seed

    def __getitem__(self, index: int) -> Dict:
        rng = item_rng(self.seed, self.epoch, index) if self.transform.train else None
        indices = self.transform.frame_indices(self.rows[index].n_frames, rng)
        unique, inverse = np.unique(indices, return_inverse=True)  # a repeated frame is decoded once
        clip = self.transform(self.store.frames(self.rows[index].id, unique), rng)
        if len(unique) < len(indices):
            clip = clip.permute(0, 2, 3, 1).index_select(0, torch.from_numpy(inverse)).permute(0, 3, 1, 2)
        return self._item(index, clip)

    def collate_inputs(self, inputs: List[torch.Tensor]):
        return collate_clips(inputs)


class SignFeatureDataset(_SignDataset):
    """Cached visual features (float16 T'×C in the store, float32 out), e.g. S3D's T/4×832."""

    input_name, lengths_name = "features", "feature_lengths"

    def __init__(self, store: FeatureStore, rows: List[ManifestRow], targets: Optional[List[torch.LongTensor]] = None,
                 sizes: Optional[Sequence[int]] = None, pad_idx: int = 1, eos_idx: Optional[int] = None,
                 shuffle: bool = False, gloss_targets: Optional[List[torch.LongTensor]] = None,
                 token_inputs: Optional[Dict[str, List[torch.LongTensor]]] = None):
        if sizes is None:
            sizes = store.lengths([r.id for r in rows])
        super().__init__(rows, targets, sizes, pad_idx, eos_idx, shuffle, gloss_targets, token_inputs)
        self.store = store

    def __getitem__(self, index: int) -> Dict:
        features = self.store.array(self.rows[index].id).astype(np.float32)
        return self._item(index, torch.from_numpy(features))


class SignPoseDataset(_SignDataset):
    """Keypoints of ``poses.lmdb`` (float16 T×K×(D+1) in the store, float32 out), augmented in training (see
    :mod:`slt_plugins.data.pose_transforms`). Sizes are the stored frame counts."""

    input_name, lengths_name = "poses", "pose_lengths"

    def __init__(self, store: PoseStore, rows: List[ManifestRow], targets: Optional[List[torch.LongTensor]] = None,
                 train: bool = False, seed: int = 1, pad_idx: int = 1, eos_idx: Optional[int] = None,
                 shuffle: Optional[bool] = None, gloss_targets: Optional[List[torch.LongTensor]] = None,
                 token_inputs: Optional[Dict[str, List[torch.LongTensor]]] = None, **transform_options):
        super().__init__(rows, targets, store.lengths([r.id for r in rows]), pad_idx, eos_idx,
                         train if shuffle is None else shuffle, gloss_targets, token_inputs)
        self.store = store
        self.transform = PoseTransform(PoseTransformConfig(**transform_options), train)
        self.seed = seed

    def __getitem__(self, index: int) -> Dict:
        rng = item_rng(self.seed, self.epoch, index) if self.transform.train else None
        return self._item(index, self.transform(self.store.poses(self.rows[index].id), rng))


class SignLengthDataset(_SignDataset):
    """No visual input: each clip's frame count alone (``frame_lengths``) beside its token inputs, for models that
    read the text only (the text→gloss teacher) yet must speak on the clip's time axis."""

    input_name, lengths_name = "_no_frames", "frame_lengths"

    def __init__(self, rows: List[ManifestRow], targets: Optional[List[torch.LongTensor]] = None, pad_idx: int = 1,
                 shuffle: bool = False, token_inputs: Optional[Dict[str, List[torch.LongTensor]]] = None):
        super().__init__(rows, targets, [r.n_frames for r in rows], pad_idx, None, shuffle, None, token_inputs)

    def __getitem__(self, index: int) -> Dict:
        return self._item(index, torch.empty(self.rows[index].n_frames, 0))

    def collater(self, samples: List[Dict]) -> Dict:
        batch = super().collater(samples)
        if batch:
            del batch["net_input"][self.input_name]
        return batch
