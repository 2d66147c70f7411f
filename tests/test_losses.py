"""All-position losses against hand-computed references; padding contributes nothing; logQ reduces correctly."""

import math

import pytest
import torch

from recbole_genni import losses

POS = torch.tensor([[2.0, -1.0, 0.5]])  # [B=1, L=3]
NEG = torch.tensor([[[1.0, -2.0], [0.0, 3.0], [9.0, 9.0]]])  # [B, L, K=2]
MASK = torch.tensor([[True, True, False]])  # the last position is padding


def log_sigmoid(x):
    return math.log(1.0 / (1.0 + math.exp(-x)))


def test_bce_matches_hand_computation():
    first = -log_sigmoid(2.0) - log_sigmoid(-1.0) - log_sigmoid(2.0)
    second = -log_sigmoid(-1.0) - log_sigmoid(0.0) - log_sigmoid(-3.0)
    assert losses.bce_loss(POS, NEG, MASK).item() == pytest.approx((first + second) / 2, rel=1e-6)


def test_bpr_matches_hand_computation():
    first = -(log_sigmoid(2.0 - 1.0) + log_sigmoid(2.0 + 2.0)) / 2
    second = -(log_sigmoid(-1.0 - 0.0) + log_sigmoid(-1.0 - 3.0)) / 2
    assert losses.bpr_loss(POS, NEG, MASK).item() == pytest.approx((first + second) / 2, rel=1e-6)


def test_gbce_by_hand():
    beta = losses.gbce_beta(num_negatives=2, num_real_items=101, t=0.5)
    alpha = 2 / 100
    assert beta == pytest.approx(alpha * (0.5 * (1 - 1 / alpha) + 1 / alpha))
    first = -beta * log_sigmoid(2.0) - log_sigmoid(-1.0) - log_sigmoid(2.0)
    second = -beta * log_sigmoid(-1.0) - log_sigmoid(0.0) - log_sigmoid(-3.0)
    assert losses.gbce_loss(POS, NEG, MASK, beta).item() == pytest.approx((first + second) / 2, rel=1e-6)
    assert losses.gbce_loss(POS, NEG, MASK, 1.0).item() == pytest.approx(losses.bce_loss(POS, NEG, MASK).item())
    assert losses.gbce_beta(2, 101, t=0.0) == pytest.approx(1.0)  # t = 0 is plain BCE
    assert losses.gbce_beta(2, 101, t=1.0) == pytest.approx(alpha)  # t = 1 calibrates fully


def test_ssm_by_hand():
    log_count = torch.log(torch.tensor([[[0.2, 0.6], [0.4, 0.4], [1.0, 1.0]]]))

    def one(pos, negs, counts):
        logits = [pos] + [n - math.log(c) for n, c in zip(negs, counts)]
        return -(pos - math.log(sum(math.exp(v) for v in logits)))

    expected = (one(2.0, [1.0, -2.0], [0.2, 0.6]) + one(-1.0, [0.0, 3.0], [0.4, 0.4])) / 2
    assert losses.sampled_softmax_loss(POS, NEG, MASK, log_count).item() == pytest.approx(expected, rel=1e-6)


def test_ssm_partial_correction():
    log_count = torch.log(torch.tensor([[[0.2, 0.6], [0.4, 0.4], [1.0, 1.0]]]))
    half = losses.sampled_softmax_loss(POS, NEG, MASK, log_count, logq_weight=0.5)
    assert half.item() == pytest.approx(losses.sampled_softmax_loss(POS, NEG, MASK, 0.5 * log_count).item(), rel=1e-6)
    assert losses.sampled_softmax_loss(POS, NEG, MASK, log_count, logq_weight=0.0).item() == pytest.approx(
        losses.sampled_softmax_loss(POS, NEG, MASK).item(), rel=1e-6)
    expected = (math.log(1 + math.exp(-1 - 0.5 * math.log(0.2)) + math.exp(-4 - 0.5 * math.log(0.6)))
                + math.log(1 + math.exp(1 - 0.5 * math.log(0.4)) + math.exp(4 - 0.5 * math.log(0.4)))) / 2
    assert half.item() == pytest.approx(expected, rel=1e-6)


def test_ssm_without_correction():
    logits = torch.cat([POS.unsqueeze(-1), NEG], dim=-1)
    reference = -torch.log_softmax(logits, dim=-1)[..., 0][MASK].mean()
    assert losses.sampled_softmax_loss(POS, NEG, MASK).item() == pytest.approx(reference.item(), rel=1e-6)
    assert reference.item() == pytest.approx((math.log(1 + math.exp(-1) + math.exp(-4))
                                              + math.log(1 + math.exp(1) + math.exp(4))) / 2, rel=1e-6)


def test_ssm_uniform_correction():
    """K uniform draws over |I| - 1 items (expected count K / (|I| - 1)) shift each negative logit by
    log((|I| - 1) / K)."""
    num_items, k = 1001, 2
    log_count = torch.full_like(NEG, math.log(k / (num_items - 1)))
    shifted = torch.cat([POS.unsqueeze(-1), NEG + math.log((num_items - 1) / k)], dim=-1)
    reference = -torch.log_softmax(shifted, dim=-1)[..., 0][MASK].mean()
    assert losses.sampled_softmax_loss(POS, NEG, MASK, log_count).item() == pytest.approx(reference.item(), rel=1e-6)

