"""Corpora without glosses: binarising one (``--no-glosses``), the tasks and options that refuse it, and Sign2Text
trained on it end to end without a Sign2Gloss checkpoint (fairseq-train, fairseq-generate, a bundle, its plot)."""

import json
import re

import pytest
import torch
from PIL import Image

from conftest import gloss_free_demo_bin, run_script
from test_learning import COMMON, generate, train, untrained
from fairseq_slt.tools.binarise import main as binarise_main

#: Sign2Text from scratch: a per-frame CNN with temporal convolutions (no Sign2Gloss model) and a 2+2-layer mBART
MODEL = ["--task", "sign2text", "--arch", "joint", "--translator-arch", "mbart_translator_tiny", "--crop-size", "32",
         "--visual-args", "{'visual_backbone': 'cnn_tconv', 'backbone_args': \"{'output_dim': 64}\", "
                          "'head_dim': 64, 'head_ff_dim': 128}", "--criterion", "combined", "--label-smoothing", "0.1"]
GLOSS_FREE = MODEL + ["--ctc-weight", "0"]


def write_tsv(path, rows, header="id\tvideo\tgloss\ttext\tsigner"):
    path.write_text("\n".join([header] + rows) + "\n", encoding="utf-8")
    return path


def binarise(tmp_path, corpus, *options):
    return binarise_main(["tsv", "--manifest", str(corpus), "--out", str(tmp_path / "bin"), *options])


# --- data --------------------------------------------------------------------------------------------------------

def test_a_corpus_declared_without_glosses_binarises_and_says_so(tmp_path):
    corpus = write_tsv(tmp_path / "corpus.tsv", ["a-1\t\tmorgen regen\tS1", "a-2\t\tim norden wind\tS1"],
                       header="id\tvideo\ttext\tsigner")  # How2Sign-style: no gloss column at all
    assert binarise(tmp_path, corpus, "--no-glosses") == 0
    meta = json.loads((tmp_path / "bin" / "meta.json").read_text())
    assert meta["glosses"] is False and meta["gloss_types"] == 0
    assert (tmp_path / "bin" / "dict.gloss.txt").read_text() == ""  # the special symbols only
    rows = (tmp_path / "bin" / "train.tsv").read_text().splitlines()[1:]
    assert [r.split("\t")[3] for r in rows] == ["", ""]
    empty_column = write_tsv(tmp_path / "empty.tsv", ["b-1\t\t\tmorgen regen\tS1"])  # the column there, empty
    assert binarise_main(["tsv", "--manifest", str(empty_column), "--out", str(tmp_path / "bin2"),
                          "--no-glosses"]) == 0


def test_glosses_and_the_declaration_must_agree_or_the_row_is_named(tmp_path, capsys):
    with_glosses = write_tsv(tmp_path / "glossed.tsv", ["a-1\t\tMORGEN REGEN\tmorgen regen\tS1"])
    assert binarise(tmp_path, with_glosses, "--no-glosses") == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"{with_glosses}, row 2: gloss 'MORGEN REGEN' given, but --no-glosses" in err
    without = write_tsv(tmp_path / "bare.tsv", ["a-1\t\tmorgen regen\tS1"], header="id\tvideo\ttext\tsigner")
    assert binarise(tmp_path, without) == 2
    assert "header lacks gloss" in capsys.readouterr().err and not (tmp_path / "bin").exists()
    empty = write_tsv(tmp_path / "empty.tsv", ["a-1\t\tMORGEN\tmorgen\tS1", "a-2\t\t\tregen\tS1"])
    assert binarise(tmp_path, empty) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"{empty}, row 3: empty gloss" in err and "--no-glosses" in err


def test_the_demo_corpus_without_glosses_has_the_same_clips_and_texts(tmp_path):
    from fairseq_slt.tools.make_demo_data import main as make_demo_data

    for name, extra in (("with", []), ("without", ["--no-glosses"])):
        make_demo_data(["--out", str(tmp_path / name), "--train", "3", "--dev", "1", "--test", "1", "--frame-size",
                        "16", "16", "--workers", "1", *extra])
    phoenix = (tmp_path / "with" / "annotations" / "PHOENIX-2014-T.train.corpus.csv").read_text().splitlines()
    tsv = (tmp_path / "without" / "annotations" / "train.tsv").read_text().splitlines()
    assert tsv[0] == "id\tvideo\ttext\tsigner" and len(tsv) == len(phoenix) == 4
    for glossed, free in zip(phoenix[1:], tsv[1:]):
        name, _, _, _, signer, glosses, text = glossed.split("|")
        assert glosses and free.split("\t") == [name, f"../frames/train/{name}", text, signer]
        frame = f"frames/train/{name}/images0001.png"
        assert (tmp_path / "with" / frame).read_bytes() == (tmp_path / "without" / frame).read_bytes()


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return gloss_free_demo_bin(tmp_path_factory.mktemp("gloss_free"))


def test_tasks_and_options_that_need_glosses_refuse_the_dataset_in_one_line(data, tmp_path):
    from fairseq import tasks

    import slt_plugins  # noqa: F401
    from slt_plugins.data.dataset_meta import NoGlossesError
    from slt_plugins.tasks.gloss2text import Gloss2TextConfig
    from slt_plugins.tasks.sign2gloss import Sign2GlossConfig

    for name, cfg in (("sign2gloss", Sign2GlossConfig(data=str(data))),
                      ("gloss2text", Gloss2TextConfig(data=str(data)))):
        with pytest.raises(NoGlossesError, match=rf"has no glosses .* but task {name} needs them; train sign2text "
                                                 "with --ctc-weight 0"):
            tasks.TASK_REGISTRY[name].setup_task(cfg)
    proc = run_script("fairseq-train", data, *COMMON, *MODEL, "--max-update", "1", "--save-dir", tmp_path,
                      check=False)  # the criterion's default CTC weight, 1
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1] == (f"fairseq-train: error: {data} has no glosses (binarised with "
                                                    "--no-glosses), so there is no CTC target: pass --ctc-weight 0")


# --- training and decoding ---------------------------------------------------------------------------------------

def bleu4(out):
    """BLEU-4 of fairseq-generate's translation_metrics line, which must hold no gloss WER, and no G- lines."""
    assert len(re.findall(r"^H-\d+\t", out, flags=re.M)) == 12 and not re.search(r"^G-\d+", out, flags=re.M)
    line = re.search(r"^Generate test with beam=2: (.*)$", out, flags=re.M).group(1)
    assert "WER" not in line, line
    return float(re.search(r"BLEU-4 ([\d.]+) \| ROUGE-L", line).group(1))


@pytest.fixture(scope="module")
def trained(data):
    """Sign2Text trained from scratch on frames of the corpus without glosses (8 epochs, 48 updates), and its
    untrained twin (one update at learning rate 0)."""
    root = data.parent
    with pytest.MonkeyPatch.context() as env:
        env.setenv("OMP_NUM_THREADS", "1")  # on a busy machine torch's spinning threads cost several times over
        train(data, root / "s2t", *GLOSS_FREE, "--lr", "5e-3", "--max-epoch", "8", "--disable-validation")
        initial = untrained(data, root / "s2t0", *GLOSS_FREE)
    return {"trained": root / "s2t" / "checkpoint_last.pt", "untrained": initial}


def test_sign2text_learns_without_glosses(data, trained, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # as in training: fairseq-generate runs faster on a busy machine
    state = torch.load(trained["trained"], map_location="cpu", weights_only=False)
    assert state["cfg"]["model"]["gloss_classifier"] is False
    assert not [k for k in state["model"] if "classifier" in k]  # no gloss classifier in the checkpoint
    scores = [bleu4(generate(data, trained[k], "--task", "sign2text", "--beam", "2", "--scoring",
                             "translation_metrics")) for k in ("untrained", "trained")]
    # untrained: BLEU-4 0.0 (a random translator repeats one sub-word); trained: 10.6 (measured), mostly what a
    # translator learns of the corpus's templates in 48 updates (bench/gloss_free.py measures more)
    assert scores[1] >= 5 and scores[1] >= scores[0] + 5, scores


def test_a_gloss_free_bundle_translates_and_plots_the_translators_attention(data, trained, tmp_path, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    from slt_plugins.translator import BundleError, SignTranslator

    bundle = tmp_path / "bundle"
    run_script("slt-export", "--checkpoint", trained["trained"], "--out", bundle)
    clip = f"{data / 'frames.lmdb'}:{(data / 'test.tsv').read_text().splitlines()[1].split()[0]}"
    out = run_script("slt-translate", "--model", bundle, clip, "--json", "--plot", tmp_path / "attention.png").stdout
    result = json.loads(out)
    assert result["glosses"] is None and result["text"] and result["error"] is None
    with Image.open(tmp_path / "attention.png") as picture:
        assert picture.size == (1200, 600)
    model = SignTranslator.from_pretrained(str(bundle), device="cpu")
    assert model.gloss_dictionary is None and model.translate(clip) == result["text"]
    alignment = model.alignment(clip)
    steps = min(model.handler.attention_steps, len(alignment.pieces))
    assert alignment.log_probs is None and alignment.attention.shape[0] == steps == len(alignment.pieces)
    assert torch.all(alignment.attention >= 0) and alignment.attention.sum(dim=1).max() <= 1 + 1e-4
    with pytest.raises(BundleError, match="trained without glosses"):
        model.recognize(clip)


def test_the_translator_starts_from_a_pruned_mbart_and_the_backbone_from_its_file(data, tmp_path, monkeypatch):
    """No Gloss2Text or Sign2Gloss checkpoint: --pretrained-mbart and backbone_pretrained give the initial weights,
    and the trained checkpoint decodes once both files are gone."""
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    from test_prune_mbart import LANGS, make_tiny_mbart
    from fairseq_slt.tools.prune_mbart import main as prune_main

    texts = [line.split("\t")[4] for line in (data / "train.tsv").read_text(encoding="utf-8").splitlines()[1:]]
    make_tiny_mbart(tmp_path / "mbart", texts)
    assert prune_main(["--mbart-dir", str(tmp_path / "mbart"), "--data", str(data), "--out", str(tmp_path / "pruned"),
                       "--langs", ",".join(LANGS)]) == 0
    torch.manual_seed(0)
    from fairseq_slt.registry import build_visual_backbone
    backbone = build_visual_backbone("cnn_tconv", {"output_dim": 64}).state_dict()
    torch.save(backbone, tmp_path / "backbone.pt")
    visual = ("{'visual_backbone': 'cnn_tconv', 'backbone_args': \"{'output_dim': 64}\", 'head_dim': 64, "
              f"'head_ff_dim': 128, 'backbone_pretrained': '{tmp_path / 'backbone.pt'}'}}")
    model = [a if a != MODEL[MODEL.index("--visual-args") + 1] else visual for a in GLOSS_FREE]
    untrained(data, tmp_path / "s2t", *model, "--vocab", tmp_path / "pruned", "--pretrained-mbart",
              tmp_path / "pruned" / "model.pt")
    state = torch.load(tmp_path / "s2t" / "checkpoint_last.pt", map_location="cpu", weights_only=False)["model"]
    mbart = torch.load(tmp_path / "pruned" / "model.pt", map_location="cpu", weights_only=False)["model"]
    joint_name = {"encoder.": "encoder.text.", "decoder.": "decoder."}
    for key, value in mbart.items():
        assert torch.equal(state[joint_name[key[:8]] + key[8:]], value), key
    for key, value in backbone.items():  # (one update at learning rate 0 moves the BatchNorm statistics only)
        if "running_" not in key and "num_batches" not in key:
            assert torch.equal(state["encoder.sign.backbone." + key], value), key
    for name in ("backbone.pt", "pruned/model.pt"):
        (tmp_path / name).unlink()
    out = generate(data, tmp_path / "s2t" / "checkpoint_last.pt", "--task", "sign2text", "--vocab",
                   tmp_path / "pruned", "--beam", "2", "--scoring", "translation_metrics")
    bleu4(out)  # twelve hypotheses, text only
