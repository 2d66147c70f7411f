"""The multi-index proposal (multi_index.py) and ``neg_sampler: midx`` (negatives/midx.py): q as its formula says,
the exact softmax when each cell holds one item, unbiased partition estimates, exclusions, exact resume."""

import math

import pytest
import torch
from scipy.stats import chisquare

from recbole_genni import multi_index
from recbole_genni.config import Config
from recbole_genni.errors import GenNiConfigError
from recbole_genni.scoring import DotScores


def grid_index(c, values):
    """An index whose item i (ids 1 .. c * c) is the codeword pair of its cell exactly: one item a cell, no
    residual; the table of those items (row 0 padding)."""
    first, second = values[:c].unsqueeze(1), values[c:2 * c].unsqueeze(1)
    cells = torch.arange(c * c)
    table = torch.cat([torch.zeros(1, 2), torch.cat([first[cells // c], second[cells % c]], dim=1)])
    index = multi_index.MultiIndex(first, second, torch.cat([torch.tensor([-1]), cells]), cells + 1, cells,
                                   torch.ones(c * c, dtype=torch.long))
    return index, table


def random_table(num_items=60, dim=6, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(num_items, dim, generator=gen), torch.randn(3, dim, generator=gen)


class TestMultiIndex:
    def test_one_item_a_cell_is_the_softmax(self):
        index, table = grid_index(4, torch.randn(8, generator=torch.Generator().manual_seed(1)))
        query = torch.randn(5, 2, generator=torch.Generator().manual_seed(2))
        weights = multi_index.cell_log_weights(index, query, 0.7)
        items = torch.arange(1, 17).expand(5, -1)
        log_q = multi_index.index_log_prob(index, items, weights, torch.logsumexp(weights, dim=1, keepdim=True))
        exact = torch.log_softmax(query @ table[1:].t() / 0.7, dim=1)
        assert torch.allclose(log_q, exact, atol=1e-5)

    def test_draws_follow_their_log_prob(self):
        table, query = random_table()
        index = multi_index.build_index(table, 3, generator=torch.Generator().manual_seed(0))
        drawn = multi_index.index_draw(index, query[:1].expand(40_000, -1), 1, 1.3, torch.Generator().manual_seed(5))
        q = multi_index.index_log_prob(index, torch.arange(1, 60).unsqueeze(0), drawn.log_weights[:1],
                                       drawn.log_norm[:1]).exp()[0].double()
        assert q.sum().item() == pytest.approx(1.0, abs=1e-5)
        counts = torch.bincount(drawn.items[:, 0], minlength=60)[1:].double()
        assert torch.allclose(drawn.log_prob[:, 0].exp(), q[drawn.items[:, 0] - 1].float(), atol=1e-6)
        kept = q * 40_000 >= 5  # chi-square over the items expected 5 times or more, the rest pooled
        expected, observed = q[kept] * 40_000, counts[kept]
        if not bool(kept.all()):
            expected = torch.cat([expected, q[~kept].sum(dim=0, keepdim=True) * 40_000])
            observed = torch.cat([observed, counts[~kept].sum(dim=0, keepdim=True)])
        expected = expected * observed.sum() / expected.sum()
        assert chisquare(observed.numpy(), expected.numpy()).pvalue > 1e-3

    def test_log_prob_of_flat_pairs(self):
        table, query = random_table()
        index = multi_index.build_index(table, 3, generator=torch.Generator().manual_seed(0))
        drawn = multi_index.index_draw(index, query, 4, 1.0, torch.Generator().manual_seed(1))
        rows = torch.arange(3).repeat_interleave(4)
        flat = multi_index.index_log_prob(index, drawn.items.reshape(-1), drawn.log_weights, drawn.log_norm, rows)
        assert torch.allclose(flat, drawn.log_prob.reshape(-1))

    def test_partition_estimate_unbiased(self):
        table, query = random_table(seed=3)
        index = multi_index.build_index(table, 4, generator=torch.Generator().manual_seed(0))
        drawn = multi_index.index_draw(index, query, 20_000, 1.0, torch.Generator().manual_seed(6))
        scores = (table[drawn.items] * query.unsqueeze(1)).sum(dim=2)
        estimate = (scores - drawn.log_prob).double().exp().mean(dim=1)
        truth = (query @ table[1:].t()).double().exp().sum(dim=1)
        assert torch.allclose(estimate, truth, rtol=0.03)

    def test_cells_hold_each_real_item_once(self):
        table, _ = random_table(num_items=101, dim=8)
        index = multi_index.build_index(table, 5, generator=torch.Generator().manual_seed(0))
        assert sorted(index.cell_items.tolist()) == list(range(1, 101))
        assert int(index.cell_size.sum()) == 100 and index.cell_of[0] == -1
        for cell in range(25):
            start, size = int(index.cell_start[cell]), int(index.cell_size[cell])
            assert bool((index.cell_of[index.cell_items[start:start + size]] == cell).all())

    def test_bad_arguments_raise(self):
        table, query = random_table()
        index = multi_index.build_index(table, 3)
        with pytest.raises(ValueError, match="temperature"):
            multi_index.cell_log_weights(index, query, 0.0)
        with pytest.raises(ValueError, match="num_samples"):
            multi_index.index_draw(index, query, 0)
        with pytest.raises(ValueError, match="at least one real item"):
            multi_index.build_index(torch.zeros(1, 4), 3)


def first_batch(train):
    batch = next(iter(train))
    return batch[train.uid_field], batch[train.iid_field]


def midx_sampler(loader_for, base_config, **keys):
    train, net = loader_for(base_config, neg_sampler="midx", neg_num=3, neg_index_clusters=3, **keys)
    users, targets = first_batch(train)
    gen = torch.Generator().manual_seed(9)
    num_items = net.negatives.candidates.item_num
    table, query = torch.randn(num_items, 6, generator=gen), torch.randn(len(users), 6, generator=gen)
    return net.negatives, users, targets, DotScores(query, table, targets)


class TestMIDXNegatives:
    @pytest.mark.parametrize("exclude", ["target", "history"])
    @pytest.mark.parametrize("resample", [0, 12])
    def test_exclusions_never_drawn(self, exclude, resample, base_config, loader_for):
        sampler, users, targets, score = midx_sampler(loader_for, base_config, neg_exclude=exclude,
                                                      neg_index_resample=resample)
        for _ in range(5):
            negatives, log_count = sampler.generate(users, targets, score, with_log_count=True)
            allowed = sampler.candidates.valid_mask(negatives, users, targets)
            assert bool(allowed.all()) and bool(torch.isfinite(log_count).all())
        assert sampler.pop_stats().summary()["index_seconds"] > 0

    @pytest.mark.parametrize("resample", [0, 40])
    def test_logq_counts_estimate_catalogue_sum(self, resample, base_config, loader_for):
        """sum_k exp(s_k) / c(k) over a row's K negatives estimates the sum of exp(s) over its allowed items."""
        sampler, users, targets, score = midx_sampler(loader_for, base_config, neg_exclude="history",
                                                      neg_index_resample=resample)
        users, targets = users[:1].expand(400), targets[:1].expand(400)
        score = DotScores(score.query[:1].expand(400, -1), score.table, targets)
        negatives, log_count = sampler.generate(users, targets, score, with_log_count=True)
        item_scores = (score.table[negatives] * score.query[:1].unsqueeze(1)).sum(dim=2)
        estimate = (item_scores - log_count).double().exp().sum(dim=1).mean()
        catalogue = torch.arange(1, sampler.candidates.item_num)
        allowed = sampler.candidates.valid_mask(catalogue, users[:1], targets[:1])[0]
        truth = (score.table[catalogue[allowed]] @ score.query[0]).double().exp().sum()
        assert float(estimate) == pytest.approx(float(truth), rel=0.05)

    def test_resume_draws_the_same(self, base_config, loader_for):
        sampler, users, targets, score = midx_sampler(loader_for, base_config, neg_index_refresh=2)
        sampler.generate(users, targets, score)
        state = sampler.random_state()
        after = [sampler.generate(users, targets, score)[0] for _ in range(3)]  # one rebuild among them
        resumed, *_ = midx_sampler(loader_for, base_config, neg_index_refresh=2)
        resumed.set_random_state(state)
        again = [resumed.generate(users, targets, score)[0] for _ in range(3)]
        assert all(torch.equal(a, b) for a, b in zip(after, again))

    @pytest.mark.parametrize("model", ["GenNiSASRec", "GRU4Rec", "BERT4Rec"])
    def test_trains(self, model, base_config):
        from recbole_genni import run_recbole_genni

        result = run_recbole_genni(model, "tiny", config_dict={
            **base_config, "neg_sampler": "midx", "loss_type": "SSM", "neg_num": 4, "neg_index_clusters": 4})
        assert math.isfinite(result["history"][0]["train_loss"]) and result["test_result"]["ndcg@10"] >= 0

    @pytest.mark.parametrize("keys, message", [
        ({"neg_replacement": False}, "neg_replacement: False asks for distinct negatives"),
        ({"neg_scoring": "eval_pass"}, "neg_scoring: eval_pass scores from a separate pass"),
        ({"neg_index_clusters": 1}, "neg_index_clusters: 1 is invalid"),
        ({"worker": 2}, "worker: 2 runs the collate step"),
    ])
    def test_bad_keys_refused(self, keys, message, base_config):
        with pytest.raises(GenNiConfigError, match=message):
            Config("GRU4Rec", "tiny", config_dict={**base_config, "neg_sampler": "midx", **keys})

    def test_model_without_dot_head_refused(self, base_config):
        with pytest.raises(GenNiConfigError, match="neg_sampler: midx indexes the item table .* FPMC"):
            Config("FPMC", "tiny", config_dict={**base_config, "neg_sampler": "midx"})
