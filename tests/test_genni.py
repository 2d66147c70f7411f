"""Exact GenNi (``neg_pool_size: all``) and chunked pool scoring: memory bounded by the chunk, same draws as dense."""

import math

import pytest
import torch
from scipy.stats import chisquare

from recbole_genni import sampling


class RecordingScores:
    """A ``score(pool)`` callback over a fixed ``[N, |I|]`` score table that records every pool it is asked for
    (None, every real item, is recorded as those items)."""

    def __init__(self, table, targets):
        self.table, self.targets, self.calls = table, targets, []

    def __call__(self, pool):
        pool = torch.arange(1, self.table.shape[1]) if pool is None else pool
        self.calls.append(pool.clone())
        scores = self.table[:, pool] if pool.dim() == 1 else self.table.gather(1, pool)
        return scores, self.table.gather(1, self.targets.unsqueeze(1)).squeeze(1)


def first_batch(train):
    batch = next(iter(train))
    return batch[train.uid_field], batch[train.iid_field]


def test_exact_pool_scores_each_item_once(base_config, loader_for):
    train, net = loader_for(base_config, neg_pool_size="all", neg_score_chunk=7, neg_num=2)
    users, targets = first_batch(train)
    scores = RecordingScores(torch.randn(len(users), net.negatives.candidates.item_num), targets)
    negatives, _ = net.negatives.generate(users, targets, scores)
    assert max(call.shape[-1] for call in scores.calls) <= 7
    scored = torch.cat(scores.calls)
    assert sorted(scored.tolist()) == list(range(1, net.negatives.candidates.item_num))  # each real item exactly once
    allowed = sampling.exclusion_mask(
        negatives, targets, net.negatives.candidates.used_ids, users, net.negatives.candidates.item_num
    )
    assert allowed.all()


@pytest.mark.parametrize("pool_size", ["all", 30])
def test_chunked_scoring_equals_dense(pool_size, base_config, loader_for):
    """DNS (temperature 0) is deterministic given the pool: chunked and one-shot scoring pick the same items."""
    negatives = {}
    for chunk in (5, 4096):
        train, net = loader_for(base_config, neg_sampler="dns", neg_pool_size=pool_size, neg_score_chunk=chunk,
                              neg_num=3, neg_pool_shared=False)
        users, targets = first_batch(train)
        table = torch.randn(len(users), net.negatives.candidates.item_num, generator=torch.Generator().manual_seed(1))
        negatives[chunk] = net.negatives.generate(users, targets, RecordingScores(table, targets))[0]
    assert torch.equal(negatives[5], negatives[4096])


@pytest.mark.parametrize("replacement", [False, True])
def test_exact_draws_follow_softmax(replacement, base_config, loader_for):
    train, net = loader_for(base_config, neg_pool_size="all", neg_score_chunk=6, neg_temperature=0.5,
                          neg_replacement=replacement)
    users, targets = first_batch(train)
    rows = 20_000
    user, target = users[:1].expand(rows), targets[:1].expand(rows)
    row_scores = torch.randn(1, net.negatives.candidates.item_num, generator=torch.Generator().manual_seed(2))
    negatives, log_count = net.negatives.generate(
        user, target, RecordingScores(row_scores.expand(rows, -1), target), with_log_count=True
    )
    catalogue = torch.arange(net.negatives.candidates.item_num)
    allowed = sampling.exclusion_mask(catalogue, target[:1], net.negatives.candidates.used_ids, user[:1],
                                      net.negatives.candidates.item_num)[0]
    probs = torch.softmax(row_scores[0].double().masked_fill(~allowed, float("-inf")) / 0.5, dim=0)
    counts = torch.bincount(negatives[:, 0], minlength=len(catalogue))
    assert counts[~allowed].sum() == 0
    _, p_value = chisquare(counts[allowed].numpy(), (probs[allowed] * rows).numpy())
    assert p_value > 1e-3
    # the logQ weights estimate the partition sum over the allowed catalogue without bias
    estimate = (row_scores[0].double().exp()[negatives[:, 0]] / log_count[:, 0].double().exp()).mean()
    assert float(estimate) == pytest.approx(float(row_scores[0].double().exp()[allowed].sum()), rel=0.03)


@pytest.mark.parametrize("loss_type", ["BCE", "SSM"])
def test_gennisasrec_trains_with_exact_genni(loss_type, base_config, train_one_epoch):
    stats = train_one_epoch(base_config, loss_type=loss_type, neg_pool_size="all", neg_score_chunk=8, neg_num=2,
                            neg_replacement=False, neg_exclude="history")
    assert stats["target_hit_share"] == 0 and stats["history_hit_share"] == 0
    assert math.isfinite(stats["score_margin"]) and "pool_rank" not in stats  # no rank without the dense matrix


@pytest.mark.parametrize("pool", [{}, {"neg_pool_size": "all", "neg_score_chunk": 9}], ids=["pool", "streamed"])
def test_nonfinite_rows_fall_back(pool, base_config, caplog, loader_for, with_negatives):
    train, net = loader_for(base_config, neg_num=2, **pool)
    with torch.no_grad():
        net.item_embedding.weight[5] = float("nan")  # a diverged row of the scoring table
    with caplog.at_level("WARNING"):
        batches = list(with_negatives(train, net))
    stats = net.negatives.pop_stats().summary()
    assert stats["nonfinite_rows"] > 0 and "NaN/inf scores" in caplog.text
    assert all(bool((b[train.neg_item_id] > 0).all()) for b in batches)


@pytest.mark.parametrize("pool_size, pool_proposal", [(12, "uniform"), (12, "popularity"), ("all", "uniform")])
def test_logq_counts_estimate_catalogue_sum(
        pool_size, pool_proposal, base_config, loader_for):
    """Over fresh pools, sum_k exp(s_k) / count_k over a row's K = 3 GenNi negatives estimates the sum of exp(s)
    over the row's allowed catalogue: inclusion given the pool, times the pool's expected copies of the item."""
    train, net = loader_for(base_config, neg_pool_size=pool_size, neg_pool_proposal=pool_proposal, neg_num=3,
                          neg_temperature=0.8)
    users, targets = first_batch(train)
    user, target = users[:1].expand(100), targets[:1].expand(100)
    row_scores = torch.randn(1, net.negatives.candidates.item_num, generator=torch.Generator().manual_seed(4))
    weights = row_scores[0].double().exp()
    estimates = []
    for _ in range(250):  # one shared pool per call
        negatives, log_count = net.negatives.generate(
            user, target, RecordingScores(row_scores.expand(100, -1), target), with_log_count=True)
        estimates.append((weights[negatives] / log_count.double().exp()).sum(dim=1))
    catalogue = torch.arange(net.negatives.candidates.item_num)
    allowed = sampling.exclusion_mask(catalogue, target[:1], net.negatives.candidates.used_ids, user[:1],
                                      net.negatives.candidates.item_num)[0]
    assert float(torch.cat(estimates).mean()) == pytest.approx(float(weights[allowed].sum()), rel=0.04)
