"""recbole-genni: GenNi (model-generated negatives) for RecBole sequential recommenders.

Reference: Chen et al., "Generating Negative Samples for Sequential Recommendation", arXiv 2208.03645.

``recbole_genni.sampling`` and ``recbole_genni.losses`` are plain PyTorch; importing them does not import RecBole.
"""

__version__ = "0.1.0"
__all__ = ["run_recbole_genni", "load_data_and_model"]


def __getattr__(name):
    # lazy, so that the pure modules stay importable without RecBole (and its numpy/ray import-time effects)
    if name == "run_recbole_genni":
        from recbole_genni.quick_start import run_recbole_genni

        return run_recbole_genni
    if name == "load_data_and_model":
        from recbole_genni.recommend import load_data_and_model

        return load_data_and_model
    raise AttributeError(f"module 'recbole_genni' has no attribute {name!r}")
