"""The gloss2text task's sentence layout (mBART's language tokens), source word dropout and target subword sampling."""

import logging
from argparse import Namespace

import numpy as np
import pytest
import torch
from fairseq.data import LanguagePairDataset

import slt_plugins  # noqa: F401
from conftest import BackwardOnly, run_script, train_step_without_and_with_bf16
from slt_plugins.data.manifest import manifest_path, read_manifest
from slt_plugins.tasks import bf16_autocast
from slt_plugins.tasks.gloss2text import Gloss2TextConfig, Gloss2TextTask
from test_fairseq_cli import write_toy_corpus


@pytest.fixture(scope="module")
def task(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("g2t")
    write_toy_corpus(tmp / "corpus.tsv", n_train=16, n_dev=3)
    run_script("slt-binarise", "tsv", "--manifest", tmp / "corpus.tsv", "--out", tmp / "bin", "--language", "de",
               "--text-vocab-size", "40")
    t = Gloss2TextTask.setup_task(Gloss2TextConfig(data=str(tmp / "bin")))
    t.load_dataset("train")
    return t


def test_sentences_carry_mbart_language_tokens(task):
    ds = task.datasets["train"]
    item = ds[0]
    assert task.gloss_dict[item["source"][-1]] == "[de_DGS]" and item["source"][-2] == task.gloss_dict.eos()
    assert task.text_dict[item["target"][-1]] == "[de_DE]" and item["target"][-2] == task.text_dict.eos()
    batch = ds.collater([ds[i] for i in range(4)])
    # the decoder starts from the target language token, then reads the target shifted by one
    prev = batch["net_input"]["prev_output_tokens"]
    assert (prev[:, 0] == task.target_lang_id).all()
    row = batch["id"].tolist().index(0)  # the collater sorts by source length
    assert torch.equal(prev[row, 1:len(item["target"])], item["target"][:-1])


def test_generator_stops_at_the_target_language_token(task):
    class Model(torch.nn.Module):  # build_generator only needs something it can wrap
        pass

    generator = task.build_generator([Model()], Namespace(beam=2))
    assert generator.eos == task.target_lang_id


def test_gloss_dropout_replaces_only_glosses(task):
    ds = task.datasets["train"]
    batch = ds.collater([ds[i] for i in range(16)])
    task.cfg.gloss_dropout = 0.5
    torch.manual_seed(0)
    dropped = task.drop_glosses(batch)["net_input"]["src_tokens"]
    src = batch["net_input"]["src_tokens"]
    changed = dropped != src
    assert (dropped[changed] == task.gloss_dict.unk()).all()
    keep = (src == task.gloss_dict.pad()) | (src == task.gloss_dict.eos()) | (src == task.source_lang_id)
    assert not changed[keep].any()
    rate = changed.sum().item() / (~keep).sum().item()
    assert 0.3 < rate < 0.7, rate
    assert torch.equal(batch["net_input"]["src_tokens"], src)  # the batch itself is left as it was


def test_text_sampling_cuts_training_targets_anew_and_keeps_their_words(task):
    """Subword regularisation: each epoch reads a training target as a fresh sentencepiece segmentation of the same
    text, from the dictionary's pieces; dev keeps the one best segmentation, and without the option nothing moves."""
    sampled = Gloss2TextTask.setup_task(Gloss2TextConfig(data=task.cfg.data, text_sampling_alpha=0.1, seed=1))
    sampled.load_dataset("train")
    sampled.load_dataset("dev")
    train, plain = sampled.datasets["train"], task.datasets["train"]
    bpe = sampled.build_bpe(None)
    reads = {i: [] for i in range(len(train))}
    for epoch in range(1, 9):
        train.set_epoch(epoch)
        for i in range(len(train)):
            reads[i].append(train[i]["target"])
            assert train.tgt_sizes[i] == len(reads[i][-1])  # batching reads this epoch's cut, not the best one
    cuts_seen = 0
    for i in range(len(train)):
        best = plain[i]["target"]
        for ids in reads[i]:
            assert not (ids == sampled.text_dict.unk()).any()
            assert ids[-2] == sampled.text_dict.eos() and ids[-1] == sampled.target_lang_id
            assert bpe.decode(sampled.text_dict.string(ids[:-2])) == bpe.decode(task.text_dict.string(best[:-2]))
        cuts_seen += len({tuple(r.tolist()) for r in reads[i]}) > 1
    assert cuts_seen > len(train) // 2
    # a cut depends on the epoch, not on the read: dev and unsampled training targets must not move across epochs
    task.load_dataset("dev")
    dev, plain_dev = sampled.datasets["dev"], task.datasets["dev"]
    before = [plain[i]["target"] for i in range(len(plain))]
    for epoch in (2, 5):
        dev.set_epoch(epoch)
        plain.set_epoch(epoch)
        assert all(torch.equal(dev[i]["target"], plain_dev[i]["target"]) for i in range(len(dev)))
        assert all(torch.equal(plain[i]["target"], before[i]) for i in range(len(plain)))


def test_text_sampling_repeats_with_the_seed(task):
    """A cut depends on (seed, epoch, sentence) only: a second task with the same seed reads the same targets, in
    any order, and another seed reads others. sentencepiece's own sampler did not repeat under one seed."""
    def targets(seed, epoch, order):
        t = Gloss2TextTask.setup_task(Gloss2TextConfig(data=task.cfg.data, text_sampling_alpha=0.3, seed=seed))
        t.load_dataset("train")
        ds = t.datasets["train"]
        ds.set_epoch(epoch)
        return {i: tuple(ds[i]["target"].tolist()) for i in order}

    order = list(range(len(task.datasets["train"])))
    first = targets(1, 3, order)
    assert first == targets(1, 3, order[::-1])
    assert first != targets(2, 3, order)
    assert first != targets(1, 4, order)


def test_training_batches_sort_by_the_epochs_target_lengths(task):
    """Sampled cuts and joined items change the lengths each epoch; training batches are made from those lengths,
    target first (the dearer side to pad), so a batch's targets are padded little; dev keeps fairseq's order."""
    t = Gloss2TextTask.setup_task(Gloss2TextConfig(data=task.cfg.data, text_sampling_alpha=0.1,
                                                   context_concat_prob=0.5, seed=1))
    t.load_dataset("train")
    t.load_dataset("dev")
    train = t.datasets["train"]
    assert not train.can_reuse_epoch_itr_across_epochs
    for epoch in (1, 2):
        train.set_epoch(epoch)
        order = train.ordered_indices()
        assert sorted(order.tolist()) == list(range(len(train)))
        lengths = [len(train[i]["target"]) for i in order]
        assert lengths == sorted(lengths) and lengths == train.tgt_sizes[order].tolist()
        def target_padding(indices):
            batches = train.batch_by_size(indices, max_sentences=4)
            return sum(len(b) * train.tgt_sizes[b].max() - train.tgt_sizes[b].sum() for b in batches)

        assert target_padding(order) <= target_padding(LanguagePairDataset.ordered_indices(train))
    dev = t.datasets["dev"]
    assert dev.ordered_indices().tolist() == np.lexsort((dev.tgt_sizes, dev.src_sizes)).tolist()


def _tiny_translator(task):
    from fairseq.criterions.label_smoothed_cross_entropy import LabelSmoothedCrossEntropyCriterion

    from slt_plugins.models.mbart_translator import MBartTranslator, mbart_translator_tiny

    args = Namespace(arch="mbart_translator_tiny", max_source_positions=1024, max_target_positions=1024)
    mbart_translator_tiny(args)
    torch.manual_seed(0)
    model = MBartTranslator.build_model(args, task)
    criterion = LabelSmoothedCrossEntropyCriterion(task, sentence_avg=False, label_smoothing=0.1)
    return model, criterion


def test_bf16_autocast_runs_products_in_bf16_and_keeps_weights_grads_and_loss_fp32(task, monkeypatch):
    """--bf16-autocast: the forward's matrix products run in bfloat16, while the loss, the weights and their
    gradients stay float32 and the loss stays close to the float32 one; off, nothing is bfloat16. (The CPU's timing
    probe is made to say bfloat16 is faster, as on a CPU with AMX; the next test covers the other answer.)"""
    monkeypatch.setattr(bf16_autocast, "cpu_bf16_is_faster", lambda: True)
    monkeypatch.setattr(task, "_bf16_autocast_on", None)
    model, criterion = _tiny_translator(task)
    ds = task.datasets["train"]
    sample = ds.collater([ds[i] for i in range(8)])
    seen = []
    hook = model.decoder.output_projection.register_forward_hook(lambda m, i, out: seen.append(out.dtype))

    def validate():
        valid_loss, _, _ = task.valid_step(sample, model, criterion)
        assert valid_loss.dtype == torch.float32

    results = train_step_without_and_with_bf16(task, sample, model, criterion, after_step=validate)
    hook.remove()
    assert seen == [torch.float32, torch.float32, torch.bfloat16, torch.bfloat16]  # train, valid; off then on
    (loss32, grads32), (loss16, grads16) = results[False], results[True]
    assert abs(loss16 - loss32) / loss32 < 0.02
    cos = torch.nn.functional.cosine_similarity(torch.cat([g.flatten() for g in grads16]),
                                                torch.cat([g.flatten() for g in grads32]), dim=0)
    assert cos > 0.99, cos


def test_bf16_autocast_is_switched_off_where_the_cpu_multiplies_bfloat16_slower(task, monkeypatch, caplog):
    """On a CPU whose timed bfloat16 product is slower than the float32 one (AVX512-BF16 without AMX), training runs
    in float32 and the warning gives both times; the probe runs once per task. Faster bfloat16: on, logged."""
    calls = []
    monkeypatch.setattr(bf16_autocast, "time_cpu_products", lambda: calls.append(1) or (2.31, 4.02))
    monkeypatch.setattr(task, "_bf16_autocast_on", None)
    monkeypatch.setattr(task.cfg, "bf16_autocast", True)
    model, criterion = _tiny_translator(task)
    ds = task.datasets["train"]
    sample = ds.collater([ds[i] for i in range(4)])
    seen = []
    hook = model.decoder.output_projection.register_forward_hook(lambda m, i, out: seen.append(out.dtype))
    with caplog.at_level(logging.WARNING, logger=bf16_autocast.__name__):
        for _ in range(2):
            task.train_step(sample, model, criterion, BackwardOnly, update_num=0)
        task.valid_step(sample, model, criterion)
    hook.remove()
    assert seen == [torch.float32] * 3 and calls == [1]
    assert "switched off" in caplog.text and "4.02 ms" in caplog.text and "2.31 ms" in caplog.text
    monkeypatch.setattr(bf16_autocast, "time_cpu_products", lambda: (4.0, 0.9))
    assert bf16_autocast.cpu_bf16_is_faster() is True


def test_the_cpu_product_timer_times_both_types_and_leaves_the_global_random_stream_alone():
    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    fp32, bf16 = bf16_autocast.time_cpu_products(shape=(64, 32, 128), repeats=2)
    assert 0 < fp32 < 1000 and 0 < bf16 < 1000
    assert torch.equal(torch.rand(3), expected)  # the probe runs inside a seeded training's first step


def test_context_concatenation_joins_an_utterance_to_the_one_before_it(task):
    """--context-concat-prob: a training item is read as the preceding utterance of its recording followed by itself
    (glosses and text), with the probability given, the same for one (seed, epoch) and other in another epoch; dev
    items and utterances that open a recording stay as they are."""
    def joined_task(prob, seed=1):
        t = Gloss2TextTask.setup_task(Gloss2TextConfig(data=task.cfg.data, context_concat_prob=prob, seed=seed))
        t.load_dataset("train")
        t.load_dataset("dev")
        return t

    always, plain = joined_task(1.0), task.datasets["train"]
    train = always.datasets["train"]
    ids = [r.id for r in read_manifest(manifest_path(task.cfg.data, "train"))]
    joined = 0
    for i, id_ in enumerate(ids):
        item = train[i]
        before = ids.index(f"{id_.rsplit('-', 1)[0]}-{int(id_.rsplit('-', 1)[1]) - 1}") \
            if not id_.endswith("-0") else None
        if before is None:
            assert torch.equal(item["source"], plain[i]["source"]) and torch.equal(item["target"], plain[i]["target"])
            continue
        joined += 1
        for side in ("source", "target"):
            assert torch.equal(item[side], torch.cat([plain[before][side][:-2], plain[i][side]])), (id_, side)
    assert joined >= len(ids) // 2
    # fairseq batches by the joined sizes, and makes the batches anew each epoch
    assert all(len(train[i]["source"]) == train.src_sizes[i] and len(train[i]["target"]) == train.tgt_sizes[i]
               for i in range(len(train)))
    assert not train.can_reuse_epoch_itr_across_epochs and plain.can_reuse_epoch_itr_across_epochs
    dev = always.datasets["dev"]
    assert all(len(dev[i]["source"]) == dev.src_sizes[i] and len(dev[i]["target"]) == dev.tgt_sizes[i]
               for i in range(len(dev)))
    # a batch of joined items collates (padding to the longest, the decoder's input shifted as usual)
    batch = train.collater([train[i] for i in range(8)])
    assert batch["net_input"]["src_tokens"].size(1) == max(len(train[i]["source"]) for i in range(8))

    def decisions(t, epoch):
        ds = t.datasets["train"]
        ds.set_epoch(epoch)
        return [len(ds[i]["source"]) > len(plain[i]["source"]) for i in range(len(ds))]

    half = joined_task(0.5)
    assert decisions(half, 3) == decisions(joined_task(0.5), 3)
    assert decisions(half, 3) != decisions(half, 4)
    assert 0 < sum(decisions(half, 3)) < joined
