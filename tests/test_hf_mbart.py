"""A Hugging Face MBart folder converted to ``mbart_translator`` computes what ``transformers`` computes.

A tiny random ``MBartForConditionalGeneration`` and a tiny sentencepiece model are made here and saved as HF saves
them; nothing is downloaded. The converter itself never imports ``transformers``: only these tests do.
"""

import json
import re
import shutil
from argparse import Namespace

import pytest
import sentencepiece as spm
import torch

transformers = pytest.importorskip("transformers")
pytest.importorskip("safetensors")

from fairseq.sequence_generator import SequenceGenerator  # noqa: E402

import slt_plugins  # noqa: E402,F401
from conftest import run_script  # noqa: E402
from slt_plugins.data.manifest import read_manifest  # noqa: E402
from slt_plugins.models.hf_mbart import HFMBartError, hf_dictionary, load_hf_mbart  # noqa: E402
from slt_plugins.models.mbart_translator import MBartTranslator, mbart_translator_tiny  # noqa: E402
from test_fairseq_cli import write_toy_corpus  # noqa: E402
from fairseq_slt.tools.prune_mbart import main as prune_main  # noqa: E402

LANGS = ["de_DE", "en_XX", "zh_CN"]
TEXTS = ["morgen gibt es im norden regen", "im süden scheint die sonne", "der wind weht stark aus westen",
         "the quick brown fox jumps over the lazy dog", "xylophon quartett jazz zebra", "völlig unbekannt"]


class _NotATensor:
    """A pickled object of a class: what ``torch.load(weights_only=True)`` must refuse to build."""


class _Vocab:
    def __init__(self, d):
        self.source_dictionary = self.target_dictionary = d


def make_hf_mbart(folder, texts=TEXTS, *, activation="gelu", scale_embedding=True, weights="safetensors",
                  max_positions=1024, seed=0, boost=None):
    """An HF MBart folder as ``save_pretrained`` and the tokenizer lay it out: ``config.json``,
    ``model.safetensors`` (or ``pytorch_model.bin``), ``sentencepiece.bpe.model`` (pieces 0-2 = <unk> <s> </s>, as
    mBART's). The vocabulary is HF's: 4 specials, pieces 3…, the languages, ``<mask>``. The weights are drawn far
    wider than HF's initialisation, so that outputs are peaked and a wrong convention shows; ``boost`` (``</s>`` or
    ``[de_DE]``) lengthens that token's row, so that the output ends a sentence with it now and then."""
    folder.mkdir()
    corpus = folder.parent / f"{folder.name}.corpus.txt"
    corpus.write_text("\n".join(texts) + "\n", encoding="utf-8")
    spm.SentencePieceTrainer.train(input=str(corpus), model_prefix=str(folder / "sentencepiece.bpe"),
                                   vocab_size=100, model_type="unigram", hard_vocab_limit=False, minloglevel=2)
    (folder / "sentencepiece.bpe.vocab").unlink()
    pieces = spm.SentencePieceProcessor(model_file=str(folder / "sentencepiece.bpe.model")).get_piece_size()
    config = transformers.MBartConfig(
        vocab_size=pieces + 1 + len(LANGS) + 1, d_model=64, encoder_layers=2, decoder_layers=2,
        encoder_attention_heads=4, decoder_attention_heads=4, encoder_ffn_dim=128, decoder_ffn_dim=128,
        max_position_embeddings=max_positions, activation_function=activation, scale_embedding=scale_embedding,
        dropout=0.0, attention_dropout=0.0, activation_dropout=0.0)
    torch.manual_seed(seed)
    model = transformers.MBartForConditionalGeneration(config).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.normal_(1.0 if "layer_norm" in name or "layernorm" in name else 0.0, 0.3)
        if boost:
            model.model.shared.weight[2 if boost == "</s>" else pieces + 1 + LANGS.index(boost[1:-1])] *= 2.5
    model.save_pretrained(folder)
    if weights == "bin":  # what save_pretrained wrote before safetensors
        (folder / "model.safetensors").unlink()
        torch.save(model.state_dict(), folder / "pytorch_model.bin")
    return model


def converted(folder, load=True, **arch):
    """``mbart_translator_tiny`` built on the folder's HF-order dictionary, loaded through ``--pretrained-mbart``
    (or, ``load=False``, given the converted weights as they are, whatever ``arch`` says)."""
    state, settings = load_hf_mbart(str(folder))
    d = hf_dictionary(str(folder / "sentencepiece.bpe.model"), LANGS, state["encoder.embed_tokens.weight"].size(0))
    args = Namespace(arch="mbart_translator_tiny", share_all_embeddings=True, dropout=0.0, attention_dropout=0.0,
                     activation_dropout=0.0, **{k: v for k, v in settings.items() if k not in arch}, **arch)
    mbart_translator_tiny(args)
    model = MBartTranslator.build_model(args, _Vocab(d))
    if load:
        model.load_pretrained_mbart(str(folder))
    else:
        model.load_state_dict(state, strict=False)
    return model.eval(), d


def batch(d, seed, n=3):
    """Sources ``pieces </s> [en_XX]`` and targets ``pieces </s> [de_DE]`` of different lengths, right-padded
    (the gloss2text task's layout), as id tensors."""
    g = torch.Generator().manual_seed(seed)
    def pad(rows):
        out = torch.full((len(rows), max(map(len, rows))), d.pad(), dtype=torch.long)
        for i, r in enumerate(rows):
            out[i, : len(r)] = torch.tensor(r)
        return out
    first, last = d.nspecial, d.index("[de_DE]") - 1
    src, tgt = [], []
    for i in range(n):
        src.append(torch.randint(first, last, (3 + 2 * i,), generator=g).tolist() + [d.eos(), d.index("[en_XX]")])
        tgt.append(torch.randint(first, last, (6 - i,), generator=g).tolist() + [d.eos(), d.index("[de_DE]")])
    return pad(src), pad(tgt)


def teacher_forced(fs, hf, d, src, tgt):
    """Both models' log-probabilities of ``tgt`` given ``src``, decoder input ``[de_DE] pieces </s>``: the target
    with its last token (the language token) moved to the front, which is fairseq's mBART convention and what HF's
    ``shift_tokens_right`` does."""
    lengths = tgt.ne(d.pad()).sum(1)
    prev = tgt.clone()
    prev[:, 1:] = tgt[:, :-1]
    prev[:, 0] = d.index("[de_DE]")
    prev = prev.masked_fill(tgt.eq(d.pad()), d.pad())
    mask = tgt.ne(d.pad())
    with torch.no_grad():
        ours = fs.get_normalized_probs(fs(src, src.ne(d.pad()).sum(1), prev), log_probs=True)
        theirs = torch.log_softmax(hf(input_ids=src, attention_mask=src.ne(d.pad()).long(), decoder_input_ids=prev,
                                      decoder_attention_mask=prev.ne(d.pad()).long()).logits, -1)
    assert mask.sum() == lengths.sum()
    return ours[mask], theirs[mask]


@pytest.mark.parametrize("activation,scale_embedding,weights", [
    ("gelu", True, "safetensors"),  # mbart-large-cc25's settings
    ("relu", False, "bin"),  # HF's MBartConfig defaults for scale_embedding, another activation, the .bin file
])
def test_teacher_forced_log_probabilities_match_transformers(tmp_path, activation, scale_embedding, weights):
    hf = make_hf_mbart(tmp_path / "hf", activation=activation, scale_embedding=scale_embedding, weights=weights)
    fs, d = converted(tmp_path / "hf")
    assert len(d) == hf.config.vocab_size and d[d.index("[zh_CN]") + 1] == "<mask>"
    src, tgt = batch(d, seed=1)
    ours, theirs = teacher_forced(fs, hf, d, src, tgt)
    assert theirs.max(-1).values.mean() > -1.0, "outputs too flat for the comparison to tell conventions apart"
    assert (ours - theirs).abs().max().item() <= 1e-4

    # the comparison can fail: the other embedding scale gives other log-probabilities
    wrong, _ = converted(tmp_path / "hf", load=False, no_scale_embedding=scale_embedding)
    ours_wrong, _ = teacher_forced(wrong, hf, d, src, tgt)
    assert (ours_wrong - theirs).abs().max().item() > 1e-2


class FairseqMaxLength(transformers.LogitsProcessor):
    """fairseq ends a hypothesis at the maximum length by forbidding every token but eos and keeping eos's
    log-probability; HF's ``forced_eos_token_id`` sets eos's to 0 instead. This processor is fairseq's rule, so that a
    hypothesis cut at the maximum length is scored alike on both sides."""

    def __init__(self, eos: int, last_length: int):
        self.eos, self.last_length = eos, last_length

    def __call__(self, input_ids, scores):
        if input_ids.shape[-1] >= self.last_length:
            eos = scores[:, self.eos].clone()
            scores = torch.full_like(scores, float("-inf"))
            scores[:, self.eos] = eos
        return scores


@pytest.mark.parametrize("stop", ["language token", "</s>"])
@pytest.mark.parametrize("lenpen", [1.0, 0.6])
def test_beam_search_matches_transformers_generate(tmp_path, stop, lenpen):
    """fairseq's SequenceGenerator on the converted model against ``generate`` on the HF model: the same best
    hypothesis per sentence, and the same scores for every hypothesis of the n-best lists.

    The n-best lists may differ in their last entries: when the beam fills at a step, fairseq keeps the first
    hypotheses finished (those of earlier steps, then the step's best) while HF keeps the best ``beam`` of all
    finished so far. The best hypothesis, which both return as the translation, is the same either way.

    Conventions mapped so that both run the same search:

    - Start: both decoders start from the target language token ``[de_DE]`` (HF: ``decoder_start_token_id``, as
      mBART's HF generation does; fairseq: ``bos_token``, or its eos where that is the language token). No forced
      BOS: that is for many-to-many mBART-50, whose first generated token is the language.
    - Stop: the gloss2text task ends hypotheses at the language token that closes its targets
      (``</s> [de_DE]``: fairseq's ``translation_from_pretrained_bart`` convention); HF's mBART at ``</s>``. Both
      are tested, by giving both sides the same ``eos``.
    - Length: fairseq's ``max_len_b = L`` allows L tokens and eos after the start token; HF's ``max_length`` counts the
      start token too: ``L + 2``. At that length both force eos, scored as fairseq does (:class:`FairseqMaxLength`).
    - fairseq never selects ``<pad>`` and forbids eos as the first token (``min_len = 1``): HF gets
      ``suppress_tokens=[pad]`` and ``min_new_tokens=1``. ``early_stopping=True``: fairseq stops a sentence once
      ``beam`` hypotheses are finished. Both divide a finished hypothesis's log-probability by (tokens after the
      start, eos included) ** length penalty.
    """
    hf = make_hf_mbart(tmp_path / "hf", boost="[de_DE]" if stop == "language token" else "</s>")
    fs, d = converted(tmp_path / "hf")
    src, _ = batch(d, seed=2, n=4)
    beam, max_len = 4, 10
    lang = d.index("[de_DE]")
    eos = lang if stop == "language token" else d.eos()
    generator = SequenceGenerator([fs], d, beam_size=beam, max_len_a=0, max_len_b=max_len, len_penalty=lenpen,
                                  eos=eos)
    sample = {"net_input": {"src_tokens": src, "src_lengths": src.ne(d.pad()).sum(1)}}
    with torch.no_grad():
        ours = generator.generate([fs], sample, bos_token=lang)
    config = transformers.GenerationConfig(
        num_beams=beam, num_return_sequences=beam, length_penalty=lenpen, early_stopping=True, do_sample=False,
        max_length=max_len + 2, min_new_tokens=1, decoder_start_token_id=lang, eos_token_id=eos, pad_token_id=d.pad(),
        bos_token_id=d.bos(), suppress_tokens=[d.pad()], forced_bos_token_id=None, forced_eos_token_id=None,
        output_scores=True, return_dict_in_generate=True)
    hf.generation_config.forced_eos_token_id = None  # the model's default (</s>, scored 0) would fill in a None above
    with torch.no_grad():
        theirs = hf.generate(input_ids=src, attention_mask=src.ne(d.pad()).long(), generation_config=config,
                             logits_processor=transformers.LogitsProcessorList([FairseqMaxLength(eos, max_len + 1)]))
    natural, shared = 0, 0
    for i in range(len(src)):
        hf_hyps = {}
        for j in range(beam):
            row = theirs.sequences[i * beam + j][1:]  # without the start token
            ends = (row == eos).nonzero()
            hf_hyps[tuple(row[: ends[0].item() + 1].tolist() if len(ends) else row.tolist())] = \
                theirs.sequences_scores[i * beam + j].item()
        best = next(iter(hf_hyps))
        assert ours[i][0]["tokens"].tolist() == list(best), i
        for hyp in ours[i]:
            tokens = tuple(hyp["tokens"].tolist())
            natural += len(tokens) <= max_len
            if tokens in hf_hyps:
                shared += 1
                assert abs(hyp["score"].item() - hf_hyps[tokens]) <= 1e-4, (i, tokens)
    assert natural, "no hypothesis ended before the maximum length: the test would not see eos scoring"
    assert shared >= len(src) * (beam - 1), "the n-best lists differ by more than their lowest entry"


def test_mismatched_settings_and_unsupported_weights_are_one_line_errors(tmp_path):
    make_hf_mbart(tmp_path / "hf", activation="relu", scale_embedding=False)
    with pytest.raises(ValueError, match=r"--pretrained-mbart .*activation_fn='relu'.*; pass --activation-fn relu"):
        converted(tmp_path / "hf", activation_fn="gelu")
    with pytest.raises(ValueError, match=r"no_scale_embedding=True.*; pass --no-scale-embedding"):
        converted(tmp_path / "hf", no_scale_embedding=False)

    from safetensors.torch import load_file, save_file

    state = load_file(tmp_path / "hf" / "model.safetensors")
    state["final_logits_bias"] = torch.ones_like(state["final_logits_bias"])
    save_file(state, tmp_path / "hf" / "model.safetensors")
    with pytest.raises(HFMBartError, match=r"model.safetensors|hf: final_logits_bias is not zero"):
        load_hf_mbart(str(tmp_path / "hf"))

    (tmp_path / "hf" / "model.safetensors").unlink()
    torch.save({"model.shared.weight": _NotATensor()}, tmp_path / "hf" / "pytorch_model.bin")
    with pytest.raises(HFMBartError, match=r"pytorch_model.bin cannot be read as plain weights"):
        load_hf_mbart(str(tmp_path / "hf"))


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("hf_prune")
    write_toy_corpus(tmp / "corpus.tsv")
    run_script("slt-binarise", "tsv", "--manifest", tmp / "corpus.tsv", "--out", tmp / "bin", "--text-vocab-size",
               "40")
    rows = read_manifest(str(tmp / "bin" / "train.tsv")) + read_manifest(str(tmp / "bin" / "dev.tsv"))
    return tmp, [r.text for r in rows] + [r.gloss.lower() for r in rows]


def test_prune_mbart_reads_an_hf_folder_and_gloss2text_trains_from_it(dataset):
    tmp, texts = dataset
    hf = make_hf_mbart(tmp / "hf", texts + TEXTS, activation="relu", scale_embedding=False)
    assert prune_main(["--mbart-dir", str(tmp / "hf"), "--data", str(tmp / "bin"), "--out", str(tmp / "pruned"),
                       "--langs", ",".join(LANGS)]) == 0
    checkpoint = torch.load(tmp / "pruned" / "model.pt", weights_only=True)
    assert checkpoint["mbart_settings"]["activation_fn"] == "relu"
    pruned = checkpoint["model"]["encoder.embed_tokens.weight"]
    assert pruned.size(0) < hf.config.vocab_size
    # a kept piece's row is HF's row of the same piece (HF id = sentencepiece id + 1)
    sp = spm.SentencePieceProcessor(model_file=str(tmp / "hf" / "sentencepiece.bpe.model"))
    from fairseq.data import Dictionary

    new = Dictionary.load(str(tmp / "pruned" / "dict.txt"))
    piece = sp.encode("regen", out_type=str)[0]
    assert torch.equal(pruned[new.index(piece)], hf.model.shared.weight[sp.piece_to_id(piece) + 1].detach())

    common = ["--user-dir", "slt_plugins", "--task", "gloss2text", "--arch", "mbart_translator_tiny",
              "--optimizer", "adam", "--lr", "1e-3", "--batch-size", "16", "--max-update", "2",
              "--valid-subset", "dev", "--no-progress-bar", "--num-workers", "0", "--no-epoch-checkpoints",
              "--disable-validation", "--activation-fn", "relu", "--no-scale-embedding"]
    train = run_script("fairseq-train", tmp / "bin", *common, "--vocab", tmp / "pruned",
                       "--pretrained-mbart", tmp / "pruned" / "model.pt", "--save-dir", tmp / "ckpt")
    assert "initialised from" in train.stdout + train.stderr

    # the folder itself as --pretrained-mbart, with a --vocab in its tokenizer's order (no [de_DGS] in it)
    vocab = tmp / "hf_vocab"
    vocab.mkdir()
    hf_dictionary(str(tmp / "hf" / "sentencepiece.bpe.model"), LANGS, hf.config.vocab_size).save(
        str(vocab / "dict.txt"))
    shutil.copyfile(tmp / "hf" / "sentencepiece.bpe.model", vocab / "sentence.bpe.model")
    train = run_script("fairseq-train", tmp / "bin", *common, "--vocab", vocab, "--source-lang", "en_XX",
                       "--target-lang", "de_DE", "--pretrained-mbart", tmp / "hf", "--save-dir", tmp / "ckpt_hf")
    assert re.search(r"initialised from \S*hf\b", train.stdout + train.stderr)


def test_sharded_safetensors_and_bin_read_as_the_single_file(tmp_path):
    """``model.safetensors.index.json`` with its shards (as HF saves a large model), and ``pytorch_model.bin``
    (weights_only), give the same converted weights as ``model.safetensors``."""
    from safetensors.torch import load_file, save_file

    make_hf_mbart(tmp_path / "hf")
    whole, settings = load_hf_mbart(str(tmp_path / "hf"))
    state = load_file(tmp_path / "hf" / "model.safetensors")
    for name, keep in (("sharded", "safetensors index"), ("bin", "pytorch_model.bin")):
        folder = tmp_path / name
        shutil.copytree(tmp_path / "hf", folder)
        (folder / "model.safetensors").unlink()
        if name == "bin":
            torch.save(state, folder / "pytorch_model.bin")
        else:
            keys = sorted(state)
            shards = {"model-00001-of-00002.safetensors": keys[::2], "model-00002-of-00002.safetensors": keys[1::2]}
            for shard, names in shards.items():
                save_file({k: state[k] for k in names}, folder / shard)
            (folder / "model.safetensors.index.json").write_text(json.dumps(
                {"metadata": {}, "weight_map": {k: shard for shard, names in shards.items() for k in names}}))
        again, again_settings = load_hf_mbart(str(folder))
        assert again_settings == settings and sorted(again) == sorted(whole), keep
        assert all(torch.equal(again[k], whole[k]) for k in whole), keep


def test_training_and_translating_never_import_transformers_or_safetensors():
    """The converter reads HF folders by itself: the model, the task and slt-prune-mbart import neither package
    (safetensors only once a folder holding it is read)."""
    import subprocess
    import sys

    code = ("import sys, slt_plugins.models.mbart_translator, slt_plugins.tasks.gloss2text, fairseq_slt.tools.prune_mbart; "
            "print(sorted(m for m in ('transformers', 'safetensors') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_an_incomplete_hf_folder_is_one_line_from_slt_prune_mbart(tmp_path, capsys):
    make_hf_mbart(tmp_path / "hf")
    capsys.readouterr()  # save_pretrained's progress bar
    (tmp_path / "hf" / "sentencepiece.bpe.model").unlink()
    args = ["--mbart-dir", str(tmp_path / "hf"), "--data", str(tmp_path / "bin"), "--out", str(tmp_path / "out")]
    assert prune_main(args) == 2
    err = capsys.readouterr().err
    assert "sentencepiece.bpe.model is missing" in err and len(err.strip().splitlines()) == 1
    (tmp_path / "hf" / "model.safetensors").unlink()
    (tmp_path / "hf" / "sentencepiece.bpe.model").touch()
    (tmp_path / "bin").mkdir()
    assert prune_main(args) == 2
    err = capsys.readouterr().err
    assert "neither model.safetensors nor pytorch_model.bin" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()
