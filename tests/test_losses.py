"""All-position losses against hand-computed references; padding contributes nothing; logQ reduces correctly."""

import math
import subprocess
import sys

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


@pytest.mark.parametrize("loss_type, t", [("BCE", 0.0), ("gBCE", 0.75)])
def test_bce_offset_starts_the_loss_at_its_optimum(loss_type, t):
    """With every logit equal, the shifted loss is lowest at raw logits 0, where a dot-product scorer starts."""
    num_negatives, num_items = 256, 12102
    loss_fct = losses.SampledLoss(loss_type, num_negatives, num_items, t)
    beta = losses.gbce_beta(num_negatives, num_items - 1, t)
    assert loss_fct.logit_offset == pytest.approx(math.log(beta / num_negatives))
    shift = torch.zeros((), requires_grad=True)
    loss_fct(torch.zeros(4) + shift, torch.zeros(4, num_negatives) + shift).backward()
    assert shift.grad.item() == pytest.approx(0.0, abs=1e-6)
    raw = losses.SampledLoss(loss_type, num_negatives, num_items, t, bce_offset=False)
    assert raw.logit_offset == 0.0
    shift.grad = None
    raw(torch.zeros(4) + shift, torch.zeros(4, num_negatives) + shift).backward()
    assert shift.grad.item() == pytest.approx((num_negatives - beta) / 2)  # K sigmoid(0) - beta sigmoid(0)


def test_bce_offset_shifts_every_logit():
    pos, neg, mask = POS.flatten(), NEG.flatten(0, 1), MASK.flatten()
    beta = losses.gbce_beta(2, 101, t=0.5)
    offset = math.log(beta / 2)
    shifted = losses.SampledLoss("gBCE", 2, 102, 0.5)(pos, neg, mask=mask)
    assert shifted.item() == pytest.approx(losses.gbce_loss(pos + offset, neg + offset, mask, beta).item(), rel=1e-6)
    assert losses.SampledLoss("BCE", 1, 102, 0.5).logit_offset == 0.0  # one negative: BCE unchanged
    assert losses.SampledLoss("SSM", 2, 102, 0.5).logit_offset == 0.0  # shift-invariant losses: none
    assert losses.SampledLoss("BPR", 2, 102, 0.5).logit_offset == 0.0


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


class TestChunkedCrossEntropy:
    @pytest.mark.parametrize("chunk", [1, 7, 64])
    def test_equals_plain_ce_in_loss_and_gradient(self, chunk):
        gen = torch.Generator().manual_seed(0)
        hidden = torch.randn(9, 5, dtype=torch.float64, generator=gen, requires_grad=True)
        table = torch.randn(40, 5, dtype=torch.float64, generator=gen, requires_grad=True)
        targets = torch.randint(0, 40, (9,), generator=gen)
        weights = torch.rand(9, dtype=torch.float64, generator=gen)  # a different gradient for each row
        plain = torch.nn.functional.cross_entropy(hidden @ table.t(), targets, reduction="none")
        expected = torch.autograd.grad((plain * weights).sum(), (hidden, table))
        chunked = losses.chunked_cross_entropy(hidden, table, targets, chunk)
        got = torch.autograd.grad((chunked * weights).sum(), (hidden, table))
        assert torch.allclose(chunked, plain, atol=1e-10, rtol=0)
        assert all(torch.allclose(a, b, atol=1e-10, rtol=0) for a, b in zip(got, expected))

    def test_peak_memory_flat_in_the_catalogue(self):
        """The step's peak above the table, its gradient and the rows is the chunk's, whatever |I|: measured in a
        fresh process per catalogue size (peak resident memory less what was held before the step)."""
        script = """
import resource, sys, torch
from recbole_genni.losses import chunked_cross_entropy
items = int(sys.argv[1])
hidden = torch.randn(1024, 32, requires_grad=True)
table = torch.randn(items, 32, requires_grad=True)
table.grad = torch.zeros_like(table); hidden.grad = torch.zeros_like(hidden)
targets = torch.randint(0, items, (1024,))
with open("/proc/self/statm") as statm:
    held = int(statm.read().split()[1]) * resource.getpagesize() // 1024  # resident KiB now
chunked_cross_entropy(hidden, table, targets, 2048).sum().backward()
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - held)
"""
        peaks = {}
        for items in (20_000, 200_000):
            out = subprocess.run([sys.executable, "-c", script, str(items)], capture_output=True, text=True,
                                 check=True, timeout=300)
            peaks[items] = int(out.stdout.split()[-1])  # KiB
        # the gradient of the larger table (a temporary beside .grad) may add up to 2 x 180,000 x 32 x 4 bytes;
        # the [1024, 200,000] logits plain CE would hold are 0.8 GB, and their gradient as much again
        assert peaks[200_000] - peaks[20_000] < 2 * 180_000 * 32 * 4 / 1024 + 20_000
