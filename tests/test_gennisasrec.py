"""GenNiSASRec: all-position training rows, every loss, and RecBole's evaluation."""

import math

import pytest
import torch
from recbole.data import create_dataset

from recbole_genni import losses, run_recbole_genni, scoring
from recbole_genni.config import Config
from recbole_genni.dataloader import BATCH_WEIGHT_FIELD, UserSequenceDataLoader
from recbole_genni.errors import GenNiConfigError
from recbole_genni.model import gennisasrec
from recbole_genni.negatives.genni import GenNiNegatives
from recbole_genni.quick_start import data_preparation


def prepared(base_config, **overrides):
    config = Config("GenNiSASRec", "tiny", config_dict={**base_config, **overrides})
    return config, data_preparation(config, create_dataset(config))


def test_one_row_per_user(base_config):
    config, (train, valid, test) = prepared(base_config, train_batch_size=1000, train_window_stride=0)
    assert isinstance(train, UserSequenceDataLoader)
    batch = next(iter(train))
    users = batch[train.uid_field]
    assert len(users) == len(set(users.tolist())) == train._dataset.user_num - 1
    seq, lengths, targets = batch[train.seq_field], batch[train.len_field], batch[train.target_field]
    valid_feat = valid._dataset.inter_feat
    valid_prefix = {int(u): s[:n].tolist() for u, s, n in zip(valid_feat["user_id"], valid_feat["item_id_list"],
                                                              valid_feat["item_length"])}
    for u, s, n, t in zip(users.tolist(), seq, lengths.tolist(), targets):
        assert t[:n - 1].tolist() == s[1:n].tolist()  # every position predicts the next input item
        assert bool((t[n:] == 0).all())  # padding has no target
        whole = s[:n].tolist() + [int(t[n - 1])]
        # the training sequence plus its last target ends exactly where the valid prefix ends: the valid item
        # (and so the test item after it) never appears as a training target
        k = min(len(whole), len(valid_prefix[u]))
        assert whole[-k:] == valid_prefix[u][-k:]


@pytest.mark.parametrize("stride, items", [(2, 2), (4, 4), (0.5, 2), (0.1, 1)])
def test_window_stride_targets_each_item_once(
        stride, items, base_config):
    """``train_window_stride`` (items, or a fraction of L) trains long sequences' earlier items too: the windows'
    targets are exactly RecBole's training targets (each prefix row's item), once each, and a target outside a
    sequence's first window has at least L - S items before it in its row."""
    length = 4
    config, (train, _, _) = prepared(base_config, MAX_ITEM_LIST_LENGTH=length, train_window_stride=stride,
                                     neg_sampler="none")
    _, (last_only, _, _) = prepared(base_config, MAX_ITEM_LIST_LENGTH=length, train_window_stride=0,
                                    neg_sampler="none")
    feat = train._dataset.inter_feat
    expected = sorted(zip(feat["user_id"].tolist(), feat["item_id"].tolist()))
    got = []
    for user, seq, n, targets in zip(train.users.tolist(), train.item_seq, train.lengths.tolist(), train.targets):
        kept = (targets > 0).nonzero().flatten()
        got += [(user, int(targets[p])) for p in kept]
        assert bool((targets[kept] == torch.cat([seq[1:n], targets[n - 1:n]])[kept]).all())  # the next item
        if int(kept[0]) > 0:  # not the sequence's first window: only its last S targets
            assert n == length and kept.tolist() == list(range(length - items, length))
    assert sorted(got) == expected
    assert train.sample_size > last_only.sample_size == len({user for user, _ in expected})
    assert sum(float(b[BATCH_WEIGHT_FIELD][0]) for b in train) == pytest.approx(train.sample_size / 64)


@pytest.mark.parametrize("loss_type", ["BCE", "BPR", "gBCE", "SSM"])
@pytest.mark.parametrize("sampler", ["uniform", "genni"])
def test_every_loss_trains_with_finite_loss(loss_type, sampler, base_config, train_one_epoch):
    stats = train_one_epoch(base_config, loss_type=loss_type, neg_sampler=sampler, neg_num=2, neg_exclude="history")
    assert stats["target_hit_share"] == 0 and stats["history_hit_share"] == 0
    if sampler == "genni":
        assert 0.0 <= stats["pool_rank"] <= 1.0


@pytest.mark.parametrize("exclude, chunk", [("target", 4096), ("history", 4096), ("history", 16)])
def test_exact_genni_trains_with_log_counts(exclude, chunk, base_config,
                                                                                       monkeypatch):
    """``neg_replacement`` over the whole catalogue, dense or streamed: K may exceed the allowed items' count, no
    negative is a target (or a training item), and the SSM correction is log(K q) for q the model's softmax over
    the allowed items."""
    config, (train, _, _) = prepared(base_config, loss_type="SSM", neg_replacement=True, neg_pool_size="all",
                                     neg_num=50, neg_exclude=exclude, neg_score_chunk=chunk)
    model = config.model_class(config, train._dataset)
    calls = []
    loss_fn = losses.sampled_softmax_loss
    monkeypatch.setattr(losses, "sampled_softmax_loss", lambda *args: calls.append(args) or loss_fn(*args))
    draws = []  # ((users, targets, score), (negatives, log_count)) of each call
    generate = model.negatives.generate
    monkeypatch.setattr(model.negatives, "generate",
                        lambda *a, **k: draws.append((a, generate(*a, **k))) or draws[-1][1])
    for batch in train:
        loss = model.calculate_loss(batch)
        assert math.isfinite(loss.item())
        loss.backward()
    stats = model.negatives.pop_stats().summary()
    assert stats["target_hit_share"] == 0 and stats["fallback_rows"] == 0
    if exclude == "history":
        assert stats["history_hit_share"] == 0
    (users, targets, score), (negatives, log_count) = draws[0][0][:3], draws[0][1]
    scores, _ = score(None)  # the state the draw saw: the model is unchanged until the optimiser steps
    allowed = model.negatives.candidates.valid_mask(torch.arange(1, scores.shape[1] + 1), users, targets)
    log_q = torch.log_softmax(scores.masked_fill(~allowed, float("-inf")), dim=1).gather(1, negatives - 1)
    assert torch.allclose(log_count, math.log(50) + log_q, atol=1e-4)
    assert calls[0][3] is not None and torch.equal(calls[0][3], log_count)


@pytest.mark.parametrize("ssm_logq, weight", [(False, 0.0), (0.5, 0.5), (True, 1.0)])
def test_ssm_logq_weighs_correction(ssm_logq, weight, base_config, monkeypatch):
    config, (train, _, _) = prepared(base_config, loss_type="SSM", neg_num=2, ssm_logq=ssm_logq)
    model = config.model_class(config, train._dataset)
    calls = []
    loss_fn = losses.sampled_softmax_loss
    monkeypatch.setattr(losses, "sampled_softmax_loss", lambda *args: calls.append(args) or loss_fn(*args))
    loss = model.calculate_loss(next(iter(train)))
    loss.backward()
    (pos, neg, mask, neg_log_count, logq_weight), = calls
    assert math.isfinite(loss.item()) and logq_weight == weight
    assert (neg_log_count is None) == (weight == 0)  # no log counts are asked for when none are used
    if neg_log_count is not None:
        assert neg_log_count.shape == neg.shape and bool(torch.isfinite(neg_log_count).all())


@pytest.mark.parametrize("loss_type", ["BCE", "SSM"])
@pytest.mark.parametrize("sampler, pool", [("uniform", 20), ("genni", 20), ("genni", "all")])
def test_product_logits_equal_gathered(loss_type, sampler, pool, base_config,
                                                                           monkeypatch):
    """Large K x H, or exact GenNi (whose draw scores the whole catalogue anyway), reads the negatives' logits from
    one [P, |I|] product, with a sparse backward pass: the same loss and gradients as gathering the K embeddings per
    position, for the same draws."""
    config, (train, _, _) = prepared(base_config, loss_type=loss_type, neg_sampler=sampler, neg_num=3,
                                     neg_pool_size=pool)
    model = config.model_class(config, train._dataset).eval()  # no dropout: both passes see the same states
    batch = next(iter(train))
    model.calculate_loss(batch)  # creates the generator's random streams, so that both passes start from one state
    state = model.negatives.random_state()
    assert model.negatives.scores_whole_catalogue == (sampler == "genni" and pool == "all")
    whole = GenNiNegatives.scores_whole_catalogue
    results = []
    for full in (True, False):
        for module in (gennisasrec, scoring):  # the model's choice, and dot_scores' for the gathered path
            monkeypatch.setattr(module, "full_product_is_cheaper", lambda *args, full=full: full)
        monkeypatch.setattr(GenNiNegatives, "scores_whole_catalogue", whole if full else property(lambda _: False))
        model.negatives.set_random_state(state)
        model.zero_grad()
        loss = model.calculate_loss(batch)
        loss.backward()
        results.append((loss.detach(), [p.grad.clone() for p in model.parameters() if p.grad is not None]))
    (full_loss, full_grads), (gathered_loss, gathered_grads) = results
    assert torch.allclose(full_loss, gathered_loss, atol=1e-6)
    assert len(full_grads) == len(gathered_grads) and all(
        torch.allclose(a, b, atol=1e-6) for a, b in zip(full_grads, gathered_grads))


def test_full_softmax_and_config_pairs(base_config):
    config, (train, _, _) = prepared(base_config, neg_sampler="none")
    assert config["loss_type"] == "CE"
    model = config.model_class(config, train._dataset)
    assert model.negatives is None and math.isfinite(model.calculate_loss(next(iter(train))).item())
    with pytest.raises(GenNiConfigError, match="loss_type: CE is full softmax"):
        prepared(base_config, neg_sampler="genni", loss_type="CE")
    with pytest.raises(GenNiConfigError, match="loss_type: 'NLL' is invalid for GenNiSASRec"):
        prepared(base_config, loss_type="NLL")
    with pytest.raises(GenNiConfigError, match="SSM needs the probability"):
        prepared(base_config, loss_type="SSM", neg_sampler="dns", neg_num=2)


def test_defaults_are_the_recipe(base_config):
    """With no keys of the user's, GenNiSASRec trains the recipe (the properties file); a user's neg_sampler: dns
    takes the top K without the default's draws with replacement, and a user who asks for both is refused."""
    mine = {k: v for k, v in base_config.items() if k != "neg_pool_size"}
    config = Config("GenNiSASRec", "tiny", config_dict=mine)
    recipe = {"loss_type": "SSM", "neg_sampler": "genni", "neg_num": 256, "neg_pool_size": "all",
              "neg_replacement": True, "neg_exclude": "target", "neg_score_chunk": 32768,
              "train_bucket_batches": 16, "train_window_stride": 0.5, "position_from_end": True}
    assert {k: config[k] for k in recipe} == recipe
    assert Config("SASRec", "tiny", config_dict=mine)["neg_num"] == 1  # RecBole's models keep the package's
    dns = Config("GenNiSASRec", "tiny", config_dict={**mine, "neg_sampler": "dns", "loss_type": "BCE", "neg_num": 2,
                                                     "neg_pool_size": 10})
    assert dns["neg_replacement"] is False
    with pytest.raises(GenNiConfigError, match="neg_replacement: True draws from a softmax"):
        Config("GenNiSASRec", "tiny", config_dict={**mine, "neg_sampler": "dns", "loss_type": "BCE",
                                                   "neg_replacement": True})


def test_positions_see_only_their_past(base_config):
    """Causal encoding, positions numbered from the first item (RecBole's): items after position j (or padding)
    never change position j's state."""
    config, (train, _, _) = prepared(base_config, position_from_end=False)
    model = config.model_class(config, train._dataset).eval()
    seq = torch.tensor([[3, 5, 7, 0, 0, 0, 0, 0, 0, 0]])
    other = seq.clone()
    other[0, 3:6] = torch.tensor([9, 2, 4])
    with torch.no_grad():
        assert torch.allclose(model.encode(seq)[0, :3], model.encode(other)[0, :3])
        assert torch.allclose(model.forward(seq, torch.tensor([3])), model.encode(seq)[:, 2])


def test_positions_from_end(base_config):
    """position_from_end numbers a row's items back from its last one (the papers' left-padded rows): the last item
    is at MAX_ITEM_LIST_LENGTH - 1 whatever the row's length or padding, and later items' ids, not their count,
    never change an earlier position's state."""
    config, (train, _, _) = prepared(base_config, position_from_end=True)
    model = config.model_class(config, train._dataset).eval()
    last = config["MAX_ITEM_LIST_LENGTH"] - 1
    seq = torch.tensor([[3, 5, 7, 0, 0, 0], [4, 0, 0, 0, 0, 0], [1, 2, 3, 4, 5, 6]])
    assert model.position_ids(seq)[:, :3].tolist() == [[last - 2, last - 1, last], [last, last, last],
                                                       [last - 5, last - 4, last - 3]]
    assert model.position_ids(seq)[2, -1] == last
    other = seq.clone()
    other[0, 2] = 9
    with torch.no_grad():
        states = model.encode(seq)[0]
        assert torch.allclose(states[:2], model.encode(other)[0, :2])
        assert torch.allclose(states[:3], model.encode(seq[:, :3])[0], atol=1e-6)
        # one item fewer moves the earlier items one position on, so their states change
        assert not torch.allclose(states[:2], model.encode(seq[:2, :2])[0], atol=1e-3)


@pytest.mark.parametrize("position_from_end", [False, True])
def test_length_groups_like_padded_batch(position_from_end, base_config):
    """Rows encoded in length groups cut to their longest row give the padded batch's last states."""
    config, (train, _, _) = prepared(base_config, position_from_end=position_from_end)
    model = config.model_class(config, train._dataset).eval()
    model.length_group_rows = 3
    generator = torch.Generator().manual_seed(0)
    lengths = torch.tensor([10, 1, 4, 7, 2, 10, 3, 5])
    seq = torch.randint(1, model.n_items, (len(lengths), 10), generator=generator)
    seq[torch.arange(10) >= lengths.unsqueeze(1)] = 0
    with torch.no_grad():
        padded = model.encode(seq)[torch.arange(len(lengths)), lengths - 1]
        assert torch.allclose(model.forward(seq, lengths), padded, atol=1e-6)


def test_run_evaluates_like_recbole_models(base_config):
    result = run_recbole_genni("GenNiSASRec", "tiny", config_dict={**base_config, "epochs": 2})
    assert set(result["test_result"]) == {f"{m}@{k}" for m in ("hit", "ndcg") for k in (5, 10, 20)}


def test_bucketed_batches_cover_each_user(base_config):
    """Users sorted by length within chunks of batches: every user once an epoch, a new order each epoch, narrower
    batches; weighting each batch's mean loss by its share of positions gives the all-positions mean, as before."""
    config, (train, _, _) = prepared(base_config, train_batch_size=4, train_bucket_batches=3, neg_sampler="none")
    _, (random_train, _, _) = prepared(base_config, train_batch_size=4, train_bucket_batches=0, neg_sampler="none")
    epochs = [list(train) for _ in range(2)]
    for batches in epochs:
        users = torch.cat([b[train.uid_field] for b in batches])
        assert sorted(users.tolist()) == sorted(train.users.tolist())
        assert sum(float(b[BATCH_WEIGHT_FIELD][0]) for b in batches) == pytest.approx(train.sample_size / 4)
    assert not torch.equal(*(torch.cat([b[train.uid_field] for b in batches]) for batches in epochs))

    def padded(batches):
        return sum(b[train.seq_field].numel() for b in batches)
    assert padded(epochs[0]) < padded(list(random_train))

    model = config.model_class(config, train._dataset).eval()  # no dropout: the loss is a function of the rows
    with torch.no_grad():
        weighted = sum(model.calculate_loss(b) for b in epochs[0])
        whole = next(iter(prepared(base_config, train_batch_size=1000, train_bucket_batches=0,
                                   neg_sampler="none")[1][0]))
        assert weighted == pytest.approx(float(model.calculate_loss(whole)) * train.sample_size / 4, rel=1e-5)


@pytest.mark.parametrize("neg_pool_size", [8, "all"])
def test_negatives_scored_in_training_pass(neg_pool_size, base_config, monkeypatch):
    """GenNiSASRec generates from the same dropout-on encoder pass its loss trains (not an eval-mode pass): the
    scores the generator sees for the drawn negatives are the loss's own negative logits."""
    config, (train, _, _) = prepared(base_config, loss_type="SSM", neg_num=3, neg_pool_size=neg_pool_size,
                                     hidden_dropout_prob=0.5, attn_dropout_prob=0.5)
    model = config.model_class(config, train._dataset).train()
    seen = {}
    generate, sampled_softmax_loss = model.negatives.generate, losses.sampled_softmax_loss

    def spy_generate(users, targets, score=None, with_log_count=False):
        negatives, log_count = generate(users, targets, score, with_log_count)
        seen["scores"], seen["negatives"] = score(negatives)[0], negatives
        return negatives, log_count

    def spy_loss(pos, neg, mask, neg_log_count=None, logq_weight=1.0):
        seen["logits"] = neg.detach()
        return sampled_softmax_loss(pos, neg, mask, neg_log_count, logq_weight)

    monkeypatch.setattr(model.negatives, "generate", spy_generate)
    monkeypatch.setattr(gennisasrec.losses, "sampled_softmax_loss", spy_loss)
    batch = next(iter(train))
    model.calculate_loss(batch)
    assert torch.allclose(seen["scores"], seen["logits"], atol=1e-5)
    model.eval()
    with torch.no_grad():  # an eval-mode pass (no dropout) would have scored them otherwise
        targets = batch[model.TARGET_SEQ]
        hidden = model.encode(batch[model.ITEM_SEQ])[targets > 0]
        eval_scores = (hidden.unsqueeze(1) * model.item_embedding.weight[seen["negatives"]]).sum(-1)
    assert not torch.allclose(eval_scores, seen["scores"], atol=1e-3)
