"""The config schema: the values the package's keys take, one table row a check, with no RecBole import; each
sampler checks the keys it reads beyond their ranges (:mod:`recbole_genni.negatives`)."""

from recbole_genni.errors import GenNiConfigError
from recbole_genni.negatives import SAMPLERS
from recbole_genni.utils import count_or_fraction

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


def resolve_window_stride(stride, max_length: int) -> int:
    """``train_window_stride`` in items for rows of ``max_length`` items: an int, or a fraction of ``max_length``;
    checked."""
    items = count_or_fraction(stride, max_length)
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
    ("neg_sampler", lambda v: v == "none" or v in SAMPLERS, lambda: " | ".join([*SAMPLERS, "none"])),
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
    ("neg_index_clusters", _int_at_least(2), "an integer >= 2 (codewords per half; c x c cells)"),
    ("neg_index_refresh", _int_at_least(1), "an integer >= 1 (batches between rebuilds of the index)"),
    ("neg_index_resample", _int_at_least(0), "an integer >= 0 (0 = the proposal's draws, no resampling)"),
    ("ce_item_chunk", _int_at_least(0), "an integer >= 0 (items per chunk of CE; 0 = the whole catalogue at once)"),
    ("train_time_budget", lambda v: v is None or (_is_number(v) and v > 0),
     "a number of seconds > 0, or ~ (None) for no limit"),
    ("neg_pool_shared", lambda v: isinstance(v, bool), "True or False"),
    ("neg_replacement", lambda v: isinstance(v, bool), "True or False"),
    ("eval_mask_history", lambda v: isinstance(v, bool), "True or False"),
    ("keep_freed_memory", lambda v: isinstance(v, bool), "True or False"),
    ("position_from_end", lambda v: isinstance(v, bool), "True or False"),  # GenNiSASRec's defaults only
    ("neg_pool_size", lambda v: not isinstance(v, float) or 0 < v <= 1,
     "a fraction in (0, 1] when given as a float, or an integer >= 1"),
    ("neg_pool_size", _pool_size_ok, "an integer >= 1, a fraction of the catalogue in (0, 1], or 'all'"),
    ("gbce_t", lambda v: _is_number(v) and 0 <= v <= 1, "a number in [0, 1] (0 = BCE)"),
    ("bce_logit_offset", lambda v: isinstance(v, bool), "True or False"),
    ("ssm_logq", lambda v: isinstance(v, bool) or (_is_number(v) and 0 <= v <= 1),
     "True, False or a weight in [0, 1]"),
)


def invalid(key, value, expected) -> GenNiConfigError:
    """The one message for a key whose value is out of range: the key, its value and what it expects."""
    return GenNiConfigError(f"{key}: {value!r} is invalid; expected {expected}.")


def validate_neg_keys(config, user_keys=()):
    """Check the package's keys in ``config`` (a mapping) that need no dataset, one table row at a time, then let the
    sampler of ``neg_sampler`` set its defaults where the user set nothing (``user_keys``) and refuse what it cannot
    honour (:meth:`~recbole_genni.negatives.base.NegativeSampler.resolve_keys`); the catalogue is checked once it is
    loaded."""
    for key, valid, expected in KEY_CHECKS:
        if key in config and not valid(config[key]):
            raise invalid(key, config[key], expected() if callable(expected) else expected)
    if config["neg_sampler"] == "none":
        return
    sampler = SAMPLERS[config["neg_sampler"]]
    if sampler.uses_model and config.get("worker"):
        raise GenNiConfigError(
            f"worker: {config['worker']} runs the collate step in other processes, away from the model that "
            f"neg_sampler: {config['neg_sampler']} scores with; set worker: 0."
        )
    sampler.resolve_keys(config, user_keys)


def translated_recbole_args(args) -> dict:
    """RecBole's ``train_neg_sample_args`` as the ``neg_*`` keys it stands for (only those it sets)."""
    if args is None or args == "None" or (isinstance(args, dict) and args.get("distribution") in (None, "none")):
        return {"neg_sampler": "none"}
    if not isinstance(args, dict):
        return {}
    out = {"neg_sampler": "dns" if args.get("dynamic") else args.get("distribution", "uniform"),
           "neg_num": args.get("sample_num", 1)}
    if args.get("dynamic") and args.get("candidate_num"):
        out["neg_pool_size"] = args["candidate_num"]
    if "alpha" in args:
        out["neg_popularity_alpha"] = args["alpha"]
    return out
