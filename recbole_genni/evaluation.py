"""Full-ranking evaluation: RecBole's collector without its dense indicator matrix, and exact under DDP."""

import torch
from recbole.evaluator.collector import Collector

#: what RecBole's collector may gather besides ``rec.topk``; any of them needed: its own code collects the batch
_OTHER_NEEDS = ("rec.items", "rec.meanrank", "rec.score", "data.label")
#: the collected tensors with one row per evaluated row
_ROW_KEYS = ("rec.topk", *_OTHER_NEEDS)


class TopkCollector(Collector):
    """RecBole's :class:`~recbole.evaluator.collector.Collector` with ``rec.topk`` (what HR, NDCG, MRR, recall,
    precision and MAP read) found from the positives' ids: RecBole builds a dense ``[users, items]`` indicator of
    the positives for every batch and sums it, twice the time of the top-k itself on a 10^5-item catalogue. The
    same tensor: each top-k column's hit and each row's number of positives.

    Under DDP, set :attr:`distributed_rows` to the number of rows evaluated (the loader's ``sample_size``) before
    collecting: the data struct then holds every rank's rows, once each. RecBole's ``DistributedSampler`` pads the
    rows to a multiple of the ranks with repeats, and RecBole averages each rank's metrics weighted by its number of
    batches: with 3 users on 2 ranks, a hit@5 of 0.5 where one process gives 0.6667.
    """

    distributed_rows = None

    def get_data_struct(self):
        struct = super().get_data_struct()
        if self.distributed_rows is None:
            return struct
        rank, world = torch.distributed.get_rank(), torch.distributed.get_world_size()
        for key in _ROW_KEYS:
            if key not in struct:
                continue
            rows = struct.get(key)
            # this rank's k-th row is the sampler's row rank + k * world; from distributed_rows on, the padding
            own = rows[rank + torch.arange(len(rows)) * world < self.distributed_rows]
            gathered = [None] * world
            torch.distributed.all_gather_object(gathered, own)
            struct.set(key, torch.cat(gathered))
        return struct

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
