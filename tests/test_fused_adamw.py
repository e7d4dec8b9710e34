"""``--optimizer fused_adamw``: fairseq's Adam rule (decoupled weight decay) in torch's fused kernel. It must step as
fairseq's ``adam`` does, and train, save and resume through fairseq-train."""

import torch
from fairseq.optim.adam import FairseqAdam, FairseqAdamConfig

import slt_plugins  # noqa: F401
from conftest import run_script
from test_fairseq_cli import write_toy_corpus
from slt_plugins.optim.fused_adamw import FusedAdamW, FusedAdamWConfig


def _params(seed):
    torch.manual_seed(seed)
    return [torch.nn.Parameter(torch.randn(shape)) for shape in [(64, 32), (32,), (1000,)]]


def test_steps_as_fairseqs_adam_with_decoupled_weight_decay():
    ours, theirs = _params(0), _params(0)
    settings = {"adam_betas": "(0.9,0.98)", "adam_eps": 1e-8, "weight_decay": 0.01, "lr": [3e-3]}
    fused = FusedAdamW(FusedAdamWConfig(**settings), ours)
    reference = FairseqAdam(FairseqAdamConfig(**settings), theirs)
    assert reference.optimizer.__class__.__module__ == "fairseq.optim.adam"  # fairseq's own loop, not torch's
    torch.manual_seed(1)
    for step in range(30):
        if step == 20:
            fused.set_lr(1e-3), reference.set_lr(1e-3)  # as fairseq's schedulers do between updates
        for a, b in zip(ours, theirs):
            a.grad = torch.randn_like(a)
            b.grad = a.grad.clone()
        fused.step(), reference.step()
    moved = max((a - p).abs().max().item() for a, p in zip(ours, _params(0)))
    assert moved > 0.05  # 30 steps of about lr each: the comparison below is not of unmoved weights
    for a, b in zip(ours, theirs):  # where ε enters differs, which shows only where a gradient was near zero
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)
        assert (a - b).abs().mean() < 1e-6  # elsewhere float32 rounding: weights near 1 differ by an ulp or two


def test_fairseq_train_trains_saves_and_resumes_with_it(tmp_path):
    write_toy_corpus(tmp_path / "corpus.tsv", n_train=8, n_dev=4)
    run_script("slt-binarise", "tsv", "--manifest", tmp_path / "corpus.tsv", "--out", tmp_path / "bin",
               "--text-vocab-size", "40")
    train = ["fairseq-train", tmp_path / "bin", "--user-dir", "slt_plugins", "--task", "gloss2text", "--arch",
             "mbart_translator_tiny", "--criterion", "label_smoothed_cross_entropy", "--optimizer", "fused_adamw",
             "--adam-betas", "(0.9,0.98)", "--weight-decay", "0.0001", "--lr", "1e-3", "--batch-size", "4",
             "--valid-subset", "dev", "--no-epoch-checkpoints", "--save-dir", tmp_path / "ckpt", "--num-workers",
             "0", "--no-progress-bar"]
    run_script(*train, "--max-update", "2")
    saved = torch.load(tmp_path / "ckpt" / "checkpoint_last.pt", weights_only=True)
    state = saved["last_optimizer_state"]["state"]
    assert state and all(int(s["step"]) == 2 and "exp_avg_sq" in s for s in state.values())
    run_script(*train, "--max-update", "4")  # resumes from checkpoint_last, with the optimizer's moments
    resumed = torch.load(tmp_path / "ckpt" / "checkpoint_last.pt", weights_only=True)
    assert all(int(s["step"]) == 4 for s in resumed["last_optimizer_state"]["state"].values())
    assert resumed["optimizer_history"][-1]["optimizer_name"] == "FusedAdamW"
