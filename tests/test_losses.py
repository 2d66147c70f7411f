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


def test_gbce_matches_hand_computation_and_beta_one_is_bce():
    beta = losses.gbce_beta(num_negatives=2, num_items=101, t=0.5)
    alpha = 2 / 100
    assert beta == pytest.approx(alpha * (0.5 * (1 - 1 / alpha) + 1 / alpha))
    first = -beta * log_sigmoid(2.0) - log_sigmoid(-1.0) - log_sigmoid(2.0)
    second = -beta * log_sigmoid(-1.0) - log_sigmoid(0.0) - log_sigmoid(-3.0)
    assert losses.gbce_loss(POS, NEG, MASK, beta).item() == pytest.approx((first + second) / 2, rel=1e-6)
    assert losses.gbce_loss(POS, NEG, MASK, 1.0).item() == pytest.approx(losses.bce_loss(POS, NEG, MASK).item())
    assert losses.gbce_beta(2, 101, t=0.0) == pytest.approx(1.0)  # t = 0 is plain BCE
    assert losses.gbce_beta(2, 101, t=1.0) == pytest.approx(alpha)  # t = 1 calibrates fully


def test_sampled_softmax_matches_hand_computation():
    log_q = torch.log(torch.tensor([[[0.1, 0.3], [0.2, 0.2], [0.5, 0.5]]]))

    def one(pos, negs, qs):
        logits = [pos] + [n - math.log(2 * q) for n, q in zip(negs, qs)]
        return -(pos - math.log(sum(math.exp(v) for v in logits)))

    expected = (one(2.0, [1.0, -2.0], [0.1, 0.3]) + one(-1.0, [0.0, 3.0], [0.2, 0.2])) / 2
    assert losses.sampled_softmax_loss(POS, NEG, MASK, log_q).item() == pytest.approx(expected, rel=1e-6)


def test_sampled_softmax_with_uniform_proposal_is_the_known_uniform_correction():
    """q = 1 / (|I| - 1) gives each negative logit the constant shift log((|I| - 1) / K)."""
    num_items, k = 1001, 2
    log_q = torch.full_like(NEG, -math.log(num_items - 1))
    shifted = torch.cat([POS.unsqueeze(-1), NEG + math.log((num_items - 1) / k)], dim=-1)
    reference = -torch.log_softmax(shifted, dim=-1)[..., 0][MASK].mean()
    assert losses.sampled_softmax_loss(POS, NEG, MASK, log_q).item() == pytest.approx(reference.item(), rel=1e-6)


def test_full_softmax_matches_cross_entropy_on_real_positions():
    logits = torch.randn(1, 3, 7)
    targets = torch.tensor([[1, 4, 0]])
    expected = torch.nn.functional.cross_entropy(logits[0, :2], targets[0, :2])
    assert losses.full_softmax_loss(logits, targets, MASK).item() == pytest.approx(expected.item(), rel=1e-6)


@pytest.mark.parametrize("name", ["bce_loss", "bpr_loss", "gbce_loss", "sampled_softmax_loss"])
def test_padding_positions_contribute_nothing(name):
    extra = {"gbce_loss": (0.3,), "sampled_softmax_loss": (torch.zeros_like(NEG),)}.get(name, ())
    fn = getattr(losses, name)
    changed_pos, changed_neg = POS.clone(), NEG.clone()
    changed_pos[0, 2], changed_neg[0, 2] = -50.0, 50.0
    assert fn(POS, NEG, MASK, *extra).item() == pytest.approx(fn(changed_pos, changed_neg, MASK, *extra).item())
