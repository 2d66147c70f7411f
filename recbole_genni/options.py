"""The values the ``neg_*`` keys take, and the pool size they resolve to: what the sampling policy needs, with no
RecBole import."""

from recbole_genni.errors import GenNiConfigError

NEG_SAMPLERS = ("uniform", "popularity", "dns", "genni", "none")
MODEL_BASED_SAMPLERS = ("dns", "genni")
NEG_EXCLUDES = ("none", "target", "history")
POOL_PROPOSALS = ("uniform", "popularity")
#: float32's smallest normal number: a smaller temperature is not a float32 number the draws can divide by
FLOAT32_TINY = 2.0 ** -126


def resolve_pool_size(pool_size, num_items: int) -> int:
    """M for a catalogue of ``num_items`` ids (padding included): int, fraction or ``'all'``; checked."""
    real_items = num_items - 1
    if pool_size == "all":
        return real_items
    size = max(1, round(pool_size * real_items)) if isinstance(pool_size, float) else pool_size
    if size > real_items:
        raise GenNiConfigError(
            f"neg_pool_size: {pool_size} is larger than the catalogue ({real_items} items); "
            "use a smaller size, a fraction in (0, 1], or 'all'."
        )
    return size
