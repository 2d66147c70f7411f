"""Scoring adapters: how a RecBole model scores a candidate pool, and how K negatives reach its loss."""

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
        scores = (hidden @ table.t()).gather(1, candidates)
    else:
        scores = torch.bmm(table[candidates], hidden.unsqueeze(2)).squeeze(2)  # [N, M]
    return scores, (hidden * table[targets]).sum(dim=1)  # [N, M], [N]


def gathered_scores(full, candidates, targets):
    """:func:`dot_scores` read from a held ``[N, |I|]`` score matrix ``full``, at no further product; every real
    item (``candidates`` None) is a view of ``full``, with no copy."""
    if candidates is None:
        pool_scores = full[:, 1:]
    else:
        pool_scores = full[:, candidates] if candidates.dim() == 1 else full.gather(1, candidates)
    return pool_scores, full.gather(1, targets.unsqueeze(1)).squeeze(1)


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
        hidden, table = self.encode(interaction), self.model.item_embedding.weight
        return lambda candidates: dot_scores(hidden, table, candidates, targets)


class FullSortScorer:
    """Any model with ``full_sort_predict``: one pass scores the whole catalogue, then the pool is gathered."""

    def __init__(self, model):
        self.model = model

    def bind(self, interaction, targets):
        """As :meth:`DotProductScorer.bind`; the ``[N, |I|]`` scores are held while the callback lives."""
        full = self.model.full_sort_predict(interaction)  # [N, |I|]
        return lambda candidates: gathered_scores(full, candidates, targets)


def scorer_for(model):
    """The scoring adapter of a model instance, chosen by the RecBole model it is or subclasses (see
    :mod:`recbole_genni.support`)."""
    fields = ONE_PASS_ENCODERS.get(recbole_family(type(model)))
    if fields is not None:
        return DotProductScorer(model, fields)
    return FullSortScorer(model)


def multi_negative_loss(model, interaction, neg_field):
    """The model's own ``calculate_loss`` over K negatives per row given as ``interaction[neg_field]`` ``[N, K]``,
    in RecBole's layout: the row repeated K times with one negative each (the mean over the N x K pairs, K encoder
    passes). One-pass models never need it: they draw ``[K, N]`` negatives in their own loss
    (:mod:`recbole_genni.training_pass`), which their BPR heads broadcast in one pass.
    """
    negatives = interaction[neg_field]
    if negatives.dim() == 1:
        return model.calculate_loss(interaction)
    rest = {k: v for k, v in interaction.interaction.items() if k != neg_field}
    batch = Interaction(rest).repeat(negatives.shape[1])
    batch.update(Interaction({neg_field: negatives.t().reshape(-1)}))
    return model.calculate_loss(batch)
