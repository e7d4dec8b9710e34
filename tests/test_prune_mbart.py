"""slt-prune-mbart on a tiny mBART-shaped release, and the paper's Gloss2Text config on the pruned checkpoint
(fine-tuning it to a BLEU an untrained model does not reach is tested in test_learning.py)."""

import re
from argparse import Namespace

import pytest
import sentencepiece as spm
import torch
from fairseq.data import Dictionary

import slt_plugins  # noqa: F401
from conftest import run_script
from slt_plugins.data.manifest import read_manifest
from slt_plugins.models.mbart_translator import MBartTranslator, mbart_translator_tiny
from test_fairseq_cli import write_toy_corpus
from fairseq_slt.tools.prune_mbart import main as prune_main

LANGS = ["de_DE", "en_XX", "zh_CN"]
#: sentences the "pretraining corpus" has and the toy dataset does not: their sub-words must be pruned away
OTHER_TEXT = ["the quick brown fox jumps over the lazy dog", "xylophon quartett jazz zebra", "völlig unbekannt"]


class _Vocab:
    def __init__(self, d):
        self.source_dictionary = self.target_dictionary = d


def make_tiny_mbart(folder, texts):
    """A release laid out like mbart.cc25: sentence.bpe.model, dict.txt, model.pt (+ language tokens, <mask>)."""
    folder.mkdir()
    corpus = folder / "corpus.txt"
    corpus.write_text("\n".join(texts + OTHER_TEXT) + "\n", encoding="utf-8")
    spm.SentencePieceTrainer.train(input=str(corpus), model_prefix=str(folder / "sentence.bpe"), vocab_size=120,
                                   model_type="unigram", hard_vocab_limit=False, bos_id=-1, eos_id=-1, pad_id=-1,
                                   minloglevel=2)
    sp = spm.SentencePieceProcessor(model_file=str(folder / "sentence.bpe.model"))
    d = Dictionary()
    for i in range(sp.get_piece_size()):
        if not sp.is_unknown(i):
            d.add_symbol(sp.id_to_piece(i), n=1)
    d.save(str(folder / "dict.txt"))
    for lang in LANGS:
        d.add_symbol(f"[{lang}]")
    d.add_symbol("<mask>")
    args = Namespace(arch="mbart_translator_tiny", share_all_embeddings=True, max_source_positions=1024,
                     max_target_positions=1024)
    mbart_translator_tiny(args)
    torch.manual_seed(0)
    model = MBartTranslator.build_model(args, _Vocab(d))
    torch.save({"model": model.state_dict(), "args": args}, folder / "model.pt")
    return d, model.state_dict()


@pytest.fixture(scope="module")
def pruned(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("prune")
    write_toy_corpus(tmp / "corpus.tsv")
    data = tmp / "bin"
    run_script("slt-binarise", "tsv", "--manifest", tmp / "corpus.tsv", "--out", data, "--text-vocab-size", "40")
    rows = read_manifest(str(data / "train.tsv")) + read_manifest(str(data / "dev.tsv"))
    old_dict, old_state = make_tiny_mbart(tmp / "mbart", [r.text for r in rows] + [r.gloss.lower() for r in rows])
    assert prune_main(["--mbart-dir", str(tmp / "mbart"), "--data", str(data), "--out", str(tmp / "pruned"),
                       "--langs", ",".join(LANGS)]) == 0
    return Namespace(tmp=tmp, data=data, rows=rows, out=tmp / "pruned", old_dict=old_dict, old_state=old_state)


def test_pruned_vocabulary_covers_the_dataset_and_drops_the_rest(pruned):
    new = Dictionary.load(str(pruned.out / "dict.txt"))
    state = torch.load(pruned.out / "model.pt")["model"]
    assert state["encoder.embed_tokens.weight"].shape[0] == len(new) < len(pruned.old_dict)
    assert state["decoder.output_projection.weight"].shape[0] == len(new)
    sp = spm.SentencePieceProcessor(model_file=str(pruned.out / "sentence.bpe.model"))
    for row in pruned.rows:
        assert all(p in new.indices for p in sp.encode(row.text, out_type=str)), row.text
        assert all(g in new.indices for g in row.gloss.split()), row.gloss
    assert not any(p in new.indices for p in sp.encode("xylophon quartett jazz zebra", out_type=str)
                   if p not in sp.encode(" ".join(r.text for r in pruned.rows), out_type=str))
    assert all(f"[{lang}]" in new.indices for lang in LANGS + ["de_DGS"]) and "<mask>" in new.indices
    assert [new[i] for i in range(4)] == ["<s>", "<pad>", "</s>", "<unk>"]


def test_kept_rows_are_copied_and_new_rows_initialised_as_documented(pruned):
    new = Dictionary.load(str(pruned.out / "dict.txt"))
    old_emb = pruned.old_state["encoder.embed_tokens.weight"]
    emb = torch.load(pruned.out / "model.pt")["model"]["encoder.embed_tokens.weight"]
    id_map = [line.split("\t") for line in (pruned.out / "id_map.tsv").read_text().splitlines()[1:]]
    assert len(id_map) == len(new)
    sp = spm.SentencePieceProcessor(model_file=str(pruned.out / "sentence.bpe.model"))
    for new_id, old_id, token, sources in id_map:
        new_id = int(new_id)
        assert new[new_id] == token
        if old_id != "-":
            assert pruned.old_dict[int(old_id)] == token
            assert torch.equal(emb[new_id], old_emb[int(old_id)])
    # a gloss starts as the mean of its lower-cased sub-words; the sign language token as the spoken one
    gloss = "REGEN"
    parts = [pruned.old_dict.index(p) for p in sp.encode("regen", out_type=str)]
    assert torch.allclose(emb[new.index(gloss)], old_emb[parts].mean(0))
    assert torch.equal(emb[new.index("[de_DGS]")], old_emb[pruned.old_dict.index("[de_DE]")])


def test_wrong_language_list_is_a_clear_error(pruned, capsys):
    code = prune_main(["--mbart-dir", str(pruned.tmp / "mbart"), "--data", str(pruned.data), "--out",
                       str(pruned.tmp / "bad")])  # default: the 25 languages of mbart.cc25
    err = capsys.readouterr().err
    assert code == 2 and "model.pt has" in err and "--langs" in err
    assert not (pruned.tmp / "bad").exists()
    code = prune_main(["--mbart-dir", str(pruned.tmp), "--data", str(pruned.data), "--out", str(pruned.tmp / "bad")])
    assert code == 2 and "model.pt is missing" in capsys.readouterr().err


def test_a_checkpoint_of_another_vocabulary_is_refused_by_name(pruned):
    err = run_script(
        "fairseq-train", pruned.data, "--user-dir", "slt_plugins", "--task", "gloss2text", "--arch",
        "mbart_translator_tiny", "--pretrained-mbart", pruned.out / "model.pt", "--optimizer", "adam", "--lr", "1e-3",
        "--batch-size", "8", "--max-epoch", "1", "--save-dir", pruned.tmp / "x", "--valid-subset", "dev", check=False).stderr
    assert "--pretrained-mbart" in err and "pass --vocab" in err


def test_paper_config_fine_tunes_the_pruned_mbart(pruned):
    """configs/phoenix-2014t/g2t.yaml as written (vocab and weights found beside the data), at the tiny size."""
    data = pruned.tmp / "bin_with_mbart"
    if not data.exists():
        import shutil

        shutil.copytree(pruned.data, data)
        shutil.copytree(pruned.out, data / "mbart")
    save = pruned.tmp / "paper"
    train = run_script("fairseq-hydra-train", "--config-dir", "configs/phoenix-2014t", "--config-name", "g2t",
                       f"task.data={data}", f"checkpoint.save_dir={save}", "model._name=mbart_translator_tiny",
                       "optimization.max_epoch=1", "optimization.lr=[0.001]")
    log = (save / "hydra_train.log").read_text()
    assert "initialised from" in log and re.search(r"valid on 'dev' subset .*\| bleu [\d.]+", log), train.stdout[-2000:]
    assert (save / "checkpoint_best.pt").is_file()
