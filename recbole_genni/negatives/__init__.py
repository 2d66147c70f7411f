"""The negative samplers, one class each, registered by the name users write in ``neg_sampler``.

Adding a sampler: a module here with a :class:`~recbole_genni.negatives.base.NegativeSampler` subclass, its tests,
one line in :data:`SAMPLERS` (or :func:`register_sampler` from outside the package) and its row in
docs/configuration.md. ``neg_sampler: none`` (full softmax, no negatives) has no sampler.
"""

from recbole_genni.negatives.base import NegativeSampler
from recbole_genni.negatives.dns import DNSNegatives
from recbole_genni.negatives.genni import GenNiNegatives
from recbole_genni.negatives.midx import MIDXNegatives
from recbole_genni.negatives.popularity import PopularityNegatives
from recbole_genni.negatives.uniform import UniformNegatives

#: ``neg_sampler`` value -> its sampler class
SAMPLERS = {
    "uniform": UniformNegatives,
    "popularity": PopularityNegatives,
    "dns": DNSNegatives,
    "genni": GenNiNegatives,
    "midx": MIDXNegatives,
}


def register_sampler(name: str, sampler_class):
    """Make ``neg_sampler: <name>`` train with ``sampler_class`` (a :class:`NegativeSampler` subclass)."""
    if not (isinstance(sampler_class, type) and issubclass(sampler_class, NegativeSampler)):
        raise TypeError(f"a sampler must subclass NegativeSampler, got {sampler_class!r}")
    SAMPLERS[name] = sampler_class
