"""The sampler registry (negatives/__init__.py): a sampler is one class, added by one registry line, and trains
every kind of model the package has."""

import math

import pytest
import torch

from recbole_genni import run_recbole_genni
from recbole_genni.config import Config
from recbole_genni.errors import GenNiConfigError
from recbole_genni.negatives import SAMPLERS, register_sampler
from recbole_genni.negatives.base import NegativeSampler


class HarderOfTwoNegatives(NegativeSampler):
    """A toy: for each of K slots, two uniform candidates, and the one the model scores higher."""

    uses_model = True
    drawn_rows = 0  # rows drawn from the model's scores, over every instance (the model built in the run has one)

    def draw_from_scores(self, users, targets, score, with_log_count):
        device = targets.device
        pairs = self.candidates.proposal_negatives(users.cpu(), targets.cpu(), 2 * self.neg_num).to(device)  # [N, 2K]
        scores, _ = score(pairs)
        first, second = pairs.view(len(users), 2, -1).unbind(1)
        first_scores, second_scores = scores.view(len(users), 2, -1).unbind(1)
        type(self).drawn_rows += len(users)
        return torch.where(first_scores >= second_scores, first, second), None, None


@pytest.fixture
def harder_of_two():
    register_sampler("harder-of-two", HarderOfTwoNegatives)
    HarderOfTwoNegatives.drawn_rows = 0
    yield HarderOfTwoNegatives
    SAMPLERS.pop("harder-of-two")


@pytest.mark.parametrize("model", ["GRU4Rec", "GenNiSASRec", "FPMC"])  # drawn in the loss, per position, by the loader
def test_registered_sampler_trains(model, harder_of_two, base_config):
    loss = {"GenNiSASRec": "BCE"}.get(model, "BPR")
    result = run_recbole_genni(model, "tiny", config_dict={
        **base_config, "neg_sampler": "harder-of-two", "neg_num": 2, "loss_type": loss, "epochs": 1})
    assert math.isfinite(result["history"][0]["train_loss"]) and harder_of_two.drawn_rows > 0


def test_unregistered_sampler_refused(harder_of_two, base_config):
    Config("GRU4Rec", "tiny", config_dict={**base_config, "neg_sampler": "harder-of-two"})
    with pytest.raises(GenNiConfigError, match=r"neg_sampler: 'hardest' is invalid; expected uniform \| popularity "
                                               r"\| dns \| genni \| midx \| harder-of-two \| none"):
        Config("GRU4Rec", "tiny", config_dict={**base_config, "neg_sampler": "hardest"})


def test_only_samplers_register():
    with pytest.raises(TypeError, match="must subclass NegativeSampler"):
        register_sampler("plain", object)
