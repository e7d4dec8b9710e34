"""Sign2Gloss: the model on hand-made batches, fairseq-train → fairseq-generate on features, and the data loader's
workers. Learning from frames, and on two ranks, is tested in test_learning.py."""

import os
import re

import numpy as np
import pytest
import torch

from conftest import run_script, train_step_without_and_with_bf16
from slt_plugins.data.lmdb_store import LmdbWriter
from slt_plugins.data.manifest import read_manifest
from slt_plugins.models.s3d_encoder import SignEncoder, SignEncoderConfig
from slt_plugins.models.visual_head import MaskedBatchNorm1d

TRAIN_ARGS = ["--user-dir", "slt_plugins", "--task", "sign2gloss", "--arch", "s3d_encoder_tiny", "--crop-size", "32",
              "--criterion", "gloss_ctc", "--optimizer", "adam", "--lr", "2e-3", "--batch-size", "4",
              "--valid-subset", "dev", "--no-progress-bar", "--num-workers", "0", "--no-epoch-checkpoints",
              "--best-checkpoint-metric", "wer"]


@pytest.fixture(scope="module")
def demo_bin(tiny_trained):
    """conftest's tiny generated corpus (32×32 frames), binarised."""
    return tiny_trained["data"]


def test_masked_batch_norm_ignores_padding():
    bn = MaskedBatchNorm1d(3)
    x = torch.randn(2, 5, 3)
    mask = torch.tensor([[False] * 5, [False, False, True, True, True]])
    padded = x.clone()
    padded[1, 2:] = 1e6  # huge values in the padding must not move the statistics
    out = bn(padded, mask)
    valid = torch.cat([x[0], x[1, :2]])
    assert torch.allclose(out[~mask], (valid - valid.mean(0)) / torch.sqrt(valid.var(0, unbiased=False) + bn.eps),
                          atol=1e-4)
    assert torch.all(out[mask] == 0)


def test_encoder_output_layout_and_padding():
    cfg = SignEncoderConfig(visual_backbone="cnn_tconv", backbone_args="{'output_dim': 16}", head_dim=8,
                            head_ff_dim=16)
    encoder = SignEncoder(cfg, list(range(7)), "frames").eval()
    frames = torch.randint(0, 255, (2, 12, 3, 32, 32), dtype=torch.uint8)
    out = encoder(frames=frames, frame_lengths=torch.tensor([12, 8]))
    assert out["encoder_out"].shape == (3, 2, 7)  # T/4 × B × |glosses|, time first as fairseq's ctc reads it
    assert out["padding_mask"].tolist() == [[False] * 3, [False, False, True]]
    assert out["gloss_features"].shape == (2, 3, 8)
    # a clip's output is the same in a padded batch as alone: no padding leaks through BatchNorm or the kernels
    alone = encoder(frames=frames[1:, :8], frame_lengths=torch.tensor([8]))
    assert torch.allclose(out["encoder_out"][:2, 1], alone["encoder_out"][:, 0], atol=1e-4)


def test_train_and_generate_on_features(demo_bin, tmp_path):
    """--input features: the head reads cached T'×C arrays (as slt-extract-features writes them)."""
    data = demo_bin
    rng = np.random.default_rng(0)
    with LmdbWriter(str(tmp_path / "features.lmdb")) as writer:
        for split in ("train", "dev", "test"):
            for row in read_manifest(data / f"{split}.tsv"):
                writer.put_array(row.id, rng.standard_normal((row.n_frames // 4, 24)).astype(np.float16))
    features_dir = tmp_path / "view"  # the dataset's files plus a features/ folder
    features_dir.mkdir()
    for name in os.listdir(demo_bin):
        os.symlink(demo_bin / name, features_dir / name)
    (features_dir / "features").mkdir()
    os.symlink(tmp_path / "features.lmdb", features_dir / "features" / "random.lmdb")
    save = tmp_path / "ckpt"
    run_script("fairseq-train", features_dir, *TRAIN_ARGS, "--input", "features", "--features", "random",
               "--max-update", "3", "--save-dir", save)
    gen = run_script("fairseq-generate", features_dir, "--user-dir", "slt_plugins", "--task", "sign2gloss",
                     "--input", "features", "--features", "random", "--path", save / "checkpoint_last.pt",
                     "--gen-subset", "dev", "--beam", "1", "--num-workers", "0", "--scoring", "wer").stdout
    assert len(re.findall(r"^D-\d+\t", gen, flags=re.M)) == 4


def test_workers_draw_new_augmentation_each_epoch_and_do_not_pile_up(demo_bin):
    """Through fairseq's own batch iterator with a worker process: epoch 2 crops differently from epoch 1, and
    workers do not pile up (persistent workers once leaked one set per epoch until the machine ran out of memory)."""
    import multiprocessing

    from slt_plugins.tasks.sign2gloss import Sign2GlossConfig, Sign2GlossTask

    task = Sign2GlossTask.setup_task(Sign2GlossConfig(data=str(demo_bin), crop_size=32, seed=3))
    task.load_dataset("train")
    epoch_itr = task.get_batch_iterator(task.dataset("train"), max_sentences=4, num_workers=1, seed=3, epoch=1)
    seen = []
    for _ in range(2):
        batches = {int(b["id"][0]): b["net_input"]["frames"] for b in epoch_itr.next_epoch_itr(shuffle=False)}
        seen.append(batches)
        assert len(multiprocessing.active_children()) <= 1  # at most the current epoch's worker
    assert any(seen[0][i].shape != seen[1][i].shape or not torch.equal(seen[0][i], seen[1][i]) for i in seen[0])


def test_bf16_autocast_runs_the_backbone_in_bf16_and_keeps_weights_grads_and_loss_fp32(demo_bin, monkeypatch):
    """task.bf16_autocast (opt-in; 2.8-3.3× faster steps on an AVX512-BF16 CPU, bench/train_step.py --bf16):
    the backbone's convolutions run in bfloat16, the CTC loss, weights and gradients stay float32, and the loss
    stays close to the float32 one. (The probe is told bfloat16 is faster; test_gloss2text_task covers it.)"""
    from slt_plugins.criteria.gloss_ctc import GlossCtcConfig, GlossCtcCriterion
    from slt_plugins.models.s3d_encoder import SignToGlossModel
    from slt_plugins.tasks import bf16_autocast
    from slt_plugins.tasks.sign2gloss import Sign2GlossConfig, Sign2GlossTask

    monkeypatch.setattr(bf16_autocast, "cpu_bf16_is_faster", lambda: True)
    task = Sign2GlossTask.setup_task(Sign2GlossConfig(data=str(demo_bin), crop_size=32, seed=3))
    task.load_dataset("train")
    sample = task.dataset("train").collater([task.dataset("train")[i] for i in range(4)])
    torch.manual_seed(0)
    model = SignToGlossModel.build_model(
        SignEncoderConfig(visual_backbone="cnn_tconv", backbone_args="{'channels': [8, 16], 'output_dim': 16}",
                          head_dim=16, head_ff_dim=32), task)
    criterion = GlossCtcCriterion(GlossCtcConfig(), task)
    seen = []
    model.encoder.backbone.frame_cnn[0][0].register_forward_hook(lambda m, i, out: seen.append(out.dtype))
    results = train_step_without_and_with_bf16(task, sample, model, criterion)
    assert seen == [torch.float32, torch.bfloat16]
    (loss32, _), (loss16, _) = results[False], results[True]
    assert abs(loss16 - loss32) / loss32 < 0.02, (loss32, loss16)
