"""Bad configuration stops the run before training with one message naming the key and the fix."""

import pytest

from recbole_genni import run_recbole_genni
from recbole_genni.utils import GenNiConfigError

BAD_INPUTS = [
    ({"neg_sampler": "hard"}, r"neg_sampler: 'hard' is invalid; expected uniform \| popularity \| dns \| genni \| none"),
    ({"neg_temperature": 0}, r"neg_temperature: 0 is invalid; expected a number > 0"),
    ({"neg_temperature": -1.5}, r"neg_temperature: -1.5 is invalid"),
    ({"neg_temperature": "warm"}, r"neg_temperature: 'warm' is invalid"),
    ({"neg_pool_size": 0}, r"neg_pool_size: 0 is invalid; expected an integer >= 1"),
    ({"neg_pool_size": 1.5}, r"neg_pool_size: 1.5 is invalid; expected a fraction in \(0, 1\]"),
    ({"neg_pool_size": "most"}, r"neg_pool_size: 'most' is invalid"),
    ({"neg_pool_size": 500}, r"neg_pool_size: 500 is larger than the catalogue \(40 items\)"),
    ({"neg_num": 30, "neg_pool_size": 20}, r"neg_num: 30 is larger than neg_pool_size: 20"),
    ({"neg_num": 0}, r"neg_num: 0 is invalid; expected an integer >= 1"),
    ({"neg_exclude": "future"}, r"neg_exclude: 'future' is invalid; expected none \| target \| history"),
    ({"neg_uniform_mix": 2}, r"neg_uniform_mix: 2 is invalid; expected a number in \[0, 1\]"),
    ({"neg_warmup_epochs": -1}, r"neg_warmup_epochs: -1 is invalid"),
    ({"neg_pool_proposal": "zipf"}, r"neg_pool_proposal: 'zipf' is invalid"),
    ({"loss_type": "CE", "neg_sampler": "genni"}, r"loss_type: CE is full softmax and uses no negatives"),
    ({"loss_type": "BPR", "neg_sampler": "none"}, r"loss_type: BPR needs negatives but neg_sampler is none"),
    ({"worker": 2}, r"worker: 2 runs the collate step in other processes"),
]


@pytest.mark.parametrize("overrides, message", BAD_INPUTS, ids=[str(o) for o, _ in BAD_INPUTS])
def test_bad_input_fails_before_training(overrides, message, base_config, tmp_path):
    with pytest.raises(GenNiConfigError, match=message):
        run_recbole_genni("SASRec", "tiny", config_dict={**base_config, **overrides})
    assert not list((tmp_path / "saved").glob("*.pth"))


def test_a_model_that_always_needs_negatives_refuses_none(base_config):
    with pytest.raises(GenNiConfigError, match="FPMC always trains on negatives"):
        run_recbole_genni("FPMC", "tiny", config_dict={**base_config, "neg_sampler": "none"})
