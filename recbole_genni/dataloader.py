"""Training data loader that puts generated negatives into each batch, where RecBole hooks its own sampling."""

import time
from dataclasses import dataclass

import torch
from recbole.data.dataloader import TrainDataLoader
from recbole.data.interaction import Interaction

from recbole_genni import sampling
from recbole_genni.config import MODEL_BASED_SAMPLERS, resolve_pool_size
from recbole_genni.scoring import scorer_for


@dataclass
class NegativeStats:
    """What a researcher watches per epoch: cost of sampling and how hard the negatives were."""

    sampling_seconds: float = 0.0
    scored_rows: int = 0
    margin_sum: float = 0.0  # sum over scored rows of mean(pos score - neg score)
    rank_sum: float = 0.0  # sum over scored rows of the mean normalised pool rank (0 = hardest)
    fallback_rows: int = 0  # rows with too few allowed candidates, given proposal negatives instead
    nonfinite_rows: int = 0  # rows with NaN/inf scores, given uniform draws over the pool
    negatives: int = 0
    target_hits: int = 0  # negatives equal to the row's target (possible only with neg_exclude: none)
    history_hits: int = 0  # negatives in the user's training items (possible unless neg_exclude: history)

    def summary(self) -> dict:
        scored = max(self.scored_rows, 1)
        total = max(self.negatives, 1)
        out = {
            "sampling_seconds": self.sampling_seconds,
            "fallback_rows": self.fallback_rows,
            "target_hit_share": self.target_hits / total,
            "history_hit_share": self.history_hits / total,
        }
        if self.scored_rows:
            out.update(
                score_margin=self.margin_sum / scored,
                pool_rank=self.rank_sum / scored,
                nonfinite_rows=self.nonfinite_rows,
            )
        return out


class GenNiTrainDataLoader(TrainDataLoader):
    """RecBole's ``TrainDataLoader`` with ``neg_sampler``-driven negatives: one row per positive, K negatives
    per row in ``neg_item_id`` (``[B]`` for K = 1, ``[B, K]`` otherwise).

    ``genni`` scores a candidate pool of M items with the current model (one encoder pass per row,
    ``torch.no_grad()``, eval mode, on the model's device; train mode restored) and draws K negatives from
    softmax(score / neg_temperature) over the allowed candidates; ``dns`` takes the top-K of the pool;
    ``uniform`` and ``popularity`` need no model. The model is attached by the trainer (:meth:`get_model`).
    """

    def __init__(self, config, dataset, sampler, shuffle=False):
        self.neg_sampler = config["neg_sampler"]
        self.neg_num = config["neg_num"]
        self.temperature = 0.0 if self.neg_sampler == "dns" else float(config["neg_temperature"])
        self.pool_shared = config["neg_pool_shared"]
        self.warmup_epochs = config["neg_warmup_epochs"]
        self.uniform_mix = float(config["neg_uniform_mix"])
        self.pool_size = resolve_pool_size(config["neg_pool_size"], dataset.item_num)
        self.epoch = 0
        self.stats = NegativeStats()
        self.scorer = None
        self._device_generators = {}
        super().__init__(config, dataset, sampler, shuffle=shuffle)

    def get_model(self, model):
        """Attach the model whose preferences generate the negatives (the local module, never a DDP wrapper)."""
        self.model = getattr(model, "module", model)
        self.scorer = scorer_for(self.model)

    def set_epoch(self, epoch):
        self.epoch = epoch

    def pop_stats(self) -> NegativeStats:
        """This epoch's telemetry, reset for the next."""
        stats, self.stats = self.stats, NegativeStats()
        stats.fallback_rows += self._sampler.fallback_rows
        self._sampler.fallback_rows = 0
        return stats

    @property
    def generates(self) -> bool:
        """Whether this epoch's negatives come from the model."""
        return self.neg_sampler in MODEL_BASED_SAMPLERS and self.epoch >= self.warmup_epochs

    def _neg_sampling(self, inter_feat):
        if self.neg_sampler == "none":
            return inter_feat
        start = time.perf_counter()
        users = inter_feat[self.uid_field]
        targets = inter_feat[self.iid_field]
        if self.generates:
            if self.scorer is None:
                raise RuntimeError("neg_sampler needs the model: call get_model(model) before iterating")
            negatives = self._generate(inter_feat, users, targets)
        else:
            negatives = self._sampler.draw(users, targets, self.neg_num)
        if self.uniform_mix > 0:
            mixed = torch.rand(negatives.shape, generator=self._sampler.generator) < self.uniform_mix
            if bool(mixed.any()):
                rows = mixed.any(dim=1)
                uniform = self._sampler.draw(users[rows], targets[rows], self.neg_num)
                negatives[rows] = torch.where(mixed[rows], uniform, negatives[rows])
        self.stats.sampling_seconds += time.perf_counter() - start
        self._count_hits(users, targets, negatives)
        inter_feat.update(Interaction({self.neg_item_id: negatives[:, 0] if self.neg_num == 1 else negatives}))
        return inter_feat

    def _count_hits(self, users, targets, negatives):
        self.stats.negatives += negatives.numel()
        self.stats.target_hits += int((negatives == targets.unsqueeze(1)).sum())
        keys = self._sampler.used_ids
        self.stats.history_hits += int(sampling.in_history(keys, users, negatives, self._sampler.item_num).sum())

    def _generator(self, device):
        if device not in self._device_generators:
            gen = torch.Generator(device=device)
            gen.manual_seed(int(torch.randint(2**62, (1,), generator=self._sampler.generator)))
            self._device_generators[device] = gen
        return self._device_generators[device]

    @torch.no_grad()
    def _generate(self, inter_feat, users, targets):
        """K negatives per row ``[N, K]`` drawn from the model's softmax over a candidate pool."""
        n = len(users)
        pool = self._sampler.draw_pool(self.pool_size, None if self.pool_shared else n)  # [M] or [N, M]
        device = self.model.device
        was_training = self.model.training
        self.model.eval()
        try:
            scores, target_scores = self.scorer.score(inter_feat.to(device), pool.to(device), targets.to(device))
        finally:
            self.model.train(was_training)
        valid = self._sampler.valid_mask(pool, users, targets).to(device)
        finite = torch.isfinite(scores).all(dim=1) & torch.isfinite(target_scores)
        if not bool(finite.all()):
            self.stats.nonfinite_rows += int((~finite).sum())
            scores = torch.where(finite.unsqueeze(1), scores, torch.zeros_like(scores))
        short = valid.sum(dim=1) < self.neg_num
        sample_valid = valid | short.unsqueeze(1)
        cols = sampling.sample_negatives(scores, self.neg_num, self.temperature, sample_valid, self._generator(device))
        pool_rows = pool.to(device).expand(n, -1) if pool.dim() == 1 else pool.to(device)
        negatives = pool_rows.gather(1, cols).cpu()
        if bool(short.any()):
            short_cpu = short.cpu()
            self.stats.fallback_rows += int(short_cpu.sum())
            negatives[short_cpu] = self._sampler.draw(users[short_cpu], targets[short_cpu], self.neg_num)
        ok = finite & ~short
        if bool(ok.any()):
            margin = target_scores.unsqueeze(1) - scores.gather(1, cols)  # [N, K]
            ranks = sampling.pool_ranks(scores[ok], cols[ok], valid[ok])  # [n_ok, K]
            self.stats.margin_sum += float(margin[ok].mean(dim=1).sum())
            self.stats.rank_sum += float(ranks.mean(dim=1).sum())
            self.stats.scored_rows += int(ok.sum())
        return negatives
