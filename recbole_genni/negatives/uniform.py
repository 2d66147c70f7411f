"""``neg_sampler: uniform``: K negatives drawn uniformly from each row's allowed items."""

from recbole_genni.negatives.base import NegativeSampler


class UniformNegatives(NegativeSampler):
    """Uniform negatives: the proposal of every sampler, and its logQ ``log(K / allowed items)``."""

    proposal = "uniform"
