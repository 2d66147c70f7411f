"""RecBole's models as the package trains them (recbole_models.py): one-pass models draw their negatives in their
own loss, from its pass, and train them with any sampled loss: BPR is the model's own loss exactly, SSM is the
hand-computed estimator, and no encoder pass is added."""

import math

import pytest
import torch
from recbole.data import create_dataset
from recbole.data.interaction import Interaction
from recbole.model.sequential_recommender.bert4rec import BERT4Rec
from recbole.model.sequential_recommender.gru4rec import GRU4Rec

from recbole_genni import run_recbole_genni
from recbole_genni.config import Config
from recbole_genni.errors import GenNiConfigError
from recbole_genni.losses import SampledLoss
from recbole_genni.model.recbole_models import (
    SUBCLASSES,
    NegativesAtMaskedPositions,
    NegativesFromTrainingPass,
    with_negatives_in_loss,
)
from recbole_genni.quick_start import data_preparation
from recbole_genni.support import MASKED_ENCODERS, ONE_PASS_ENCODERS, PLAIN_CE_MODELS, recbole_class


class MyGRU4Rec(GRU4Rec):
    """A user's subclass: it keeps GRU4Rec's one-pass path."""


def _bert4rec_batch(train, net):
    """A BERT4Rec training batch and a recorder of the negatives its loss draws (``[N, K]``, masked positions)."""
    drawn = []
    generate = net.negatives.generate
    net.negatives.generate = lambda *a: drawn.append(generate(*a)) or drawn[-1]
    return next(iter(train)), drawn


class TestOnePassModels:
    """SASRec, GRU4Rec and the other one-pass models: negatives drawn in their own loss."""

    @pytest.mark.parametrize("model", sorted(ONE_PASS_ENCODERS))
    def test_bpr_is_own_loss(self, model, base_config, model_overrides, loader_for):
        train, net = loader_for(base_config, model, neg_sampler="uniform", **model_overrides.get(model, {}))
        net.eval()  # no dropout: the same scores in every pass
        assert isinstance(net, NegativesFromTrainingPass)
        batch = next(iter(train))
        with torch.no_grad():
            drawn = net.calculate_loss(batch)  # draws the negatives into the batch
            own = recbole_class(type(net)).calculate_loss(net, batch)  # RecBole's own code on the same negatives
        assert batch[train.neg_item_id].shape == batch[train.iid_field].shape
        assert torch.allclose(drawn, own, atol=1e-6, rtol=0)

    def test_ssm_by_hand(self, base_config, loader_for):
        train, net = loader_for(base_config, "SASRec", neg_sampler="uniform", loss_type="SSM", neg_num=4,
                                neg_exclude="none")
        net.eval()
        assert net.loss_type == "BPR" and isinstance(net.loss_fct, SampledLoss)
        batch = next(iter(train))
        with torch.no_grad():
            loss = net.calculate_loss(batch)
            negatives = batch[train.neg_item_id].t()  # [N, K]
            hidden = recbole_class(type(net)).forward(net, batch[net.ITEM_SEQ], batch[net.ITEM_SEQ_LEN])
            table = net.item_embedding.weight
            pos = (hidden * table[batch[net.POS_ITEM_ID]]).sum(dim=1)
            neg = (hidden.unsqueeze(1) * table[negatives]).sum(dim=2)
            # K uniform draws over the |I| - 1 real items: each is expected K / (|I| - 1) times
            log_count = math.log(4 / (net.negatives.candidates.item_num - 1))
            logits = torch.cat([pos.unsqueeze(1), neg - log_count], dim=1)
            reference = -torch.log_softmax(logits, dim=1)[:, 0].mean()
        assert torch.allclose(loss, reference, atol=1e-6)

    @pytest.mark.parametrize("loss_type", ["BCE", "gBCE", "SSM"])
    @pytest.mark.parametrize("model", ["GRU4Rec", "FEARec"])
    def test_sampled_losses_train(self, model, loss_type, base_config, model_overrides):
        result = run_recbole_genni(model, "tiny", config_dict={
            **base_config, **model_overrides.get(model, {}), "neg_sampler": "genni", "loss_type": loss_type,
            "neg_num": 4, "neg_pool_size": "all", "neg_replacement": True, "epochs": 1})
        assert math.isfinite(result["history"][0]["train_loss"]) and result["test_result"]["ndcg@10"] >= 0

    def test_no_extra_encoder_call(self, base_config, monkeypatch, loader_for):
        calls = []
        original = GRU4Rec.forward
        monkeypatch.setattr(GRU4Rec, "forward", lambda self, *a: calls.append(1) or original(self, *a))
        for scoring, passes in (("train_pass", 1), ("eval_pass", 2)):
            train, net = loader_for(base_config, "GRU4Rec", neg_sampler="genni", loss_type="SSM", neg_num=4,
                                    neg_scoring=scoring)
            batch = next(iter(train))
            calls.clear()
            net.calculate_loss(batch)
            assert len(calls) == passes, scoring
            assert net.negatives.stats.scored_rows > 0  # the model scored the pool

    def test_user_subclass_draws(self, base_config):
        config = Config(MyGRU4Rec, "tiny", config_dict={**base_config, "neg_sampler": "genni", "loss_type": "SSM"})
        train, _, _ = data_preparation(config, create_dataset(config))
        net = config.model_class(config, train._dataset)
        assert isinstance(net, MyGRU4Rec) and isinstance(net, NegativesFromTrainingPass)
        assert train.generates_in_loss and isinstance(net.loss_fct, SampledLoss)
        assert math.isfinite(net.calculate_loss(next(iter(train))).item())

    @pytest.mark.parametrize("model", ["FPMC", "NPE"])
    def test_no_dot_head_refuses_sampled(self, model, base_config):
        message = f"loss_type: SSM trains the scores of a dot-product head .* {model}"
        with pytest.raises(GenNiConfigError, match=message):
            Config(model, "tiny", config_dict={**base_config, "neg_sampler": "genni", "loss_type": "SSM"})

    def test_gennisasrec_refuses_eval_pass(self, base_config):
        with pytest.raises(GenNiConfigError, match="neg_scoring: eval_pass scores RecBole models"):
            Config("GenNiSASRec", "tiny", config_dict={**base_config, "neg_scoring": "eval_pass"})

    def test_gbce_beta_shared(self, base_config, loader_for):
        from recbole_genni import losses

        _, builtin = loader_for(base_config, "SASRec", neg_sampler="uniform", loss_type="gBCE", neg_num=4)
        config = Config("GenNiSASRec", "tiny", config_dict={
            **base_config, "neg_sampler": "uniform", "loss_type": "gBCE", "neg_num": 4})
        train, _, _ = data_preparation(config, create_dataset(config))
        ours = config.model_class(config, train._dataset)
        # tiny: 40 real items, so K = 4 negatives among the 39 items other than the positive
        expected = losses.gbce_beta(4, 40, base_config.get("gbce_t", 0.75))
        assert builtin.loss_fct.gbce_beta == pytest.approx(expected)
        assert ours.loss_fct.gbce_beta == pytest.approx(expected)
        alpha = 4 / 39
        assert expected == pytest.approx(alpha * (0.75 * (1 - 1 / alpha) + 1 / alpha))


class TestBERT4Rec:
    """BERT4Rec: negatives drawn for its masked positions."""

    def test_bpr_is_own_loss(self, base_config, loader_for):
        train, net = loader_for(base_config, "BERT4Rec", neg_sampler="uniform", loss_type="BPR")
        net.eval()
        assert isinstance(net, NegativesAtMaskedPositions)
        batch, drawn = _bert4rec_batch(train, net)
        with torch.no_grad():
            loss = net.calculate_loss(batch)
            masked = batch[net.MASK_INDEX] > 0
            negatives = torch.zeros_like(batch[net.NEG_ITEMS])
            negatives[masked] = drawn[0][0][:, 0]  # BERT4Rec's layout: one negative per masked slot
            batch.update(Interaction({net.NEG_ITEMS: negatives}))
            own = recbole_class(type(net)).calculate_loss(net, batch)
        assert masked.sum() > 0 and torch.allclose(loss, own, atol=1e-6, rtol=0)

    def test_ssm_by_hand(self, base_config, loader_for):
        train, net = loader_for(base_config, "BERT4Rec", neg_sampler="uniform", loss_type="SSM", neg_num=4,
                                neg_exclude="none")
        net.eval()
        batch, drawn = _bert4rec_batch(train, net)
        with torch.no_grad():
            loss = net.calculate_loss(batch)
            negatives = drawn[0][0]  # [N, K]
            masked = batch[net.MASK_INDEX] > 0
            output = net.forward(batch[net.MASK_ITEM_SEQ])
            hidden = output[masked.nonzero()[:, 0], batch[net.MASK_INDEX][masked]]  # [N, H]: each masked position
            table, bias = net.item_embedding.weight, net.output_bias
            targets = batch[net.POS_ITEMS][masked]
            pos = (hidden * table[targets]).sum(dim=1) + bias[targets]
            neg = (hidden.unsqueeze(1) * table[negatives]).sum(dim=2) + bias[negatives]
            log_count = math.log(4 / (net.negatives.candidates.item_num - 1))
            logits = torch.cat([pos.unsqueeze(1), neg - log_count], dim=1)
            reference = -torch.log_softmax(logits, dim=1)[:, 0].mean()
        assert torch.allclose(loss, reference, atol=1e-6)

    def test_draws_in_one_pass(self, base_config, monkeypatch, loader_for):
        calls = []
        original = BERT4Rec.forward
        monkeypatch.setattr(BERT4Rec, "forward", lambda self, *a: calls.append(1) or original(self, *a))
        train, net = loader_for(base_config, "BERT4Rec", neg_sampler="genni", loss_type="SSM", neg_num=4,
                                neg_pool_size="all")
        batch = next(iter(train))
        loss = net.calculate_loss(batch)
        loss.backward()
        assert len(calls) == 1 and math.isfinite(loss.item())
        assert net.negatives.stats.scored_rows > 0

    def test_trains(self, base_config):
        result = run_recbole_genni("BERT4Rec", "tiny", config_dict={
            **base_config, "neg_sampler": "genni", "loss_type": "gBCE", "neg_num": 4, "neg_pool_size": "all"})
        assert math.isfinite(result["history"][0]["train_loss"]) and result["test_result"]["ndcg@10"] >= 0

    def test_refuses_eval_pass(self, base_config):
        with pytest.raises(GenNiConfigError, match="neg_scoring: eval_pass scores a model's next-item output"):
            Config("BERT4Rec", "tiny", config_dict={**base_config, "neg_sampler": "genni", "neg_scoring": "eval_pass"})


class TestSubclasses:
    def test_every_model_has_subclass(self):
        from recbole_genni.registry import get_model

        assert set(SUBCLASSES) == set(ONE_PASS_ENCODERS) | set(MASKED_ENCODERS)
        for name, subclass in SUBCLASSES.items():
            assert get_model(name) is subclass and recbole_class(subclass).__name__ == name
            assert with_negatives_in_loss(recbole_class(subclass)) is subclass
        assert with_negatives_in_loss(get_model("FPMC")) is get_model("FPMC")  # drawn in the loader

    def test_no_negatives_is_recbole(self, base_config):
        config = Config("GRU4Rec", "tiny", config_dict={**base_config, "neg_sampler": "none"})
        train, _, _ = data_preparation(config, create_dataset(config))
        net = config.model_class(config, train._dataset)
        net.eval()
        batch = next(iter(train))
        with torch.no_grad():
            assert net.negatives is None
            assert torch.equal(net.calculate_loss(batch), GRU4Rec.calculate_loss(net, batch))


class TestChunkedCE:
    @pytest.mark.parametrize("model", [*PLAIN_CE_MODELS, "GenNiSASRec"])
    def test_equals_the_models_own_ce(self, model, base_config, model_overrides):
        config = Config(model, "tiny", config_dict={**base_config, **model_overrides.get(model, {}),
                                                    "neg_sampler": "none", "ce_item_chunk": 7})
        train, _, _ = data_preparation(config, create_dataset(config))
        net = config.model_class(config, train._dataset)
        net.eval()  # no dropout: the same scores in both passes
        batch = next(iter(train))
        with torch.no_grad():
            chunked = net.calculate_loss(batch)
            net.ce_item_chunk = 0
            own = net.calculate_loss(batch) if model == "GenNiSASRec" else \
                recbole_class(type(net)).calculate_loss(net, batch)
        assert torch.allclose(chunked, own, atol=1e-5, rtol=0)

    @pytest.mark.parametrize("model, keys, message", [
        ("GRU4Rec", {"neg_sampler": "genni"}, "ce_item_chunk: 64 chunks full-softmax CE, which trains with "
                                              "neg_sampler: none, not genni"),
        ("FEARec", {"neg_sampler": "none"}, "ce_item_chunk: FEARec's CE is not one product"),
    ])
    def test_refused_where_it_cannot_run(self, model, keys, message, base_config):
        with pytest.raises(GenNiConfigError, match=message):
            Config(model, "tiny", config_dict={**base_config, "ce_item_chunk": 64, **keys})
