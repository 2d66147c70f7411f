"""The pure sampling module: distributions, masks, shapes, determinism and failure modes."""

import math
from pathlib import Path

import pytest
import torch
from scipy.stats import chisquare

from recbole_genni import losses, sampling


def draw_first_columns(scores, valid, temperature, draws, seed=0):
    gen = torch.Generator().manual_seed(seed)
    rows = scores.expand(draws, -1).contiguous()
    mask = valid.expand(draws, -1).contiguous() if valid is not None else None
    return sampling.softmax_draw(rows, 1, temperature, mask, gen, with_log_count=False).columns[:, 0]


def alias_probs(table):
    """The distribution an alias table draws, exactly: column i keeps i with accept[i] and gives alias[i] the rest."""
    n = table.accept.numel()
    kept = table.accept.double() / n
    return kept + torch.zeros(n, dtype=torch.double).index_add_(0, table.alias, (1 - table.accept.double()) / n)


def test_pure_modules_import_without_recbole():
    import subprocess
    import sys

    code = "import sys, recbole_genni.sampling, recbole_genni.losses; print('recbole' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def horvitz_thompson(draw_columns, log_inclusion, weights):
    """Per row: sum over the drawn columns of weight / inclusion probability."""
    return (weights.gather(1, draw_columns) / log_inclusion.double().exp()).sum(dim=1)


def test_the_readme_sampling_example_runs():
    """The README shows the sampling module on its own: that snippet must run as printed."""
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    snippet = next(block for block in readme.split("```python\n")[1:] if "recbole_genni.sampling" in block)
    namespace = {}
    exec(snippet.split("```")[0], namespace)
    assert namespace["negatives"].shape == (32, 2)


class TestSoftmaxDraw:
    """K distinct columns a row (Gumbel-top-k), temperature 0 the top K."""

    @pytest.mark.parametrize("temperature", [0.5, 1.0, 2.0])
    def test_follows_softmax(self, temperature):
        scores = torch.tensor([[2.0, 1.0, 0.5, 0.0, -1.0, 3.0]])
        valid = torch.tensor([[True, True, True, True, True, False]])
        draws = 40_000
        cols = draw_first_columns(scores, valid, temperature, draws)
        counts = torch.bincount(cols, minlength=6)
        assert counts[5] == 0
        probs = torch.softmax(scores[0, :5].double() / temperature, dim=0)
        _, p_value = chisquare(counts[:5].numpy(), (probs * draws).numpy())
        assert p_value > 1e-3

    def test_first_of_k_and_no_duplicates(self):
        scores = torch.tensor([[1.0, 0.0, -0.5, 0.7, 0.2]])
        gen = torch.Generator().manual_seed(3)
        rows = scores.expand(20_000, -1).contiguous()
        cols = sampling.softmax_draw(rows, 3, 1.0, None, gen, with_log_count=False).columns
        assert cols.shape == (20_000, 3) and cols.dtype == torch.long
        assert all(len(set(row)) == 3 for row in cols[:2000].tolist())
        counts = torch.bincount(cols[:, 0], minlength=5)
        _, p_value = chisquare(counts.numpy(), (torch.softmax(scores[0].double(), 0) * 20_000).numpy())
        assert p_value > 1e-3

    def test_masked_columns_are_never_returned(self):
        gen = torch.Generator().manual_seed(1)
        scores = torch.randn(500, 30, generator=gen) * 5
        valid = torch.rand(500, 30, generator=gen) < 0.5
        valid[:, :4] = True  # at least 4 valid per row
        cols = sampling.softmax_draw(scores, 4, 1.0, valid, gen, with_log_count=False).columns
        assert bool(valid.gather(1, cols).all())

    def test_temperature_limits(self):
        gen = torch.Generator().manual_seed(2)
        scores = torch.randn(200, 12, generator=gen)
        valid = torch.ones_like(scores, dtype=torch.bool)
        valid[:, 0] = False
        cols = sampling.softmax_draw(scores, 2, 0.0, valid, gen, with_log_count=False).columns
        expected = scores.masked_fill(~valid, float("-inf")).topk(2, dim=1).indices
        assert torch.equal(cols, expected)
        hot = draw_first_columns(torch.tensor([[5.0, 0.0, -5.0, 1.0]]), None, 1e6, 20_000)
        _, p_value = chisquare(torch.bincount(hot, minlength=4).numpy())
        assert p_value > 1e-3

    def test_same_seed_same_indices(self):
        scores = torch.randn(64, 50)
        a = sampling.softmax_draw(scores, 3, 0.7, None, torch.Generator().manual_seed(11), with_log_count=False).columns
        b = sampling.softmax_draw(scores, 3, 0.7, None, torch.Generator().manual_seed(11), with_log_count=False).columns
        c = sampling.softmax_draw(scores, 3, 0.7, None, torch.Generator().manual_seed(12), with_log_count=False).columns
        assert torch.equal(a, b) and not torch.equal(a, c)

    def test_short_row_raises(self):
        valid = torch.ones(3, 5, dtype=torch.bool)
        valid[1] = torch.tensor([True, False, False, False, False])
        with pytest.raises(ValueError, match="row 1 with 1"):
            sampling.softmax_draw(torch.zeros(3, 5), 2, 1.0, valid, with_log_count=False).columns

    @pytest.mark.parametrize(
        "kwargs, match",
        [
            ({"scores": torch.zeros(5), "num_samples": 1}, r"\[N, M\]"),
            ({"scores": torch.zeros(2, 5, dtype=torch.long), "num_samples": 1}, "floating"),
            ({"scores": torch.zeros(2, 5), "num_samples": 6}, r"in \[1, 5\]"),
            ({"scores": torch.zeros(2, 5), "num_samples": 1, "temperature": -1.0}, ">= 0"),
        ],
    )
    def test_bad_arguments_raise(self, kwargs, match):
        with pytest.raises(ValueError, match=match):
            sampling.softmax_draw(**kwargs, with_log_count=False)

    def test_distinct_columns(self):
        """Without replacement the K draws are distinct columns of the pool; a pool drawn with replacement can hold an
        item in two columns, and both can be drawn."""
        pool = torch.tensor([5, 5, 7, 9])  # item 5 twice
        scores = torch.tensor([[10.0, 10.0, -10.0, -10.0]]).expand(200, -1)
        gen = torch.Generator().manual_seed(0)
        cols = sampling.softmax_draw(scores, 2, 1.0, generator=gen, with_log_count=False).columns
        assert bool((cols[:, 0] != cols[:, 1]).all())
        items = pool[cols]
        assert bool((items == 5).all())  # both draws are item 5, from its two columns

    @pytest.mark.parametrize("streamed", [False, True], ids=["dense", "streamed"])
    def test_tiny_temperature_argmax(self, streamed):
        """score / tau overflows float32 for tau = 1e-37 and scores of 100; the draws divide score differences instead,
        so they approach the argmax (the top K without replacement) and every log count stays finite."""
        k, tau = 3, 1e-37
        scores = 100 * torch.randn(64, 50, generator=torch.Generator().manual_seed(0))
        valid = torch.rand(64, 50, generator=torch.Generator().manual_seed(1)) > 0.3
        valid[:, :k] = True
        top = scores.masked_fill(~valid, float("-inf")).topk(k, dim=1).indices
        gen = torch.Generator().manual_seed(2)
        if streamed:
            def score_chunk(a, b):
                return scores[:, a:b]

            def valid_chunk(a, b):
                return valid[:, a:b]

            with_replacement = sampling.streamed_softmax_draw(
                score_chunk, 50, k, tau, 7, valid_chunk, gen, replacement=True)
            without = sampling.streamed_softmax_draw(score_chunk, 50, k, tau, 7, valid_chunk, gen, with_log_count=True)
            with_replacement = (with_replacement.columns, with_replacement.log_count)
            without = (without.columns, without.log_count)
        else:
            with_replacement = sampling.softmax_draw(scores, k, tau, valid, gen, replacement=True)[:2]
            without = sampling.softmax_draw(scores, k, tau, valid, gen, with_log_count=True)[:2]
        cols, log_count = with_replacement
        assert torch.equal(cols, top[:, :1].expand(-1, k))  # every draw is the argmax: q = 1
        assert torch.allclose(log_count, torch.full_like(log_count, math.log(k)))
        cols, log_count = without
        assert torch.equal(cols.sort(dim=1).values, top.sort(dim=1).values)
        assert torch.isfinite(log_count).all() and (log_count <= 0).all()


class TestWithReplacement:
    """K independent draws a row and their log(K q)."""

    @pytest.mark.parametrize("temperature, k", [(0.5, 80), (1.0, 80), (2.0, 80), (1.0, 1)])
    def test_follows_softmax_with_log_prob(self, temperature, k, monkeypatch):
        """Each of the K draws follows softmax(scores / tau) over the valid columns, dense in row blocks (here 2 rows a
        block) or streamed in column chunks alike, and log_count is log(K q) for q that softmax (K = 1 included: it is
        drawn as the first of two)."""
        monkeypatch.setattr(sampling, "WORKSPACE_ENTRIES", 12)
        row = torch.tensor([2.0, 1.0, 0.5, 0.0, -1.0, 3.0])
        valid = torch.tensor([True, True, True, True, True, False])
        scores, mask = row.expand(500, -1).contiguous(), valid.expand(500, -1).contiguous()
        gen = torch.Generator().manual_seed(0)
        probs = torch.softmax(row[:5].double() / temperature, dim=0)
        streamed = [
            sampling.streamed_softmax_draw(
                lambda a, b: scores[:, a:b], 6, k, temperature, chunk, lambda a, b: mask[:, a:b], gen, replacement=True)
            for chunk in (1, 4, 64)  # chunk 1: column 5 is a chunk with no valid column
        ]
        draws = [sampling.softmax_draw(scores, k, temperature, mask, gen, replacement=True)[:2]]
        draws += [(draw.columns, draw.log_count) for draw in streamed]
        for cols, log_count in draws:
            assert cols.shape == (500, k) and cols.dtype == torch.long
            counts = torch.bincount(cols.flatten(), minlength=6)
            assert counts[5] == 0
            _, p_value = chisquare(counts[:5].numpy(), (probs * cols.numel()).numpy())
            assert p_value > 1e-3
            assert torch.allclose(log_count.double(), math.log(k) + probs.log()[cols], atol=1e-5)

    def test_repeats_and_one_valid_column(self):
        gen = torch.Generator().manual_seed(1)
        valid = torch.tensor([[True, False, False], [True, True, False]])
        scores = torch.randn(2, 3, generator=gen)
        cols, log_count = sampling.softmax_draw(scores, 10, 1.0, valid, gen, replacement=True)[:2]
        assert cols[0].tolist() == [0] * 10  # K > valid columns: repeats
        assert torch.allclose(log_count[0], torch.full((10,), math.log(10)))
        assert set(cols[1].tolist()) <= {0, 1}
        valid[1] = False
        streamed = sampling.streamed_softmax_draw(
            lambda a, b: scores[:, a:b], 3, 4, 1.0, 2, lambda a, b: valid[:, a:b], gen, replacement=True)
        assert streamed.short.tolist() == [False, True] and streamed.columns[0].tolist() == [0] * 4
        with pytest.raises(ValueError, match="row 1 with 0"):
            sampling.softmax_draw(torch.zeros(2, 3), 1, 1.0, valid, replacement=True)[:2]
        with pytest.raises(ValueError, match="temperature > 0"):
            sampling.softmax_draw(torch.zeros(2, 3), 1, 0.0, replacement=True)[:2]
        with pytest.raises(ValueError, match=r"\[N, M\]"):
            sampling.softmax_draw(torch.zeros(3), 1, replacement=True)[:2]

    def test_equal_scores_uniform_count(self):
        """A flat softmax over n valid columns is the uniform proposal: log(K q) = log(K / n), the count that
        :func:`recbole_genni.losses.sampled_softmax_loss` turns into the known uniform shift."""
        valid = torch.ones(4, 9, dtype=torch.bool)
        valid[:, 0] = False
        _, log_count = sampling.softmax_draw(torch.full((4, 9), 0.3), 5, 0.7, valid, replacement=True)[:2]
        assert torch.allclose(log_count, torch.full((4, 5), math.log(5 / 8)))
        pos, neg, mask = torch.randn(4), torch.randn(4, 5), torch.ones(4, dtype=torch.bool)
        shifted = torch.cat([pos.unsqueeze(1), neg + math.log(8 / 5)], dim=1)
        expected = -torch.log_softmax(shifted, dim=1)[:, 0].mean()
        assert losses.sampled_softmax_loss(pos, neg, mask, log_count).item() == pytest.approx(expected.item(), rel=1e-5)


class TestInclusion:
    """Log counts of distinct draws: inclusion probabilities given the (K + 1)-th key."""

    def test_weights_unbiased(self):
        """Gumbel-top-k draws weighted by 1 / inclusion (threshold: the (K + 1)-th key) estimate sum_j exp(s_j) over
        the valid columns, for the dense and the streamed draw alike; 1 / (K q), the with-replacement weight, does
        not: it underweights the likeliest columns, which are drawn at most once, and overweights the rest."""
        gen = torch.Generator().manual_seed(5)
        rows, k, tau = 40_000, 4, 0.7
        row = torch.tensor([3.0, 2.5, 2.0, 1.0, 0.5, 0.0, -0.5, -1.0, -2.0, 1.5, 0.2, -3.0])
        valid = torch.ones(12, dtype=torch.bool)
        valid[[1, 7]] = False
        scores, valid = row.expand(rows, -1), valid.expand(rows, -1)
        weights = scores.double().exp()
        truth = float(weights[0][valid[0]].sum())
        cols, log_inclusion = sampling.softmax_draw(scores, k, tau, valid, gen, with_log_count=True)[:2]
        assert valid.gather(1, cols).all() and (log_inclusion <= 0).all()
        assert float(horvitz_thompson(cols, log_inclusion, weights).mean()) == pytest.approx(truth, rel=0.02)
        for chunk in (1, 5, 64):
            draw = sampling.streamed_softmax_draw(
                lambda a, b: scores[:, a:b], 12, k, tau, chunk, lambda a, b: valid[:, a:b], gen, with_log_count=True
            )
            assert torch.equal(draw.scores, scores.gather(1, draw.columns)) and not draw.short.any()
            estimate = horvitz_thompson(draw.columns, draw.log_count, weights).mean()
            assert float(estimate) == pytest.approx(truth, rel=0.02)
        q = torch.softmax((row / tau).masked_fill(~valid[0], float("-inf")), dim=0)
        first_draw = horvitz_thompson(cols, (k * q[cols]).log(), weights).mean()
        assert abs(float(first_draw) - truth) > 0.2 * truth

    def test_k_largest_keys(self):
        """The unsorted top-k of :func:`sample_negatives_with_inclusion` returns the K largest perturbed keys' columns
        (in no particular order) and the (K + 1)-th key as the threshold, as a sorted top-k would."""
        k, tau = 5, 0.7
        scores = torch.randn(200, 30, generator=torch.Generator().manual_seed(1))
        valid = torch.rand(200, 30, generator=torch.Generator().manual_seed(2)) > 0.4
        valid[:, :k + 1] = True
        keys = sampling._perturbed_keys(scores, k, tau, valid, torch.Generator().manual_seed(3))  # score + tau x Gumbel
        cols, log_inclusion = sampling.softmax_draw(
            scores, k, tau, valid, torch.Generator().manual_seed(3), with_log_count=True)[:2]
        top = keys.topk(k + 1, dim=1)
        assert torch.equal(cols.sort(dim=1).values, top.indices[:, :k].sort(dim=1).values)
        expected = sampling.log_inclusion_probs(scores.gather(1, cols) / tau, top.values[:, k] / tau)
        assert torch.allclose(log_inclusion, expected, atol=1e-5)

    def test_all_drawn_inclusion_one(self):
        scores = torch.tensor([[0.3, 5.0, -1.0, 2.0]])
        valid = torch.tensor([[True, False, True, True]])
        cols, log_inclusion = sampling.softmax_draw(scores, 3, 1.0, valid, with_log_count=True)[:2]
        assert sorted(cols[0].tolist()) == [0, 2, 3] and torch.equal(log_inclusion, torch.zeros(1, 3))
        with pytest.raises(ValueError, match="temperature > 0"):
            sampling.softmax_draw(scores, 1, 0.0, with_log_count=True)[:2]

    def test_log_inclusion_stable(self):
        logits = torch.tensor([[-200.0, -20.0, 0.0, 30.0]])
        out = sampling.log_inclusion_probs(logits, torch.zeros(1))
        assert torch.isfinite(out).all() and out[0, 0] == pytest.approx(-200.0) and out[0, 3] == 0.0
        assert out[0, 2] == pytest.approx(math.log(1 - math.exp(-1)))

    @pytest.mark.parametrize("streamed", [False, True])
    def test_inclusion_matches_frequency(self, streamed):
        """A column in the draw had to beat the (K + 1)-th key, one outside it the K-th: with that, the mean of the
        estimated inclusion probability is the column's frequency among the draws, for drawn and undrawn alike."""
        n = 50000
        scores = torch.tensor([2.0, 1.0, 0.5, 0.0, -1.0]).expand(n, -1).contiguous()
        generator = torch.Generator().manual_seed(0)
        if streamed:
            drawn = sampling.streamed_softmax_draw(lambda start, end: scores[:, start:end], 5, 2, 1.0, chunk_size=2,
                                            generator=generator, with_log_count=True)
        else:
            drawn = sampling.softmax_draw(scores, 2, 1.0, generator=generator, with_log_count=True)
        for column in range(5):
            in_draw = (drawn.columns == column).any(dim=1, keepdim=True)
            estimate = sampling.log_expected_counts(drawn, scores[:, column:column + 1], 1.0, 2, in_draw).exp()
            assert estimate.double().mean().item() == pytest.approx(in_draw.double().mean().item(), abs=0.01)
        # every column taken as drawn overestimates the unlikely ones (0.15 against 0.08 for the last)
        as_drawn = sampling.log_expected_counts(drawn, scores[:, 4:], 1.0, 2).exp().double().mean().item()
        assert as_drawn > 1.5 * (drawn.columns == 4).any(dim=1).double().mean().item()


class TestStreamedDraw:
    """The same draws over columns scored chunk by chunk."""

    def test_follows_dense_softmax(self):
        scores = torch.tensor([[2.0, 1.0, 0.5, 0.0, -1.0, 3.0, 0.2]])
        valid = torch.tensor([[True, True, True, True, True, False, True]])
        draws = 30_000
        rows, mask = scores.expand(draws, -1), valid.expand(draws, -1)
        gen = torch.Generator().manual_seed(5)
        cols = sampling.streamed_softmax_draw(
            lambda a, b: rows[:, a:b], 7, 1, 0.7, chunk_size=3, valid_chunk=lambda a, b: mask[:, a:b], generator=gen
        ).columns[:, 0]
        counts = torch.bincount(cols, minlength=7)
        assert counts[5] == 0
        keep = valid[0]
        probs = torch.softmax(scores[0, keep].double() / 0.7, dim=0)
        _, p_value = chisquare(counts[keep].numpy(), (probs * draws).numpy())
        assert p_value > 1e-3

    def test_top_k_equals_dense(self):
        gen = torch.Generator().manual_seed(9)
        scores = torch.randn(50, 23, generator=gen)
        valid = torch.rand(50, 23, generator=gen) < 0.7
        valid[:, :3] = True
        dense = sampling.softmax_draw(scores, 3, 0.0, valid, with_log_count=False).columns
        for chunk in (1, 4, 23, 100):
            streamed = sampling.streamed_softmax_draw(
                lambda a, b: scores[:, a:b], 23, 3, 0.0, chunk_size=chunk, valid_chunk=lambda a, b: valid[:, a:b]
            )
            assert torch.equal(streamed.columns, dense)
            assert torch.equal(streamed.scores, scores.gather(1, dense))
            assert not streamed.short.any()

    def test_flags_short_rows(self):
        valid = torch.ones(2, 6, dtype=torch.bool)
        valid[1, 1:] = False
        draw = sampling.streamed_softmax_draw(
            lambda a, b: torch.zeros(2, b - a), 6, 2, 1.0, 4, lambda a, b: valid[:, a:b])
        assert draw.short.tolist() == [False, True]
        assert valid[0, draw.columns[0]].all()
        with pytest.raises(ValueError, match="temperature > 0"):
            sampling.streamed_softmax_draw(lambda a, b: torch.zeros(2, b - a), 6, 1, 0.0, with_log_count=True)


class TestPoolsAndMasks:
    """Candidate pools, exclusion masks and pool ranks."""

    def test_short_rows_counts_valid_columns(self):
        valid = torch.tensor([[True, True, False], [False, False, False], [True, False, False]])
        assert sampling.short_rows(valid, 1).tolist() == [False, True, False]
        assert sampling.short_rows(valid, 2).tolist() == [False, True, True]

    def test_sample_item_ids(self):
        gen = torch.Generator().manual_seed(0)
        shared = sampling.sample_item_ids(10, 7, generator=gen)
        per_row = sampling.sample_item_ids(10, 7, num_rows=3, generator=gen)
        assert shared.shape == (7,) and per_row.shape == (3, 7)
        assert int(per_row.min()) >= 1 and int(per_row.max()) <= 9
        probs = torch.zeros(10, dtype=torch.double)
        probs[4] = probs[6] = 0.5
        pop = sampling.sample_item_ids(10, 500, generator=gen, proposal=sampling.AliasTable.from_probs(probs))
        assert set(pop.tolist()) == {4, 6}
        with pytest.raises(ValueError):
            sampling.sample_item_ids(1, 3)
        with pytest.raises(ValueError, match="cover 11 ids"):
            sampling.sample_item_ids(11, 3, proposal=sampling.AliasTable.from_probs(probs))

    @pytest.mark.parametrize("seed", range(5))
    def test_alias_table_exact(self, seed):
        gen = torch.Generator().manual_seed(seed)
        counts = torch.randint(0, 50, (300,), generator=gen).double() ** 1.5  # long-tailed, with zeros
        counts[0] = 0.0
        probs = counts / counts.sum()
        table = sampling.AliasTable.from_probs(probs)
        assert torch.allclose(alias_probs(table), probs, atol=1e-7)
        draws = table.sample((200_000,), gen)
        assert int(probs[draws].eq(0).sum()) == 0  # zero-probability ids (the padding id 0 among them) never come
        freq = torch.bincount(draws, minlength=300).double() / draws.numel()
        assert (freq - probs).abs().max() < 4 * (probs.max() / draws.numel()) ** 0.5  # within 4 standard deviations

    def test_exclusion_mask(self):
        keys = sampling.history_keys(torch.tensor([0, 0, 1]), torch.tensor([3, 5, 2]), num_items=10)
        pool = torch.tensor([0, 2, 3, 5, 7])
        users = torch.tensor([0, 1])
        targets = torch.tensor([7, 5])
        valid = sampling.exclusion_mask(pool, targets=targets, keys=keys, users=users, num_items=10)
        assert valid.tolist() == [[False, True, False, False, False], [False, False, True, False, True]]
        only_target = sampling.exclusion_mask(pool, targets=targets)
        assert only_target.tolist() == [[False, True, True, True, False], [False, True, True, False, True]]

    def test_shared_pool_mask(self):
        gen = torch.Generator().manual_seed(4)
        num_items = 30
        users_all = torch.randint(1, 6, (60,), generator=gen)
        items_all = torch.randint(1, num_items, (60,), generator=gen)
        keys = sampling.history_keys(users_all, items_all, num_items)
        users = torch.tensor([1, 3, 3, 5, 2, 4, 1])
        targets = torch.randint(1, num_items, (7,), generator=gen)
        rows, items = sampling.history_pairs(keys, users, num_items)
        assert sorted(zip(rows.tolist(), items.tolist())) == sorted(
            (r, i) for r, u in enumerate(users.tolist()) for i in range(num_items)
            if bool(((users_all == u) & (items_all == i)).any())
        )
        repeats = torch.randint(0, num_items, (50,), generator=gen)
        pools = [torch.arange(0, 30), torch.arange(7, 19), repeats]
        for pool in pools:
            for row_targets in (targets, None):
                pairwise = sampling.exclusion_mask(pool, row_targets, keys, users, num_items)
                assert torch.equal(sampling.pool_exclusion_mask(pool, 7, row_targets, (rows, items)), pairwise)
                target_only = sampling.exclusion_mask(pool, row_targets, num_rows=7)
                assert torch.equal(sampling.pool_exclusion_mask(pool, 7, row_targets), target_only)

    def test_pool_ranks_hardest_is_zero(self):
        scores = torch.tensor([[3.0, 2.0, 1.0, 0.0]])
        ranks = sampling.pool_ranks(scores, torch.tensor([[0, 3]]))
        assert ranks.tolist() == [[0.0, 1.0]]

    def test_pool_ranks_count_higher(self):
        """Binary search in sorted rows gives the pairwise count, with ties and masked columns (never [N, K, M])."""
        gen = torch.Generator().manual_seed(3)
        scores = torch.randint(0, 6, (50, 40), generator=gen).float()  # many ties
        valid = torch.rand(50, 40, generator=gen) < 0.7
        valid[:, 0] = True
        chosen = torch.randint(0, 40, (50, 5), generator=gen)
        chosen[:, 0] = 0
        chosen_scores = scores.gather(1, chosen)
        higher = ((scores.unsqueeze(1) > chosen_scores.unsqueeze(2)) & valid.unsqueeze(1)).sum(dim=2).float()
        expected = higher / (valid.sum(dim=1, keepdim=True) - 1).clamp(min=1).float()
        assert torch.equal(sampling.pool_ranks(scores, chosen, valid), expected)
        unmasked = (scores.unsqueeze(1) > chosen_scores.unsqueeze(2)).sum(dim=2).float() / 39
        assert torch.equal(sampling.pool_ranks(scores, chosen), unmasked)
