"""The package's own models; ``get_model`` finds ``<Model>`` in ``recbole_genni.model.<model lowercased>``."""
