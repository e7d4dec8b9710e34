"""slt-import-slrt: SLRT's checkpoints, made here at tiny size in SLRT's file and key layout, imported and run.

Nothing is downloaded. The SLRT release is written as SLRT's code lays it out (``{'model_state': …}`` per stage,
``recognition_network.visual_head.fc1.weight`` …, a Hugging Face MBart under ``translation_network.model``, the
vocabularies as plain pickles). What the imported models compute is compared with references written here from
SLRT's published equations (the visual head) and with ``transformers`` (the mBART part, as SLRT runs it:
``inputs_embeds`` = its gloss embeddings or mapped features, with the ``</s> de_DGS`` suffix, times sqrt(d)).
"""

import json
import math
import os
import pickle

import pytest
import sentencepiece as spm
import torch
import torch.nn.functional as F

try:
    import transformers
except ImportError:  # the [hf] extra; CI installs it, and there a missing package must fail, not skip
    if os.environ.get("CI", "").lower() == "true":
        raise
    pytest.skip("transformers is not installed (pip install -e '.[hf]')", allow_module_level=True)

import slt_plugins  # noqa: E402,F401
from conftest import run_script, tiny_demo_bin  # noqa: E402
from slt_plugins.data.manifest import read_manifest  # noqa: E402
from slt_plugins.models.hf_mbart import hf_dictionary  # noqa: E402
from fairseq_slt.tools.import_slrt import main as import_main  # noqa: E402
from fairseq_slt.tools.prune_mbart import CC25_LANGS  # noqa: E402

H, FF, D = 16, 32, 32  # visual head width and inner width, mBART width
HEAD = "recognition_network.visual_head."


class _Gadget:
    """A class in a pickle: what the restricted unpickler must refuse."""


def opennmt_table(length, dim):
    """SLRT's positional table from its equations: pe[p, 2i] = sin(p / 10000^(2i/d)), pe[p, 2i+1] = cos(…)."""
    table = torch.zeros(length, dim)
    for p in range(length):
        for i in range(dim // 2):
            angle = p / (10000 ** (2 * i / dim))
            table[p, 2 * i], table[p, 2 * i + 1] = math.sin(angle), math.cos(angle)
    return table


def slrt_head_weights(g, classes):
    """A VisualHead state in SLRT's names (kernel list [3, 3]: pwff_layer.0 and .3), evaluation statistics set."""
    def w(*shape, scale=0.3):
        return torch.randn(*shape, generator=g) * scale
    return {
        "fc1.weight": w(H, 832, scale=0.05), "fc1.bias": w(H),
        "bn1.norm.weight": 1 + w(H), "bn1.norm.bias": w(H), "bn1.norm.running_mean": w(H),
        "bn1.norm.running_var": 0.5 + torch.rand(H, generator=g), "bn1.norm.num_batches_tracked": torch.tensor(7),
        "pe.pe": opennmt_table(5000, H).unsqueeze(0),
        "feedforward.layer_norm.weight": 1 + w(H), "feedforward.layer_norm.bias": w(H),
        "feedforward.pwff_layer.0.weight": w(FF, H, 3), "feedforward.pwff_layer.0.bias": w(FF),
        "feedforward.pwff_layer.3.weight": w(H, FF, 3), "feedforward.pwff_layer.3.bias": w(H),
        "layer_norm.weight": 1 + w(H), "layer_norm.bias": w(H),
        "gloss_output_layer.weight": w(classes, H, scale=1.0), "gloss_output_layer.bias": w(classes),
    }


def slrt_head_reference(w, x):
    """SLRT's VisualHead in evaluation on one clip x (T×832): Linear → BatchNorm (running statistics) → ReLU →
    + interleaved positions from 0 → [LayerNorm → Conv1d k3 → ReLU → Conv1d k3] + residual → LayerNorm → Linear.
    Returns (gloss features, logits)."""
    h = x @ w["fc1.weight"].t() + w["fc1.bias"]
    h = (h - w["bn1.norm.running_mean"]) / torch.sqrt(w["bn1.norm.running_var"] + 1e-5)
    h = torch.relu(h * w["bn1.norm.weight"] + w["bn1.norm.bias"])
    h = h + opennmt_table(len(x), H)
    y = F.layer_norm(h, (H,), w["feedforward.layer_norm.weight"], w["feedforward.layer_norm.bias"], eps=1e-6)
    y = torch.relu(F.conv1d(y.t()[None], w["feedforward.pwff_layer.0.weight"], w["feedforward.pwff_layer.0.bias"],
                            padding=1))
    y = F.conv1d(y, w["feedforward.pwff_layer.3.weight"], w["feedforward.pwff_layer.3.bias"], padding=1)[0].t()
    h = F.layer_norm(h + y, (H,), w["layer_norm.weight"], w["layer_norm.bias"], eps=1e-6)
    return h, h @ w["gloss_output_layer.weight"].t() + w["gloss_output_layer.bias"]


def make_slrt_release(root, data, mapper="projection", scale_embedding=True):
    """SLRT's folders at tiny size for the dataset ``data``; returns their paths and the models behind them.
    ``scale_embedding``: the mBART config's (the decoder's scale; SLRT scales its source by sqrt(d) either way)."""
    from fairseq_slt.registry import build_visual_backbone

    g = torch.Generator().manual_seed(0)
    rows = [r for split in ("train", "dev", "test") for r in read_manifest(str(data / f"{split}.tsv"))]
    glosses = sorted({x.lower() for r in rows for x in r.gloss.split()})
    slrt = root / "SLRT"
    # recognition vocabulary (data/phoenix-2014t/gloss2ids_old.pkl): blank <si> first, lower-case glosses, one the
    # dataset lacks
    recognition = ["<si>", "<unk>", "<pad>", "</s>"] + glosses + ["zzz-unseen"]
    (slrt / "data").mkdir(parents=True)
    with open(slrt / "data" / "gloss2ids_old.pkl", "wb") as f:
        pickle.dump({x: i for i, x in enumerate(recognition)}, f)
    # pretrained_models/mBart_de: config.json, sentencepiece.bpe.model, map_ids.pkl, gloss2ids.pkl, embeddings
    mbart = slrt / "pretrained_models" / "mBart_de"
    mbart.mkdir(parents=True)
    corpus = root / "spm.txt"
    corpus.write_text("\n".join([r.text for r in rows] + glosses) + "\n", encoding="utf-8")
    spm.SentencePieceTrainer.train(input=str(corpus), model_prefix=str(mbart / "sentencepiece.bpe"), vocab_size=60,
                                   model_type="unigram", hard_vocab_limit=False, minloglevel=2)
    full = hf_dictionary(str(mbart / "sentencepiece.bpe.model"), CC25_LANGS, -1)  # HF's 250,027 order, in small
    sp = spm.SentencePieceProcessor(model_file=str(mbart / "sentencepiece.bpe.model"))
    used = sorted({full.index(p) for r in rows for p in sp.encode(r.text, out_type=str)} - {full.unk()})
    kept = [0, 1, 2, 3] + used + [full.index("[de_DE]")]
    with open(mbart / "map_ids.pkl", "wb") as f:
        pickle.dump({old: new for new, old in enumerate(kept)}, f)
    # the translator's glosses (cleaned spelling): not all of recognition's, and one recognition lacks
    translation = ["<s>", "<pad>", "</s>", "<unk>", "<mask>", "de_DE", "de_DGS"] + glosses[1:] + ["neu-gloss"]
    with open(mbart / "gloss2ids.pkl", "wb") as f:
        pickle.dump({x: i for i, x in enumerate(translation)}, f)
    config = transformers.MBartConfig(
        vocab_size=len(kept), d_model=D, encoder_layers=1, decoder_layers=1, encoder_attention_heads=4,
        decoder_attention_heads=4, encoder_ffn_dim=64, decoder_ffn_dim=64, scale_embedding=scale_embedding,
        dropout=0.0, attention_dropout=0.0, activation_dropout=0.0)
    torch.manual_seed(0)
    hf = transformers.MBartForConditionalGeneration(config).eval()
    with torch.no_grad():
        for name, p in hf.named_parameters():
            p.normal_(1.0 if "layer_norm" in name or "layernorm" in name else 0.0, 0.3)
        hf.model.shared.weight[2] *= 3  # </s>: sentences end within a few tokens
    hf.save_pretrained(mbart)
    for name in os.listdir(mbart):
        if name.endswith((".safetensors", ".bin")) or name == "generation_config.json":
            os.remove(mbart / name)  # SLRT's checkpoints carry the weights; the folder's are not read
    gloss_table = torch.randn(len(translation), D, generator=g) * 0.3
    torch.save({x: gloss_table[i] for i, x in enumerate(translation)}, mbart / "gloss_embeddings.bin")
    mbart_state = {f"translation_network.model.{k}": v.clone() for k, v in hf.state_dict().items()}
    translator = dict(mbart_state, **{"translation_network.gloss_embedding.weight": gloss_table})

    def save(stage, state):
        folder = slrt / "experiments" / "outputs" / "SingleStream" / f"phoenix-2014t_{stage}" / "ckpts"
        folder.mkdir(parents=True)
        torch.save({"epoch": 3, "global_step": 100, "model_state": state, "best_score": 1.5}, folder / "best.ckpt")
        return folder / "best.ckpt"

    s3d = build_visual_backbone("s3d", {}).state_dict()
    s2g_head = slrt_head_weights(g, len(recognition))
    s2g = save("s2g", {**{f"recognition_network.visual_backbone.backbone.{k}": v for k, v in s3d.items()},
                       **{HEAD + k: v for k, v in s2g_head.items()}})
    g2t = save("g2t", translator)
    s2t_head = slrt_head_weights(g, len(recognition))
    if mapper == "projection":
        mapping = {"0.weight": torch.randn(D, H, generator=g) * 0.3, "0.bias": torch.randn(D, generator=g) * 0.3,
                   "2.weight": torch.randn(D, D, generator=g) * 0.3, "2.bias": torch.randn(D, generator=g) * 0.3}
    else:
        mapping = {"weight": torch.randn(D, len(recognition), generator=g)}
    s2t = save("s2t", {**{HEAD + k: v for k, v in s2t_head.items()}, **translator,
                       **{f"vl_mapper.mapping.{k}": v for k, v in mapping.items()}})
    return dict(slrt=slrt, s2g=s2g, g2t=g2t, s2t=s2t, mbart=mbart, gloss2ids=slrt / "data" / "gloss2ids_old.pkl",
                hf=hf, s2g_head=s2g_head, s2t_head=s2t_head, mapping=mapping, gloss_table=gloss_table,
                recognition=recognition, translation=translation, kept=kept, full=full, sp=sp)


def import_args(release, data, out, *extra):
    return ["--data", str(data), "--out", str(out), "--s2g", str(release["s2g"]), "--g2t", str(release["g2t"]),
            "--s2t", str(release["s2t"]), "--gloss2ids", str(release["gloss2ids"]), "--mbart-dir",
            str(release["mbart"]), *extra]


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    root = tmp_path_factory.mktemp("slrt")
    data = tiny_demo_bin(root)
    release = make_slrt_release(root, data)
    assert import_main(import_args(release, data, root / "imported", "--crop-size", "32", "--bundle",
                                   str(root / "bundle"))) == 0
    return dict(release, root=root, data=data, out=root / "imported")


def load(path):
    from fairseq import checkpoint_utils

    models, _, task = checkpoint_utils.load_model_ensemble_and_task([str(path)])
    return models[0].eval(), task


def slrt_text_ids(release, text):
    """SLRT's decoder input for a text: ``[de_DE]`` then the pruned ids of its sentencepiece pieces."""
    old_to_new = {old: new for new, old in enumerate(release["kept"])}
    pieces = [old_to_new.get(release["full"].index(p), 3) for p in release["sp"].encode(text, out_type=str)]
    return [old_to_new[release["full"].index("[de_DE]")]] + pieces + [2]


def test_imported_visual_head_gives_slrt_gloss_logits(imported):
    """The S2G head on S3D-sized features: per clip, the logits of SLRT's equations (in SLRT's gloss order); in a
    padded batch the shorter clip's valid steps too. fairseq's own positions would give other logits."""
    model, task = load(imported["out"] / "s2g.pt")
    g = torch.Generator().manual_seed(3)
    clips = [torch.randn(9, 832, generator=g), torch.randn(5, 832, generator=g)]
    lengths = torch.tensor([9, 5])
    batch = torch.zeros(2, 9, 832)
    for i, c in enumerate(clips):
        batch[i, : len(c)] = c
    d = task.target_dictionary
    rows = [d.bos() if x == "<si>" else d.index(x.upper() if x == x.lower() and not x.startswith("<") else x)
            for x in imported["recognition"]]
    with torch.no_grad():
        out = model.encoder(features=batch, feature_lengths=lengths)
    logits = out["encoder_out"].transpose(0, 1)
    for i, clip in enumerate(clips):
        _, reference = slrt_head_reference(imported["s2g_head"], clip)
        assert (logits[i, : len(clip)][:, rows] - reference).abs().max() <= 1e-4
    others = sorted(set(range(len(d))) - set(rows))  # the translator's glosses: never the best, no probability
    assert others and logits[0, :, others].max() <= -1e3

    from slt_plugins.models.s3d_encoder import SignEncoderConfig
    from slt_plugins.models.visual_head import VisualHead

    fairseq_positions = VisualHead(832, len(d), H, FF, 3, positions="fairseq").eval()
    fairseq_positions.load_state_dict(model.encoder.head.state_dict(), strict=False)
    with torch.no_grad():
        _, wrong = fairseq_positions(clips[0][None], torch.zeros(1, 9, dtype=torch.bool))
    assert (wrong[0][:, rows] - slrt_head_reference(imported["s2g_head"], clips[0])[1]).abs().max() > 1e-2
    assert SignEncoderConfig().head_positions == "fairseq"  # the default of models trained here is unchanged


def test_imported_gloss2text_matches_transformers_as_slrt_runs_it(imported):
    """G2T: SLRT feeds ``gloss_embedding[glosses </s> de_DGS] * sqrt(d)`` as inputs_embeds and decodes from
    ``[de_DE]``; the imported model reads the dataset's glosses through its own dictionaries."""
    model, task = load(imported["out"] / "g2t.pt")
    hf, tra = imported["hf"], imported["translation"]
    row = read_manifest(str(imported["data"] / "test.tsv"))[0]
    ids = [tra.index(x.lower()) if x.lower() in tra else tra.index("<unk>") for x in row.gloss.split()]
    ids += [tra.index("</s>"), tra.index("de_DGS")]
    embeds = imported["gloss_table"][ids][None] * math.sqrt(D)
    prev = torch.tensor([slrt_text_ids(imported, row.text)[:-1]])
    with torch.no_grad():
        theirs = torch.log_softmax(hf(inputs_embeds=embeds, attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                                      decoder_input_ids=prev).logits, -1)
        src = task.encode_glosses(row.gloss)[None]
        ours = model.get_normalized_probs(model(src, torch.tensor([src.size(1)]), prev), log_probs=True)
    assert theirs.max(-1).values.mean() > -1.5, "outputs too flat for the comparison to mean much"
    assert (ours - theirs).abs().max() <= 1e-4


@pytest.mark.parametrize("mapper", ["projection", "embedding"])
def test_imported_sign2text_matches_slrt_equations_and_transformers(imported, tmp_path, mapper):
    """S2T on features: SLRT's head, its VL mapper (``projection`` on the gloss features, ``embedding`` on the gloss
    probabilities), the ``</s> de_DGS`` rows of its gloss embedding, times sqrt(d), into mBART. The second release's
    mBART config does not scale embeddings: its decoder reads them unscaled while the source still is."""
    if mapper == "projection":
        release, out = imported, imported["out"]
    else:
        release = make_slrt_release(tmp_path, imported["data"], mapper="embedding", scale_embedding=False)
        out = tmp_path / "imported"
        args = import_args(release, imported["data"], out, "--crop-size", "32")
        assert import_main(args) == 0
    model, _ = load(out / "s2t.pt")
    hf, tra = release["hf"], release["translation"]
    x = torch.randn(7, 832, generator=torch.Generator().manual_seed(5))
    features, logits = slrt_head_reference(release["s2t_head"], x)
    m = release["mapping"]
    if mapper == "projection":
        mapped = torch.relu(features @ m["0.weight"].t() + m["0.bias"]) @ m["2.weight"].t() + m["2.bias"]
    else:
        mapped = torch.softmax(logits, -1) @ m["weight"].t()
    suffix = release["gloss_table"][[tra.index("</s>"), tra.index("de_DGS")]]
    embeds = torch.cat([mapped, suffix])[None] * math.sqrt(D)
    prev = torch.tensor([slrt_text_ids(release, "morgen regen im norden")[:-1]])
    with torch.no_grad():
        theirs = torch.log_softmax(hf(inputs_embeds=embeds, attention_mask=torch.ones(1, 9, dtype=torch.long),
                                      decoder_input_ids=prev).logits, -1)
        encoder_out = model.encoder(features=x[None], feature_lengths=torch.tensor([7]))
        ours = model.get_normalized_probs(model.decoder(prev, encoder_out=encoder_out), log_probs=True)
    assert (ours - theirs).abs().max() <= 1e-4
    assert model.encoder.text.embed_scale == math.sqrt(D)
    assert model.decoder.embed_scale == (math.sqrt(D) if mapper == "projection" else 1.0)


def test_imported_models_decode_fine_tune_and_translate(imported, capsys):
    """fairseq-generate reads the imported checkpoints on the dataset view; Gloss2Text's greedy output is
    transformers' greedy ``generate`` from ``[de_DE]`` to ``</s>``; fine-tuning resumes from the import; the
    bundle translates a stored clip."""
    out, data = imported["out"], imported["data"]
    view = out / "data"
    common = ["--user-dir", "slt_plugins", "--gen-subset", "test", "--batch-size", "4", "--num-workers", "0"]
    g2t = run_script("fairseq-generate", view, *common, "--task", "gloss2text", "--path", out / "g2t.pt",
                     "--beam", "1", "--max-len-a", "0", "--max-len-b", "20")
    hyps = {int(line.split("\t")[0][2:]): line.split("\t")[2] for line in g2t.stdout.splitlines()
            if line.startswith("H-")}
    from fairseq.data import Dictionary

    rows = read_manifest(str(data / "test.tsv"))
    hf, tra, d = imported["hf"], imported["translation"], Dictionary.load(str(view / "dict.text.txt"))
    de = d.index("[de_DE]")
    for i, row in enumerate(rows):
        ids = [tra.index(x.lower()) if x.lower() in tra else 3 for x in row.gloss.split()] + [2, tra.index("de_DGS")]
        embeds = imported["gloss_table"][ids][None] * math.sqrt(D)
        with torch.no_grad():  # fairseq never emits <pad>, nor eos first (min_len 1); both end at the maximum length
            # with eos (HF: forced_eos_token_id, mBART's config and so SLRT's)
            seq = hf.generate(inputs_embeds=embeds, attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                              decoder_start_token_id=de, num_beams=1, do_sample=False,
                              max_length=22, eos_token_id=2, forced_eos_token_id=2, pad_token_id=1, min_new_tokens=1,
                              suppress_tokens=[1])[0]
        assert seq[0] == de
        seq = seq[1:]
        theirs = [t for t in seq.tolist() if t not in (1, 2)]
        assert hyps[i] == d.string(torch.tensor(theirs)), i
    s2t = run_script("fairseq-generate", view, *common, "--task", "sign2text", "--path", out / "s2t.pt",
                     "--beam", "2", "--max-len-b", "10")
    assert sum(line.startswith("G-") for line in s2t.stdout.splitlines()) == 5
    assert sum(line.startswith("D-") for line in s2t.stdout.splitlines()) == 5

    options = json.loads((out / "import.json").read_text())["train_options"]["g2t"]  # the arch and its shape
    train = run_script("fairseq-train", view, "--user-dir", "slt_plugins", *options,
                       "--restore-file", out / "g2t.pt", "--optimizer", "adam",
                       "--lr", "1e-4", "--batch-size", "4", "--max-update", "1", "--no-progress-bar",
                       "--num-workers", "0", "--disable-validation", "--no-save", "--criterion",
                       "label_smoothed_cross_entropy", "--label-smoothing", "0.2")
    assert f"Loaded checkpoint {out / 'g2t.pt'}" in train.stdout + train.stderr

    from fairseq_slt.tools.translate import main as translate_main  # the slt-translate command, in this process

    assert translate_main(["--model", str(imported["root"] / "bundle"), "--json", "--quiet", "--beam", "2",
                           "--gloss-beam", "1", "--device", "cpu", f"{data / 'frames.lmdb'}:{rows[0].id}"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert "text" in result and "glosses" in result


def test_bad_slrt_files_are_one_line_errors(imported, tmp_path, capsys):
    release, data = imported, imported["data"]
    def error(args):
        capsys.readouterr()
        assert import_main(args) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1, err
        return err

    hostile = tmp_path / "gloss2ids.pkl"
    with open(hostile, "wb") as f:
        pickle.dump({"<si>": 0, "x": _Gadget()}, f)
    err = error(["--data", str(data), "--out", str(tmp_path / "o"), "--s2g", str(release["s2g"]),
                 "--gloss2ids", str(hostile)])
    assert str(hostile) in err and "refused" in err and "_Gadget" in err

    short = tmp_path / "short.pkl"
    with open(short, "wb") as f:
        pickle.dump({x: i for i, x in enumerate(release["recognition"][:-2])}, f)
    err = error(["--data", str(data), "--out", str(tmp_path / "o"), "--s2g", str(release["s2g"]),
                 "--gloss2ids", str(short)])
    assert str(release["s2g"]) in err and "gloss classifier has" in err

    err = error(["--data", str(data), "--out", str(tmp_path / "o"), "--g2t", str(release["s2g"]),
                 "--mbart-dir", str(release["mbart"])])
    assert str(release["s2g"]) in err and "no translation_network.model.* weights" in err

    err = error(["--data", str(data), "--out", str(tmp_path / "o"), "--g2t", str(release["g2t"])])
    assert "needs --mbart-dir" in err
    empty = tmp_path / "mBart_de"
    empty.mkdir()
    err = error(["--data", str(data), "--out", str(tmp_path / "o"), "--g2t", str(release["g2t"]),
                 "--mbart-dir", str(empty)])
    assert str(empty / "config.json") in err and "missing" in err
    assert not (tmp_path / "o").exists()


def test_sign2text_fine_tuning_starts_from_the_imported_s2g_and_g2t(imported):
    """``--sign2gloss-checkpoint`` and ``--gloss2text-checkpoint`` take the imported files as they take trained
    ones: the joint model gets their shapes, SLRT's settings and their weights."""
    from fairseq_slt.tools.import_slrt import build

    out = imported["out"]
    cfg, task, model = build([str(out / "data"), "--user-dir", os.path.dirname(slt_plugins.__file__), "--task",
                              "sign2text", "--arch", "joint", "--input", "frames", "--sign2gloss-checkpoint",
                              str(out / "s2g.pt"), "--gloss2text-checkpoint", str(out / "g2t.pt")])
    s2g, _ = load(out / "s2g.pt")
    g2t, _ = load(out / "g2t.pt")
    assert model.encoder.sign.head.positions.__class__.__name__ == "InterleavedPositions" and model.stop_at_eos
    assert model.encoder.text.embed_scale == g2t.encoder.embed_scale
    for name, value in s2g.encoder.state_dict().items():
        assert torch.equal(model.encoder.sign.state_dict()[name], value), name
    for name, value in g2t.decoder.state_dict().items():
        assert torch.equal(model.decoder.state_dict()[name], value), name
    assert torch.equal(model.encoder.text.embed_tokens.weight, g2t.encoder.embed_tokens.weight)


def test_slrt_scoring_preset(tmp_path, capsys):
    """``slt-score --slrt word``: lower-cased, the German final period split off, BLEU tokenize 'none', ROUGE-L
    with β = P/R; ``--slrt char``: characters (CSL-Daily)."""
    from fairseq_slt.tools.score import main as score_main

    out = tmp_path / "gen.out"
    out.write_text("T-0\tmorgen regnet es im norden .\nD-0\t-0.1\tMorgen regnet es im norden.\n"
                   "T-1\tdann scheint die sonne .\nD-1\t-0.2\tdann scheint die sonne.\n", encoding="utf-8")
    assert score_main([str(out), "--slrt", "word", "--json"]) == 0
    slrt = json.loads(capsys.readouterr().out)["scores"]["none"]
    assert slrt["bleu4"] == 100.0 and slrt["rouge_l"] == 100.0 and "tok:none" in slrt["signature"]
    assert score_main([str(out), "--tokenize", "none", "--json"]) == 0
    plain = json.loads(capsys.readouterr().out)["scores"]["none"]
    assert plain["bleu4"] < 60 and plain["rouge_l"] < 90  # without SLRT's text handling: other numbers

    out.write_text("T-0\t今天 下雨\nD-0\t-0.1\t今天下雨\n", encoding="utf-8")
    assert score_main([str(out), "--slrt", "char", "--json"]) == 0
    char = json.loads(capsys.readouterr().out)["scores"]["char"]
    assert char["bleu4"] == 100.0 and char["rouge_l"] == 100.0
