"""Losses over one positive and K sampled negatives per position, with the positive in its own tensor.

All take ``pos`` ``[...]``, ``neg`` ``[..., K]`` logits and a bool ``mask`` ``[...]`` of real (non-padding)
positions, and return the mean over the real positions. Pure tensor functions, like :mod:`recbole_genni.sampling`;
:class:`SampledLoss` picks one by the name users write in ``loss_type``, for every model of the package.
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


def gbce_beta(num_negatives: int, num_real_items: int, t: float) -> float:
    """gSASRec's beta = alpha * (t * (1 - 1/alpha) + 1/alpha), alpha = K / (|I| - 1) the sampling rate: K negatives
    among the |I| - 1 items other than the positive. ``num_real_items`` is |I|, RecBole's ``item_num`` less its
    padding id."""
    alpha = num_negatives / (num_real_items - 1)
    return alpha * (t * (1 - 1 / alpha) + 1 / alpha)


def bce_logit_offset(num_negatives: int, beta: float = 1.0) -> float:
    """``log(beta / K)``: the logit at which BCE (beta = 1) or gBCE over one positive and K negatives is lowest when
    every item gets the same logit (the positive's ``beta sigmoid(-s)`` equals the negatives' ``K sigmoid(s)``).

    A dot-product scorer starts with logits near 0, where K negatives' pull outweighs the positive's K / beta
    times. With the item table shared between input and output (SASRec and RecBole's models), the scorer can only
    lower every logit at once through one direction common to all item embeddings, which then swamps each item's
    own part in the encoder's input too. Shifting every logit of the loss by this constant leaves the ranking
    unchanged and starts the loss at that optimum instead. 0 for BCE with one negative.
    """
    return math.log(beta / num_negatives)


def gbce_loss(pos, neg, mask, beta: float):
    """Generalised BCE of gSASRec (Petrov & Macdonald, RecSys 2023, https://arxiv.org/abs/2308.07192):
    ``-log sigmoid(pos) ** beta - sum_k log sigmoid(-neg_k)``; beta < 1 counters the overconfidence that
    negative sampling gives BCE. beta = 1 is BCE. Computed in float64 as ``beta * softplus(-pos)``.
    """
    pos64, neg64 = pos.double(), neg.double()
    return _masked_mean(beta * F.softplus(-pos64) + F.softplus(neg64).sum(dim=-1), mask).to(pos.dtype)


def sampled_softmax_loss(pos, neg, mask, neg_log_count=None, logq_weight: float = 1.0):
    """Sampled softmax over the positive and K negatives, with the logQ correction.

    If negative k is expected ``c(k)`` times among a row's draws, ``sum_k exp(s_k) / c(k)`` estimates the partition
    sum over the catalogue, so each negative logit becomes ``s_k - log c(k)`` (Bengio & Senecal 2008; Jean et al.
    2015). For K draws with replacement from a proposal q, ``c = K q``; for GenNi's draws without replacement, the
    inclusion probability of the Gumbel-top-k draw given its (K + 1)-th key
    (:func:`~recbole_genni.sampling.softmax_draw`), since ``K q`` can exceed 1 for the likeliest, hardest negatives,
    drawn at most once; both times the pool's expected copies of the item (docs/algorithm.md, section 3).

    Args:
        pos: logits of the positives ``[...]``; neg: of the negatives ``[..., K]``; mask: bool ``[...]``.
        neg_log_count: ``log c`` ``[..., K]``, detached (a constant for the gradient); None: no correction, a
            softmax over the negatives as drawn, where GenNi's hard negatives weigh the most.
        logq_weight: in [0, 1], subtracts ``logq_weight x log c``. With a proposal close to the model's softmax, a
            negative of model probability ``p`` then gets a gradient weight of about ``p ** (2 - logq_weight)``:
            1 is full softmax's ``p``, 0 the drawn negatives' ``p ** 2``.

    Returns:
        The mean loss over the masked positions.
    """
    corrected = neg if neg_log_count is None else neg - logq_weight * neg_log_count
    logits = torch.cat([pos.unsqueeze(-1), corrected], dim=-1)  # [..., 1 + K]
    return _masked_mean(-torch.log_softmax(logits, dim=-1)[..., 0], mask)


def full_softmax_loss(logits, targets, mask):
    """Cross-entropy over the whole catalogue (``logits`` ``[..., |I|]``), the reference loss."""
    per_position = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), reduction="none")
    return _masked_mean(per_position.view(targets.shape), mask)


def chunked_cross_entropy(hidden, table, targets, chunk: int):
    """Cross-entropy over the whole catalogue, ``[N]`` per row, for logits ``hidden @ table.t()`` that are never
    held: a running log-sum-exp over ``chunk`` items at a time, each chunk's logits computed again in the backward
    (as Cut Cross-Entropy does on GPUs). Memory O(N x chunk) beyond the table and its gradient.

    Args:
        hidden: ``[N, H]``; table: ``[|I|, H]`` (row 0, padding, is a column like any other, as in RecBole's CE);
        targets: LongTensor ``[N]``; chunk: items per chunk.
    """
    if chunk < 1:
        raise ValueError(f"chunk must be >= 1, got {chunk}")
    return _ChunkedCrossEntropy.apply(hidden, table, targets, chunk)


class _ChunkedCrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(ctx, hidden, table, targets, chunk):
        log_norm = torch.full((hidden.shape[0],), float("-inf"), dtype=hidden.dtype, device=hidden.device)
        for start in range(0, table.shape[0], chunk):
            log_norm = torch.logaddexp(log_norm, torch.logsumexp(hidden @ table[start:start + chunk].t(), dim=1))
        ctx.save_for_backward(hidden, table, targets, log_norm)
        ctx.chunk = chunk
        return log_norm - (hidden * table[targets]).sum(dim=1)

    @staticmethod
    def backward(ctx, grad):
        hidden, table, targets, log_norm = ctx.saved_tensors
        grad_hidden = -grad.unsqueeze(1) * table[targets]
        grad_table = torch.zeros_like(table).index_add_(0, targets, -grad.unsqueeze(1) * hidden)
        for start in range(0, table.shape[0], ctx.chunk):
            rows = table[start:start + ctx.chunk]
            # d loss / d logits = softmax, per row scaled by the row's incoming gradient
            weights = (hidden @ rows.t() - log_norm.unsqueeze(1)).exp_().mul_(grad.unsqueeze(1))
            grad_hidden += weights @ rows
            grad_table[start:start + ctx.chunk] += weights.t() @ hidden
        return grad_hidden, grad_table, None, None


def full_softmax_loss_of(hidden, table, targets, mask, chunk: int = 0):
    """:func:`full_softmax_loss` of the logits ``hidden @ table.t()``, chunked over the items when ``chunk`` > 0
    (:func:`chunked_cross_entropy`), else from the whole ``[N, |I|]`` logits."""
    if chunk:
        return _masked_mean(chunked_cross_entropy(hidden, table, targets, chunk), mask)
    return full_softmax_loss(hidden @ table.t(), targets, mask)


class SampledLoss(torch.nn.Module):
    """The loss ``loss_type`` (``BCE``, ``BPR``, ``gBCE`` or ``SSM``) over one positive and K negatives per row:
    the one place a loss is chosen by name.

    Args:
        loss_type: the loss's name, as ``loss_type`` writes it.
        num_negatives: K, for gBCE's beta.
        num_items: the catalogue's ids, padding included (RecBole's ``item_num``), for gBCE's beta.
        gbce_t: gBCE's calibration t.
        logq_weight: SSM's weight of the logQ correction (True = 1, False = 0).
        bce_offset: BCE and gBCE: add :func:`bce_logit_offset` to every logit (True), or train the raw scores.
    """

    def __init__(self, loss_type, num_negatives, num_items, gbce_t, logq_weight=1.0, bce_offset=True):
        super().__init__()
        if loss_type not in _SAMPLED_LOSSES:
            raise ValueError(f"loss_type must be one of {' | '.join(_SAMPLED_LOSSES)}, got {loss_type!r}")
        self.loss_type, self.logq_weight = loss_type, float(logq_weight)
        self.gbce_beta = gbce_beta(num_negatives, num_items - 1, gbce_t) if loss_type == "gBCE" else None
        self.logit_offset = 0.0
        if bce_offset and loss_type in ("BCE", "gBCE"):
            self.logit_offset = bce_logit_offset(num_negatives, self.gbce_beta or 1.0)

    def extra_repr(self) -> str:
        """What the model's printout says of its loss (a built-in model's ``loss_type`` stays BPR for RecBole)."""
        if self.loss_type == "SSM":
            return f"loss_type=SSM, logq_weight={self.logq_weight:g}"
        offset = f", logit_offset={self.logit_offset:.4g}" if self.logit_offset else ""
        if self.loss_type == "gBCE":
            return f"loss_type=gBCE, beta={self.gbce_beta:.4g}{offset}"
        return f"loss_type={self.loss_type}{offset}"

    @property
    def needs_log_count(self) -> bool:
        """Whether :meth:`forward` reads each negative's log expected count (SSM with a logQ correction)."""
        return self.loss_type == "SSM" and self.logq_weight > 0

    def forward(self, pos, neg, log_count=None, mask=None):
        """The mean loss over the real rows: ``pos`` ``[N]``, ``neg`` ``[N, K]``, ``log_count`` ``[N, K]`` (SSM),
        ``mask`` ``[N]`` (default: every row)."""
        mask = torch.ones_like(pos, dtype=torch.bool) if mask is None else mask
        if self.logit_offset:
            pos, neg = pos + self.logit_offset, neg + self.logit_offset
        if self.loss_type == "gBCE":
            return gbce_loss(pos, neg, mask, self.gbce_beta)
        if self.loss_type == "SSM":
            return sampled_softmax_loss(pos, neg, mask, log_count if self.needs_log_count else None,
                                        self.logq_weight)
        return _SAMPLED_LOSSES[self.loss_type](pos, neg, mask)


_SAMPLED_LOSSES = {"BCE": bce_loss, "BPR": bpr_loss, "gBCE": gbce_loss, "SSM": sampled_softmax_loss}
