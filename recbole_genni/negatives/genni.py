"""``neg_sampler: genni``: K negatives drawn from the model's softmax(score / neg_temperature) over a scored pool.

The pool is M candidates from the pool proposal (``neg_pool_size``; uniform or popularity), shared by the batch or
one per row, or the whole catalogue, each item once (``neg_pool_size: all``: exact GenNi). A pool larger than
``neg_score_chunk`` is scored chunk by chunk with a running Gumbel-top-k
(:func:`~recbole_genni.sampling.streamed_softmax_draw`), so memory stays O(rows x chunk) whatever the catalogue
size (with ``neg_replacement``, a reservoir over chunks).
"""

import torch

from recbole_genni import sampling
from recbole_genni.errors import GenNiConfigError
from recbole_genni.negatives.base import NegativeSampler, excluding
from recbole_genni.utils import count_or_fraction


def resolve_pool_size(pool_size, num_items: int) -> int:
    """M for a catalogue of ``num_items`` ids (padding included): an int, a fraction of the catalogue (at least 1)
    or ``'all'``; checked against the catalogue."""
    real_items = num_items - 1
    if pool_size == "all":
        return real_items
    size = count_or_fraction(pool_size, real_items)
    if size > real_items:
        raise GenNiConfigError(
            f"neg_pool_size: {pool_size} is larger than the catalogue ({real_items} items); "
            "use a smaller size, a fraction in (0, 1], or 'all'."
        )
    return size


def _pool_too_small(config, candidates, can_replace):
    """The one refusal of K distinct draws from a smaller pool (``candidates``: the pool's size where it depends on
    the catalogue, else None)."""
    here = f" ({candidates} candidates here)" if candidates is not None else ""
    fixes = "raise neg_pool_size, lower neg_num, or set neg_replacement: True" if can_replace else \
        "raise neg_pool_size or lower neg_num"
    return GenNiConfigError(
        f"neg_num: {config['neg_num']} is larger than neg_pool_size: {config['neg_pool_size']}{here}; {fixes}.")


class GenNiNegatives(NegativeSampler):
    """GenNi (Chen et al., arXiv 2208.03645): the current model scores a pool through the caller's ``score``
    callback and K negatives are drawn from softmax(score / neg_temperature) over its allowed candidates: K distinct
    pool columns (a pool drawn with replacement can hold an item twice, so an item can be drawn twice), or with
    ``neg_replacement`` K independent draws.

    Rows with NaN/inf scores get uniform draws from their pool (a streamed pool: proposal negatives); both they and
    rows with too few allowed candidates are counted in :attr:`stats` (``nonfinite_rows``, ``fallback_rows``).
    """

    uses_model = True
    #: whether ``neg_replacement: True`` is allowed (a refusal suggests it)
    can_replace = True

    def __init__(self, config, candidates):
        super().__init__(config, candidates)
        self.temperature = float(config["neg_temperature"])
        self.replacement = config["neg_replacement"]
        self.pool_shared = config["neg_pool_shared"]
        self.pool_size = resolve_pool_size(config["neg_pool_size"], candidates.item_num)
        self.score_chunk = config["neg_score_chunk"]

    @classmethod
    def resolve_keys(cls, config, user_keys):
        pool = config["neg_pool_size"]
        if isinstance(pool, int) and config["neg_num"] > pool and not config["neg_replacement"]:
            raise _pool_too_small(config, None, cls.can_replace)

    @classmethod
    def check_catalogue(cls, config, num_items):
        pool = resolve_pool_size(config["neg_pool_size"], num_items)
        if config["neg_num"] > pool and not config["neg_replacement"]:
            raise _pool_too_small(config, pool, cls.can_replace)

    @classmethod
    def describe(cls, config) -> str:
        how = "with replacement" if config["neg_replacement"] else "distinct"
        softmax = f"softmax(score / {config['neg_temperature']})"
        drawn = f"K={config['neg_num']} {how} from {softmax} over {pool_in_words(config)}"
        return f"{config['neg_sampler']}, {drawn}, {excluding(config)}{schedule_in_words(config)}"

    @property
    def scores_whole_catalogue(self) -> bool:
        """Whether this epoch's draws score every item in one ``[N, |I|]`` matrix (exact GenNi, not streamed)."""
        whole = self.candidates.covers_catalogue(self.pool_size)
        return self.generates and whole and self.pool_size <= self.score_chunk

    @torch.no_grad()
    def draw_from_scores(self, users, targets, score, with_log_count):
        if score is None:
            raise RuntimeError(f"neg_sampler: {self.neg_sampler} needs the model's scores; none were given")
        n, device = len(users), targets.device
        pool = self.candidates.candidate_pool(
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
        valid = self.candidates.valid_mask(pool, users, targets)
        short = sampling.short_rows(valid, 1 if self.replacement else self.neg_num)
        # a short row draws from its whole pool (then replaced); on a CPU the check is free and saves an [N, M] pass
        sample_valid = valid if device.type == "cpu" and not bool(short.any()) else valid | short.unsqueeze(1)
        generator = self._generator(device)
        drawn = sampling.softmax_draw(scores, self.neg_num, self.temperature, sample_valid, generator,
                             replacement=self.replacement, with_log_count=with_log_count)
        cols = drawn.columns
        negatives = pool_rows.gather(1, cols)
        log_count = drawn.log_count + self.candidates.log_pool_rate(negatives, pool.shape[-1]) \
            if with_log_count else None
        self.stats.fallback_rows += (short & finite).sum()
        fallen = short | ~finite
        self._replace_rows(short, users, targets, negatives, log_count)
        self.telemetry.margins(target_scores.unsqueeze(1) - scores.gather(1, cols), ~fallen)
        self.telemetry.ranks(scores, cols, valid, ~fallen)
        count_of = self._count_of(drawn, pool, score, users, targets, fallen, negatives.clone()) \
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
            if not self.candidates.covers_catalogue(self.pool_size):
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
            shared_pool_mask = self.candidates.pool_mask(users, targets, device)

            def valid_chunk(start, end):
                return shared_pool_mask(pool[start:end])
        else:
            def valid_chunk(start, end):
                return self.candidates.valid_mask(pool[:, start:end], users, targets)

        drawn = sampling.streamed_softmax_draw(
            score_chunk, pool.shape[-1], self.neg_num, self.temperature, self.score_chunk, valid_chunk,
            self._generator(device), replacement=self.replacement, with_log_count=with_log_count,
        )
        bad_rows |= ~torch.isfinite(target_scores[0])
        self.stats.nonfinite_rows += bad_rows.sum()
        negatives = pool_rows.gather(1, drawn.columns)
        log_count = drawn.log_count + self.candidates.log_pool_rate(negatives, pool.shape[-1]) \
            if with_log_count else None
        self.stats.fallback_rows += (drawn.short & ~bad_rows).sum()
        fallen = drawn.short | bad_rows
        self._replace_rows(fallen, users, targets, negatives, log_count)
        self.telemetry.margins(target_scores[0].unsqueeze(1) - drawn.scores, ~fallen)
        count_of = self._count_of(drawn, pool, score, users, targets, fallen, negatives.clone()) \
            if with_log_count else None
        return negatives, log_count, count_of



def pool_in_words(config) -> str:
    """Where a model-based sampler's candidates come from, in words."""
    if config["neg_pool_size"] == "all":
        return "the whole catalogue"
    shared = "shared by the batch" if config["neg_pool_shared"] else "per row"
    return f"a pool of {config['neg_pool_size']} ({config['neg_pool_proposal']}, {shared})"


def schedule_in_words(config) -> str:
    """The warm-up epochs and the uniform mix, in words (empty when neither is set)."""
    return "".join([
        f", {config['neg_warmup_epochs']} uniform warm-up epoch(s)" if config["neg_warmup_epochs"] else "",
        f", {config['neg_uniform_mix']:g} of them uniform" if float(config["neg_uniform_mix"]) else "",
    ])
