"""Gloss spelling embeddings (``--gloss-spelling-embeddings``): which text sub-words a gloss spells, and how the
encoder's gloss vectors share the decoder's embedding table through them."""

import json
import re
from argparse import Namespace

import pytest
import torch

import slt_plugins  # noqa: F401
from conftest import run_script
from slt_plugins.tasks.gloss2text import Gloss2TextConfig, Gloss2TextTask

ROWS = [  # Phoenix-style glosses: capitals, ASCII umlauts, hyphenated compounds, pointing signs
    ("MORGEN KOENNEN REGEN", "morgen können regen und schauer kommen"),
    ("IX SUED WIE-AUSSEHEN", "wie wird es im süden aussehen"),
    ("neg-HABEN SCHNEE", "schnee haben wir nicht"),
    ("NEUE WOCHE REGEN", "die neue woche bringt regen"),
    ("MORGEN SONNE", "morgen scheint die sonne"),
    ("REGEN WIND", "regen und wind"),
]


@pytest.fixture(scope="module")
def task(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("spell")
    lines = ["id\tvideo\tgloss\ttext\tsigner\tsplit"]
    for i in range(24):
        gloss, text = ROWS[i % len(ROWS)]
        lines.append(f"rec{i}\t\t{gloss}\t{text}\tSigner01\t{'train' if i < 20 else 'dev'}")
    (tmp / "corpus.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    run_script("slt-binarise", "tsv", "--manifest", tmp / "corpus.tsv", "--out", tmp / "bin", "--language", "de",
               "--text-vocab-size", "45")
    t = Gloss2TextTask.setup_task(Gloss2TextConfig(data=str(tmp / "bin")))
    t.load_dataset("train")
    return t


def spelled(task, table, gloss):
    row = table[task.gloss_dict.index(gloss)]
    return task.text_bpe.decode(task.text_dict.string(row[row != task.text_dict.pad()]))


def test_a_gloss_spells_the_training_words_it_writes(task):
    table = task.gloss_spellings()
    assert table.shape[0] == len(task.gloss_dict)
    assert spelled(task, table, "MORGEN") == "morgen"
    assert spelled(task, table, "KOENNEN") == "können"  # ASCII umlaut, read as ö because "koennen" is no word
    assert spelled(task, table, "NEUE") == "neue"  # a word as written is taken first: not "neü"
    assert spelled(task, table, "WIE-AUSSEHEN") == "wie aussehen"  # each part of a compound
    assert spelled(task, table, "neg-HABEN") == "haben"  # only the parts that are words
    assert spelled(task, table, "IX") == spelled(task, table, "SUED") == ""  # the text says "süden", not "süd"
    for token in range(task.gloss_dict.nspecial):
        assert (table[token] == task.text_dict.pad()).all()
    assert (table[task.source_lang_id] == task.text_dict.pad()).all()


def tiny_model(task, spelling: bool):
    from slt_plugins.models.mbart_translator import MBartTranslator, mbart_translator_tiny

    args = Namespace(arch="mbart_translator_tiny", max_source_positions=64, max_target_positions=64,
                     gloss_spelling_embeddings=spelling)
    mbart_translator_tiny(args)
    torch.manual_seed(0)
    return MBartTranslator.build_model(args, task)


def test_gloss_vectors_add_their_words_mean_text_embedding(task):
    model = tiny_model(task, spelling=True)
    embed, text = model.encoder.embed_tokens, model.decoder.embed_tokens
    table = task.gloss_spellings()
    tokens = torch.LongTensor([[task.gloss_dict.index(g) for g in ("WIE-AUSSEHEN", "IX", "REGEN")]])
    out = embed(tokens)[0]
    for position, token in enumerate(tokens[0].tolist()):
        pieces = table[token][table[token] != task.text_dict.pad()]
        expected = embed.weight[token] + (text.weight[pieces].mean(0) if len(pieces) else 0)
        assert torch.allclose(out[position], expected, atol=1e-6)
    # what the encoder learns about a gloss reaches the decoder's rows of its words, and nothing else is shared
    out.sum().backward()
    regen = table[task.gloss_dict.index("REGEN")]
    assert text.weight.grad[regen[regen != task.text_dict.pad()]].abs().sum() > 0
    keys = model.state_dict().keys()
    assert "encoder.embed_tokens.weight" in keys and "encoder.embed_tokens.spellings" in keys
    assert not any(k.startswith("encoder.embed_tokens.text") for k in keys)


def test_the_option_is_refused_with_a_shared_vocabulary(task):
    shared = Namespace(source_dictionary=task.text_dict, target_dictionary=task.text_dict)
    from slt_plugins.models.mbart_translator import MBartTranslator, mbart_translator_tiny

    args = Namespace(arch="mbart_translator_tiny", max_source_positions=64, max_target_positions=64,
                     gloss_spelling_embeddings=True)
    mbart_translator_tiny(args)
    with pytest.raises(ValueError, match="--gloss-spelling-embeddings"):
        MBartTranslator.build_model(args, shared)


def test_fairseq_train_then_generate_and_export_with_spelling_embeddings(task, tmp_path):
    """The option end to end: fairseq-train saves the spellings with the model, fairseq-generate rebuilds and loads
    it, and a bundle from slt-export (no training manifest in it) translates as fairseq-generate does."""
    common = ["--user-dir", "slt_plugins", "--task", "gloss2text", "--num-workers", "0"]
    run_script("fairseq-train", task.cfg.data, *common, "--arch", "mbart_translator_tiny",
               "--gloss-spelling-embeddings", "--criterion", "label_smoothed_cross_entropy", "--optimizer", "adam",
               "--lr", "1e-3", "--batch-size", "8", "--max-update", "4", "--valid-subset", "dev",
               "--no-epoch-checkpoints", "--save-dir", tmp_path, "--no-progress-bar")
    state = torch.load(tmp_path / "checkpoint_last.pt", map_location="cpu", weights_only=True)["model"]
    assert torch.equal(state["encoder.embed_tokens.spellings"], task.gloss_spellings())
    out = run_script("fairseq-generate", task.cfg.data, *common, "--path", tmp_path / "checkpoint_last.pt",
                     "--gen-subset", "dev", "--beam", "2", "--max-len-b", "10").stdout
    assert sum(line.startswith("H-") for line in out.splitlines()) == 4
    bundle = tmp_path / "bundle"
    run_script("slt-export", "--checkpoint", tmp_path / "checkpoint_last.pt", "--out", bundle)
    assert not (bundle / "train.tsv").exists()
    first_dev = re.search(r"^D-0\t[^\t]*\t(.*)$", out, flags=re.M).group(1)
    translated = run_script("slt-translate", "--model", bundle, ROWS[20 % len(ROWS)][0], "--beam", "2", "--json")
    assert json.loads(translated.stdout)["text"] == first_dev
