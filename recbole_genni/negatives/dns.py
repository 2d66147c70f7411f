"""``neg_sampler: dns``: dynamic negative sampling (Zhang et al., SIGIR 2013): the K highest-scored allowed
candidates of the pool."""

from recbole_genni.errors import GenNiConfigError
from recbole_genni.negatives.base import excluding
from recbole_genni.negatives.genni import GenNiNegatives, pool_in_words, schedule_in_words


class DNSNegatives(GenNiNegatives):
    """GenNi's draw at temperature 0: the top K of the pool, distinct, with no probability to correct by (no SSM)."""

    can_replace = False

    def __init__(self, config, candidates):
        super().__init__(config, candidates)
        self.temperature = 0.0

    @classmethod
    def resolve_keys(cls, config, user_keys):
        if "neg_replacement" not in user_keys:
            config["neg_replacement"] = False  # the top K has no draws to repeat
        if config["neg_replacement"]:
            raise GenNiConfigError(
                "neg_replacement: True draws from a softmax, and neg_sampler: dns takes the top-K scores with none; "
                "set neg_replacement: False, or use neg_sampler: genni with a small neg_temperature."
            )
        super().resolve_keys(config, user_keys)

    @classmethod
    def check_loss(cls, loss_type):
        if loss_type == "SSM":
            raise GenNiConfigError(
                "loss_type: SSM needs the probability of each drawn negative, which dns (an argmax) does not have; "
                "use neg_sampler: genni with a small neg_temperature instead."
            )

    @classmethod
    def describe(cls, config) -> str:
        top = f"the top {config['neg_num']} of {pool_in_words(config)}"
        return f"{config['neg_sampler']}, {top}, {excluding(config)}{schedule_in_words(config)}"
