"""Full-ranking evaluation at the cost of the ranking: RecBole's collector without its dense indicator matrix."""

import torch
from recbole.evaluator.collector import Collector

#: what RecBole's collector may gather besides ``rec.topk``; any of them needed: its own code collects the batch
_OTHER_NEEDS = ("rec.items", "rec.meanrank", "rec.score", "data.label")


class TopkCollector(Collector):
    """RecBole's :class:`~recbole.evaluator.collector.Collector` with ``rec.topk`` (what HR, NDCG, MRR, recall,
    precision and MAP read) found from the positives' ids: RecBole builds a dense ``[users, items]`` indicator of
    the positives for every batch and sums it, twice the time of the top-k itself on a 10^5-item catalogue. The
    same tensor: each top-k column's hit and each row's number of positives."""

    def eval_batch_collect(self, scores_tensor, interaction, positive_u, positive_i):
        if not self.register.need("rec.topk") or any(self.register.need(key) for key in _OTHER_NEEDS):
            return super().eval_batch_collect(scores_tensor, interaction, positive_u, positive_i)
        rows, items = scores_tensor.shape
        topk_idx = torch.topk(scores_tensor, max(self.topk), dim=-1).indices  # [rows, k]
        device = topk_idx.device
        positives = torch.unique(positive_u.to(device) * items + positive_i.to(device))  # a pair counts once
        row_ids = torch.arange(rows, device=device).unsqueeze(1)
        hits = torch.isin(row_ids * items + topk_idx, positives).int()
        counts = torch.bincount(torch.div(positives, items, rounding_mode="floor"), minlength=rows).int()
        self.data_struct.update_tensor("rec.topk", torch.cat((hits, counts.unsqueeze(1)), dim=1))
