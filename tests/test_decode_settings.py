"""Settings of how a model was trained and is meant to be evaluated (the input kind, the feature store, the crop, the
CTC beam of the glosses, the gloss clean-up) come from its checkpoint when fairseq-generate's command line does not
give them, and the command line still overrides them; the translator's options are checked by name."""

import re

import pytest

from conftest import run_script, scored_glosses
from tiny_models import COMMON, tiny_models

GENERATE = ["--user-dir", "slt_plugins", "--gen-subset", "test", "--batch-size", "2", "--num-workers", "0"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_trained):
    return tiny_models(tmp_path_factory, tiny_trained)


def adopted(log):
    """The settings fairseq-generate took from the checkpoint, by name (as logged)."""
    line = re.search(r"settings from the checkpoint \(not given on the command line\): (.*)$", log, flags=re.M)
    return dict(item.split("=", 1) for item in line.group(1).split(", ")) if line else {}


def test_sign2text_decodes_as_trained_unless_the_command_line_says_otherwise(trained):
    """Before: fairseq-generate read frames (the model reads features: the checkpoint did not load), with CTC beam
    5 and no clean-up."""
    plain = run_script("fairseq-generate", trained["data"], *GENERATE, "--task", "sign2text", "--path",
                       trained["s2t"], "--scoring", "translation_metrics", "--beam", "2", "--nbest", "2").stdout
    assert adopted(plain) == {"input": "features", "features": "cnn_tconv", "crop_size": "224", "gloss_beam": "1",
                              "gloss_cleanup": "phoenix-2014t"}
    assert "glosses: CTC beam 1, clean-up phoenix-2014t" in plain
    assert len(re.findall(r"^H-\d+\t", plain, flags=re.M)) == 10  # the glosses once per utterance: scored_glosses
    references = sum(len(line.split("\t")[3].split()) for line in
                     (trained["data"] / "test.tsv").read_text(encoding="utf-8").splitlines()[1:])
    assert scored_glosses(plain, trained["data"])[1] == references - 5  # each utterance's __ON__ cleaned away

    explicit = run_script("fairseq-generate", trained["data"], *GENERATE, "--task", "sign2text", "--path",
                          trained["s2t"], "--scoring", "translation_metrics", "--gloss-beam", "3",
                          "--gloss-cleanup", "none").stdout
    assert adopted(explicit) == {"input": "features", "features": "cnn_tconv", "crop_size": "224"}
    assert "glosses: CTC beam 3, clean-up none" in explicit
    assert scored_glosses(explicit, trained["data"])[1] == references


def test_sign2gloss_takes_the_crop_of_its_checkpoint(trained):
    """Before: frames cropped to 224 (the default), not the 32 the model was trained on."""
    def hypotheses(*extra):
        out = run_script("fairseq-generate", trained["data"], *GENERATE, "--task", "sign2gloss", "--path",
                         trained["s2g"], "--beam", "1", "--scoring", "wer", *extra).stdout
        return out, sorted(re.findall(r"^H-\d+\t.*$", out, flags=re.M))

    plain, plain_hypotheses = hypotheses()
    assert adopted(plain) == {"input": "frames", "features": "s3d", "crop_size": "32"}
    explicit, explicit_hypotheses = hypotheses("--crop-size", "32")
    assert "crop_size" not in adopted(explicit) and plain_hypotheses == explicit_hypotheses


@pytest.mark.parametrize("option, message", [
    ("--translator-args", "--translator-args: dropuot are not options of the translator"),
    ("--visual-args", "--visual-args: dropuot are not options of the sign encoder")])
def test_misspelt_side_options_are_refused_with_the_valid_names(trained, tmp_path, option, message):
    """Before: --translator-args dropped an unknown key silently (a typo changed nothing)."""
    proc = run_script("fairseq-train", trained["data"], *COMMON, "--task", "sign2text", "--input", "features",
                      "--features", "cnn_tconv", "--arch", "joint", "--sign2gloss-checkpoint", trained["s2g"],
                      "--gloss2text-checkpoint", trained["g2t"], option, "{'dropuot': 0.2}", "--criterion",
                      "combined", "--max-update", "1", "--save-dir", tmp_path, check=False)
    assert proc.returncode != 0
    line = next(line for line in proc.stderr.splitlines() if message in line)
    assert "valid: " in line and "dropout" in line.split("valid: ")[1]
