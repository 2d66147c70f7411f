"""The values the ``neg_*`` keys take, and the pool size they resolve to: what the sampling policy needs, with no
RecBole import."""

from recbole_genni.errors import GenNiConfigError

NEG_SAMPLERS = ("uniform", "popularity", "dns", "genni", "none")
MODEL_BASED_SAMPLERS = ("dns", "genni")
NEG_EXCLUDES = ("none", "target", "history")
POOL_PROPOSALS = ("uniform", "popularity")
#: where a one-pass RecBole model's pool is scored from: its training pass (dropout on, no extra pass) or a separate
#: no-grad pass in eval mode
SCORING_PASSES = ("train_pass", "eval_pass")
#: the losses a one-pass RecBole model can train its K negatives with (its own BPR, or these over its BPR scores)
SAMPLED_LOSSES = ("BPR", "SSM", "BCE", "gBCE")
#: the largest temperature: far above any score difference a model gives, so the draws are uniform already, and far
#: below float32's maximum, so that temperature x Gumbel noise stays finite
MAX_TEMPERATURE = 1e6
#: float32's smallest normal number: a smaller temperature is not a float32 number the draws can divide by
FLOAT32_TINY = 2.0 ** -126


def _count(value, whole: int) -> int:
    """An int as it is; a float as that fraction of ``whole``, at least 1."""
    return max(1, round(value * whole)) if isinstance(value, float) else value


def resolve_pool_size(pool_size, num_items: int) -> int:
    """M for a catalogue of ``num_items`` ids (padding included): int, fraction or ``'all'``; checked."""
    real_items = num_items - 1
    if pool_size == "all":
        return real_items
    size = _count(pool_size, real_items)
    if size > real_items:
        raise GenNiConfigError(
            f"neg_pool_size: {pool_size} is larger than the catalogue ({real_items} items); "
            "use a smaller size, a fraction in (0, 1], or 'all'."
        )
    return size


def resolve_window_stride(stride, max_length: int) -> int:
    """``train_window_stride`` in items for rows of ``max_length`` items: an int, or a fraction of ``max_length``;
    checked."""
    items = _count(stride, max_length)
    if items > max_length:
        raise GenNiConfigError(
            f"train_window_stride: {stride} is invalid; expected at most MAX_ITEM_LIST_LENGTH = {max_length} items, "
            "or a fraction of it in (0, 1] (a longer stride skips the items between two windows)."
        )
    return items


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _int_at_least(minimum):
    return lambda value: isinstance(value, int) and not isinstance(value, bool) and value >= minimum


def _pool_size_ok(pool) -> bool:
    if isinstance(pool, str):
        return pool == "all"
    if isinstance(pool, float):
        return 0 < pool <= 1
    return _int_at_least(1)(pool)


#: (key, valid(value), what it expects): the one-key checks, in this order; a key absent from the config is skipped
KEY_CHECKS = (
    ("neg_sampler", lambda v: v in NEG_SAMPLERS, " | ".join(NEG_SAMPLERS)),
    ("neg_exclude", lambda v: v in NEG_EXCLUDES, " | ".join(NEG_EXCLUDES)),
    ("neg_pool_proposal", lambda v: v in POOL_PROPOSALS, " | ".join(POOL_PROPOSALS)),
    ("neg_scoring", lambda v: v in SCORING_PASSES, " | ".join(SCORING_PASSES)),
    ("neg_num", _int_at_least(1), "an integer >= 1"),
    ("neg_temperature", lambda v: _is_number(v) and v > 0, "a number > 0 (small values approach DNS's argmax)"),
    ("neg_temperature", lambda v: v >= FLOAT32_TINY,
     f"a number >= {FLOAT32_TINY:.3g}, float32's smallest normal number (the draws compute in float32; at such a "
     "temperature they are already the argmax)"),
    ("neg_temperature", lambda v: v <= MAX_TEMPERATURE,
     f"a number <= {MAX_TEMPERATURE:.0e} (the draws add temperature x Gumbel noise in float32, which overflows near "
     "its maximum; at such a temperature they are already uniform, as neg_sampler: uniform draws)"),
    ("neg_popularity_alpha", lambda v: _is_number(v) and v >= 0, "a number >= 0"),
    ("neg_uniform_mix", lambda v: _is_number(v) and 0 <= v <= 1, "a number in [0, 1]"),
    ("neg_warmup_epochs", _int_at_least(0), "an integer >= 0"),
    ("train_bucket_batches", _int_at_least(0), "an integer >= 0 (0 = random batches)"),
    ("train_window_stride", lambda v: (isinstance(v, float) and 0 < v <= 1) or _int_at_least(0)(v),
     "an integer >= 0 (items; 0 = the last window only) or a fraction of MAX_ITEM_LIST_LENGTH in (0, 1]"),
    ("neg_score_chunk", _int_at_least(1), "an integer >= 1 (candidates scored at once; memory is rows x chunk)"),
    ("train_time_budget", lambda v: v is None or (_is_number(v) and v > 0),
     "a number of seconds > 0, or ~ (None) for no limit"),
    ("neg_pool_shared", lambda v: isinstance(v, bool), "True or False"),
    ("neg_replacement", lambda v: isinstance(v, bool), "True or False"),
    ("eval_mask_history", lambda v: isinstance(v, bool), "True or False"),
    ("position_from_end", lambda v: isinstance(v, bool), "True or False"),  # GenNiSASRec's defaults only
    ("neg_pool_size", lambda v: not isinstance(v, float) or 0 < v <= 1,
     "a fraction in (0, 1] when given as a float, or an integer >= 1"),
    ("neg_pool_size", _pool_size_ok, "an integer >= 1, a fraction of the catalogue in (0, 1], or 'all'"),
    ("gbce_t", lambda v: _is_number(v) and 0 <= v <= 1, "a number in [0, 1] (0 = BCE)"),
    ("ssm_logq", lambda v: isinstance(v, bool) or (_is_number(v) and 0 <= v <= 1),
     "True, False or a weight in [0, 1]"),
)


def invalid(key, value, expected) -> GenNiConfigError:
    """The one message for a key whose value is out of range: the key, its value and what it expects."""
    return GenNiConfigError(f"{key}: {value!r} is invalid; expected {expected}.")


def validate_neg_keys(config):
    """Check the package's keys in ``config`` (a mapping) that need no dataset, one table row at a time, then the
    pairs of keys that exclude each other; the pool size against the catalogue is checked once it is loaded."""
    for key, valid, expected in KEY_CHECKS:
        if key in config and not valid(config[key]):
            raise invalid(key, config[key], expected)
    pool, sampler = config["neg_pool_size"], config["neg_sampler"]
    if config["neg_replacement"] and sampler == "dns":
        raise GenNiConfigError(
            "neg_replacement: True draws from a softmax, and neg_sampler: dns takes the top-K scores with none; "
            "set neg_replacement: False, or use neg_sampler: genni with a small neg_temperature."
        )
    if (isinstance(pool, int) and config["neg_num"] > pool and sampler in MODEL_BASED_SAMPLERS
            and not config["neg_replacement"]):
        raise GenNiConfigError(
            f"neg_num: {config['neg_num']} is larger than neg_pool_size: {pool}; raise neg_pool_size or lower neg_num."
        )
    if sampler in MODEL_BASED_SAMPLERS and config.get("worker"):
        raise GenNiConfigError(
            f"worker: {config['worker']} runs the collate step in other processes, away from the model that "
            f"neg_sampler: {sampler} scores with; set worker: 0."
        )
