"""recbole-genni: GenNi (model-generated negatives) for RecBole sequential recommenders.

Reference: Chen et al., "Generating Negative Samples for Sequential Recommendation", arXiv 2208.03645.
"""

from recbole_genni.quick_start import run_recbole_genni

__version__ = "0.1.0"
__all__ = ["run_recbole_genni"]
