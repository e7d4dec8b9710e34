"""R-Drop: the loss is two label-smoothed CEs plus α times the symmetric KL between two dropout passes, computed on
a copy of the batch; validation is the plain loss."""

import math

import torch
import torch.nn.functional as F
from fairseq.criterions.label_smoothed_cross_entropy import (LabelSmoothedCrossEntropyCriterion,
                                                             label_smoothed_nll_loss)

import slt_plugins  # noqa: F401
from slt_plugins.criteria.rdrop import RDropLabelSmoothedCrossEntropy

PAD, VOCAB = 1, 12


class Task:
    class target_dictionary:  # noqa: N801 (the criterion reads .pad() from it)
        @staticmethod
        def pad():
            return PAD


class DropoutDecoder(torch.nn.Module):
    """Logits from the previous tokens through dropout: two passes over the same batch differ."""

    def __init__(self):
        super().__init__()
        self.embed = torch.nn.Embedding(VOCAB, 16)
        self.out = torch.nn.Linear(16, VOCAB)

    def forward(self, src_tokens, src_lengths, prev_output_tokens):
        return self.out(F.dropout(self.embed(prev_output_tokens), 0.5, self.training)), None

    def get_normalized_probs(self, net_output, log_probs):
        return (F.log_softmax if log_probs else F.softmax)(net_output[0].float(), dim=-1)

    def get_targets(self, sample, net_output):
        return sample["target"]


def batch():
    g = torch.Generator().manual_seed(0)
    target = torch.randint(2, VOCAB, (3, 5), generator=g)
    target[1, 3:] = PAD
    target[2, 4:] = PAD
    prev = torch.cat([torch.full((3, 1), 2), target[:, :-1]], dim=1)
    net_input = {"src_tokens": target.clone(), "src_lengths": torch.tensor([5, 3, 4]), "prev_output_tokens": prev}
    return {"net_input": net_input, "target": target, "ntokens": int(target.ne(PAD).sum())}


def test_rdrop_loss_is_two_smoothed_ces_plus_alpha_times_the_symmetric_kl():
    model, sample = DropoutDecoder().train(), batch()
    criterion = RDropLabelSmoothedCrossEntropy(Task, sentence_avg=False, label_smoothing=0.1, rdrop_alpha=5.0)
    torch.manual_seed(3)
    loss, sample_size, log = criterion(model, sample)

    torch.manual_seed(3)  # the same dropout masks, by hand
    doubled = {k: torch.cat([v, v]) for k, v in sample["net_input"].items()}
    lprobs = model.get_normalized_probs(model(**doubled), log_probs=True)
    target = torch.cat([sample["target"], sample["target"]])
    ce, nll = label_smoothed_nll_loss(lprobs.view(-1, VOCAB), target.view(-1), 0.1, ignore_index=PAD)
    p1, p2 = lprobs.chunk(2)
    keep = sample["target"].ne(PAD).unsqueeze(-1)
    kl12 = (p1.exp() * (p1 - p2) * keep).sum()
    kl21 = (p2.exp() * (p2 - p1) * keep).sum()
    assert kl12 > 0 and kl21 > 0  # the passes really differ
    assert torch.allclose(loss, ce + 5.0 * (kl12 + kl21) / 2, rtol=1e-5)
    assert sample_size == log["ntokens"] == 2 * sample["ntokens"] and log["nsentences"] == 6
    assert torch.allclose(log["nll_loss"], nll) and torch.allclose(log["rdrop_kl_loss"], (kl12 + kl21) / 2)
    # the batch itself is left as it was, for whatever reads it after the loss
    assert sample["net_input"]["src_tokens"].shape == (3, 5) and sample["ntokens"] == int(keep.sum())


def test_alpha_zero_is_plain_training_and_the_kl_term_moves_the_gradient():
    model, sample = DropoutDecoder().train(), batch()
    rdrop = RDropLabelSmoothedCrossEntropy(Task, sentence_avg=False, label_smoothing=0.1, rdrop_alpha=0.0)
    plain = LabelSmoothedCrossEntropyCriterion(Task, sentence_avg=False, label_smoothing=0.1)
    torch.manual_seed(5)
    a = rdrop(model, sample)
    torch.manual_seed(5)
    b = plain(model, sample)
    assert torch.equal(a[0], b[0]) and a[1] == b[1]
    grads = []
    for alpha in (1.0, 5.0):  # the same dropout masks: only the weight of the KL term differs
        model.zero_grad()
        torch.manual_seed(7)
        RDropLabelSmoothedCrossEntropy(Task, sentence_avg=False, label_smoothing=0.1, rdrop_alpha=alpha)(
            model, sample)[0].backward()
        grads.append(model.embed.weight.grad.clone())
    assert grads[1].abs().sum() > 0 and not torch.allclose(grads[0], grads[1])


def test_validation_is_the_plain_loss_on_the_batch_as_given():
    model, sample = DropoutDecoder().eval(), batch()
    rdrop = RDropLabelSmoothedCrossEntropy(Task, sentence_avg=False, label_smoothing=0.1, rdrop_alpha=5.0)
    plain = LabelSmoothedCrossEntropyCriterion(Task, sentence_avg=False, label_smoothing=0.1)
    loss, sample_size, log = rdrop(model, sample)
    expected, expected_size, _ = plain(model, sample)
    assert torch.allclose(loss, expected) and sample_size == expected_size == sample["ntokens"]
    assert "rdrop_kl_loss" not in log
    assert math.isfinite(loss.item())
