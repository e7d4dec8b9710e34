"""``--uniform-mask-dropout``: the translator's dropout drawn as uniform numbers compared with p. It must be the same
dropout as torch's (which elements survive, how they are scaled, what the gradient is) and reach every dropout
module of a model that fairseq-train builds."""

import pytest
import torch
from fairseq import checkpoint_utils
from fairseq.modules import FairseqDropout

import slt_plugins  # noqa: F401
from conftest import run_script
from slt_plugins.models.uniform_mask_dropout import (UniformMaskDropout, dropped_lanes, keep_mask,
                                                     use_uniform_mask_dropout)


def test_keeps_each_element_with_probability_one_minus_p_and_scales_it():
    dropout = UniformMaskDropout(0.3).train()
    x = torch.ones(400, 1000, requires_grad=True)
    torch.manual_seed(0)
    out = dropout(x)
    kept = out != 0
    assert abs(kept.float().mean().item() - 0.7) < 0.003  # 400k draws: 0.0007 standard deviation
    assert torch.allclose(out[kept], torch.full_like(out[kept], 1 / 0.7))
    assert kept.float().mean(1).std() < 0.03  # no row is treated apart from the others
    out.backward(torch.full_like(out, 2.0))
    assert torch.allclose(x.grad, 2.0 * out.detach())  # the gradient passes where the element did, scaled alike
    torch.manual_seed(0)
    assert torch.equal(dropout(x), out)  # the mask follows torch's seed
    torch.manual_seed(0)
    assert torch.equal(dropout(x.to(torch.bfloat16)) != 0, kept)  # and is the same for a bfloat16 activation


def test_is_the_identity_where_torch_dropout_is():
    x = torch.randn(8, 16)
    assert UniformMaskDropout(0.3).eval()(x) is x
    assert UniformMaskDropout(0.0).train()(x) is x
    assert (UniformMaskDropout(1.0).train()(x) == 0).all()  # p 1: torch's dropout zeroes everything


def test_fairseq_train_builds_the_translator_with_it(tmp_path):
    lines = ["id\tvideo\tgloss\ttext\tsigner\tsplit"]
    for i in range(12):
        lines.append(f"s{i}\t\tMORGEN REGEN WIND\tmorgen regen und wind\tSigner01\t{'train' if i < 8 else 'dev'}")
    (tmp_path / "corpus.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    run_script("slt-binarise", "tsv", "--manifest", tmp_path / "corpus.tsv", "--out", tmp_path / "bin",
               "--language", "de", "--text-vocab-size", "20")
    run_script("fairseq-train", tmp_path / "bin", "--user-dir", "slt_plugins", "--task", "gloss2text", "--arch",
               "mbart_translator_tiny", "--uniform-mask-dropout", "--dropout", "0.3", "--criterion",
               "label_smoothed_cross_entropy", "--optimizer", "adam", "--lr", "1e-3", "--batch-size", "4",
               "--max-update", "2", "--valid-subset", "dev", "--no-epoch-checkpoints", "--save-dir", tmp_path / "ckpt",
               "--num-workers", "0", "--no-progress-bar")
    models, _, _ = checkpoint_utils.load_model_ensemble_and_task([str(tmp_path / "ckpt" / "checkpoint_last.pt")])
    dropouts = [m for m in models[0].modules() if isinstance(m, FairseqDropout)]
    assert dropouts and all(type(m) is UniformMaskDropout for m in dropouts)
    assert {m.p for m in dropouts} >= {0.3}


@pytest.mark.parametrize("retained", [False, True])
def test_the_swap_keeps_each_module_p_name_and_inference_setting(retained):
    from fairseq.models.transformer import TransformerConfig
    from fairseq.modules.transformer_layer import TransformerEncoderLayerBase

    cfg = TransformerConfig(dropout=0.2, attention_dropout=0.1, activation_dropout=0.1)
    cfg.encoder.embed_dim, cfg.encoder.ffn_embed_dim, cfg.encoder.attention_heads = 16, 32, 2
    layer = TransformerEncoderLayerBase(cfg)
    before = [(name, m.p, m.module_name) for name, m in layer.named_modules() if isinstance(m, FairseqDropout)]
    for m in layer.modules():
        if isinstance(m, FairseqDropout):
            m.apply_during_inference = retained
    assert use_uniform_mask_dropout(layer) == len(before) >= 3
    after = [(name, m.p, m.module_name) for name, m in layer.named_modules() if isinstance(m, FairseqDropout)]
    assert after == before
    assert all(type(m) is UniformMaskDropout and m.apply_during_inference == retained
               for m in layer.modules() if isinstance(m, FairseqDropout))
    assert use_uniform_mask_dropout(layer) == 0  # swapped once


@pytest.mark.parametrize("p", [0.1, 0.5, 0.9])
def test_masks_of_any_size_drop_each_element_alone_with_probability_p(p):
    torch.manual_seed(1)
    mask = keep_mask((7, 33, 1001), p)  # 231231 elements: not a whole number of 64-bit draws
    assert mask.shape == (7, 33, 1001) and mask.dtype == torch.bool
    dropped = ~mask.flatten()
    assert abs(dropped.float().mean().item() - p) < 0.004  # 231k draws: at most 0.001 standard deviation
    for lag in (1, 2, 3, 4):  # neighbours share a 64-bit draw (lanes of one word) or sit in the next one
        both = (dropped[:-lag] & dropped[lag:]).float().mean().item()
        assert abs(both - p * p) < 0.004, lag


def test_p_is_rounded_to_a_lane_value_and_the_scale_keeps_the_mean():
    assert dropped_lanes(0.2) == 13107 and dropped_lanes(1e-9) == 1 and dropped_lanes(1 - 1e-9) == 2 ** 16 - 1
    torch.manual_seed(2)
    out = UniformMaskDropout(0.2).train()(torch.ones(2000, 1000))
    assert abs(out.mean().item() - 1.0) < 0.003  # 2M elements: the mean stays 1
