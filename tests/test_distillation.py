"""Multimodal knowledge distillation: the loss terms on hand-made tensors, VAC's criterion, the teachers' inputs,
the teachers' own training, and the recipes at tiny size. That students learn from their teachers (the terms
switching on at their epoch) is tested in test_learning.py."""

import math
import re
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from fairseq.data import Dictionary

from conftest import run_script, tiny_demo_bin
from slt_plugins.criteria.distillation_losses import feature_mse, posterior_kl
from slt_plugins.criteria.vac_ctc import VacCtcConfig, VacCtcCriterion
from slt_plugins.models.sequence_models import BiLSTM, BiLSTMConfig, TransformerConfig, TransformerSequenceModel

COMMON = ["--user-dir", "slt_plugins", "--optimizer", "adam", "--batch-size", "4", "--valid-subset", "dev",
          "--no-progress-bar", "--num-workers", "0", "--no-epoch-checkpoints", "--log-format", "simple",
          "--crop-size", "32"]
STUDENT = ["--arch", "s3d_encoder_tiny", "--sequence-model", "bilstm", "--sequence-args",
           "{'hidden_dim': 64, 'layers': 1}"]


def test_posterior_kl_is_hinton_kl_over_the_glosses_without_blank_and_padding():
    # one clip, two steps, the second padding; classes: blank, A, B
    teacher = torch.tensor([[[50.0, 0.0, math.log(3.0)]], [[9.0, 9.0, -9.0]]], requires_grad=True)  # T×B×V
    student = torch.tensor([[[-7.0, 0.0, 0.0]], [[1.0, -4.0, 2.0]]], requires_grad=True)
    padding = torch.tensor([[False, True]])
    # without blank the teacher says (1/4, 3/4) and the student (1/2, 1/2)
    expected = 0.25 * math.log(0.25 / 0.5) + 0.75 * math.log(0.75 / 0.5)
    assert posterior_kl(student, teacher, padding, temperature=1.0, blank=0).item() == pytest.approx(expected)
    # temperature 2: the teacher's odds become √3 : 1, and the KL is scaled by T² = 4
    p = 1 / (1 + math.sqrt(3))
    expected_t2 = 4 * (p * math.log(p / 0.5) + (1 - p) * math.log((1 - p) / 0.5))
    loss = posterior_kl(student, teacher, padding, temperature=2.0, blank=0)
    assert loss.item() == pytest.approx(expected_t2)
    loss.backward()
    assert teacher.grad is None and student.grad[1].abs().sum() == 0  # no gradient to the teacher or to padding
    # with the blank included, the teacher is sure of blank: the KL is the student's -log q(blank)
    assert posterior_kl(student, teacher, padding, blank=None).item() == pytest.approx(
        7 + math.log(math.exp(-7) + 2), rel=1e-4)
    assert posterior_kl(student, student, padding).item() == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(ValueError, match="same glosses and steps"):
        posterior_kl(student, teacher[:, :, :2], padding)


def test_feature_mse_is_the_mean_over_valid_steps():
    student = torch.zeros(2, 3, 2, requires_grad=True)
    teacher = torch.tensor([[[1.0, 1.0], [2.0, 0.0], [100.0, 100.0]], [[0.0, 0.0], [3.0, 1.0], [0.0, 0.0]]])
    padding = torch.tensor([[False, False, True], [False, False, False]])
    # the five valid steps: 1, 2 | 0, 5, 0 (means over channels of the squares) → 8 / 5; the padded 100s count not
    assert feature_mse(student, teacher, padding).item() == pytest.approx(1.6)
    with pytest.raises(ValueError, match="hidden_dim"):
        feature_mse(student, teacher[..., :1], padding)


def test_vac_criterion_adds_conv_ctc_and_a_dist_loss_that_only_moves_the_conv_side():
    gloss_dict = Dictionary()
    for gloss in ("A", "B", "C"):
        gloss_dict.add_symbol(gloss)
    task = SimpleNamespace(target_dictionary=gloss_dict)
    torch.manual_seed(0)
    seq = torch.randn(6, 2, len(gloss_dict), requires_grad=True)
    conv = torch.randn(6, 2, len(gloss_dict), requires_grad=True)
    padding = torch.tensor([[False] * 6, [False] * 4 + [True] * 2])
    sample = {"target": torch.tensor([[4, 5], [6, 1]]), "target_lengths": torch.tensor([2, 1]), "ntokens": 3}
    net_output = {"encoder_out": seq, "conv_logits": conv, "padding_mask": padding}
    criterion = VacCtcCriterion(VacCtcConfig(sentence_avg=True), task)
    loss, sample_size, log = criterion.recognition_loss(net_output, sample, training=True)

    def ctc(logits):
        return F.ctc_loss(logits.log_softmax(-1), sample["target"], torch.tensor([6, 4]), sample["target_lengths"],
                          blank=0, reduction="sum", zero_infinity=True)

    dist = posterior_kl(conv, seq, padding, temperature=8.0, blank=0)
    assert sample_size == 2
    assert loss.item() == pytest.approx((ctc(seq) + ctc(conv) + 25 * dist * 2).item(), rel=1e-5)
    only_dist = VacCtcCriterion(VacCtcConfig(sentence_avg=True, seq_ctc_weight=0, conv_ctc_weight=0), task)
    only_dist.recognition_loss(net_output, sample, training=True)[0].backward()
    assert seq.grad is None or seq.grad.abs().sum() == 0  # Dist reads the sequence side detached
    assert conv.grad.abs().sum() > 0


@pytest.mark.parametrize("model", [BiLSTM(BiLSTMConfig(input_dim=8, hidden_dim=6, layers=2)),
                                   TransformerSequenceModel(TransformerConfig(input_dim=8, hidden_dim=8, heads=2,
                                                                              ff_dim=16))])
def test_a_students_sequence_model_ignores_the_padding_of_its_batch(model):
    model.eval()
    x = torch.randn(2, 7, 8)
    padding = torch.tensor([[False] * 7, [False] * 4 + [True] * 3])
    batched = model(x, padding)
    alone = model(x[1:, :4], padding[1:, :4])
    assert batched.shape[-1] == model.output_dim
    assert torch.allclose(batched[1, :4], alone[0], atol=1e-5)


def test_dialogue_teacher_swaps_contexts_for_next_sentence_negatives_only_in_training():
    from slt_plugins.models.kd.dialogue_teacher import DialogueEncoder

    encoder = DialogueEncoder.__new__(DialogueEncoder)
    torch.nn.Module.__init__(encoder)
    encoder.nsp_negative_rate = 1.0
    contexts = torch.tensor([[5, 6, 2], [7, 2, 1], [2, 1, 1], [2, 1, 1]])  # the last two: both empty (first utterance)
    # the fourth's neighbour has the same (empty) context: still a positive
    assert encoder.negatives(contexts).tolist() == [True, True, True, False]
    encoder.eval()
    assert not encoder.negatives(contexts).any()


def test_multistep_schedule_drops_the_rate_at_each_milestone_epoch():
    from fairseq.optim import FairseqOptimizer

    from slt_plugins.optim.multistep import MultiStepLRSchedule, MultiStepLRScheduleConfig

    optimizer = FairseqOptimizer(None)
    optimizer._optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    schedule = MultiStepLRSchedule(MultiStepLRScheduleConfig(milestones=[3, 5], gamma=0.5, lr=[0.1]), optimizer)
    rates = [schedule.step_begin_epoch(epoch) for epoch in range(1, 7)]
    assert rates == pytest.approx([0.1, 0.1, 0.1, 0.05, 0.05, 0.025])  # 3 epochs at 0.1, then 2 at 0.05
    assert schedule.step_update(123) == pytest.approx(0.025)


@pytest.fixture(scope="module")
def teachers(tmp_path_factory):
    """A tiny demo corpus with a text→gloss teacher (trained without reading a frame) and a dialogue teacher."""
    root = tmp_path_factory.mktemp("kd")
    data = tiny_demo_bin(root)
    text = run_script("fairseq-train", data, *COMMON, "--task", "sign2gloss", "--input", "lengths", "--text-inputs",
                      "--arch", "text2gloss_teacher_tiny", "--criterion", "vac_ctc", "--lr", "2e-3", "--max-update",
                      "6", "--save-dir", root / "t2g").stdout
    dialogue = run_script("fairseq-train", data, *COMMON, "--task", "sign2gloss", "--text-inputs", "--arch",
                          "dialogue_teacher_tiny", "--criterion", "vac_ctc", "--lr", "2e-3", "--max-update", "6",
                          "--save-dir", root / "dialogue").stdout
    return {"root": root, "data": data, "text": root / "t2g" / "checkpoint_last.pt", "text_log": text,
            "dialogue": root / "dialogue" / "checkpoint_last.pt", "dialogue_log": dialogue}


def test_teachers_train_with_their_own_losses_and_decode(teachers):
    assert re.search(r"valid on 'dev' subset \| loss [\d.]+ \| seq_ctc [\d.]+ \| wer", teachers["text_log"])
    assert not re.search(r"\| conv_ctc [\d.]", teachers["text_log"])  # a text model has no visual side
    assert re.search(r"seq_ctc [\d.]+ \| conv_ctc [\d.]+ \| dist [\d.]+ \| nsp [\d.]+ \| nsp_accuracy [\d.]+",
                     teachers["dialogue_log"])
    for model, extra in ((teachers["text"], ["--input", "lengths"]), (teachers["dialogue"], [])):
        gen = run_script("fairseq-generate", teachers["data"], "--user-dir", "slt_plugins", "--task", "sign2gloss",
                         "--crop-size", "32", "--text-inputs", *extra, "--path", model, "--gen-subset", "test",
                         "--beam", "2", "--batch-size", "2", "--num-workers", "0", "--scoring", "wer").stdout
        assert len(re.findall(r"^H-\d+\t", gen, flags=re.M)) == 5 and re.search(r"WER: [\d.]+", gen)


def test_wrong_teachers_and_missing_text_inputs_are_one_line_errors(teachers, tmp_path):
    def fails(*args):
        proc = run_script("fairseq-train", teachers["data"], *COMMON, "--task", "sign2gloss", *STUDENT,
                          "--max-update", "1", "--save-dir", tmp_path, *args, check=False)
        assert proc.returncode != 0
        return proc.stderr.strip().splitlines()[-1]

    wrong = fails("--text-inputs", "--criterion", "recognition_distillation", "--fusion-teacher", teachers["text"])
    assert "--fusion-teacher" in wrong and "expected dialogue_teacher" in wrong
    missing = fails("--text-inputs", "--criterion", "recognition_distillation", "--text-teacher",
                    tmp_path / "nope.pt")
    assert "--text-teacher" in missing and "nope.pt" in missing
    assert "--text-inputs" in fails("--criterion", "recognition_distillation", "--text-teacher", teachers["text"])
    # a student narrower than its teacher fails on the first batch, not when distillation starts at epoch 5
    narrow = fails("--text-inputs", "--criterion", "recognition_distillation", "--text-teacher", teachers["text"],
                   "--distill-start-epoch", "5", "--sequence-args", "{'hidden_dim': 32, 'layers': 1}")
    assert "teacher's width" in narrow


@pytest.mark.parametrize("config", ["text2gloss_teacher", "dialogue_teacher", "student"])
def test_phoenix_recipes_run_as_written_on_small_frames(teachers, tmp_path, config):
    """configs/phoenix-2014t/kd as written (ResNet18, BiLSTM 1024, the multistep schedule), two updates on 32×32
    frames; the student's teachers are named but weighted 0, so they are not loaded."""
    extra = []
    if config == "student":
        extra = [f"criterion.fusion_teacher={teachers['dialogue']}", f"criterion.text_teacher={teachers['text']}"] + [
            f"criterion.{w}_weight=0" for w in ("fusion_kl", "fusion_feature", "text_kl", "text_feature")]
    if config != "text2gloss_teacher":  # it reads no frames
        extra.append("task.crop_size=32")
    out = run_script("fairseq-hydra-train", "--config-dir", "configs/phoenix-2014t/kd", "--config-name", config,
                     f"task.data={teachers['data']}", "optimization.max_update=2",
                     "dataset.num_workers=0", "checkpoint.no_save=true", f"checkpoint.save_dir={tmp_path}", *extra)
    log = out.stdout + out.stderr
    assert "num_updates 2" in log and re.search(r"valid on 'dev' subset .*\| wer [\d.]+", log)


def test_demo_recipes_chain_teachers_into_the_student(teachers, tmp_path):
    """configs/demo/kd: both teachers, then the student distilled from them, two updates each."""
    def train(config, *extra):
        out = run_script("fairseq-hydra-train", "--config-dir", "configs/demo/kd", "--config-name", config,
                         f"task.data={teachers['data']}", "optimization.max_update=2", "dataset.num_workers=0",
                         f"checkpoint.save_dir={tmp_path / config}", *extra)
        return out.stdout + out.stderr

    train("text2gloss_teacher")
    train("dialogue_teacher", "task.crop_size=32")
    log = train("student", "task.crop_size=32",
                f"criterion.fusion_teacher={tmp_path / 'dialogue_teacher' / 'checkpoint_last.pt'}",
                f"criterion.text_teacher={tmp_path / 'text2gloss_teacher' / 'checkpoint_last.pt'}")
    assert re.search(r"fusion_kl [\d.]+ \| fusion_feature [\d.]+ \| text_kl [\d.]+ \| text_feature [\d.]+", log)


def test_vac_loss_is_ctc_per_utterance_plus_dist_per_step_whatever_fairseq_divides_by():
    """VAC: CTC summed per utterance and averaged over the batch, plus 25 · T² · KL averaged over steps. fairseq
    divides the loss by the sample size (sentences or glosses); what it is trained on must not depend on that."""
    gloss_dict = Dictionary()
    for gloss in ("A", "B", "C"):
        gloss_dict.add_symbol(gloss)
    task = SimpleNamespace(target_dictionary=gloss_dict)
    torch.manual_seed(1)
    net_output = {"encoder_out": torch.randn(5, 2, len(gloss_dict)), "conv_logits": torch.randn(5, 2, len(gloss_dict)),
                  "padding_mask": torch.tensor([[False] * 5, [False] * 3 + [True] * 2])}
    sample = {"target": torch.tensor([[4, 5, 6], [6, 1, 1]]), "target_lengths": torch.tensor([3, 1]), "ntokens": 4}
    per_sentence = [VacCtcCriterion(VacCtcConfig(sentence_avg=avg), task).recognition_loss(net_output, sample, True)
                    for avg in (True, False)]
    (loss_s, size_s, log), (loss_t, size_t, _) = per_sentence
    assert (size_s, size_t) == (2, 4)
    assert (loss_s / size_s).item() == pytest.approx((loss_t / size_t).item(), rel=1e-6)
    dist = posterior_kl(net_output["conv_logits"], net_output["encoder_out"], net_output["padding_mask"], 8.0)
    assert (loss_s / size_s).item() == pytest.approx(((log["seq_ctc"] + log["conv_ctc"]) / 2 + 25 * dist).item())


class _Decoder(torch.nn.Module):
    """A hand-made teacher decoder: its states are an embedding of the target prefix, its logits a fixed map."""

    def __init__(self, states, logits):
        super().__init__()
        self.states, self.logits = states, logits

    def forward(self, prev_output_tokens, encoder_out=None, features_only=True):
        return self.states, None

    def output_layer(self, features):
        return self.logits


def translation_criterion(teacher_states, teacher_logits, ce, sample_size, kl_weight, feature_weight, temperature):
    from slt_plugins.criteria.translation_distillation import TranslationDistillationCriterion
    from slt_plugins.models.kd.frozen_teacher import FrozenTeachers

    criterion = TranslationDistillationCriterion.__new__(TranslationDistillationCriterion)
    torch.nn.Module.__init__(criterion)
    teacher = torch.nn.Module()
    teacher.encoder = lambda src_tokens, src_lengths: None
    teacher.decoder = _Decoder(teacher_states, teacher_logits)
    teacher.dummy = torch.nn.Parameter(torch.zeros(1))  # FrozenTeachers reads the device of a parameter
    criterion.teachers = FrozenTeachers()
    criterion.teachers.add("gloss2text", teacher)
    criterion.task, criterion.padding_idx, criterion.checked, criterion.start_epoch = SimpleNamespace(), 1, False, 1
    criterion.kl_weight, criterion.feature_weight, criterion.temperature = kl_weight, feature_weight, temperature
    criterion.teacher_source = lambda sample: (torch.zeros(2, 1, dtype=torch.long), torch.ones(2, dtype=torch.long))
    criterion.combined_loss = lambda model, net_output, sample, reduce: (
        ce.clone(), sample_size, {"nsentences": 2, "ntokens": 4, "sample_size": sample_size})
    return criterion


@pytest.mark.parametrize("sample_size", [2, 4])  # sentences (--sentence-avg) or target tokens (the recipes)
def test_translation_distillation_counts_its_terms_once_per_utterance(sample_size):
    """γ·KL and δ·feature are means over the valid tokens and enter once per utterance, as the recognition terms
    against CTC: with fairseq's division by the number of tokens they weighed as much as the whole cross-entropy
    (a defect: γ = δ = 1 then outweighed a reference whose cross-entropy is a sum over the tokens)."""
    torch.manual_seed(2)
    target = torch.tensor([[5, 6, 2], [7, 1, 1]])  # 4 tokens, padding 1
    student_logits, teacher_logits = torch.randn(2, 3, 6), torch.randn(2, 3, 6)
    student_states, teacher_states = torch.randn(2, 3, 4), torch.randn(2, 3, 4)
    ce = torch.tensor(10.0)
    criterion = translation_criterion(teacher_states, teacher_logits, ce, sample_size, 0.5, 0.25, 8.0)
    model = lambda **net_input: (student_logits, {"decoder_features": student_states})  # noqa: E731
    sample = {"net_input": {"prev_output_tokens": target}, "target": target}
    loss, size, log = criterion.forward(model, sample)
    valid = target.ne(1)
    # by hand: KL(teacher ‖ student) at T = 8, times T², averaged over the 4 valid tokens; the squared distance of
    # the states averaged over channels and the same tokens
    p_teacher = (teacher_logits[valid] / 8).softmax(-1)
    kl = 64 * (p_teacher * (p_teacher.log() - (student_logits[valid] / 8).log_softmax(-1))).sum(-1).mean()
    feature = (student_states[valid] - teacher_states[valid]).pow(2).mean()
    assert size == sample_size
    assert loss.item() == pytest.approx(10.0 + (0.5 * kl + 0.25 * feature).item() * 2, rel=1e-5)
    assert log["kd_kl"].item() == pytest.approx(kl.item() * 2, rel=1e-5)
    # a student that says what the teacher says pays nothing for it
    same = translation_criterion(teacher_states, teacher_logits, ce, sample_size, 0.5, 0.25, 8.0)
    twin = lambda **net_input: (teacher_logits, {"decoder_features": teacher_states})  # noqa: E731
    assert same.forward(twin, sample)[0].item() == pytest.approx(10.0, abs=1e-5)


def test_the_translation_teacher_reads_what_gloss2text_trained_it_on(tiny_trained):
    """translation_distillation feeds the Gloss2Text teacher the batch's reference glosses: token for token the
    source Gloss2Text trains on (glosses, </s>, the language token), in its vocabulary, and both decoders read the
    same target prefix in the same text vocabulary."""
    from fairseq import tasks
    from omegaconf import OmegaConf

    from slt_plugins.criteria.translation_distillation import TranslationDistillationCriterion
    from slt_plugins.tasks.gloss2text import Gloss2TextConfig
    from slt_plugins.tasks.sign2text import Sign2TextConfig

    data = str(tiny_trained["data"])

    def task(name, config):
        cfg = OmegaConf.structured(config)
        cfg._name = name
        built = tasks.setup_task(cfg)
        built.load_dataset("dev")
        return built

    student = task("sign2text", Sign2TextConfig(data=data, crop_size=32, seed=1))
    teacher = task("gloss2text", Gloss2TextConfig(data=data, seed=1))
    assert student.gloss_dict.symbols == teacher.gloss_dict.symbols
    assert student.text_dict.symbols == teacher.text_dict.symbols
    criterion = TranslationDistillationCriterion.__new__(TranslationDistillationCriterion)
    torch.nn.Module.__init__(criterion)
    criterion.task = student
    dataset = student.datasets["dev"]
    sample = dataset.collater([dataset[i] for i in range(len(dataset))])
    source, lengths = criterion.teacher_source(sample)
    for row, index in enumerate(sample["id"].tolist()):
        expected = teacher.datasets["dev"][index]
        assert source[row, : lengths[row]].tolist() == expected["source"].tolist()
        assert sample["target"][row][sample["target"][row].ne(student.text_dict.pad())].tolist() == \
            expected["target"].tolist()


def test_dists_pull_against_conv_ctc_grows_as_glosses_and_clips_shrink():
    """Why VAC's Dist weight of 25 does not carry over to the demo corpus: Dist is a mean over steps of T²·KL over
    the glosses, CTC a sum over steps, so at equal weight Dist moves the conv logits far harder on a few glosses
    and short clips (the demo's 32 classes, ~13 steps) than on Phoenix's (1,296 classes, ~50 steps)."""
    def pull(classes, steps, batch, glosses):
        torch.manual_seed(0)
        ratios = []
        for _ in range(10):
            seq = 3 * torch.randn(steps, batch, classes)
            conv = (3 * torch.randn(steps, batch, classes)).requires_grad_()
            padding = torch.zeros(batch, steps, dtype=torch.bool)
            targets = torch.randint(1, classes, (batch, glosses))
            ctc = F.ctc_loss(conv.log_softmax(-1), targets, torch.full((batch,), steps),
                             torch.full((batch,), glosses), reduction="sum") / batch
            dist = 25 * posterior_kl(conv, seq, padding, temperature=8.0, blank=0)
            ratios.append(torch.autograd.grad(dist, conv)[0].norm() / torch.autograd.grad(ctc, conv)[0].norm())
        return torch.stack(ratios).mean().item()

    phoenix, demo = pull(1296, 50, 2, 11), pull(32, 13, 8, 5)
    assert phoenix < 0.2 and demo > 1.0 and demo / phoenix > 10  # measured: 0.07 and 1.5
