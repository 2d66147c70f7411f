"""Losses over one positive and K sampled negatives per position, with the positive in its own tensor.

All take ``pos`` ``[...]``, ``neg`` ``[..., K]`` logits and a bool ``mask`` ``[...]`` of real (non-padding)
positions, and return the mean over the real positions. Pure tensor functions, like :mod:`recbole_genni.sampling`.
"""

import math

import torch
import torch.nn.functional as F


def _masked_mean(per_position, mask):
    mask = mask.to(per_position.dtype)
    return (per_position * mask).sum() / mask.sum().clamp(min=1)


def bce_loss(pos, neg, mask):
    """SASRec's binary cross-entropy: ``-log sigmoid(pos) - sum_k log sigmoid(-neg_k)`` (Kang & McAuley, 2018)."""
    return _masked_mean(F.softplus(-pos) + F.softplus(neg).sum(dim=-1), mask)


def bpr_loss(pos, neg, mask):
    """BPR: ``mean_k -log sigmoid(pos - neg_k)`` (Rendle et al., 2009)."""
    return _masked_mean(F.softplus(neg - pos.unsqueeze(-1)).mean(dim=-1), mask)


def gbce_beta(num_negatives: int, num_items: int, t: float) -> float:
    """gSASRec's beta = alpha * (t * (1 - 1/alpha) + 1/alpha), alpha = K / (|I| - 1) the sampling rate."""
    alpha = num_negatives / (num_items - 1)
    return alpha * (t * (1 - 1 / alpha) + 1 / alpha)


def gbce_loss(pos, neg, mask, beta: float):
    """Generalised BCE of gSASRec (Petrov & Macdonald, RecSys 2023, https://arxiv.org/abs/2308.07192):
    ``-log sigmoid(pos) ** beta - sum_k log sigmoid(-neg_k)``; beta < 1 counters the overconfidence that
    negative sampling gives BCE. beta = 1 is BCE. Computed in float64 as ``beta * softplus(-pos)``.
    """
    pos64, neg64 = pos.double(), neg.double()
    return _masked_mean(beta * F.softplus(-pos64) + F.softplus(neg64).sum(dim=-1), mask).to(pos.dtype)


def sampled_softmax_loss(pos, neg, mask, neg_log_q):
    """Sampled softmax over the positive and K negatives with the logQ correction.

    With K negatives drawn from a proposal q, ``E[sum_k exp(s_k - log(K q(k)))]`` estimates the partition sum over
    the catalogue, so each negative logit becomes ``s_k - log(K q(k))`` (Bengio & Senecal 2008; Jean et al. 2015).
    ``neg_log_q`` ``[..., K]`` is ``log q`` of each drawn negative. For a uniform proposal over ``|I| - 1`` items
    this is the known constant shift ``s_k + log((|I| - 1) / K)``.

    GenNi's proposal depends on the model: conditional on the candidate pool, a negative is drawn with
    ``q(i | pool) = c_i exp(s_i / tau) / sum_j exp(s_j / tau)`` over the allowed pool columns (``c_i`` copies of
    ``i`` in the pool), so ``log q`` is the log-softmax of the (detached) pool scores at the drawn column, as
    returned by :func:`recbole_genni.sampling.draw_log_probs`. Without replacement (K > 1) this is
    the first-draw probability, the usual approximation.
    """
    k = neg.shape[-1]
    corrected = neg - (neg_log_q + math.log(k))
    logits = torch.cat([pos.unsqueeze(-1), corrected], dim=-1)  # [..., 1 + K]
    return _masked_mean(-torch.log_softmax(logits, dim=-1)[..., 0], mask)


def full_softmax_loss(logits, targets, mask):
    """Cross-entropy over the whole catalogue (``logits`` ``[..., |I|]``), the reference loss."""
    per_position = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), reduction="none")
    return _masked_mean(per_position.view(targets.shape), mask)
