"""Every supported RecBole sequential model trains with generated negatives; refused models fail clearly."""

import math

import pytest
import torch
from recbole.data import create_dataset

from recbole_genni import run_recbole_genni
from recbole_genni.config import Config
from recbole_genni.errors import GenNiConfigError
from recbole_genni.quick_start import data_preparation
from recbole_genni.scoring import dot_scores, gathered_scores, multi_negative_loss, product_columns, scorer_for
from recbole_genni.support import (
    GENERIC_MODELS,
    MASKED_ENCODERS,
    ONE_PASS_ENCODERS,
    PAIRWISE_ONLY_MODELS,
    REFUSED_MODELS,
    recbole_class,
)

TRAINED = sorted(set(ONE_PASS_ENCODERS) | set(GENERIC_MODELS))


#: epochs for the toy rule: a few, more for NextItNet, which learns it more slowly
TOY_EPOCHS = {"NextItNet": 30}


@pytest.fixture
def learnable_data(tmp_path, make_dataset, tiny_data):
    """60 users whose next item is the current one plus 1 (mod 40) four times in five: a rule every model can
    learn in a few epochs (with tiny's item features and knowledge files)."""
    folder = make_dataset(tmp_path / "toy", "tiny", num_users=60, min_len=8, max_len=14, item_features=True)
    for suffix in ("ent", "rel", "link", "kg"):
        (folder / "tiny" / f"tiny.{suffix}").write_text((tiny_data / "tiny" / f"tiny.{suffix}").read_text())
    return folder


def _random_hit_at_10(data_path):
    """HR@10 of a uniformly random ranking of each user's test candidates (items not masked as earlier items)."""
    rows = [line.split("\t") for line in (data_path / "tiny" / "tiny.inter").read_text().splitlines()[1:]]
    sequences = {}
    for user, item, _ in sorted(rows, key=lambda r: (int(r[0]), float(r[2]))):
        sequences.setdefault(user, []).append(item)
    catalogue = {item for _, item, _ in rows}
    hits = [min(1.0, 10 / (len(catalogue) - len(set(items[:-1]) - {items[-1]}))) for items in sequences.values()]
    return sum(hits) / len(hits)


@pytest.mark.slow
@pytest.mark.parametrize("model", TRAINED + list(MASKED_ENCODERS))
def test_every_model_learns_toy_rule(model, base_config, learnable_data, model_overrides):
    """Trained with two GenNi negatives per row, every supported model ranks the next item far better than a random
    ranking does (the history masked, as in evaluation)."""
    config = {**base_config, "data_path": str(learnable_data), "neg_sampler": "genni", "neg_num": 2,
              "learning_rate": 0.01, "epochs": TOY_EPOCHS.get(model, 12), "stopping_step": 100,
              **model_overrides.get(model, {})}
    result = run_recbole_genni(model, "tiny", config_dict=config, saved=False)
    assert all(math.isfinite(h["train_loss"]) for h in result["history"])
    random_hit = _random_hit_at_10(learnable_data)
    assert result["test_result"]["hit@10"] > random_hit + 0.25, (result["test_result"]["hit@10"], random_hit)


@pytest.mark.parametrize("model", sorted(REFUSED_MODELS))
def test_refused_model_exits_nonzero(model, monkeypatch, capsys, base_config, tmp_path):
    import run_recbole_genni as cli

    args = [f"--data_path={base_config['data_path']}", "--neg_sampler=genni", f"--checkpoint_dir={tmp_path}"]
    monkeypatch.setattr("sys.argv", ["run_recbole_genni.py", f"--model={model}", "--dataset=tiny", *args])
    assert cli.main() == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith(f"error: model {model} cannot train with neg_sampler: genni.")
    assert REFUSED_MODELS[model] in err[-1]
    assert not list(tmp_path.glob("*.pth"))


class _RecordingBPR(torch.nn.Module):
    """Stands in for a model's BPR loss module: records the scores its loss gives the positive and the negative."""

    def __init__(self, loss):
        super().__init__()
        self.loss, self.calls = loss, []

    def forward(self, pos_score, neg_score):
        self.calls.append((pos_score, neg_score))
        return self.loss(pos_score, neg_score)


@pytest.mark.parametrize("model", TRAINED)
def test_scorer_matches_own_loss(model, base_config, model_overrides):
    """Generated negatives are hard for the loss that trains on them: for every supported model, the scorer's
    score of a candidate is the score the model's own BPR loss gives it as a negative (same batch, eval mode)."""
    config = Config(model, "tiny", config_dict={**base_config, "neg_sampler": "genni",
                                                 **model_overrides.get(model, {})})
    assert config["loss_type"] == "BPR" or model in PAIRWISE_ONLY_MODELS  # SINE's own default is CE
    train, _, _ = data_preparation(config, create_dataset(config))
    net = config.model_class(config, train._dataset).eval()
    train.get_model(net)
    batch = next(iter(train))
    loss_name = "bpr_loss" if model == "TransRec" else "loss_fct"
    recorder = _RecordingBPR(getattr(net, loss_name))
    setattr(net, loss_name, recorder)
    with torch.no_grad():
        net.calculate_loss(batch)  # a one-pass model draws its negatives here, from this pass
        negatives, targets = batch[train.neg_item_id], batch[train.iid_field]
        scored, _ = scorer_for(net).bind(batch, targets)(negatives.unsqueeze(1))
    (_, loss_scores), = recorder.calls
    assert torch.allclose(scored.reshape(-1), loss_scores.reshape(-1), atol=1e-5)


@pytest.mark.parametrize("model", sorted(ONE_PASS_ENCODERS) + ["FPMC"])
def test_k_loss_is_mean(model, base_config, model_overrides):
    """One encoder pass over [K, B] negatives (drawn in the loss of a one-pass model; K repeated rows for the
    others) equals K separate BPR losses, averaged."""
    config = Config(model, "tiny", config_dict={**base_config, "neg_num": 3, **model_overrides.get(model, {})})
    train, _, _ = data_preparation(config, create_dataset(config))
    net = config.model_class(config, train._dataset).eval()
    train.get_model(net)
    batch = next(iter(train))
    with torch.no_grad():
        if train.generates_in_loss:
            joint = net.calculate_loss(batch)
            negatives = batch[train.neg_item_id].t()
        else:
            negatives = batch[train.neg_item_id]
            joint = multi_negative_loss(net, batch, train.neg_item_id)
        assert negatives.shape == (len(batch[train.iid_field]), 3)
        single = []
        for k in range(3):
            batch.update(type(batch)({train.neg_item_id: negatives[:, k]}))
            single.append(recbole_class(type(net)).calculate_loss(net, batch))  # RecBole's own loss, these negatives
    assert torch.allclose(joint, torch.stack(single).mean(), atol=1e-5)


@pytest.mark.parametrize("pool_shape", [(7,), (5, 3), (5, 40)])  # shared; per row gathered; per row from [N, |I|]
def test_dot_scores(pool_shape):
    gen = torch.Generator().manual_seed(0)
    hidden, table = torch.randn(5, 4, generator=gen), torch.randn(50, 4, generator=gen)
    pool, targets = torch.randint(1, 50, pool_shape, generator=gen), torch.randint(1, 50, (5,), generator=gen)
    scores, target_scores = dot_scores(hidden, table, pool, targets)
    rows = pool.expand(5, -1)
    expected = torch.stack([table[rows[n]] @ hidden[n] for n in range(5)])
    assert torch.allclose(scores, expected, atol=1e-5)
    assert torch.allclose(target_scores, (hidden * table[targets]).sum(dim=1))


@pytest.mark.parametrize("dtype, autocast", [(torch.float64, False), (torch.float32, False), (torch.float32, True),
                                             (torch.bfloat16, False)])  # sparse x 3; bfloat16: the dense backward
@pytest.mark.parametrize("held", [False, True])
def test_product_columns(dtype, autocast, held):
    """The sparse backward is autograd's gather backward: repeated columns in a row add up, items nobody drew get
    a zero gradient, and a held product is read, not recomputed. Under autocast (a bfloat16 product of float32
    parameters) the gradients come back in the parameters' dtype."""
    gen = torch.Generator().manual_seed(2)
    hidden = torch.randn(6, 4, generator=gen, dtype=torch.float64).to(dtype)
    table = torch.randn(30, 4, generator=gen, dtype=torch.float64).to(dtype)
    columns = torch.randint(1, 20, (6, 9), generator=gen)
    columns[:, 1] = columns[:, 0]  # every row repeats a column
    upstream = torch.randn(6, 9, generator=gen, dtype=torch.float64).to(dtype)
    h, t = hidden.clone().requires_grad_(), table.clone().requires_grad_()
    (h @ t.t()).gather(1, columns).backward(upstream)
    h2, t2 = hidden.clone().requires_grad_(), table.clone().requires_grad_()
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        product = (hidden @ table.t()) if held else None
        values = product_columns(h2, t2, columns, product)
    values.backward(upstream.to(values.dtype))
    tol = {"atol": 0.05, "rtol": 0.02} if autocast or dtype == torch.bfloat16 else {"atol": 1e-5}
    assert values.dtype == (torch.bfloat16 if autocast else dtype)  # the product's
    assert torch.allclose(values.to(dtype), (hidden @ table.t()).gather(1, columns), **tol)
    assert h2.grad.dtype == t2.grad.dtype == dtype
    assert torch.allclose(h2.grad, h.grad, **tol) and torch.allclose(t2.grad, t.grad, **tol)
    assert torch.count_nonzero(t2.grad[20:]) == 0


def test_no_pool_scores_all():
    """``score(None)`` is every item but padding, in id order; read from a held matrix it copies nothing."""
    gen = torch.Generator().manual_seed(1)
    hidden, table = torch.randn(5, 4, generator=gen), torch.randn(50, 4, generator=gen)
    targets = torch.tensor([3, 1, 49, 7, 2])
    every = torch.arange(1, 50)
    scores, target_scores = dot_scores(hidden, table, None, targets)
    assert torch.allclose(scores, dot_scores(hidden, table, every, targets)[0], atol=1e-6)
    full = hidden @ table.t()
    viewed, viewed_targets = gathered_scores(full, None, targets)
    assert torch.equal(viewed, full[:, every]) and viewed.data_ptr() == full[:, 1:].data_ptr()
    assert torch.allclose(viewed_targets, target_scores, atol=1e-6)


def test_user_subclass_path(base_config):
    """Scoring, loss and refusals follow the RecBole model a class subclasses, not its name."""
    from recbole.model.sequential_recommender import CORE, SASRec

    from recbole_genni.scoring import DotProductScorer

    class MySASRec(SASRec):
        pass

    class MyCORE(CORE):
        pass

    config = Config(MySASRec, "tiny", config_dict={**base_config, "neg_sampler": "genni", "neg_num": 2})
    train, _, _ = data_preparation(config, create_dataset(config))
    net = MySASRec(config, train._dataset)
    assert isinstance(scorer_for(net), DotProductScorer) and train.generates_in_loss
    with pytest.raises(GenNiConfigError, match=r"model MyCORE cannot train with neg_sampler: genni. CORE trains"):
        Config(MyCORE, "tiny", config_dict={**base_config, "neg_sampler": "genni"})
