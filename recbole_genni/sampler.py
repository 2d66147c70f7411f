"""RecBole ``Sampler`` for GenNi: candidate pools, exclusion masks and bounded uniform/popularity negatives."""

import math

import torch
from recbole.sampler.sampler import AbstractSampler

from recbole_genni import sampling
from recbole_genni.negatives import SAMPLERS

#: rejection rounds before a short row is completed from its exact complement
_MAX_REDRAWS = 8


def dataset_history_keys(*datasets):
    """Sorted ``user * item_num + item`` keys of every item in the rows of ``datasets`` (RecBole sequential splits):
    each row's target and input sequence. Over a training split this is every training item of each user, however
    long the history: each item past the first is some row's target, and the first is in every row's input."""
    users, items = [], []
    for dataset in datasets:
        feat = dataset.inter_feat
        users.append(feat[dataset.uid_field])
        items.append(feat[dataset.iid_field])
        seq_field = dataset.iid_field + dataset.config["LIST_SUFFIX"]
        if seq_field in feat:
            seq = feat[seq_field]
            nonpad = seq != 0
            items.append(seq[nonpad])
            users.append(feat[dataset.uid_field].unsqueeze(1).expand_as(seq)[nonpad])
    return sampling.history_keys(torch.cat(users), torch.cat(items), datasets[0].item_num)


class CandidatePoolSampler(AbstractSampler):
    """Draws candidate pools and proposal negatives for the training rows of a sequential dataset.

    Vectorised and bounded where RecBole's rejection loop is neither: rows still short after a few redraws
    take their negatives from the exact set of allowed items, and a user who interacted with every item
    gets history items (never the target) and is counted in :attr:`relaxed_rows`.

    Args:
        train_dataset (Dataset): the built training split; popularity and histories come from it only.
        config (Config): reads ``neg_exclude``, ``neg_popularity_alpha``, ``neg_pool_proposal``, ``seed``.
        distribution (str): ``'uniform'`` or ``'popularity'``: the proposal of the negatives drawn by
            :meth:`proposal_negatives`.
    """

    def __init__(self, train_dataset, config, distribution="uniform"):
        self.dataset = train_dataset
        self.phase = "train"
        self.uid_field = train_dataset.uid_field
        self.iid_field = train_dataset.iid_field
        self.item_num = train_dataset.item_num
        self.exclude = config["neg_exclude"]
        self.generator = torch.Generator().manual_seed(config["seed"] + config["local_rank"])  # a stream per rank
        self.relaxed_rows = 0  # rows whose exclusions were relaxed: too few allowed items in the catalogue
        self._device_copies = {}
        super().__init__(distribution=distribution, alpha=config["neg_popularity_alpha"])
        self.pool_probs = self.popularity_probs() if config["neg_pool_proposal"] == "popularity" else None
        self.pool_alias = None if self.pool_probs is None else sampling.AliasTable.from_probs(self.pool_probs)

    # RecBole hooks -------------------------------------------------------------------------------------------
    def _get_candidates_list(self):
        return self.dataset.inter_feat[self.iid_field].numpy()

    def _build_alias_table(self):
        """Popularity is drawn from a tensor :class:`~recbole_genni.sampling.AliasTable` of
        :meth:`popularity_probs`, not RecBole's per-draw Python one."""
        self.probs = self.popularity_probs()
        self.probs_alias = sampling.AliasTable.from_probs(self.probs)

    def get_used_ids(self):
        """Sorted ``user * item_num + item`` keys of every item in each user's training rows (targets and inputs)."""
        return dataset_history_keys(self.dataset)

    # GenNi ---------------------------------------------------------------------------------------------------
    def popularity_probs(self):
        """``count ** alpha`` normalised over the items seen in training (padding and unseen items 0), computed in
        log space so that no exponent overflows."""
        counts = torch.bincount(torch.as_tensor(self._get_candidates_list()).long(), minlength=self.item_num)
        seen = counts > 0
        seen[0] = False
        log_weights = torch.full((self.item_num,), -torch.inf, dtype=torch.float64)
        log_weights[seen] = self.alpha * counts[seen].double().log()
        return torch.softmax(log_weights, dim=0)

    def covers_catalogue(self, pool_size) -> bool:
        """Whether a pool of ``pool_size`` is the whole catalogue, each item once (exact GenNi)."""
        return pool_size >= self.item_num - 1

    def on_device(self, name, device):
        """The sampler's table ``name`` (``used_ids``, ``probs``, ``pool_probs``, ``pool_alias``) on ``device``,
        copied once, so a training step on a GPU moves no lookup table."""
        device = torch.device(device or "cpu")
        key = (name, str(device))
        if key not in self._device_copies:
            self._device_copies[key] = getattr(self, name).to(device)
        return self._device_copies[key]

    def candidate_pool(self, pool_size, num_rows=None, generator=None, device=None):
        """A candidate pool ``[M]`` (shared) or ``[num_rows, M]`` from the pool proposal, drawn on ``device`` with
        ``generator`` (default: the sampler's CPU stream). When M covers the catalogue the pool is every item once,
        shared by all rows (``neg_pool_size: all`` is exact GenNi)."""
        if self.covers_catalogue(pool_size):
            return torch.arange(1, self.item_num, device=device)
        proposal = None if self.pool_alias is None else self.on_device("pool_alias", device)
        generator = generator or self.generator
        return sampling.sample_item_ids(self.item_num, pool_size, num_rows, proposal, generator, device)

    def valid_mask(self, candidates, users, targets):
        """Bool ``[N, M]`` on the device of ``candidates`` (``[M]`` shared or ``[N, M]``; ``users`` and ``targets``
        on the same device): the candidates allowed as negatives under ``neg_exclude``.

        A shared pool on the CPU looks the rows' histories up in the pool (:meth:`pool_mask`, the least work); on
        a GPU every (row, candidate) pair is looked up in the history keys, which costs no host-device sync."""
        if candidates.dim() == 1 and candidates.device.type == "cpu":
            return self.pool_mask(users, targets)(candidates)
        history = self.exclude == "history"
        return sampling.exclusion_mask(
            candidates,
            targets=targets if self.exclude != "none" else None,
            keys=self.on_device("used_ids", candidates.device) if history else None,
            users=users,
            num_items=self.item_num,
            num_rows=users.shape[0],
        )

    def pool_mask(self, users, targets, device=None):
        """``mask(pool)`` -> bool ``[N, M]`` for shared pools ``[M]`` on ``device``: :meth:`valid_mask` with these
        rows' histories gathered once, so a catalogue streamed chunk by chunk costs O(history) per chunk."""
        history = None
        if self.exclude == "history":
            history = sampling.history_pairs(self.on_device("used_ids", device), users, self.item_num)
        targets = targets.to(device) if self.exclude != "none" else None
        return lambda pool: sampling.pool_exclusion_mask(pool.to(device), users.shape[0], targets, history)

    def proposal_negatives(self, users, targets, num, distribution=None):
        """``num`` negatives per row ``[N, num]`` from ``distribution`` (default: the sampler's), excluding per
        config: i.i.d. draws, each one that is not allowed drawn again (rejection), so that every entry is a draw
        from the distribution restricted to its row's allowed items; a row with entries still not allowed after
        a few rounds is drawn from its allowed items directly."""
        popularity = (distribution or self.distribution) == "popularity"
        probs, proposal = (self.probs, self.probs_alias) if popularity else (None, None)
        out = sampling.sample_item_ids(self.item_num, num, users.shape[0], proposal, self.generator)
        bad = ~self.valid_mask(out, users, targets)
        for _ in range(_MAX_REDRAWS):
            rows = bad.any(dim=1).nonzero().squeeze(1)
            if rows.numel() == 0:
                return out
            redrawn, rejected = out[rows], bad[rows]
            redrawn[rejected] = sampling.sample_item_ids(self.item_num, int(rejected.sum()), None, proposal,
                                                         self.generator)
            out[rows] = redrawn
            bad[rows] = ~self.valid_mask(redrawn, users[rows], targets[rows])
        for row in bad.any(dim=1).nonzero().squeeze(1).tolist():
            out[row] = self._draw_from_complement(int(users[row]), int(targets[row]), num, probs)
        return out

    def log_pool_rate(self, items, pool_size):
        """Log of the expected copies of each item in a pool of ``pool_size`` drawn by :meth:`candidate_pool`: the
        factor from a sum over the pool to a sum over the catalogue. 0 for the whole catalogue (each item once)."""
        if self.covers_catalogue(pool_size):
            return torch.zeros(items.shape, device=items.device)
        if self.pool_probs is None:
            return torch.full(items.shape, math.log(pool_size / (self.item_num - 1)), device=items.device)
        return (pool_size * self.on_device("pool_probs", items.device)[items]).float().log()

    def log_proposal(self, items, users, targets, distribution=None):
        """``log q`` ``[N, J]`` of ``items`` under the proposal of :meth:`proposal_negatives` (default: the
        sampler's distribution) restricted to each row's allowed items, on the device of ``items``: uniform is
        ``1 / (allowed items)``, popularity ``p / (1 - the excluded items' p)``."""
        device = items.device
        excluded_count, excluded_mass = self._excluded(users.to(device), targets.to(device), device)
        if (distribution or self.distribution) == "popularity":
            probs = self.on_device("probs", device)
            return probs[items].log().float() - torch.log1p(-excluded_mass).float().unsqueeze(1)
        allowed = (self.item_num - 1 - excluded_count).clamp(min=1).float()
        return (-allowed.log()).unsqueeze(1).expand(items.shape).clone()

    def _excluded(self, users, targets, device):
        """Per row, the number of items ``neg_exclude`` rules out, and their popularity mass (``[N]`` each)."""
        zeros = torch.zeros(users.shape[0], device=device)
        if self.exclude == "none":
            return zeros.long(), zeros.double()
        probs = self.on_device("probs", device) if self.distribution == "popularity" else None
        target_mass = probs[targets] if probs is not None else zeros.double()
        if self.exclude == "target":
            return torch.ones_like(users), target_mass
        keys = self.on_device("used_ids", device)
        rows, items = sampling.history_pairs(keys, users, self.item_num)
        target_apart = ~sampling.in_history(keys, users, targets.unsqueeze(1), self.item_num).squeeze(1)
        count = torch.bincount(rows, minlength=users.shape[0]) + target_apart.long()
        mass = target_mass * target_apart
        if probs is not None:
            mass = mass.index_add(0, rows, probs[items])
        return count, mass

    def _draw_from_complement(self, user, target, num, probs):
        """Exact draw from the allowed items of one row; relaxes the history, then duplicates, if too few remain."""
        items = torch.arange(1, self.item_num)
        allowed = self.valid_mask(items, torch.tensor([user]), torch.tensor([target]))[0]
        weights = (probs[1:] if probs is not None else torch.ones(items.numel(), dtype=torch.double)).clone()
        if int((allowed & (weights > 0)).sum()) < num:
            self.relaxed_rows += 1
            allowed = items != target if self.item_num > 2 else torch.ones_like(items, dtype=torch.bool)
            weights = torch.ones(items.numel(), dtype=torch.double)
        weights[~allowed] = 0
        replace = int((weights > 0).sum()) < num
        return items[torch.multinomial(weights, num, replacement=replace, generator=self.generator)]


def candidates_for(config, train_dataset) -> CandidatePoolSampler:
    """The candidates of ``neg_sampler`` over the training split, drawn from its class's proposal."""
    return CandidatePoolSampler(train_dataset, config, SAMPLERS[config["neg_sampler"]].proposal)


def negative_sampler(config, train_dataset):
    """The :class:`~recbole_genni.negatives.base.NegativeSampler` of ``neg_sampler`` over the training split."""
    return SAMPLERS[config["neg_sampler"]](config, candidates_for(config, train_dataset))
