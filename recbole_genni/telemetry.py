"""Telemetry of the negatives: what a researcher watches per epoch (the cost of generating them, how hard they are),
recorded without a host-device sync per batch."""

import time
from dataclasses import dataclass, field, fields

import torch

from recbole_genni import sampling


@dataclass
class NegativeStats:
    """What a researcher watches per epoch: cost of sampling and how hard the negatives were.

    While the epoch runs, the counts and sums taken from the model's scores are 0-d tensors on the model's device
    and GPU time is a list of CUDA event pairs, so a training step never waits for the host; :meth:`summary` reads
    them once. Rows for the hit shares and pool ranks are a random sample of each batch, drawn from a stream of
    their own (the negatives drawn do not depend on it).
    """

    generation_seconds: float = 0.0  # wall time of generation on the CPU (CUDA intervals are added by summary)
    scoring_seconds: float = 0.0  # of which the model scored candidates (the loader's encoder pass included)
    index_seconds: float = 0.0  # of which an index over the item table was rebuilt (midx)
    scored_rows: int = 0
    margin_sum: float = 0.0  # sum over scored rows of mean(pos score - neg score)
    rank_sum: float = 0.0  # sum over ranked rows of the mean normalised pool rank (0 = hardest)
    ranked_rows: int = 0  # scored rows whose pool rank was computed (dense pools; up to SAMPLED_ROWS a batch,
    # fewer for pools over 2048 candidates: RANKED_ENTRIES)
    fallback_rows: int = 0  # model-scored rows with too few allowed candidates, given proposal negatives instead
    nonfinite_rows: int = 0  # model-scored rows with NaN/inf scores, given uniform draws over the pool
    relaxed_rows: int = 0  # rows whose exclusions were relaxed: the user's items cover the catalogue
    negatives: int = 0  # negatives checked for hits: those of up to SAMPLED_ROWS random rows a batch
    target_hits: int = 0  # negatives equal to the row's target (possible only with neg_exclude: none)
    history_hits: int = 0  # negatives in the user's training items (possible unless neg_exclude: history)
    cuda_intervals: dict = field(default_factory=dict)  # kind -> [(start, end) CUDA events]

    def summary(self) -> dict:
        seconds = {"generation": self.generation_seconds, "scoring": self.scoring_seconds,
                   "index": self.index_seconds}
        for kind, intervals in self.cuda_intervals.items():
            for start, end in intervals:
                end.synchronize()
                seconds[kind] += start.elapsed_time(end) / 1000
        value = {f.name: float(getattr(self, f.name)) for f in fields(self) if f.name != "cuda_intervals"}
        total = max(value["negatives"], 1)
        out = {
            "sampling_seconds": seconds["generation"] - seconds["scoring"],
            "scoring_seconds": seconds["scoring"],
            "fallback_rows": value["fallback_rows"],
            "nonfinite_rows": value["nonfinite_rows"],
            "relaxed_rows": value["relaxed_rows"],
            "target_hit_share": value["target_hits"] / total,
            "history_hit_share": value["history_hits"] / total,
        }
        if value["scored_rows"]:
            out["score_margin"] = value["margin_sum"] / value["scored_rows"]
        if value["ranked_rows"]:
            out["pool_rank"] = value["rank_sum"] / value["ranked_rows"]
        if seconds["index"]:
            out["index_seconds"] = seconds["index"]
        return out


#: rows per batch whose pool rank and hits are computed: shares need a sample, not a sort and a history search of
#: every row
SAMPLED_ROWS = 128
#: (row, candidate) entries per batch sorted for the pool rank, at most SAMPLED_ROWS rows: 16 rows of a 2048 pool,
#: 2 of Beauty's whole catalogue (K ranks each; a sort is slow on a CPU, and the epoch's mean needs few rows)
RANKED_ENTRIES = 16 * 2048


class Clock:
    """Adds the time between :meth:`start` and :meth:`stop` to a kind of a :class:`NegativeStats`' seconds: CUDA
    events on a GPU (read at the epoch's end, so no sync now), else the wall clock."""

    def __init__(self, stats, kind, device):
        self.stats, self.kind, self.cuda = stats, kind, device.type == "cuda"

    def __enter__(self):
        if self.cuda:
            self.begin = torch.cuda.Event(enable_timing=True)
            self.begin.record()
        else:
            self.begin = time.perf_counter()
        return self

    def __exit__(self, *exc):
        if self.cuda:
            end = torch.cuda.Event(enable_timing=True)
            end.record()
            self.stats.cuda_intervals.setdefault(self.kind, []).append((self.begin, end))
        else:
            name = f"{self.kind}_seconds"
            setattr(self.stats, name, getattr(self.stats, name) + time.perf_counter() - self.begin)


class NegativeTelemetry:
    """Records one epoch's :class:`NegativeStats` for a generator. Rows for the hit shares and pool ranks are a random
    sample of each batch, from a stream of its own seeded from ``seed``, so that recording never changes the
    negatives drawn."""

    def __init__(self, seed: int):
        self.stats = NegativeStats()
        self.generator = torch.Generator().manual_seed(seed)

    def pop(self) -> NegativeStats:
        """This epoch's stats, reset for the next."""
        stats, self.stats = self.stats, NegativeStats()
        return stats

    def clock(self, kind, device) -> Clock:
        """A context adding its time to ``<kind>_seconds`` (``generation``, ``scoring`` or ``index``)."""
        return Clock(self.stats, kind, device)

    def sampled_rows(self, n, most, device):
        """Up to ``most`` random rows of ``n``, from the telemetry's own stream."""
        return torch.randperm(n, generator=self.generator)[:most].to(device)

    def hits(self, users, targets, negatives, history_keys, num_items):
        """How many of a random sample of rows' negatives are their target, or in their history."""
        rows = self.sampled_rows(len(users), SAMPLED_ROWS, negatives.device)
        users, targets, negatives = users[rows], targets[rows], negatives[rows]
        self.stats.negatives += negatives.numel()
        self.stats.target_hits += (negatives == targets.unsqueeze(1)).sum()
        self.stats.history_hits += sampling.in_history(history_keys, users, negatives, num_items).sum()

    def ranks(self, scores, columns, valid, ok):
        """The pool ranks of the chosen ``columns`` ``[N, K]`` among a random sample of rows of ``scores``
        ``[N, M]`` (at most RANKED_ENTRIES entries), counting the rows ``ok`` (bool ``[N]``)."""
        ranked = self.sampled_rows(len(scores), min(SAMPLED_ROWS, max(1, RANKED_ENTRIES // scores.shape[1])),
                                   scores.device)
        ranks = sampling.pool_ranks(scores[ranked], columns[ranked], valid[ranked])  # [ranked rows, K]
        self.stats.rank_sum += (ranks.mean(dim=1).double() * ok[ranked]).sum()
        self.stats.ranked_rows += ok[ranked].sum()

    def margins(self, margin, ok):
        """Add the rows ``ok`` (bool [N]) of ``margin`` (target score - negative score, [N, K])."""
        self.stats.margin_sum += (margin.mean(dim=1).double() * ok).sum()
        self.stats.scored_rows += ok.sum()
