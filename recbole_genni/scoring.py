"""Scoring adapters: how a RecBole model scores a candidate pool, and how K negatives reach its loss."""

import warnings

import torch
from recbole.data.interaction import Interaction

from recbole_genni.support import ONE_PASS_ENCODERS, recbole_family


def full_product_is_cheaper(columns, hidden_size, num_items):
    """Whether ``columns`` items per row are cheaper to score as one ``[N, |I|]`` matmul and a gather than through
    the ``[N, columns, H]`` gather of their embeddings: when ``columns x H >= |I|``, the product is no larger."""
    return columns * hidden_size >= num_items


def dot_scores(hidden, table, candidates, targets):
    """Dot-product scores of ``candidates`` (``[M]`` shared, ``[N, M]``, or None for every real item, ids
    ``1 .. |I| - 1``) and of each row's target (``[N]``), for hidden states ``[N, H]`` and an item table
    ``[|I|, H]``."""
    if candidates is None:
        scores = hidden @ table[1:].t()  # [N, |I| - 1]
    elif candidates.dim() == 1:
        scores = hidden @ table[candidates].t()  # [N, M]
    elif full_product_is_cheaper(candidates.shape[1], hidden.shape[1], table.shape[0]):
        scores = product_columns(hidden, table, candidates)
    else:
        scores = torch.bmm(table[candidates], hidden.unsqueeze(2)).squeeze(2)  # [N, M]
    return scores, (hidden * table[targets]).sum(dim=1)  # [N, M], [N]


def product_columns(hidden, table, columns, product=None):
    """``(hidden @ table.t()).gather(1, columns)``, ``[N, K]``, differentiable in ``hidden`` and ``table``;
    ``product``, the ``[N, |I|]`` product when already held (detached), is read instead of computed again.

    Autograd would back-propagate through a dense ``[N, |I|]`` gradient with K nonzeros a row: a zero-fill, a
    scatter and two ``[N, |I|]``-sized products. On a CPU the backward pass here multiplies the sparse gradient
    instead (nine-tenths of the loss's backward saved at Beauty's size, 12,101 items and K = 257); on other devices
    it does what autograd does.
    """
    if product is None:
        with torch.no_grad():
            product = hidden @ table.t()
    return _ProductColumns.apply(hidden, table, columns, product)


class _ProductColumns(torch.autograd.Function):
    """:func:`product_columns`: forward gathers, backward touches the gathered columns only (on a CPU)."""

    @staticmethod
    def forward(ctx, hidden, table, columns, product):
        ctx.save_for_backward(hidden, table, columns)
        return product.gather(1, columns)

    @staticmethod
    def backward(ctx, grad):
        hidden, table, columns = ctx.saved_tensors
        # under autocast the forward's product (and so grad) may be of a lower precision than the parameters
        dtype = torch.promote_types(hidden.dtype, table.dtype)
        if grad.device.type == "cpu" and dtype in (torch.float32, torch.float64):
            by_row, by_item = _sparse_gradients(grad.to(dtype), columns, table.shape[0])
        else:  # autograd's own: the dense [N, |I|] gradient
            by_row = torch.zeros(grad.shape[0], table.shape[0], dtype=dtype, device=grad.device)
            by_row.scatter_add_(1, columns, grad.to(dtype))
            by_item = by_row.t()
        grad_hidden = (by_row @ table.to(dtype)).to(hidden.dtype) if ctx.needs_input_grad[0] else None
        grad_table = (by_item @ hidden.to(dtype)).to(table.dtype) if ctx.needs_input_grad[1] else None
        return grad_hidden, grad_table, None, None


def _sparse_gradients(grad, columns, num_items):
    """The ``[N, |I|]`` gradient of the gathered scores ``grad`` ``[N, K]`` at ``columns`` as a sparse CSR matrix,
    and its transpose ``[|I|, N]`` (rows sorted by item); repeated columns in a row add up, as a gather's do."""
    n, k = columns.shape
    flat = columns.reshape(-1)
    by_item_order = flat.argsort(stable=True)
    item_starts = torch.zeros(num_items + 1, dtype=torch.long, device=grad.device)
    item_starts[1:] = torch.bincount(flat, minlength=num_items).cumsum(0)
    with warnings.catch_warnings():  # torch: "Sparse CSR tensor support is in beta stage"
        warnings.simplefilter("ignore", UserWarning)
        by_row = torch.sparse_csr_tensor(torch.arange(0, n * k + 1, k, device=grad.device), flat,
                                         grad.reshape(-1), (n, num_items))
        by_item = torch.sparse_csr_tensor(item_starts, torch.div(by_item_order, k, rounding_mode="floor"),
                                          grad.reshape(-1)[by_item_order], (num_items, n))
    return by_row, by_item


def gathered_scores(full, candidates, targets):
    """:func:`dot_scores` read from a held ``[N, |I|]`` score matrix ``full``, at no further product; every real
    item (``candidates`` None) is a view of ``full``, with no copy."""
    if candidates is None:
        pool_scores = full[:, 1:]
    else:
        pool_scores = full[:, candidates] if candidates.dim() == 1 else full.gather(1, candidates)
    return pool_scores, full.gather(1, targets.unsqueeze(1)).squeeze(1)


class DotScores:
    """``score(candidates) -> (scores [N, M], target_scores [N])`` of hidden states ``query`` ``[N, H]`` against an
    item ``table`` ``[|I|, H]`` (:func:`dot_scores`), read from ``full``, the ``[N, |I|]`` product, when it is held
    (:func:`gathered_scores`). Keeps ``query`` and ``table`` for samplers that index the table (``midx``)."""

    def __init__(self, query, table, targets, full=None):
        self.query, self.table, self.targets, self.full = query, table, targets, full

    def __call__(self, candidates):
        if self.full is not None:
            return gathered_scores(self.full, candidates, self.targets)
        return dot_scores(self.query, self.table, candidates, self.targets)


class DotProductScorer:
    """One encoder pass per row, dotted with the candidates' item embeddings (the model's own scoring head)."""

    def __init__(self, model, fields):
        self.model = model
        self.fields = [getattr(model, f) for f in fields]

    def encode(self, interaction):
        return self.model.forward(*(interaction[f] for f in self.fields))  # [N, H]

    def bind(self, interaction, targets):
        """Encode the rows once; return ``score(candidates) -> (scores [N, M], target_scores [N])`` for
        candidates ``[M]`` (shared), ``[N, M]`` or None (every real item), callable chunk after chunk at no
        further encoder pass."""
        return DotScores(self.encode(interaction), self.model.item_embedding.weight, targets)


class FullSortScorer:
    """Any model with ``full_sort_predict``: one pass scores the whole catalogue, then the pool is gathered."""

    def __init__(self, model):
        self.model = model

    def bind(self, interaction, targets):
        """As :meth:`DotProductScorer.bind`; the ``[N, |I|]`` scores are held while the callback lives."""
        full = self.model.full_sort_predict(interaction)  # [N, |I|]
        return lambda candidates: gathered_scores(full, candidates, targets)


def eval_mode_scorer(model, scorer, batch, targets):
    """``scorer``'s callback for ``batch``, bound on its first call in eval mode (no dropout) with no gradient,
    ``model``'s mode restored: a batch whose negatives need no scores pays no encoder pass."""
    bound = []

    @torch.no_grad()
    def score(candidates):
        if not bound:
            was_training = model.training
            model.eval()
            try:
                bound.append(scorer.bind(batch, targets))
            finally:
                model.train(was_training)
        return bound[0](candidates)
    return score


def scorer_for(model):
    """The scoring adapter of a model instance, chosen by the RecBole model it is or subclasses (see
    :mod:`recbole_genni.support`)."""
    fields = ONE_PASS_ENCODERS.get(recbole_family(type(model)))
    if fields is not None:
        return DotProductScorer(model, fields)
    return FullSortScorer(model)


def neg_item_field(negatives, broadcast):
    """RecBole's ``NEG_ITEM_ID`` value for ``negatives`` ``[N, K]``: ``[N]`` for K = 1 (RecBole's own layout); for
    K > 1, ``[K, N]`` where the model's BPR head broadcasts K negatives against its ``[N]`` positives in one encoder
    pass (``broadcast``), else ``[N, K]``, which :func:`multi_negative_loss` turns into K repeated rows."""
    if negatives.shape[1] == 1:
        return negatives[:, 0]
    return negatives.t() if broadcast else negatives


def multi_negative_loss(model, interaction, neg_field):
    """The model's own ``calculate_loss`` over K negatives per row given as ``interaction[neg_field]`` ``[N, K]``,
    in RecBole's layout: the row repeated K times with one negative each (the mean over the N x K pairs, K encoder
    passes). One-pass models never need it: they draw ``[K, N]`` negatives in their own loss
    (:mod:`recbole_genni.model.recbole_models`), which their BPR heads broadcast in one pass.
    """
    negatives = interaction[neg_field]
    if negatives.dim() == 1:
        return model.calculate_loss(interaction)
    rest = {k: v for k, v in interaction.interaction.items() if k != neg_field}
    batch = Interaction(rest).repeat(negatives.shape[1])
    batch.update(Interaction({neg_field: negatives.t().reshape(-1)}))
    return model.calculate_loss(batch)
