"""The RecBole glue: candidate pools, exclusions, DNS, fallbacks and telemetry in real training batches."""

import pytest
import torch
from recbole.data import create_dataset
from scipy.stats import chisquare

from recbole_genni import sampling, telemetry
from recbole_genni.config import Config
from recbole_genni.quick_start import data_preparation


@pytest.mark.parametrize("sampler", ["uniform", "popularity", "genni", "dns"])
def test_never_target_history_padding(sampler, base_config, loader_for, with_negatives):
    train, net = loader_for(base_config, neg_sampler=sampler, neg_num=3)
    keys = net.negatives.candidates.used_ids
    for batch in with_negatives(train, net):
        negatives = batch[train.neg_item_id]
        users, targets = batch[train.uid_field], batch[train.iid_field]
        assert negatives.shape == (len(users), 3)
        assert bool((negatives > 0).all()) and bool((negatives != targets.unsqueeze(1)).all())
        assert not bool(sampling.in_history(keys, users, negatives, net.negatives.candidates.item_num).any())
    stats = net.negatives.pop_stats().summary()
    assert stats["history_hit_share"] == 0 and stats["target_hit_share"] == 0
    if sampler in ("genni", "dns"):
        assert 0.0 <= stats["pool_rank"] <= 1.0 and stats["sampling_seconds"] > 0


@pytest.mark.parametrize("sampler", ["uniform", "popularity"])
def test_proposal_draws_follow_the_restricted_distribution(sampler, base_config, loader_for):
    """Rejected draws drawn again: every entry follows the proposal over the row's allowed items (chi-square), none
    excluded, as log_proposal, the logQ of these draws, says."""
    _, net = loader_for(base_config, neg_sampler=sampler, neg_exclude="history", neg_num=3)
    candidates = net.negatives.candidates
    users = torch.full((4000,), 1)
    _, history = sampling.history_pairs(candidates.used_ids, users[:1], candidates.item_num)
    targets = torch.full((4000,), int(history[-1]) % (candidates.item_num - 1) + 1)  # an item after the history
    drawn = candidates.proposal_negatives(users, targets, 5)
    items = torch.arange(1, candidates.item_num)
    allowed = candidates.valid_mask(items, users[:1], targets[:1])[0]
    assert allowed.sum() < items.numel() - 1  # the history removed items
    q = candidates.log_proposal(items.unsqueeze(0), users[:1], targets[:1])[0].exp().double() * allowed
    assert q.sum().item() == pytest.approx(1.0, abs=1e-5)
    counts = torch.bincount(drawn.reshape(-1), minlength=candidates.item_num)[1:].double()
    assert counts[q == 0].sum() == 0
    expected = q[q > 0] * counts.sum() / q.sum()
    assert chisquare(counts[q > 0].numpy(), expected.numpy()).pvalue > 1e-3


def test_telemetry_per_epoch(
    base_config, monkeypatch, loader_for, with_negatives
):
    """Counts stay tensors while the epoch runs (no host-device sync per batch); pool ranks and hits use
    SAMPLED_ROWS a batch."""
    monkeypatch.setattr(telemetry, "SAMPLED_ROWS", 4)
    train, net = loader_for(base_config, neg_sampler="genni", neg_num=2)
    batches = list(with_negatives(train, net))
    assert torch.is_tensor(net.negatives.stats.margin_sum)
    stats = net.negatives.pop_stats()
    assert int(stats.ranked_rows) == 4 * len(batches) < int(stats.scored_rows)
    assert int(stats.negatives) == 4 * 2 * len(batches)
    summary = stats.summary()
    assert all(type(value) is float for value in summary.values())
    assert 0.0 <= summary["pool_rank"] <= 1.0


def test_pool_ranks_bounded(base_config, monkeypatch, loader_for,
                                                                    with_negatives):
    """Ranking sorts whole rows: for pools of M candidates, RANKED_ENTRIES // M rows a batch are ranked."""
    monkeypatch.setattr(telemetry, "RANKED_ENTRIES", 2 * 20)
    train, net = loader_for(base_config, neg_sampler="genni", neg_num=2, neg_pool_size=20)
    batches = list(with_negatives(train, net))
    stats = net.negatives.pop_stats()
    assert int(stats.ranked_rows) == 2 * len(batches) and 0.0 <= stats.summary()["pool_rank"] <= 1.0


def test_dns_takes_best(base_config, loader_for, with_negatives):
    train, net = loader_for(base_config, neg_sampler="dns", neg_pool_size="all", neg_exclude="target",
                            neg_scoring="eval_pass")
    batch = next(with_negatives(train, net))
    net.eval()
    with torch.no_grad():
        scores = net.full_sort_predict(batch)
    scores[:, 0] = float("-inf")
    scores.scatter_(1, batch[train.iid_field].unsqueeze(1), float("-inf"))
    assert torch.equal(batch[train.neg_item_id], scores.argmax(dim=1))


@pytest.mark.timeout(60)
def test_full_history_falls_back(tmp_path, base_config, make_dataset, loader_for,
                                                                with_negatives):
    """One user's training items cover all 12 items: no allowed negative exists, the row falls back, counted."""
    data = make_dataset(tmp_path / "full", "tiny", num_users=8, num_items=12, min_len=5, max_len=6)
    inter = data / "tiny" / "tiny.inter"
    inter.write_text(inter.read_text() + "".join(f"99\t{i % 12 + 1}\t{100 + i}\n" for i in range(14)))
    config = {**base_config, "data_path": str(data), "neg_pool_size": 10, "topk": [5, 10]}
    for sampler in ("uniform", "genni"):
        train, net = loader_for(config, neg_sampler=sampler)
        uid = train._dataset.token2id(train.uid_field, "99")
        rows = sum(int((batch[train.uid_field] == uid).sum()) for batch in with_negatives(train, net))
        stats = net.negatives.pop_stats()
        # each of its rows once: relaxed (its exclusions dropped) and, when the model drew, fallen back from the pool
        assert int(stats.relaxed_rows) == rows > 0
        assert int(stats.fallback_rows) == (rows if sampler == "genni" else 0)


def test_pool_size_fraction_and_all(base_config, loader_for):
    train, net = loader_for(base_config, neg_pool_size=0.5)
    assert net.negatives.pool_size == 20
    train, net = loader_for(base_config, neg_pool_size="all")
    assert net.negatives.pool_size == 40


def test_train_mode_kept(base_config, loader_for, with_negatives):
    train, net = loader_for(base_config, neg_scoring="eval_pass")
    net.train()
    next(with_negatives(train, net))
    assert net.training


def negatives_of_a_seeded_epoch(train, net, with_negatives):
    torch.manual_seed(0)  # the training pass's dropout
    return [batch[train.neg_item_id] for batch in with_negatives(train, net)]


def test_same_seed_gives_the_same_negatives(base_config, loader_for, with_negatives):
    first = negatives_of_a_seeded_epoch(*loader_for(base_config, neg_num=2), with_negatives)
    second = negatives_of_a_seeded_epoch(*loader_for(base_config, neg_num=2), with_negatives)
    assert len(first) == len(second) and all(torch.equal(a, b) for a, b in zip(first, second))


@pytest.mark.timeout(60)
def test_one_item_left_is_drawn(tmp_path, base_config, make_dataset, loader_for,
                                                                   with_negatives):
    data = make_dataset(tmp_path / "one", "tiny", num_users=8, num_items=12, min_len=5, max_len=6)
    inter = data / "tiny" / "tiny.inter"
    # user 99 trains on items 1..11 (then valid 1, test 2): item 12 is its only allowed negative
    inter.write_text(inter.read_text() + "".join(f"99\t{i}\t{100 + t}\n" for t, i in enumerate([*range(1, 12), 1, 2])))
    config = {**base_config, "data_path": str(data), "neg_pool_size": 10, "topk": [5, 10]}
    for sampler in ("uniform", "genni"):
        train, net = loader_for(config, neg_sampler=sampler)
        uid = train._dataset.token2id(train.uid_field, "99")
        item12 = train._dataset.token2id(train.iid_field, "12")
        negatives = torch.cat([b[train.neg_item_id][b[train.uid_field] == uid] for b in with_negatives(train, net)])
        assert negatives.numel() > 0 and bool((negatives == item12).all())


@pytest.mark.parametrize("mix", [0.0, 0.5, 1.0])
@pytest.mark.parametrize("replacement", [False, True], ids=["distinct", "replacement"])
@pytest.mark.parametrize("proposal", ["uniform", "popularity"])
def test_partition_unbiased(mix, replacement, proposal, base_config, loader_for):
    """sum_k exp(s_k - log count_k) over a row's K negatives estimates sum_j exp(s_j) over the row's allowed items
    (what SSM's logQ correction relies on), for model draws from uniform and popularity pools, mixed with uniform
    negatives or not: the mean over 3000 independent draws is within 4 standard errors of the truth."""
    from recbole_genni.scoring import gathered_scores

    train, net = loader_for(base_config, neg_sampler="genni", neg_num=5, neg_pool_size=20, neg_pool_shared=False,
                          neg_temperature=0.7, neg_uniform_mix=mix, neg_replacement=replacement,
                          neg_pool_proposal=proposal)
    negatives, sampler = net.negatives, net.negatives.candidates
    batch = next(iter(train))
    users, targets = batch[train.uid_field][:8], batch[train.iid_field][:8]
    reps = 3000
    scores = 1.5 * torch.randn(8, sampler.item_num, generator=torch.Generator().manual_seed(0))
    full = scores.repeat(reps, 1)
    drawn, log_count = negatives.generate(users.repeat(reps), targets.repeat(reps),
                                          lambda candidates: gathered_scores(full, candidates, targets.repeat(reps)),
                                          with_log_count=True)
    estimates = (full.gather(1, drawn) - log_count).exp().sum(dim=1).view(reps, 8).double()
    allowed = sampler.valid_mask(torch.arange(1, sampler.item_num), users, targets)
    if proposal == "popularity" and mix == 0:  # the pools reach only items with a training count
        allowed &= sampler.pool_probs[1:] > 0
    truth = (scores[:, 1:].exp() * allowed).sum(dim=1).double()
    error = (estimates.mean(dim=0) - truth) / (estimates.std(dim=0) / reps ** 0.5)
    assert error.abs().max() < 4, error


def test_full_mix_skips_model(base_config, loader_for):
    train, net = loader_for(base_config, neg_sampler="genni", neg_num=3, neg_uniform_mix=1.0)
    batch = next(iter(train))

    def refuse(candidates):
        raise AssertionError("scored")

    drawn, log_count = net.negatives.generate(batch[train.uid_field], batch[train.iid_field], refuse, True)
    assert not net.negatives.generates and drawn.shape == (len(batch), 3) and torch.isfinite(log_count).all()


def test_telemetry_leaves_negatives(base_config, monkeypatch, loader_for,
                                                                             with_negatives):
    first = negatives_of_a_seeded_epoch(*loader_for(base_config, neg_num=2), with_negatives)
    monkeypatch.setattr(telemetry, "SAMPLED_ROWS", 2)
    second, net = loader_for(base_config, neg_num=2)
    assert all(torch.equal(a, b) for a, b in zip(first, negatives_of_a_seeded_epoch(second, net, with_negatives)))
    state = net.negatives.candidates.generator.get_state()
    seen = torch.cat([net.negatives.telemetry.sampled_rows(50, 2, torch.device("cpu")) for _ in range(200)])
    assert set(seen.tolist()) == set(range(50))  # not the first rows of each batch
    assert torch.equal(net.negatives.candidates.generator.get_state(), state)


@pytest.mark.parametrize("model", ["SASRec", "GenNiSASRec"])
def test_timings_apart(model, base_config):
    """sampling_seconds means the same on both paths: generation without the model's scoring (the loader's
    encoder pass, GenNiSASRec's products), which is scoring_seconds."""
    from recbole_genni.trainer import Trainer

    config = Config(model, "tiny", config_dict={**base_config, "neg_sampler": "genni", "neg_num": 2})
    train, valid, _ = data_preparation(config, create_dataset(config))
    trainer = Trainer(config, config.model_class(config, train._dataset))
    trainer.fit(train, valid, saved=False)
    record = trainer.history[0]
    assert record["scoring_seconds"] > 0 and record["sampling_seconds"] > 0
    uniform = Config(model, "tiny", config_dict={**base_config, "neg_sampler": "uniform", "neg_num": 2})
    train, valid, _ = data_preparation(uniform, create_dataset(uniform))
    trainer = Trainer(uniform, uniform.model_class(uniform, train._dataset))
    trainer.fit(train, valid, saved=False)
    assert trainer.history[0]["scoring_seconds"] == 0 and trainer.history[0]["sampling_seconds"] > 0


@pytest.mark.parametrize("mix", [0.0, 0.5, 1.0])
def test_uniform_mix_share(mix, base_config, loader_for):
    """With a near-zero temperature the model always draws the row's best-scored allowed item; a share ``mix``
    of the negatives is uniform instead, hitting that item only by chance."""
    from recbole_genni.scoring import gathered_scores

    train, net = loader_for(base_config, neg_sampler="genni", neg_num=4, neg_pool_size="all", neg_temperature=1e-4,
                          neg_replacement=True, neg_uniform_mix=mix)
    batch = next(iter(train))
    users, targets = batch[train.uid_field].repeat(50), batch[train.iid_field].repeat(50)
    scores = torch.randn(len(users), net.negatives.candidates.item_num, generator=torch.Generator().manual_seed(0))
    drawn, _ = net.negatives.generate(users, targets, lambda c: gathered_scores(scores, c, targets))
    allowed = net.negatives.candidates.valid_mask(torch.arange(net.negatives.candidates.item_num), users, targets)
    best = scores.masked_fill(~allowed, float("-inf")).argmax(dim=1, keepdim=True)
    share = float((drawn == best).float().mean())
    chance = float((1 / allowed.sum(dim=1)).mean())
    assert share == pytest.approx((1 - mix) + mix * chance, abs=0.02)


def test_warmup_is_uniform(base_config):
    """``neg_warmup_epochs: 1``: the first epoch's negatives cost no scoring, the second's are the model's."""
    from recbole_genni.trainer import Trainer

    config = Config("SASRec", "tiny", config_dict={**base_config, "neg_sampler": "genni", "neg_warmup_epochs": 1,
                                                    "epochs": 2, "stopping_step": 100})
    train, valid, _ = data_preparation(config, create_dataset(config))
    trainer = Trainer(config, config.model_class(config, train._dataset))
    trainer.fit(train, valid, saved=False)
    first, second = trainer.history
    assert first["scoring_seconds"] == 0 and "pool_rank" not in first
    assert second["scoring_seconds"] > 0 and 0 <= second["pool_rank"] <= 1


@pytest.mark.parametrize("alpha", [0.0, 1.0, 1000.0])
def test_popularity_finite(alpha, base_config, loader_for):
    train, net = loader_for(base_config, neg_sampler="popularity", neg_popularity_alpha=alpha)
    probs = net.negatives.candidates.popularity_probs()
    counts = torch.bincount(torch.as_tensor(net.negatives.candidates._get_candidates_list()).long(),
                            minlength=net.negatives.candidates.item_num).double()
    assert torch.isfinite(probs).all() and probs.sum().item() == pytest.approx(1.0) and probs[0] == 0
    if alpha == 1.0:
        assert torch.allclose(probs[1:], counts[1:] / counts[1:].sum())
    if alpha == 1000.0:  # (count / max count) ** 1000: the most frequent item(s) take all of it but ~1e-40
        assert probs[counts == counts.max()].sum().item() == pytest.approx(1.0, abs=1e-12)
