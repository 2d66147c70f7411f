"""The negative generator shared by the data loader (any RecBole model) and :class:`GenNiSASRec` (every position).

It turns a ``score(pool) -> (pool_scores, target_scores)`` callback into K negatives per row, following the
``neg_*`` keys, and keeps the telemetry of the current epoch.
"""

import math
from logging import getLogger

import torch

from recbole_genni import sampling
from recbole_genni.options import MODEL_BASED_SAMPLERS, resolve_pool_size
from recbole_genni.telemetry import NegativeStats, NegativeTelemetry


class NegativeGenerator:
    """K negatives per row from ``neg_sampler``, using a :class:`~recbole_genni.sampler.CandidatePoolSampler`.

    ``genni`` scores a pool of M candidates through the caller's ``score`` callback and draws from
    softmax(score / neg_temperature) over the allowed candidates: K distinct pool columns (a pool drawn with
    replacement can hold an item twice, so an item can be drawn twice), or with ``neg_replacement`` K independent
    draws; ``dns`` takes the top-K; ``uniform`` and ``popularity`` (and the warm-up epochs) need no model.
    ``neg_pool_size: all`` makes the pool the whole catalogue, each item once: exact GenNi. A pool larger than
    ``neg_score_chunk`` is scored chunk by chunk with a running Gumbel-top-k
    (:func:`~recbole_genni.sampling.draw_streaming`), so memory stays O(rows x chunk) whatever the
    catalogue size (with ``neg_replacement``, a reservoir over chunks). ``neg_uniform_mix`` replaces each
    negative by a uniform one with that probability (1: every negative, and the model is not asked).

    Rows with NaN/inf scores get uniform draws from their pool (a streamed pool: proposal negatives) and rows with
    too few allowed candidates get proposal negatives; both are counted in :attr:`stats` (``nonfinite_rows``,
    ``fallback_rows``).
    """

    def __init__(self, config, sampler):
        self.sampler = sampler
        self.neg_sampler = config["neg_sampler"]
        self.neg_num = config["neg_num"]
        self.temperature = 0.0 if self.neg_sampler == "dns" else float(config["neg_temperature"])
        self.replacement = config["neg_replacement"]
        self.pool_shared = config["neg_pool_shared"]
        self.warmup_epochs = config["neg_warmup_epochs"]
        self.uniform_mix = float(config["neg_uniform_mix"])
        self.pool_size = resolve_pool_size(config["neg_pool_size"], sampler.item_num)
        self.score_chunk = config["neg_score_chunk"]
        self.epoch = 0
        self._device_generators = {}
        self.telemetry = NegativeTelemetry(config["seed"] + config["local_rank"] + 7919)

    @property
    def stats(self) -> NegativeStats:
        """The current epoch's telemetry (see :mod:`recbole_genni.telemetry`)."""
        return self.telemetry.stats

    @property
    def generates(self) -> bool:
        """Whether this epoch's negatives come from the model."""
        return (self.neg_sampler in MODEL_BASED_SAMPLERS and self.epoch >= self.warmup_epochs
                and self.uniform_mix < 1)

    @property
    def scores_whole_catalogue(self) -> bool:
        """Whether this epoch's draws score every item in one ``[N, |I|]`` matrix (exact GenNi, not streamed), so
        that a model holding that product can give it (``score(None)``) and read its loss's logits from it too."""
        return self.generates and self.sampler.covers_catalogue(self.pool_size) and self.pool_size <= self.score_chunk

    def pop_stats(self) -> NegativeStats:
        """This epoch's telemetry, reset for the next; warns if the model gave NaN/inf scores."""
        stats = self.telemetry.pop()
        stats.relaxed_rows += self.sampler.relaxed_rows
        self.sampler.relaxed_rows = 0
        if stats.nonfinite_rows:
            getLogger().warning(
                f"epoch {self.epoch}: the model gave NaN/inf scores for {int(stats.nonfinite_rows)} row(s); their "
                "negatives ignore the scores (counted as nonfinite_rows)"
            )
        return stats

    def generate(self, users, targets, score=None, with_log_count=False):
        """``(negatives [N, K], log_count [N, K] or None)`` on the device of ``targets``.

        A model-scored batch is drawn on the model's device: pools, masks and draws involve no host work per
        row, and only three host-device syncs (one checks for NaN/inf scores, two for rows with too few allowed
        candidates). The telemetry stays on the device until :meth:`pop_stats`.

        Args:
            users, targets: LongTensor ``[N]``, on the device of the model's scores when :attr:`generates`.
            score: ``score(candidates) -> (scores [N, M], target_scores [N])`` for ``candidates`` ``[M]`` or
                ``[N, M]`` on ``targets``' device, or None for every real item (ids ``1 .. |I| - 1``, which a score
                matrix can give as a view, with no copy); needed when :attr:`generates`, and called only then. The
                generator never writes to the scores. Its time is reported as ``scoring_seconds``.
            with_log_count: also return, for each negative, the log of the number of times it is expected among
                the row's K draws, over the whole catalogue: what a sampled softmax subtracts (logQ correction).
                Proposal draws: ``log(K q)``, q restricted to the row's allowed items. Model draws with
                ``neg_replacement``: ``log(K q)``; without: the log inclusion probability given the pool
                (:func:`~recbole_genni.sampling.draw`); both plus the log of the item's
                expected copies in the pool (:meth:`~recbole_genni.sampler.CandidatePoolSampler.log_pool_rate`).
                With ``0 < neg_uniform_mix = m < 1``: the expected count of the item in its slot under the mixture
                given the pool, ``(1 - m) c(item) + m K u(item)``, ``c`` the count under the model's draw from this
                pool (no pool rate: the uniform part reaches every allowed item) and ``u`` the uniform proposal.
        """
        device = targets.device
        users = users.to(device)
        if score is not None:
            score = self._timed_scoring(score, device)
        with self.telemetry.clock("generation", device):
            count_of = None
            if self.generates:
                negatives, log_count, count_of = self._from_model(users, targets, score, with_log_count)
            else:
                distribution = "uniform" if self.uniform_mix == 1 else None
                negatives = self.sampler.draw(users.cpu(), targets.cpu(), self.neg_num, distribution).to(device)
                log_count = self._proposal_log_count(negatives, users, targets, distribution) if with_log_count \
                    else None
            if 0 < self.uniform_mix < 1:
                negatives, log_count = self._mix_uniform(users, targets, negatives, log_count, count_of)
        self.telemetry.hits(users, targets, negatives, self.sampler.on_device("used_ids", negatives.device),
                            self.sampler.item_num)
        return negatives, log_count

    def _timed_scoring(self, score, device):
        def timed(candidates):
            with self.telemetry.clock("scoring", device):
                return score(candidates)
        return timed

    def _mix_uniform(self, users, targets, negatives, log_count, count_of):
        """Replace each negative by a uniform one with probability ``neg_uniform_mix``, and give every negative
        its expected count under the mixture (see :meth:`generate`)."""
        device = negatives.device
        mixed = (torch.rand(negatives.shape, generator=self.sampler.generator) < self.uniform_mix).to(device)
        rows = mixed.any(dim=1)
        if bool(rows.any()):
            rows_cpu = rows.cpu()
            uniform = self.sampler.draw(users.cpu()[rows_cpu], targets.cpu()[rows_cpu], self.neg_num, "uniform")
            negatives = negatives.clone()
            negatives[rows] = torch.where(mixed[rows], uniform.to(device), negatives[rows])
        if log_count is None:
            return negatives, None
        if count_of is None:  # proposal draws: the count of any item is the proposal's
            own = self._proposal_log_count(negatives, users, targets)
        else:
            own = count_of(negatives)
        uniform_count = self._proposal_log_count(negatives, users, targets, "uniform")
        mix = self.uniform_mix
        return negatives, torch.logaddexp(own + math.log1p(-mix), uniform_count + math.log(mix))

    def _proposal_log_count(self, negatives, users, targets, distribution=None):
        """``log(K q)`` of proposal draws (uniform or popularity, q over the row's allowed items)."""
        return self.sampler.log_proposal(negatives, users, targets, distribution) + math.log(self.neg_num)

    def random_state(self) -> dict:
        """The generator's random streams (the sampler's, the per-device Gumbel streams and the telemetry's), for
        checkpoints."""
        return {
            "sampler": self.sampler.generator.get_state(),
            "devices": {key: gen.get_state() for key, gen in self._device_generators.items()},
            "telemetry": self.telemetry.generator.get_state(),
        }

    def set_random_state(self, state):
        # device streams first: creating one draws a seed from the sampler's stream
        for device, value in state["devices"].items():
            self._generator(device).set_state(value)
        self.sampler.generator.set_state(state["sampler"])
        if "telemetry" in state:
            self.telemetry.generator.set_state(state["telemetry"])

    def _generator(self, device):
        """The Gumbel-noise stream on ``device``, seeded from the sampler's stream on first use."""
        key = str(device)
        if key not in self._device_generators:
            gen = torch.Generator(device=key)
            gen.manual_seed(int(torch.randint(2**62, (1,), generator=self.sampler.generator)))
            self._device_generators[key] = gen
        return self._device_generators[key]

    @torch.no_grad()
    def _from_model(self, users, targets, score, with_log_count):
        """``(negatives, log_count, count_of)``: ``count_of(items)`` gives the log expected count of any items
        ``[N, J]`` under this draw from this pool (see :meth:`generate`), or is None without ``with_log_count``."""
        if score is None:
            raise RuntimeError(f"neg_sampler: {self.neg_sampler} needs the model's scores; none were given")
        n, device = len(users), targets.device
        pool = self.sampler.draw_pool(
            self.pool_size, None if self.pool_shared else n, self._generator(device), device)  # [M] or [N, M]
        pool_rows = pool.expand(n, -1) if pool.dim() == 1 else pool
        if pool.shape[-1] > self.score_chunk:
            return self._streamed(pool, pool_rows, users, targets, score, with_log_count)
        scores, target_scores = score(None if self.scores_whole_catalogue else pool)
        scores, target_scores = scores.float(), target_scores.float()
        finite = torch.isfinite(scores.sum(dim=1) + target_scores)  # one reduction; NaN/inf propagate
        if not bool(finite.all()):  # a copy only when needed
            scores = scores.masked_fill(~finite.unsqueeze(1), 0.0)  # uniform over the pool
        self.stats.nonfinite_rows += (~finite).sum()
        valid = self.sampler.valid_mask(pool, users, targets)
        short = sampling.short_rows(valid, 1 if self.replacement else self.neg_num)
        # a short row draws from its whole pool (then replaced); on a CPU the check is free and saves an [N, M] pass
        sample_valid = valid if device.type == "cpu" and not bool(short.any()) else valid | short.unsqueeze(1)
        generator = self._generator(device)
        draw = sampling.draw(scores, self.neg_num, self.temperature, sample_valid, generator,
                             replacement=self.replacement, with_log_count=with_log_count)
        cols = draw.columns
        negatives = pool_rows.gather(1, cols)
        log_count = draw.log_count + self.sampler.log_pool_rate(negatives, pool.shape[-1]) \
            if with_log_count else None
        self.stats.fallback_rows += (short & finite).sum()
        fallen = short | ~finite
        self._replace_rows(short, users, targets, negatives, log_count)
        self.telemetry.margins(target_scores.unsqueeze(1) - scores.gather(1, cols), ~fallen)
        self.telemetry.ranks(scores, cols, valid, ~fallen)
        count_of = self._count_of(draw, pool, score, users, targets, fallen, negatives.clone()) \
            if with_log_count else None
        return negatives, log_count, count_of

    def _count_of(self, draw, pool, score, users, targets, fallen, drawn_items):
        """``count_of(items)``: the log expected count of ``items`` ``[N, J]`` under ``draw`` given ``pool``
        (copies of the item in the pool times a column's count; -inf outside the pool), or the proposal's on the
        rows given proposal negatives (``fallen``); ``drawn_items`` ``[N, K]`` are the draw's items, whose keys beat
        the (K + 1)-th largest key where any other item's has to beat the K-th."""
        @torch.no_grad()
        def count_of(items):
            item_scores = score(items)[0].float()
            in_draw = None if draw.replacement else (items.unsqueeze(2) == drawn_items.unsqueeze(1)).any(dim=2)
            counts = sampling.log_expected_counts(draw, item_scores, self.temperature, self.neg_num, in_draw)
            if not self.sampler.covers_catalogue(self.pool_size):
                counts = counts + sampling.pool_copies(pool, items).float().log()
            proposal = self._proposal_log_count(items, users, targets)
            return torch.where(fallen.unsqueeze(1), proposal, counts)
        return count_of

    def _streamed(self, pool, pool_rows, users, targets, score, with_log_count):
        """:meth:`_from_model` for a pool scored ``neg_score_chunk`` columns at a time; never holds [N, M]."""
        n, device = len(users), targets.device
        bad_rows = torch.zeros(n, dtype=torch.bool, device=device)
        target_scores = []

        def score_chunk(start, end):
            chunk_scores, chunk_target_scores = score(pool[..., start:end])
            if not target_scores:
                target_scores.append(chunk_target_scores.float())
            bad_rows.logical_or_(~torch.isfinite(chunk_scores.sum(dim=1)))  # one reduction; NaN/inf propagate
            return torch.nan_to_num(chunk_scores.float(), nan=0.0, posinf=0.0, neginf=0.0)

        if pool.dim() == 1:
            shared_pool_mask = self.sampler.pool_mask(users, targets, device)

            def valid_chunk(start, end):
                return shared_pool_mask(pool[start:end])
        else:
            def valid_chunk(start, end):
                return self.sampler.valid_mask(pool[:, start:end], users, targets)

        draw = sampling.draw_streaming(
            score_chunk, pool.shape[-1], self.neg_num, self.temperature, self.score_chunk, valid_chunk,
            self._generator(device), replacement=self.replacement, with_log_count=with_log_count,
        )
        bad_rows |= ~torch.isfinite(target_scores[0])
        self.stats.nonfinite_rows += bad_rows.sum()
        negatives = pool_rows.gather(1, draw.columns)
        log_count = draw.log_count + self.sampler.log_pool_rate(negatives, pool.shape[-1]) \
            if with_log_count else None
        self.stats.fallback_rows += (draw.short & ~bad_rows).sum()
        fallen = draw.short | bad_rows
        self._replace_rows(fallen, users, targets, negatives, log_count)
        self.telemetry.margins(target_scores[0].unsqueeze(1) - draw.scores, ~fallen)
        count_of = self._count_of(draw, pool, score, users, targets, fallen, negatives.clone()) \
            if with_log_count else None
        return negatives, log_count, count_of

    def _replace_rows(self, rows, users, targets, negatives, log_count):
        """Give ``rows`` (bool [N]) proposal negatives in place (and their log expected counts): rows whose scores
        cannot be used (too few allowed candidates; NaN/inf in a streamed pool)."""
        if not bool(rows.any()):
            return
        rows_cpu = rows.cpu()
        proposal = self.sampler.draw(users.cpu()[rows_cpu], targets.cpu()[rows_cpu], self.neg_num)
        negatives[rows] = proposal.to(negatives.device)
        if log_count is not None:
            log_count[rows] = self._proposal_log_count(negatives[rows], users[rows], targets[rows])
