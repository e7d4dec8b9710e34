"""Sign2Text: slt-extract-features (equal to the backbone, resumable, two processes), the joint model loaded from a
Sign2Gloss and a Gloss2Text checkpoint, the combined criterion, the published recipes at tiny size, and bundles.
Learning from frames and from extracted features is tested in test_learning.py."""

import hashlib
import json
import math
import os
import re
import shutil
import subprocess

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from fairseq import checkpoint_utils, options, tasks
from fairseq.criterions.label_smoothed_cross_entropy import label_smoothed_nll_loss
from fairseq.dataclass.utils import convert_namespace_to_omegaconf

from conftest import BIN, REPO, dataset_view, free_port, run_script
from slt_plugins.data.lmdb_store import FeatureStore, FrameStore, LmdbWriter
from slt_plugins.data.manifest import read_manifest
from slt_plugins.data.sign_dataset import SignFrameDataset
from slt_plugins.scoring.word_errors import WordErrorTally, word_error_counts

COMMON = ["--user-dir", "slt_plugins", "--optimizer", "adam", "--batch-size", "4", "--valid-subset", "dev",
          "--no-progress-bar", "--num-workers", "0", "--no-epoch-checkpoints", "--log-format", "simple"]


@pytest.fixture(scope="module")
def trained(tiny_trained):
    """conftest's tiny corpus (32×32 frames) with a Sign2Gloss and a Gloss2Text checkpoint trained on it."""
    return tiny_trained


def build_joint(trained, *extra):
    parser = options.get_training_parser()
    args = options.parse_args_and_arch(parser, [
        str(trained["data"]), "--user-dir", "slt_plugins", "--task", "sign2text", "--crop-size", "32", "--arch",
        "joint", "--sign2gloss-checkpoint", str(trained["s2g"]), "--gloss2text-checkpoint", str(trained["g2t"]),
        "--criterion", "combined", "--label-smoothing", "0.1", *extra])
    cfg = convert_namespace_to_omegaconf(args)
    task = tasks.setup_task(cfg.task)
    return task, task.build_model(cfg.model), cfg


@pytest.mark.parametrize("option", ["--text-sampling-alpha", "--context-concat-prob", "--gloss-dropout"])
def test_gloss2text_training_options_are_not_options_of_sign2text(trained, option, capsys):
    with pytest.raises(SystemExit):
        build_joint(trained, option, "0.3")
    assert f"unrecognized arguments: {option}" in capsys.readouterr().err


def test_joint_model_starts_with_both_checkpoints_weights(trained):
    task, model, cfg = build_joint(trained, "--vl-mapper", "gloss_embedding")
    s2g = checkpoint_utils.load_checkpoint_to_cpu(str(trained["s2g"]))["model"]
    g2t = checkpoint_utils.load_checkpoint_to_cpu(str(trained["g2t"]))["model"]
    sign = model.encoder.sign.state_dict()
    assert {f"encoder.{k}" for k in sign} == {k for k in s2g if k.startswith("encoder.")}
    for k, v in sign.items():
        assert torch.equal(v, s2g[f"encoder.{k}"]), k
    text, decoder = model.encoder.text.state_dict(), model.decoder.state_dict()
    assert len(text) > 10 and len(decoder) > 10
    for k, v in text.items():
        assert torch.equal(v, g2t[f"encoder.{k}"]), k
    for k, v in decoder.items():
        assert torch.equal(v, g2t[f"decoder.{k}"]), k
    # the shapes came from the checkpoints and are recorded for loading the joint checkpoint without them
    assert "'head_dim': 64" in cfg.model.visual_args and cfg.model.translator_arch == "mbart_translator_tiny"
    # the gloss-embedding mapper starts from the translator's rows of the same glosses; blank and specials at zero
    weight, embed = model.encoder.mapper.weight, model.encoder.text.embed_tokens.weight
    glosses = task.ctc_dict.symbols[task.ctc_dict.nspecial:]
    assert glosses and all(torch.equal(weight[task.ctc_dict.index(g)], embed[task.gloss_dict.index(g)])
                           for g in glosses)
    assert not weight[: task.ctc_dict.nspecial].any()
    # one learning rate per part: every parameter is in one of the three groups
    groups = {p.param_group for p in model.parameters()}
    assert groups == {"visual", "mapper", "translator"}


def test_joint_model_starts_from_a_translator_with_gloss_spelling_embeddings(trained, tmp_path):
    """A Gloss2Text checkpoint trained with --gloss-spelling-embeddings loads into the joint model, spellings
    included, and the gloss-embedding mapper starts from the vectors that translator reads for each gloss (its row
    plus its words' mean text embedding), not from the bare rows."""
    run_script("fairseq-train", trained["data"], *COMMON, "--task", "gloss2text", "--arch", "mbart_translator_tiny",
               "--gloss-spelling-embeddings", "--criterion", "label_smoothed_cross_entropy", "--lr", "1e-3",
               "--max-update", "3", "--save-dir", tmp_path)
    task, model, _ = build_joint(dict(trained, g2t=tmp_path / "checkpoint_last.pt"), "--vl-mapper", "gloss_embedding")
    g2t = checkpoint_utils.load_checkpoint_to_cpu(str(tmp_path / "checkpoint_last.pt"))["model"]
    embed = model.encoder.text.embed_tokens
    assert torch.equal(embed.spellings, g2t["encoder.embed_tokens.spellings"])
    spelled = [g for g in task.ctc_dict.symbols[task.ctc_dict.nspecial:]
               if (embed.spellings[task.gloss_dict.index(g)] != task.text_dict.pad()).any()]
    assert spelled, "the demo's glosses spell words of its text"
    with torch.no_grad():
        for g in spelled:
            j = task.gloss_dict.index(g)
            vector = embed(torch.tensor(j))
            assert torch.allclose(model.encoder.mapper.weight[task.ctc_dict.index(g)], vector)
            assert not torch.allclose(vector, embed.weight[j])


def test_combined_criterion_adds_weighted_ctc_to_label_smoothed_ce(trained):
    from slt_plugins.criteria.combined import CombinedCriterion

    task, model, _ = build_joint(trained)
    task.load_dataset("dev")
    ds = task.dataset("dev")
    sample = ds.collater([ds[i] for i in range(3)])
    model.eval()
    criterion = CombinedCriterion(task, sentence_avg=False, label_smoothing=0.1, ctc_weight=0.7)
    loss, sample_size, log = criterion(model, sample)
    net_output = model(**sample["net_input"])
    lprobs = model.get_normalized_probs(net_output, log_probs=True)
    ce, _ = label_smoothed_nll_loss(lprobs.view(-1, lprobs.size(-1)), sample["target"].view(-1), 0.1,
                                    ignore_index=task.text_dict.pad())
    logits, mask = model.get_ctc_output(net_output)
    ctc = F.ctc_loss(logits.log_softmax(-1), sample["gloss_target"], (~mask).sum(1), sample["gloss_target_lengths"],
                     blank=0, reduction="sum", zero_infinity=True)
    assert sample_size == sample["ntokens"]
    # the CTC sum is scaled so that fairseq's division by the token count leaves its mean per utterance
    assert torch.allclose(loss, ce + 0.7 * ctc * sample["ntokens"] / 3, rtol=1e-5)
    assert torch.allclose(log["ctc_loss"], ctc) and torch.allclose(log["translation_loss"], ce)
    assert log["_gloss_words"] == int(sample["gloss_target_lengths"].sum())


def test_extracted_features_equal_the_backbone_output(trained, tmp_path):
    data = dataset_view(trained["data"], tmp_path / "data")
    out = run_script("slt-extract-features", "--checkpoint", trained["s2g"], "--data", data, "--batch-size", "3",
                     "--num-workers", "0", "--quiet").stdout
    path = data / "features" / "cnn_tconv.lmdb"
    assert "21 clips" in out and not os.path.exists(str(path) + ".partial")
    index = json.loads((path / "index.json").read_text())
    assert index["dim"] == 64 and index["count"] == 21 and index["crop_size"] == 32

    models, _, _ = checkpoint_utils.load_model_ensemble_and_task([str(trained["s2g"])],
                                                                 arg_overrides={"data": str(data)})
    encoder = models[0].encoder.eval()
    store = FeatureStore(str(path))
    rows = read_manifest(data / "test.tsv") + read_manifest(data / "train.tsv")[:3]
    clips = SignFrameDataset(FrameStore(str(data / "frames.lmdb")), rows, train=False, crop_size=32)
    for i, row in enumerate(rows):  # each clip alone through the backbone, as the model sees it in evaluation
        frames = clips[i]["frames"].unsqueeze(0)
        with torch.no_grad():
            expected, lengths = encoder.visual_features(frames, torch.tensor([frames.size(1)]))
        stored = store.array(row.id)
        assert stored.dtype == np.float16 and stored.shape == (int(lengths[0]), 64)
        assert index["lengths"][row.id] == stored.shape[0]
        np.testing.assert_allclose(stored.astype(np.float32), expected[0].numpy(), rtol=2e-3, atol=2e-3)


def test_extraction_resumes_where_it_stopped_and_leaves_a_finished_store_alone(trained, tmp_path):
    data = dataset_view(trained["data"], tmp_path / "data")
    partial = data / "features" / "cnn_tconv.lmdb.partial"
    first = read_manifest(data / "train.tsv")[0].id
    marker = np.full((2, 64), 7, dtype=np.float16)
    with LmdbWriter(str(partial)) as writer:  # what a killed run left: one clip committed, and what made it
        writer.put_array(first, marker)
    (partial / "extraction.json").write_text(json.dumps({
        "checkpoint_sha256": hashlib.sha256(trained["s2g"].read_bytes()).hexdigest(), "backbone": "cnn_tconv",
        "crop_size": 32, "fp16": False, "batch_size": 4, "max_frames": 2000}))
    out = run_script("slt-extract-features", "--checkpoint", trained["s2g"], "--data", data, "--num-workers", "0",
                     "--quiet").stdout
    assert "resuming: 1 of 21 clips" in out and "20 extracted now" in out
    store = FeatureStore(str(data / "features" / "cnn_tconv.lmdb"))
    assert np.array_equal(store.array(first), marker)  # kept, not computed again
    assert len(list(store.keys())) == 21
    again = run_script("slt-extract-features", "--checkpoint", trained["s2g"], "--data", data, "--quiet").stdout
    assert "is complete" in again


def test_two_processes_split_the_clips_and_write_one_store(trained, tmp_path):
    data = dataset_view(trained["data"], tmp_path / "data")
    port = free_port()
    procs = [subprocess.Popen(
        [os.path.join(BIN, "slt-extract-features"), "--checkpoint", str(trained["s2g"]), "--data", str(data),
         "--num-workers", "0", "--quiet", "--batch-size", "2"], cwd=REPO, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1", "WORLD_SIZE": "2", "RANK": str(rank), "LOCAL_RANK": str(rank),
             "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)}) for rank in (0, 1)]
    logs = [p.communicate(timeout=600)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], logs[0][-3000:] + logs[1][-3000:]
    assert "21 clips (11 extracted now" in logs[0]  # rank 0 took every other clip, rank 1 the rest
    index = json.loads((data / "features" / "cnn_tconv.lmdb" / "index.json").read_text())
    assert index["count"] == 21


def test_word_error_counts_and_their_tally():
    assert word_error_counts("A B C D".split(), "A X C".split()) == (1, 0, 1)
    assert word_error_counts("A B".split(), "A B C E".split()) == (0, 2, 0)
    assert word_error_counts([], "A".split()) == (0, 1, 0)
    tally = WordErrorTally()
    tally.add("A B C D".split(), "A X C".split())
    tally.add("E F".split(), "E F".split())
    assert math.isclose(tally.wer, 100 * 2 / 6)
    assert str(tally) == "33.33 (del 1, ins 0, sub 1; 6 glosses in 2 utterances)"


def test_the_task_pairs_each_row_with_its_own_glosses_and_tallies_the_run(trained, capsys):
    """Each row of a batch is scored against its own reference and printed under its own id, however the batch is
    ordered, and the gloss WER runs over all batches of the run (what fairseq-generate prints last is the total)."""
    parser = options.get_generation_parser(default_task="sign2text")
    args = options.parse_args_and_arch(parser, [str(trained["data"]), "--user-dir", "slt_plugins", "--task",
                                                "sign2text", "--crop-size", "32", "--gloss-cleanup", "none"])
    task = tasks.setup_task(convert_namespace_to_omegaconf(args).task)
    task.load_dataset("test")
    dataset = task.dataset("test")
    first, second = (dataset.collater([dataset[i] for i in ids]) for ids in ((3, 0, 4), (2, 1)))
    assert first["id"].tolist() == [3, 0, 4]
    glosses = {int(i): first_or_second["gloss_target"][row][: first_or_second["gloss_target_lengths"][row]]
               for first_or_second in (first, second) for row, i in enumerate(first_or_second["id"])}
    assert len({tuple(g.tolist()) for g in glosses.values()}) == 5  # each utterance's glosses differ: a swap shows
    # utterance 3 recognised right, 0 without its last gloss, 4 with its last gloss taken for one it does not hold
    wrong = next(g for g in glosses[3].tolist() if g not in glosses[4].tolist())
    recognised = [glosses[3], glosses[0][:-1], torch.cat([glosses[4][:-1], torch.tensor([wrong])])]
    task.report_glosses(first, recognised)
    task.report_glosses(second, [glosses[2], glosses[1]])
    lines = capsys.readouterr().out.splitlines()
    string = task.ctc_dict.string
    assert lines[:3] == [f"G-3\t{string(glosses[3])}", f"G-0\t{string(glosses[0][:-1])}",
                         f"G-4\t{string(recognised[2])}"]
    assert lines[4:6] == [f"G-2\t{string(glosses[2])}", f"G-1\t{string(glosses[1])}"]
    words = sum(len(g) for g in glosses.values())
    assert task.gloss_errors == WordErrorTally(deletions=1, insertions=0, substitutions=1, words=words, utterances=5)
    assert lines[3].startswith("Gloss WER so far: ") and lines[3].endswith(" in 3 utterances)")
    assert lines[6] == f"Gloss WER so far: {100 * 2 / words:.2f} (del 1, ins 0, sub 1; {words} glosses in 5 utterances)"


@pytest.fixture(scope="module")
def s3d_features(trained, tmp_path_factory):
    """The dataset with features extracted by the tiny Sign2Gloss checkpoint under the name the recipes read."""
    data = dataset_view(trained["data"], tmp_path_factory.mktemp("s3d") / "data")
    run_script("slt-extract-features", "--checkpoint", trained["s2g"], "--data", data, "--name", "s3d",
               "--num-workers", "0", "--quiet")
    return data


@pytest.mark.parametrize("corpus, config", [("phoenix-2014t", "s2t"), ("csl-daily", "s2t"),
                                            ("phoenix-2014t/kd", "s2t_student")])
def test_published_recipes_compose_and_train_at_tiny_size(corpus, config, trained, s3d_features, tmp_path):
    """configs/<corpus>/s2t.yaml as written (composite optimizer, cosine per group, mapper, clean-up), and its
    distillation variant (the Gloss2Text checkpoint as the frozen teacher), with the tiny checkpoints and the
    dataset's own vocabulary standing in for S3D and mBART."""
    data = s3d_features
    out = run_script("fairseq-hydra-train", "--config-dir", f"configs/{corpus}", "--config-name", config,
                     f"task.data={data}", "task.vocab=", f"model.sign2gloss_checkpoint={trained['s2g']}",
                     f"model.gloss2text_checkpoint={trained['g2t']}", f"checkpoint.save_dir={tmp_path / 's2t'}",
                     "optimization.max_update=2", "dataset.batch_size=4", "dataset.num_workers=0")
    log = out.stdout + out.stderr
    assert "num_updates 2" in log and re.search(r"valid on 'dev' subset .*\| wer [\d.]+ \| bleu [\d.]+", log)
    assert (tmp_path / "s2t" / "checkpoint_best.pt").is_file()
    if config == "s2t_student":
        assert re.search(r"valid on 'dev' subset .*\| kd_kl [\d.]+ \| kd_feature [\d.]+", log)


def test_wrong_checkpoints_and_missing_files_are_one_line_errors(trained, tmp_path):
    swapped = dict(trained, g2t=trained["s2g"])
    with pytest.raises(ValueError, match="is not a translator arch"):
        build_joint(swapped)
    with pytest.raises(ValueError, match="--visual-args: colour are not options of the sign encoder"):
        build_joint(trained, "--visual-args", "{'colour': 1}")
    out = run_script("slt-extract-features", "--checkpoint", tmp_path / "nope.pt", "--data", trained["data"],
                     check=False)
    expected = f"slt-extract-features: --checkpoint {tmp_path / 'nope.pt'}: no such file"
    assert out.returncode == 1 and out.stderr.strip() == expected


@pytest.fixture(scope="module")
def bundles(trained, tmp_path_factory):
    """Bundles of a joint model trained on frames for one epoch, of the Sign2Gloss and of the Gloss2Text model."""
    root = tmp_path_factory.mktemp("bundles")
    run_script("fairseq-train", trained["data"], *COMMON, "--task", "sign2text", "--crop-size", "32", "--arch",
               "joint", "--sign2gloss-checkpoint", trained["s2g"], "--gloss2text-checkpoint", trained["g2t"],
               "--criterion", "combined", "--label-smoothing", "0.1", "--lr", "1e-3", "--max-epoch", "1",
               "--save-dir", root / "s2t")
    out = {}
    for name, checkpoint in (("s2t", root / "s2t" / "checkpoint_last.pt"), ("s2g", trained["s2g"]),
                             ("g2t", trained["g2t"])):
        run_script("slt-export", "--checkpoint", checkpoint, "--out", root / "bundles" / name)  # not the save-dir
        out[name] = root / "bundles" / name
    return out


def test_bundle_translates_a_video_a_frame_folder_and_a_stored_clip_the_same_through_api_and_cli(
        bundles, trained, shared_data):
    from slt_plugins.translator import SignTranslator

    folder = trained["data"].parent / "raw" / "frames" / "test"
    inputs = [os.path.join(shared_data, "video", "test_video.mp4"), str(folder / sorted(os.listdir(folder))[0]),
              f"{trained['data']}/frames.lmdb:{read_manifest(trained['data'] / 'dev.tsv')[0].id}"]
    model = SignTranslator.from_pretrained(str(bundles["s2t"]), device="cpu")
    results = model.run(inputs, batch_size=2)
    assert [r.error for r in results] == [None] * 3 and all(r.text is not None and r.glosses is not None
                                                           for r in results)
    assert model.translate(inputs[1]) == results[1].text and model.recognize(inputs[2]) == results[2].glosses
    cli = run_script("slt-translate", "--model", bundles["s2t"], *inputs, "--json", "--batch-size", "1").stdout
    assert [json.loads(line) for line in cli.splitlines()] == [r._asdict() for r in results]
    # a bundle of one stage (glosses only, or text from glosses) decodes as fairseq-generate does on the dataset
    def first_dev_hypothesis(task, checkpoint, *extra):
        gen = run_script("fairseq-generate", trained["data"], "--user-dir", "slt_plugins", "--task", task, "--path",
                         checkpoint, "--gen-subset", "dev", "--beam", "5", "--num-workers", "0", *extra).stdout
        return re.search(r"^D-0\t[^\t]*\t(.*)$", gen, flags=re.M).group(1)

    s2g = SignTranslator.from_pretrained(str(bundles["s2g"]), device="cpu")
    assert s2g.recognize(inputs[2]) == first_dev_hypothesis("sign2gloss", trained["s2g"], "--crop-size", "32",
                                                            "--scoring", "wer")
    glosses = read_manifest(trained["data"] / "dev.tsv")[0].gloss
    g2t = run_script("slt-translate", "--model", bundles["g2t"], glosses, "--json").stdout
    assert json.loads(g2t)["text"] == first_dev_hypothesis("gloss2text", trained["g2t"], "--scoring", "sacrebleu")


def test_bad_inputs_and_bundles_are_one_line_errors_and_the_rest_is_translated(bundles, trained, tmp_path):
    from PIL import Image

    short = tmp_path / "short"
    short.mkdir()
    for i in range(2):
        Image.new("RGB", (40, 40)).save(short / f"images{i:04d}.png")
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video")
    empty = tmp_path / "empty"
    empty.mkdir()
    good = f"{trained['data']}/frames.lmdb:{read_manifest(trained['data'] / 'test.tsv')[0].id}"
    proc = run_script("slt-translate", "--model", bundles["s2t"], short, broken, empty, tmp_path / "missing.mp4",
                      good, f"{trained['data']}/frames.lmdb:nope", "--json", check=False)
    assert proc.returncode == 1
    results = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [r["error"] is None for r in results] == [False, False, False, False, True, False]
    errors = proc.stderr.strip().splitlines()
    assert len(errors) == 5 and all(e.startswith("slt-translate: ") for e in errors)
    assert "needs at least 4" in errors[0] and str(broken) in errors[1] and str(empty) in errors[2]
    assert "no such file" in errors[3] and "'nope'" in errors[4]
    info = json.loads((bundles["g2t"] / "bundle.json").read_text())
    other = tmp_path / "other"
    shutil.copytree(bundles["g2t"], other)
    (other / "bundle.json").write_text(json.dumps(dict(info, version=99)))
    proc = run_script("slt-translate", "--model", other, "REGEN", check=False)
    assert proc.returncode == 1 and "version 99" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_plot_draws_the_gloss_posteriors_under_the_frames_as_a_png_of_the_expected_size(
        bundles, trained, shared_data, tmp_path):
    from PIL import Image

    from slt_plugins.alignment_plot import HEIGHT_PX, WIDTH_PX
    from slt_plugins.translator import BundleError, SignTranslator

    def png_size(path):
        assert path.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
        with Image.open(path) as image:
            image.load()  # the whole picture decodes, not only its header
            return image.size

    video = os.path.join(shared_data, "video", "test_video.mp4")
    out = run_script("slt-translate", "--model", bundles["s2t"], video, "--plot", tmp_path / "out.png").stdout
    assert f"  plot:    {tmp_path / 'out.png'}" in out
    assert png_size(tmp_path / "out.png") == (WIDTH_PX, HEIGHT_PX)
    assert sorted(os.listdir(tmp_path)) == ["out.png"]  # the temporary file was renamed into place
    # several inputs: one picture each, numbered by position; a failing input has none, and says why
    stored = f"{trained['data']}/frames.lmdb:{read_manifest(trained['data'] / 'test.tsv')[0].id}"
    proc = run_script("slt-translate", "--model", bundles["s2g"], stored, tmp_path / "missing.mp4", stored,
                      "--plot", tmp_path / "many" / "a.png", "--json", check=False)
    assert proc.returncode == 1 and len(proc.stderr.strip().splitlines()) == 1 and "no such file" in proc.stderr
    many = tmp_path / "many"
    assert [json.loads(line)["plot"] for line in proc.stdout.splitlines()] == [str(many / "a-1.png"), None,
                                                                               str(many / "a-3.png")]
    assert sorted(os.listdir(many)) == ["a-1.png", "a-3.png"]
    assert png_size(many / "a-1.png") == png_size(many / "a-3.png") == (WIDTH_PX, HEIGHT_PX)
    # the API: the posteriors and glosses of the pass that decodes, in a picture of the size asked for
    model = SignTranslator.from_pretrained(str(bundles["s2t"]), device="cpu")
    alignment = model.plot(video, tmp_path / "api.png", width_px=900, height_px=450)
    assert png_size(tmp_path / "api.png") == (900, 450)
    result = model.run([video])[0]
    assert (alignment.glosses, alignment.text) == (result.glosses, result.text) and alignment.text is not None
    assert alignment.glosses == model.gloss_dictionary.string(torch.tensor(alignment.tokens, dtype=torch.long))
    assert alignment.frames.dtype == torch.uint8 and alignment.frames.size(0) == 4 * alignment.log_probs.size(0)
    assert alignment.log_probs.size(1) == len(model.gloss_dictionary)
    assert torch.allclose(alignment.log_probs.exp().sum(dim=1), torch.ones(alignment.log_probs.size(0)))
    # a gloss2text bundle has no video to plot: a one-line error and no picture
    proc = run_script("slt-translate", "--model", bundles["g2t"], "REGEN", "--plot", tmp_path / "g.png", check=False)
    assert proc.returncode == 1 and len(proc.stderr.strip().splitlines()) == 1 and "gloss2text" in proc.stderr
    assert not (tmp_path / "g.png").exists()
    with pytest.raises(BundleError, match="gloss2text bundle"):
        SignTranslator.from_pretrained(str(bundles["g2t"]), device="cpu").plot("REGEN", tmp_path / "g.png")
