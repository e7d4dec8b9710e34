"""Sign datasets and clip transforms, on tiny stores written in tmp_path (40×48 frames, crop 32)."""

import os
import pickle
import shutil

import numpy as np
import pytest
import torch
from fairseq.data.data_utils import lengths_to_padding_mask

from slt_plugins.data.lmdb_store import FeatureStore, FrameStore, LmdbWriter, StoreError
from slt_plugins.data.manifest import ManifestRow
from slt_plugins.data.sign_dataset import SignFeatureDataset, SignFrameDataset
from slt_plugins.data.video_transforms import ClipTransform, ClipTransformConfig, item_rng, round_up

H, W, CROP = 40, 48, 32
TOP, LEFT = (H - CROP) // 2, (W - CROP) // 2  # the centre crop, by hand: rows 4..36, columns 8..40
PAD, EOS = 1, 2


def level(t):
    return 15 * t


def pattern_clip(n):
    """Grey frames of level 15·t, with a white 16×16 block where the centre crop's top-left corner falls."""
    frames = np.zeros((n, H, W, 3), dtype=np.uint8)
    for t in range(n):
        frames[t] = level(t)
    frames[:, TOP: TOP + 16, LEFT: LEFT + 16] = 255
    return frames


@pytest.fixture(scope="module")
def bins(tmp_path_factory):
    root = tmp_path_factory.mktemp("data_bins")
    rng = np.random.default_rng(0)
    clips = {"a": pattern_clip(5),
             "b": rng.integers(0, 256, (9, H, W, 3), dtype=np.uint8),
             "c": rng.integers(0, 256, (13, H, W, 3), dtype=np.uint8)}
    with LmdbWriter(str(root / "frames.lmdb")) as writer:
        for key, frames in clips.items():
            writer.put_clip(key, frames)
    features = {k: rng.standard_normal((round_up(len(v), 4) // 4, 6)).astype(np.float16) for k, v in clips.items()}
    with LmdbWriter(str(root / "features" / "s3d.lmdb")) as writer:
        for key, array in features.items():
            writer.put_array(key, array)
    rows = [ManifestRow(k, len(v), "s1", "G", "t") for k, v in clips.items()]
    targets = [torch.LongTensor([5, 6, EOS]), torch.LongTensor([7, EOS]), torch.LongTensor([5, 6, 7, 8, EOS])]
    return {"root": root, "rows": rows, "targets": targets, "features": features}


def frame_dataset(bins, train, **kwargs):
    return SignFrameDataset(FrameStore(str(bins["root"] / "frames.lmdb")), bins["rows"], bins["targets"],
                            train=train, crop_size=CROP, pad_idx=PAD, **kwargs)


@pytest.mark.parametrize("train", [False, True])
def test_frame_count_is_a_multiple_of_four_and_never_below_the_minimum(train):
    transform = ClipTransform(ClipTransformConfig(crop_size=CROP, min_frames=8), train)
    for n in range(1, 40):
        indices = transform.frame_indices(n, item_rng(1, 1, n))
        assert len(indices) % 4 == 0 and len(indices) >= 8
        assert np.all(np.diff(indices) >= 0) and indices.min() >= 0 and indices.max() < n
        if not train:
            assert np.array_equal(indices[:n], np.arange(n)) and np.all(indices[n:] == n - 1)
    with pytest.raises(ValueError, match="a clip needs at least one frame, got 0"):
        transform.frame_indices(0, item_rng(1, 1, 0))


def test_temporal_rescaling_stays_within_its_bounds():
    transform = ClipTransform(ClipTransformConfig(), train=True)
    for n in (5, 13, 64, 200):
        lengths = [len(transform.frame_indices(n, item_rng(1, epoch, 0))) for epoch in range(200)]
        assert min(lengths) >= round_up(max(round(0.5 * n), 4), 4)
        assert max(lengths) <= round_up(round(1.5 * n), 4)
        if n >= 64:  # both drops and repeats happen
            assert min(lengths) < n < max(lengths)


def test_random_crop_stays_inside_the_frame_within_area_and_aspect_bounds():
    transform = ClipTransform(ClipTransformConfig(crop_size=CROP), train=True)
    for epoch in range(200):
        top, left, h, w = transform.crop_box(H, W, item_rng(1, epoch, 0))
        assert 0 <= top and top + h <= H and 0 <= left and left + w <= W
        assert 0.7 * H * W * 0.9 <= h * w <= H * W  # area bounds, with room for rounding
        assert 0.75 * 0.9 <= w / h <= 1.3 * 1.1


def test_eval_is_deterministic_and_centre_cropped(bins):
    ds = frame_dataset(bins, train=False)
    store = ds.store
    item = ds[0]
    frames = item["frames"]
    assert frames.dtype == torch.uint8 and frames.shape == (8, 3, CROP, CROP)  # 5 frames, rounded up to 8
    decoded = torch.from_numpy(store.frames("a")).permute(0, 3, 1, 2)
    expected = decoded[:, :, TOP: TOP + CROP, LEFT: LEFT + CROP][[0, 1, 2, 3, 4, 4, 4, 4]]
    assert torch.equal(frames, expected)
    # the known pattern, allowing for JPEG: the white block at the crop's corner, each frame's level elsewhere
    assert (frames[:, :, 2:14, 2:14] > 230).all()
    for t, source in enumerate([0, 1, 2, 3, 4, 4, 4, 4]):
        assert (frames[t, :, 18:30, 18:30].float() - level(source)).abs().max() <= 10
    ds.set_epoch(5)
    assert torch.equal(ds[0]["frames"], frames)


def test_eval_resizes_frames_smaller_than_the_crop(bins):
    ds = SignFrameDataset(FrameStore(str(bins["root"] / "frames.lmdb")), bins["rows"], train=False, crop_size=64)
    assert ds[1]["frames"].shape == (12, 3, 64, 64)


def test_train_crops_vary_across_epochs_and_repeat_for_the_same_seed_and_epoch(bins):
    ds = frame_dataset(bins, train=True, seed=3)
    twin = frame_dataset(bins, train=True, seed=3)
    ds.set_epoch(1)
    twin.set_epoch(1)
    first = ds[2]["frames"]
    assert first.shape[1:] == (3, CROP, CROP) and len(first) % 4 == 0
    assert torch.equal(first, ds[2]["frames"]) and torch.equal(first, twin[2]["frames"])
    ds.set_epoch(2)
    second = ds[2]["frames"]
    assert first.shape != second.shape or not torch.equal(first, second)
    other_seed = frame_dataset(bins, train=True, seed=4)
    other_seed.set_epoch(1)
    third = other_seed[2]["frames"]
    assert first.shape != third.shape or not torch.equal(first, third)


def test_collater_pads_frames_with_zeros_and_targets_with_pad(bins):
    ds = frame_dataset(bins, train=False)
    samples = [ds[i] for i in range(3)]
    batch = ds.collater(samples)
    frames, lengths = batch["net_input"]["frames"], batch["net_input"]["frame_lengths"]
    assert frames.dtype == torch.uint8 and frames.shape == (3, 16, 3, CROP, CROP)
    assert lengths.tolist() == [8, 12, 16]
    for i, sample in enumerate(samples):
        assert torch.equal(frames[i, : lengths[i]], sample["frames"])
        assert not frames[i, lengths[i]:].any()
    assert lengths_to_padding_mask(lengths).tolist()[0] == [False] * 8 + [True] * 8
    assert torch.equal(frames.view(3 * 16, 3, CROP, CROP)[16:28], samples[1]["frames"])  # a per-frame CNN's view
    assert batch["id"].tolist() == [0, 1, 2] and batch["nsentences"] == 3
    assert batch["target"].tolist() == [[5, 6, EOS, PAD, PAD], [7, EOS, PAD, PAD, PAD], [5, 6, 7, 8, EOS]]
    assert batch["target_lengths"].tolist() == [3, 2, 5] and batch["ntokens"] == 10
    assert "prev_output_tokens" not in batch["net_input"]
    assert ds.collater([]) == {}


def test_without_targets_ntokens_counts_frames(bins):
    ds = SignFrameDataset(FrameStore(str(bins["root"] / "frames.lmdb")), bins["rows"], crop_size=CROP)
    batch = ds.collater([ds[0], ds[2]])
    assert batch["target"] is None and batch["ntokens"] == 8 + 16


def test_sizes_ordering_and_batching_count_manifest_frames(bins):
    ds = frame_dataset(bins, train=False)
    assert ds.sizes.tolist() == [5, 9, 13] and ds.num_tokens(2) == 13 and ds.size(1) == (9, 2)
    assert ds.ordered_indices().tolist() == [0, 1, 2]
    batches = ds.batch_by_size(ds.ordered_indices(), max_tokens=20)
    assert [b.tolist() for b in batches] == [[0, 1], [2]]


def test_data_loader_workers_give_the_same_batches(bins):
    for train in (False, True):
        ds = frame_dataset(bins, train=train)
        ds.set_epoch(3)
        batches = {}
        for workers in (0, 2):
            loader = torch.utils.data.DataLoader(ds, batch_size=2, num_workers=workers, collate_fn=ds.collater)
            batches[workers] = [b["net_input"]["frames"] for b in loader]
        assert len(batches[0]) == 2
        assert all(torch.equal(x, y) for x, y in zip(batches[0], batches[2]))
    # an opened store travels to a worker without its environment, and the copy reads the same clips
    copy = pickle.loads(pickle.dumps(ds))
    assert len(copy) == len(ds)
    assert all(torch.equal(copy[i]["frames"], ds[i]["frames"]) for i in range(len(ds)))


def test_feature_dataset_round_trip(bins):
    store = FeatureStore(str(bins["root"] / "features" / "s3d.lmdb"))
    ds = SignFeatureDataset(store, bins["rows"], bins["targets"], pad_idx=PAD, eos_idx=EOS)
    assert ds.sizes.tolist() == [2, 3, 4]  # read from the arrays
    for i, row in enumerate(bins["rows"]):
        features = ds[i]["features"]
        assert features.dtype == torch.float32
        assert torch.equal(features, torch.from_numpy(bins["features"][row.id]).float())
    batch = ds.collater([ds[0], ds[2]])
    features, lengths = batch["net_input"]["features"], batch["net_input"]["feature_lengths"]
    assert features.shape == (2, 4, 6) and lengths.tolist() == [2, 4] and not features[0, 2:].any()
    assert batch["net_input"]["prev_output_tokens"].tolist() == [[EOS, 5, 6, PAD, PAD], [EOS, 5, 6, 7, 8]]
    assert SignFeatureDataset(store, bins["rows"], sizes=[7, 8, 9]).num_tokens(0) == 7


def test_a_missing_clip_names_the_store_and_the_id(bins):
    rows = bins["rows"] + [ManifestRow("nowhere", 7, "s1", "G", "t")]
    ds = SignFrameDataset(FrameStore(str(bins["root"] / "frames.lmdb")), rows, crop_size=CROP)
    with pytest.raises(StoreError, match=r"frames\.lmdb.*'nowhere'"):
        ds[3]
    with pytest.raises(StoreError, match=r"s3d\.lmdb.*'nowhere'"):
        SignFeatureDataset(FeatureStore(str(bins["root"] / "features" / "s3d.lmdb")), rows)


def test_two_splits_share_a_store_and_a_store_rebuilt_in_place_is_read_anew(tmp_path):
    path, rebuilt = tmp_path / "frames.lmdb", tmp_path / "rebuilt.lmdb"
    for target, n in ((path, 2), (rebuilt, 3)):
        with LmdbWriter(str(target)) as writer:
            writer.put_clip("x", np.zeros((n, H, W, 3), dtype=np.uint8))
    train, valid = FrameStore(str(path)), FrameStore(str(path))  # lmdb refuses to open one file twice
    assert train.num_frames("x") == valid.num_frames("x") == 2
    shutil.rmtree(path)
    os.rename(rebuilt, path)
    assert train.num_frames("x") == 3


def test_rows_without_frames_are_refused(bins):
    rows = [ManifestRow("a", 0, "s1", "G", "t")]
    with pytest.raises(ValueError, match="n_frames"):
        SignFrameDataset(FrameStore(str(bins["root"] / "frames.lmdb")), rows)
