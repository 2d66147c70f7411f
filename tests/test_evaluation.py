"""The evaluation's top-k collector gives RecBole's own tensor, at the cost of the top-k."""

import pytest
import torch
from recbole.evaluator.collector import Collector

from recbole_genni.config import Config
from recbole_genni.evaluation import TopkCollector


@pytest.mark.parametrize("metrics", [["Hit", "NDCG"], ["Hit", "NDCG", "MRR", "Recall", "Precision", "MAP"]])
def test_topk_tensor_is_recboles(metrics, base_config):
    config = Config("SASRec", "tiny", config_dict={**base_config, "metrics": metrics})
    generator = torch.Generator().manual_seed(0)
    scores = torch.randn(6, 41, generator=generator)
    scores[:, 0] = -float("inf")
    positive_u = torch.tensor([0, 1, 2, 3, 4, 5, 1, 1, 3, 3])  # rows 1 and 3 have several, one pair twice
    positive_i = torch.tensor([3, 7, 40, 1, 22, 9, 8, 12, 1, 30])
    positive_i[[0, 1]] = scores[[0, 1]].argmax(dim=1)  # hits at rank 1
    ours, theirs = TopkCollector(config), Collector(config)
    for collector in (ours, theirs):
        collector.eval_batch_collect(scores.clone(), None, positive_u, positive_i)
    expected = theirs.data_struct.get("rec.topk")
    assert torch.equal(ours.data_struct.get("rec.topk"), expected)
    assert expected[:, -1].tolist() == [1, 3, 1, 2, 1, 1] and expected[:2, 0].tolist() == [1, 1]
