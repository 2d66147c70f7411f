"""``neg_sampler: popularity``: K negatives drawn in proportion to training popularity ** ``neg_popularity_alpha``."""

from recbole_genni.negatives.base import NegativeSampler


class PopularityNegatives(NegativeSampler):
    """Popularity negatives (RecBole's ``distribution: popularity``), restricted to each row's allowed items."""

    proposal = "popularity"
