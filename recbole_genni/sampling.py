"""Sampling math for GenNi: candidate pools, exclusion masks and model-aware negative draws.

Pure tensor functions with no RecBole import, so they can be used from any PyTorch training loop::

    pool = sample_item_ids(num_items=1000, pool_size=100, generator=g)          # [M] candidate ids
    scores = user_emb @ item_emb[pool].T                                       # [N, M]
    valid = exclusion_mask(pool, targets=pos, keys=keys, users=uid, num_items=1000)
    drawn = softmax_draw(scores, num_samples=2, temperature=0.5, valid=valid, generator=g)
    negatives = pool[drawn.columns]                                            # [N, 2]; drawn.log_count: logQ

Item id 0 is padding everywhere (RecBole's convention); real items are ``1 .. num_items - 1``.

Reference: Chen et al., "Generating Negative Samples for Sequential Recommendation", arXiv 2208.03645.
"""

import math
from typing import Callable, NamedTuple, Optional

import torch

__all__ = [
    "AliasTable",
    "sample_item_ids",
    "history_keys",
    "in_history",
    "exclusion_mask",
    "history_pairs",
    "pool_exclusion_mask",
    "softmax_draw",
    "streamed_softmax_draw",
    "SoftmaxDraw",
    "StreamedDraw",
    "log_expected_counts",
    "log_inclusion_probs",
    "short_rows",
    "pool_copies",
    "pool_ranks",
]


class AliasTable(NamedTuple):
    """Walker's alias table of a distribution over ids: a draw is one uniform column and one coin, O(1), where
    ``torch.multinomial`` with replacement searches the cumulative sum for every draw."""

    accept: torch.Tensor  # [n] float32: probability of keeping the drawn column
    alias: torch.Tensor  # [n] long: the id drawn when the column is not kept

    @classmethod
    def from_probs(cls, probs: torch.Tensor) -> "AliasTable":
        """Vose's construction, O(n), from ``probs`` ``[n]`` (non-negative, summing to 1); exact up to float64."""
        n = probs.numel()
        scaled = (probs.double() * n).tolist()
        accept = [1.0] * n
        alias = list(range(n))
        small = [i for i, p in enumerate(scaled) if p < 1.0]
        large = [i for i, p in enumerate(scaled) if p >= 1.0]
        while small and large:
            low, high = small.pop(), large[-1]
            accept[low], alias[low] = scaled[low], high
            scaled[high] -= 1.0 - scaled[low]
            if scaled[high] < 1.0:
                small.append(large.pop())
        # what remains holds 1 up to rounding: always kept
        return cls(torch.tensor(accept, dtype=torch.float32), torch.tensor(alias, dtype=torch.long))

    def to(self, device) -> "AliasTable":
        return AliasTable(self.accept.to(device), self.alias.to(device))

    def sample(self, shape, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """Ids ``shape``, drawn with replacement, on the table's device."""
        device = self.accept.device
        column = torch.randint(0, self.accept.numel(), shape, generator=generator, device=device)
        keep = torch.rand(shape, generator=generator, device=device) < self.accept[column]
        return torch.where(keep, column, self.alias[column])


def sample_item_ids(
    num_items: int,
    pool_size: int,
    num_rows: Optional[int] = None,
    proposal: Optional[AliasTable] = None,
    generator: Optional[torch.Generator] = None,
    device=None,
) -> torch.Tensor:
    """Draw a candidate pool of item ids, with replacement, from a uniform or given proposal.

    Args:
        num_items: catalogue size including the padding id 0; ids are drawn from ``1 .. num_items - 1``.
        pool_size: M, candidates per pool.
        num_rows: ``None`` for one pool shared by the batch (``[M]``), else one pool per row (``[num_rows, M]``).
        proposal: optional :class:`AliasTable` over ids ``[num_items]`` (id 0 of probability 0) on ``device``,
            e.g. of popularity ** alpha; uniform over real items when ``None``.
        generator: random generator on ``device``.

    Returns:
        LongTensor ``[M]`` or ``[num_rows, M]``.
    """
    if num_items < 2:
        raise ValueError(f"sample_item_ids needs at least one real item, got num_items={num_items}")
    if pool_size < 1:
        raise ValueError(f"pool_size must be >= 1, got {pool_size}")
    shape = (pool_size,) if num_rows is None else (num_rows, pool_size)
    if proposal is None:
        return torch.randint(1, num_items, shape, generator=generator, device=device)
    if proposal.accept.shape != (num_items,):
        raise ValueError(f"proposal must cover {num_items} ids, got {list(proposal.accept.shape)}")
    return proposal.sample(shape, generator)


def history_keys(users: torch.Tensor, items: torch.Tensor, num_items: int) -> torch.Tensor:
    """Encode (user, item) pairs as sorted unique int64 keys ``user * num_items + item`` for fast membership tests."""
    return torch.unique(users.long() * num_items + items.long())  # sorted


def in_history(
    keys: torch.Tensor, users: torch.Tensor, items: torch.Tensor, num_items: int
) -> torch.Tensor:
    """Whether each ``items[n, m]`` is in the history of ``users[n]``; ``keys`` from :func:`history_keys`.

    ``items`` may be ``[M]`` (a shared pool) or ``[N, M]``; the result is bool ``[N, M]``.
    """
    if keys.numel() == 0:
        return torch.zeros(users.shape[0], items.shape[-1], dtype=torch.bool, device=items.device)
    query = users.long().unsqueeze(1) * num_items + items.long().expand(users.shape[0], -1)  # [N, M]
    pos = torch.searchsorted(keys, query).clamp_(max=keys.numel() - 1)
    return keys[pos] == query


def exclusion_mask(
    candidates: torch.Tensor,
    targets: Optional[torch.Tensor] = None,
    keys: Optional[torch.Tensor] = None,
    users: Optional[torch.Tensor] = None,
    num_items: Optional[int] = None,
    num_rows: Optional[int] = None,
) -> torch.Tensor:
    """Bool ``[N, M]``: True where a candidate may be a negative for that row.

    Always excludes the padding id 0; excludes each row's target when ``targets`` (``[N]``) is given, and the
    user's history when ``keys`` (from :func:`history_keys`), ``users`` and ``num_items`` are given.
    ``candidates`` is ``[M]`` (shared pool; then ``num_rows`` or ``targets``/``users`` fix N) or ``[N, M]``.
    """
    if candidates.dim() == 1:
        n = num_rows if num_rows is not None else (targets if targets is not None else users).shape[0]
        cand = candidates.unsqueeze(0).expand(n, -1)
    else:
        cand = candidates
    valid = cand != 0
    if targets is not None:
        valid &= cand != targets.unsqueeze(1)
    if keys is not None:
        valid &= ~in_history(keys, users, cand, num_items)
    return valid


def _expand_ranges(starts: torch.Tensor, counts: torch.Tensor):
    """``(owner, position)`` of every element of the ranges ``starts[j] .. starts[j] + counts[j] - 1``, flat."""
    owner = torch.repeat_interleave(torch.arange(counts.shape[0], device=counts.device), counts)
    offset = torch.arange(owner.shape[0], device=counts.device) - (torch.cumsum(counts, 0) - counts)[owner]
    return owner, starts[owner] + offset


def history_pairs(keys: torch.Tensor, users: torch.Tensor, num_items: int):
    """``(rows, items)``: every item in the history of each ``users[row]``, as two flat LongTensors.

    ``keys`` from :func:`history_keys`; the cost is the size of these users' histories, not of the catalogue.
    """
    users = users.long().to(keys.device)
    lo = torch.searchsorted(keys, users * num_items)
    rows, index = _expand_ranges(lo, torch.searchsorted(keys, (users + 1) * num_items) - lo)
    return rows, keys[index] - users[rows] * num_items


def pool_exclusion_mask(
    pool: torch.Tensor, num_rows: int, targets: Optional[torch.Tensor] = None, history: Optional[tuple] = None
) -> torch.Tensor:
    """:func:`exclusion_mask` for one pool ``[M]`` shared by ``num_rows`` rows (duplicates allowed).

    ``history`` is ``(rows, items)`` from :func:`history_pairs`. The rows' history items are looked up in the sorted
    pool, O(pairs x log M), instead of every (row, candidate) pair in the histories, O(N x M x log |keys|).
    """
    valid = (pool != 0).unsqueeze(0).expand(num_rows, -1).clone()
    cpu = pool.device.type == "cpu"
    pairs = [history] if history is not None else []
    if targets is not None and cpu:
        # each row's target as one more (row, item) pair: on a CPU, comparing every column with the row's target is
        # an [N, M] pass many times slower than these lookups
        pairs.append((torch.arange(num_rows), targets))
    elif targets is not None:
        valid &= pool.unsqueeze(0) != targets.unsqueeze(1)  # on a GPU one kernel, and no host sync
    if pairs:
        rows, items = (torch.cat(parts) for parts in zip(*pairs))
        if cpu and bool((pool[1:] >= pool[:-1]).all()):  # the whole catalogue comes sorted: no sort a batch
            sorted_pool, order = pool, torch.arange(len(pool))
        else:
            sorted_pool, order = pool.sort()
        lo = torch.searchsorted(sorted_pool, items)
        pair, index = _expand_ranges(lo, torch.searchsorted(sorted_pool, items, right=True) - lo)
        valid[rows[pair], order[index]] = False
    return valid


def softmax_draw(
    scores: torch.Tensor,
    num_samples: int,
    temperature: float = 1.0,
    valid: Optional[torch.Tensor] = None,
    generator: Optional[torch.Generator] = None,
    replacement: bool = False,
    with_log_count: Optional[bool] = None,
) -> "SoftmaxDraw":
    """Draw ``num_samples`` columns per row from softmax(scores / temperature) over the valid columns.

    Without replacement (the default) the K draws are distinct columns (Gumbel-top-k, i.e. sequential sampling from
    the softmax, so the first follows the softmax exactly); ``temperature == 0`` returns the top-K valid columns
    (DNS). With ``replacement`` they are K independent draws: a likely column can repeat, and the draw costs one exp
    pass and a multinomial, no top-k. Scores are never divided by the temperature, only score differences, so any
    temperature > 0 is exact (a tiny one approaches the argmax).

    The draw's ``log_count`` ``[N, K]`` is each drawn column's log expected count among the row's K draws, what a
    sampled softmax subtracts (logQ): ``log(K q)`` with replacement; without, the inclusion probability given the row's
    (K + 1)-th largest perturbed key (priority sampling: Duffield, Lund & Thorup 2007; Kool, van Hoof & Welling
    2019), which weights the likeliest columns, drawn at most once, correctly where ``1 / (K q)`` would not.
    :func:`log_expected_counts` gives the same for any other column of the row.

    Args:
        scores: float ``[N, M]``; non-finite entries are not allowed (check with ``torch.isfinite`` first).
        num_samples: K (with replacement it may exceed a row's valid columns).
        temperature: tau >= 0 (> 0 with replacement or log counts).
        valid: optional bool ``[N, M]``; False columns are never returned.
        generator: random generator on the device of ``scores``.
        replacement: K independent draws instead of K distinct columns.
        with_log_count: compute ``log_count`` (default: when temperature > 0); False saves a top-(K + 1).

    Returns:
        :class:`SoftmaxDraw` (``columns`` LongTensor ``[N, K]``; ``log_count`` and the frame None when not computed).

    Raises:
        ValueError: on a bad shape or temperature, or when a row has too few valid columns (fewer than K without
            replacement, none with it): the caller decides the fallback, and no masked column is ever returned.
    """
    if replacement:
        return _replacement_draw(scores, num_samples, temperature, valid, generator)
    if with_log_count is None:
        with_log_count = temperature > 0
    if with_log_count:
        return _inclusion_draw(scores, num_samples, temperature, valid, generator)
    keys = _perturbed_keys(scores, num_samples, temperature, valid, generator)
    return SoftmaxDraw(keys.topk(num_samples, dim=1).indices, None, None, None, replacement=False)


class SoftmaxDraw(NamedTuple):
    """What :func:`softmax_draw` returns: K columns per row, their log expected counts, and the frame that gives the log
    expected count of any column among the row's K draws (:func:`log_expected_counts`), drawn or not, from its score
    alone. All but ``columns`` are None when counts were not computed."""

    columns: torch.Tensor  # [N, K]
    log_count: Optional[torch.Tensor]  # [N, K]: log expected count of each drawn column among the K draws
    # logits are (score - shift) / temperature, shift [N, 1]: with replacement, the row's largest valid score, and
    # log_norm [N, 1] the log of sum exp(logits) over the valid columns; without, the threshold (the (K + 1)-th
    # largest key in score units; -inf when every valid column is drawn), and log_norm 0
    shift: Optional[torch.Tensor]
    log_norm: Optional[torch.Tensor]
    replacement: bool
    # without replacement, [N, 1]: the K-th largest key, the one an undrawn column's key has to beat
    undrawn_shift: Optional[torch.Tensor] = None


def log_expected_counts(drawn, scores: torch.Tensor, temperature: float, num_samples: int, in_draw=None):
    """Log expected count among the K draws of ``drawn`` (a :class:`SoftmaxDraw` or :class:`StreamedDraw` with
    counts) of columns whose scores are ``scores`` ``[N, J]`` (any valid columns of the same rows): ``log(K q)`` with
    replacement, the inclusion probability given the other columns' keys without: what :func:`softmax_draw` gives its
    drawn columns. Without replacement, ``in_draw`` (bool ``[N, J]``; default: every column drawn) tells the drawn
    columns, whose keys had to beat the (K + 1)-th largest key, from the others, which have to beat the K-th."""
    if drawn.replacement:
        return (scores.float() - drawn.shift) / temperature - drawn.log_norm + math.log(num_samples)
    shift = drawn.shift if in_draw is None else torch.where(in_draw, drawn.shift, drawn.undrawn_shift)
    return log_inclusion_probs((scores.float() - shift) / temperature, drawn.log_norm.squeeze(1))


def _inclusion_draw(scores, num_samples, temperature, valid, generator) -> SoftmaxDraw:
    """:func:`softmax_draw` without replacement, with log counts (the frame's shift is the threshold)."""
    if temperature <= 0:
        raise ValueError("inclusion probabilities need temperature > 0 (temperature 0 is a deterministic argmax)")
    keys = _perturbed_keys(scores, num_samples, temperature, valid, generator)
    if keys.shape[1] == num_samples:  # every column is drawn
        cols = torch.arange(num_samples, device=keys.device).expand(keys.shape[0], -1)
        threshold = keys.new_full((keys.shape[0], 1), float("-inf"))
        kth = threshold
    else:
        # the K + 1 largest keys, unsorted (cheaper than a sorted top-k): the smallest is the
        # threshold, and its slot takes the (K + 1)-th column, so the first K columns are the draws
        top = keys.topk(num_samples + 1, dim=1, sorted=False)
        smallest = top.values.argmin(dim=1, keepdim=True)
        threshold = top.values.gather(1, smallest)
        drawn_keys = top.values.scatter(1, smallest, top.values[:, num_samples:])[:, :num_samples]
        cols = top.indices.scatter(1, smallest, top.indices[:, num_samples:])[:, :num_samples]
        kth = drawn_keys.min(dim=1, keepdim=True).values
    frame = _inclusion_frame(cols, threshold, kth)
    return frame._replace(log_count=log_expected_counts(frame, scores.gather(1, cols), temperature, num_samples))


def _inclusion_frame(cols, threshold, kth):
    """A draw without replacement whose (K + 1)-th key is ``threshold`` ``[N, 1]`` and K-th ``kth``, in score units
    (keys are ``score + temperature x Gumbel``): logits against it are ``(score - threshold) / temperature``."""
    return SoftmaxDraw(cols, None, threshold, torch.zeros_like(threshold), replacement=False, undrawn_shift=kth)


#: entries of the work buffer of a draw with replacement, dense or per streamed chunk (4 MiB of float32): row blocks
#: of this size stay in cache, where one [rows, catalogue] buffer would not
WORKSPACE_ENTRIES = 1 << 20


def _replacement_draw(scores, num_samples, temperature, valid, generator) -> SoftmaxDraw:
    """:func:`softmax_draw` with replacement."""
    if temperature <= 0:
        raise ValueError("draws with replacement need temperature > 0 (temperature 0 is a deterministic argmax)")
    if num_samples < 1:
        raise ValueError(f"num_samples must be >= 1, got {num_samples}")
    _check_scores(scores)
    _check_valid(scores, valid, 1)
    cols, shift, log_mass = _draw_from_softmax(scores, num_samples, temperature, valid, generator)
    frame = SoftmaxDraw(cols, None, shift, log_mass, replacement=True)
    return frame._replace(log_count=log_expected_counts(frame, scores.gather(1, cols), temperature, num_samples))


def _draw_from_softmax(scores, num_samples, temperature, valid, generator):
    """K draws with replacement per row from softmax(scores / temperature) over ``valid``: ``(columns, shift,
    log_mass)``, ``shift`` ``[N, 1]`` the row's largest valid score and ``log_mass`` ``[N, 1]`` the log of
    ``sum exp((scores - shift) / temperature)`` over ``valid``. A row with no valid column draws column 0 and has
    shift and mass -inf."""
    rows = max(1, WORKSPACE_ENTRIES // max(scores.shape[1], 1))
    if scores.shape[0] <= rows:
        return _draw_block(scores, num_samples, temperature, valid, generator)
    # row blocks: a small buffer, reused, stays in cache
    blocks = [
        _draw_block(scores[start:start + rows], num_samples, temperature,
                    None if valid is None else valid[start:start + rows], generator)
        for start in range(0, scores.shape[0], rows)
    ]
    return tuple(torch.cat(parts) for parts in zip(*blocks))


def _draw_block(scores, num_samples, temperature, valid, generator):
    """:func:`_draw_from_softmax` in one piece."""
    weights, shift = _shifted_logits(scores, temperature, valid)  # fresh buffer: exponentiated in place
    weights.exp_()  # masked columns: exp(-inf) = 0; the largest valid one: 1
    mass = weights.sum(dim=1, keepdim=True)
    weights[:, 0].add_((mass.squeeze(1) == 0).to(weights.dtype))  # multinomial needs some weight; no host sync
    # one draw takes torch's exponential-race path (a random number and a division per entry), slower on a CPU than
    # the inverse CDF of two or more: draw at least two, keep the first
    drawn = torch.multinomial(weights, max(num_samples, 2), replacement=True, generator=generator)[:, :num_samples]
    return drawn, shift, mass.log_()


def log_inclusion_probs(logits: torch.Tensor, threshold: torch.Tensor) -> torch.Tensor:
    """``log P(logit + Gumbel > threshold) = log(1 - exp(-exp(logit - threshold)))``, ``[N, K]`` and ``[N]``.

    A threshold of -inf (no (K + 1)-th valid column: every valid column is drawn) gives probability 1.
    """
    x = logits - threshold.unsqueeze(1)
    tiny = x < -60  # exp(x) underflows; there 1 - exp(-exp(x)) = exp(x) to first order
    return torch.where(tiny, x, torch.log(-torch.expm1(-torch.exp(x.clamp(min=-60)))))


def short_rows(valid: torch.Tensor, min_valid: int) -> torch.Tensor:
    """Bool ``[N]``: the rows of ``valid`` ``[N, M]`` with fewer than ``min_valid`` True columns."""
    if min_valid == 1 and valid.shape[1] > 0:
        return valid.view(torch.uint8).amax(dim=1) == 0  # on a CPU, a byte max is many times faster than any()
    return valid.sum(dim=1, dtype=torch.int32) < min_valid  # int32: a bool sum to int64 is slower on a CPU


def _check_scores(scores):
    if scores.dim() != 2:
        raise ValueError(f"scores must be [N, M], got shape {list(scores.shape)}")
    if not scores.is_floating_point():
        raise ValueError(f"scores must be floating point, got {scores.dtype}")


def _check_valid(scores, valid, min_valid):
    """Raise ``ValueError`` unless ``valid`` matches ``scores`` and gives every row ``min_valid`` valid columns."""
    if valid is None:
        return
    if valid.shape != scores.shape:
        raise ValueError(f"valid must have shape {list(scores.shape)}, got {list(valid.shape)}")
    short = short_rows(valid, min_valid)
    if bool(short.any()):
        row = int(short.nonzero()[0])
        raise ValueError(
            f"{int(short.sum())} row(s) have fewer than {min_valid} valid columns (first: row {row} "
            f"with {int(valid[row].sum())})"
        )


def _perturbed_keys(scores, num_samples, temperature, valid, generator):
    """The checked arguments of :func:`softmax_draw`, as the keys of a Gumbel-top-k in score units:
    ``score + temperature x Gumbel`` (masked columns -inf). They order the columns as ``score / temperature +
    Gumbel`` does, and never overflow: a tiny temperature gives the top-K scores, as the limit does."""
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    _check_scores(scores)
    m = scores.shape[1]
    if not 1 <= num_samples <= m:
        raise ValueError(f"num_samples must be in [1, {m}] for {m} columns, got {num_samples}")
    _check_valid(scores, valid, num_samples)
    keys = _masked_copy(scores, valid)
    if temperature > 0:
        _add_gumbel_(keys, generator, temperature)
    return keys


def _shifted_logits(scores, temperature, valid):
    """``(logits [N, M], shift [N, 1])``: ``(scores - shift) / temperature`` with masked columns at -inf, in a
    fresh float32 buffer, ``shift`` being the row's largest valid score (-inf for a row with none). Dividing score
    differences, never raw scores, keeps every logit at most 0 for any temperature > 0, so a tiny temperature
    approaches the argmax where ``score / temperature`` would overflow to inf and NaN. Temperature 0: the masked
    scores themselves (DNS's top-k)."""
    logits = _masked_copy(scores, valid)
    shift = logits.amax(dim=1, keepdim=True)
    logits.sub_(shift.clamp(min=torch.finfo(logits.dtype).min))
    if temperature != 1:  # dividing by 1 changes nothing and costs a pass
        logits.div_(temperature)
    return logits, shift


def _masked_copy(scores, valid):
    """The scores in a fresh float32 buffer, masked columns at -inf."""
    if valid is None:
        return scores.float().clone()
    scores = scores.float()
    # one pass (masked_fill(~valid) makes two); the fill as a 0-dim tensor: a Python float is twice as slow on a CPU
    return torch.where(valid, scores, scores.new_tensor(float("-inf")))


def _add_gumbel_(keys, generator, scale=1.0):
    """Add ``scale`` x standard Gumbel noise, -log(-log u), in place (one random number per entry, no extra
    buffers)."""
    noise = torch.rand(keys.shape, generator=generator, device=keys.device)
    return keys.sub_(noise.clamp_(min=1e-20).log_().neg_().log_().mul_(scale))


def pool_copies(pool: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
    """How many times each ``items[n, k]`` appears in the pool of row n: ``pool`` ``[M]`` (shared) or ``[N, M]``
    (pools are drawn with replacement, so an item can fill several columns). Long ``[N, K]``."""
    ordered = pool.sort(dim=-1).values
    if ordered.dim() == 1:
        return torch.searchsorted(ordered, items, right=True) - torch.searchsorted(ordered, items)
    items = items.contiguous()
    return torch.searchsorted(ordered, items, right=True) - torch.searchsorted(ordered, items)


def pool_ranks(scores: torch.Tensor, chosen: torch.Tensor, valid: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Normalised rank of each chosen column among the valid columns of its row: 0 = the hardest, 1 = the easiest.

    Used as telemetry of how hard the generated negatives are. ``scores`` ``[N, M]``, ``chosen`` ``[N, K]``.
    """
    chosen_scores = scores.gather(1, chosen)  # [N, K]
    if valid is not None:
        scores = scores.masked_fill(~valid, float("-inf"))  # never above a chosen (finite) score
        denom = (valid.sum(dim=1, keepdim=True, dtype=torch.int32) - 1).clamp(min=1)
    else:
        denom = torch.full_like(chosen_scores, max(scores.shape[1] - 1, 1))
    # columns scoring strictly higher, by binary search in the sorted row: O(N M log M) time, no [N, K, M] tensor
    ascending = scores.sort(dim=1).values.contiguous()
    higher = scores.shape[1] - torch.searchsorted(ascending, chosen_scores.contiguous(), right=True)
    return higher.float() / denom.float()


class StreamedDraw(NamedTuple):
    """What :func:`streamed_softmax_draw` returns, all ``[N, K]`` but ``short`` and the frame
    (:class:`SoftmaxDraw`'s)."""

    columns: torch.Tensor  # LongTensor: column indices in 0 .. num_columns - 1
    scores: torch.Tensor  # the chosen columns' scores (telemetry: how hard the negatives are)
    # log of each column's expected count among the row's K draws, as draw's (None when not computed)
    log_count: Optional[torch.Tensor]
    short: torch.Tensor  # bool [N]: rows with fewer than K valid columns (with replacement: none); their columns
    # include masked ones
    shift: torch.Tensor  # [N, 1] and
    log_norm: torch.Tensor  # [N, 1], as SoftmaxDraw's: log_expected_counts works on a StreamedDraw too
    replacement: bool
    undrawn_shift: Optional[torch.Tensor] = None  # as SoftmaxDraw's


def _chunks(score_chunk, num_columns, chunk_size, valid_chunk):
    """``(start, end, float scores [N, C], valid [N, C] or None)`` of each chunk of columns, in order."""
    for start in range(0, num_columns, chunk_size):
        end = min(start + chunk_size, num_columns)
        yield start, end, score_chunk(start, end).float(), valid_chunk(start, end) if valid_chunk is not None else None


def _reframe(log_value, shift, new_shift, temperature):
    """``log_value`` of logits ``(score - shift) / temperature`` in the frame of ``new_shift`` >= ``shift``
    (rows where both are -inf, with no valid column yet, stay -inf)."""
    moved = log_value + (shift - new_shift) / temperature
    return torch.where(torch.isinf(new_shift), torch.full_like(moved, float("-inf")), moved)


def streamed_softmax_draw(
    score_chunk: Callable[[int, int], torch.Tensor],
    num_columns: int,
    num_samples: int,
    temperature: float = 1.0,
    chunk_size: int = 4096,
    valid_chunk: Optional[Callable[[int, int], torch.Tensor]] = None,
    generator: Optional[torch.Generator] = None,
    replacement: bool = False,
    with_log_count: Optional[bool] = None,
) -> StreamedDraw:
    """:func:`softmax_draw` over ``num_columns`` columns scored chunk by chunk, never holding ``[N, num_columns]``:
    the same distribution and log counts as the dense draw, with peak memory O(N x (chunk_size + K)).

    Without replacement: a running Gumbel-top-k, each chunk's perturbed keys merged with the best K (K + 1 for the
    counts) so far, which is exactly the top K of all columns' keys. With replacement: a reservoir over chunks, each
    chunk drawing K columns from its own softmax and its k-th replacing the k-th held one with probability (the
    chunk's softmax mass) / (the mass of all chunks so far). Rows with too few valid columns are flagged in ``short``
    instead of raising, since that is known only after the last chunk: the caller replaces them.

    Args:
        score_chunk: ``score_chunk(start, end)`` -> float ``[N, end - start]``, the scores of columns ``start:end``.
        valid_chunk: optional ``valid_chunk(start, end)`` -> bool ``[N, end - start]``.
        (other arguments as in :func:`softmax_draw`)
    """
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    if replacement:
        return _stream_reservoir(score_chunk, num_columns, num_samples, temperature, chunk_size, valid_chunk,
                                 generator)
    if with_log_count is None:
        with_log_count = temperature > 0
    return _stream_gumbel(score_chunk, num_columns, num_samples, temperature, chunk_size, valid_chunk, generator,
                          with_log_count)


def _stream_gumbel(score_chunk, num_columns, num_samples, temperature, chunk_size, valid_chunk, generator,
                   with_log_inclusion) -> StreamedDraw:
    """:func:`streamed_softmax_draw` without replacement: a running Gumbel-top-k over the chunks, keys in score units
    (``score + temperature x Gumbel``, as :func:`_perturbed_keys`). ``with_log_inclusion`` keeps the best K + 1, for
    the threshold of the inclusion probabilities (needs ``temperature > 0``)."""
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    if with_log_inclusion and temperature == 0:
        raise ValueError("inclusion probabilities need temperature > 0 (temperature 0 is a deterministic argmax)")
    if not 1 <= num_samples <= num_columns:
        raise ValueError(f"num_samples must be in [1, {num_columns}] for {num_columns} columns, got {num_samples}")
    kept = num_samples + 1 if with_log_inclusion else num_samples
    best_keys = best_cols = best_scores = None
    for start, end, scores, valid in _chunks(score_chunk, num_columns, chunk_size, valid_chunk):
        keys = _masked_copy(scores, valid)  # in score units, as _perturbed_keys: no temperature overflows them
        if temperature > 0:
            _add_gumbel_(keys, generator, temperature)
        # the top K of (best so far, this chunk) is the top K of (best so far, this chunk's top K): merge only those
        top = keys.topk(min(kept, end - start), dim=1)
        cols, chunk_scores = top.indices + start, scores.gather(1, top.indices)
        if best_keys is None:
            best_keys, best_cols, best_scores = top.values, cols, chunk_scores
            continue
        merged = torch.cat([best_keys, top.values], dim=1)
        merged = merged.topk(min(kept, merged.shape[1]), dim=1)
        best_keys = merged.values
        best_cols = torch.cat([best_cols, cols], dim=1).gather(1, merged.indices)
        best_scores = torch.cat([best_scores, chunk_scores], dim=1).gather(1, merged.indices)
    chosen = slice(0, num_samples)
    threshold = best_keys[:, num_samples:num_samples + 1] if best_keys.shape[1] > num_samples else \
        best_keys.new_full((best_keys.shape[0], 1), float("-inf"))
    kth = best_keys[:, num_samples - 1:num_samples] if best_keys.shape[1] > num_samples else threshold
    frame = _inclusion_frame(best_cols[:, chosen], threshold, kth)
    streamed = StreamedDraw(frame.columns, best_scores[:, chosen], None, torch.isinf(best_keys[:, chosen]).any(dim=1),
                            frame.shift, frame.log_norm, replacement=False, undrawn_shift=frame.undrawn_shift)
    if not with_log_inclusion:
        return streamed
    return streamed._replace(log_count=log_expected_counts(streamed, streamed.scores, temperature, num_samples))


def _stream_reservoir(score_chunk, num_columns, num_samples, temperature, chunk_size, valid_chunk,
                      generator) -> StreamedDraw:
    """:func:`streamed_softmax_draw` with replacement: a reservoir over the chunks, masses kept against the running
    largest score so that no temperature overflows them; ``log_count`` is ``log(K q)``."""
    if temperature <= 0:
        raise ValueError("draws with replacement need temperature > 0 (temperature 0 is a deterministic argmax)")
    if num_samples < 1:
        raise ValueError(f"num_samples must be >= 1, got {num_samples}")
    cols = chosen_scores = shift = log_mass = None
    for start, _, scores, valid in _chunks(score_chunk, num_columns, chunk_size, valid_chunk):
        drawn, chunk_shift, chunk_log_mass = _draw_from_softmax(scores, num_samples, temperature, valid, generator)
        drawn_scores = scores.gather(1, drawn)
        if cols is None:
            cols, chosen_scores, shift, log_mass = drawn + start, drawn_scores, chunk_shift, chunk_log_mass
            continue
        new_shift = torch.maximum(shift, chunk_shift)
        held = _reframe(log_mass, shift, new_shift, temperature)
        chunk_log_mass = _reframe(chunk_log_mass, chunk_shift, new_shift, temperature)
        log_mass_so_far = torch.logaddexp(held, chunk_log_mass)
        # P(take this chunk's draw) = its mass / the mass so far (two empty masses: NaN, so the held draw stays)
        u = torch.rand(drawn.shape, generator=generator, device=drawn.device)
        take = u < (chunk_log_mass - log_mass_so_far).exp()
        cols = torch.where(take, drawn + start, cols)
        chosen_scores = torch.where(take, drawn_scores, chosen_scores)
        shift, log_mass = new_shift, log_mass_so_far
    streamed = StreamedDraw(cols, chosen_scores, None, torch.isinf(log_mass).squeeze(1), shift, log_mass,
                            replacement=True)
    return streamed._replace(log_count=log_expected_counts(streamed, chosen_scores, temperature, num_samples))
