"""Models and trainers by name: the package's own first, then RecBole's (RecBole-GNN's ``get_model`` pattern)."""

import difflib
import importlib
import pkgutil

from recbole.utils import get_model as get_recbole_model

from recbole_genni.compat import recbole_sequential_models
from recbole_genni.errors import GenNiConfigError
from recbole_genni.model.recbole_models import SUBCLASSES


def _own_model_module(name: str):
    module_path = f"recbole_genni.model.{name.lower()}"
    if importlib.util.find_spec(module_path) is None:
        return None
    return importlib.import_module(module_path)


def supported_models() -> list:
    """Names of RecBole's sequential models plus the package's own."""
    import recbole_genni.model as own

    seq = recbole_sequential_models()

    names = []
    for pkg in (seq, own):
        for info in pkgutil.iter_modules(pkg.__path__):
            module = importlib.import_module(f"{pkg.__name__}.{info.name}")
            names += [n for n, obj in vars(module).items() if isinstance(obj, type) and n.lower() == info.name]
    return sorted(names)


def get_model(model_name: str):
    """The model class: the package's own (``recbole_genni.model.<lowercase>``) first, then the package's subclass
    of a RecBole model that draws negatives in its loss (:mod:`recbole_genni.model.recbole_models`), then
    RecBole's."""
    module = _own_model_module(model_name)
    if module is not None and hasattr(module, model_name):
        return getattr(module, model_name)
    if model_name in SUBCLASSES:
        return SUBCLASSES[model_name]
    recbole_sequential_models()  # before RecBole's get_model imports them
    try:
        model_class = get_recbole_model(model_name)
    except (ValueError, AttributeError, ImportError):  # RecBole probes exlib_recommender, which needs lightgbm
        supported = supported_models()
        close = difflib.get_close_matches(model_name, supported, n=1, cutoff=0.6) or difflib.get_close_matches(
            model_name.lower(), [name.lower() for name in supported], n=1, cutoff=0.6)
        guess = f"did you mean {next(n for n in supported if n.lower() == close[0].lower())}? " if close else ""
        raise GenNiConfigError(
            f"unknown model {model_name!r}; {guess}supported sequential models: {', '.join(supported)}"
        ) from None
    return model_class


def get_trainer(model_type, model_name):
    """``<Model>Trainer`` from this package or RecBole if one exists, else :class:`~recbole_genni.trainer.Trainer`."""
    from recbole.utils import ModelType
    from recbole.utils import get_trainer as get_recbole_trainer

    import recbole_genni.trainer as own

    if hasattr(own, model_name + "Trainer"):
        return getattr(own, model_name + "Trainer")
    recbole_trainers = importlib.import_module("recbole.trainer")
    if model_type == ModelType.SEQUENTIAL and not hasattr(recbole_trainers, model_name + "Trainer"):
        return own.Trainer
    trainer = get_recbole_trainer(model_type, model_name)
    # RecBole's Trainer and TraditionalTrainer (BPR, Pop, ...) cannot reload their checkpoints on today's torch
    ours = {recbole_trainers.Trainer: own.Trainer, recbole_trainers.TraditionalTrainer: own.TraditionalTrainer}
    return ours.get(trainer, trainer)
