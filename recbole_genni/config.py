"""RecBole ``Config`` that knows the package's models, YAML defaults and ``neg_*`` keys."""

import difflib
import functools
import glob
import os
from importlib import resources

import recbole
import yaml
from recbole.config import Config as RecBole_Config
from recbole.utils import ModelType, set_color

from recbole_genni.compat import (
    check_recbole_version,
    init_distributed,
    literal_config_values,
    restore_numpy_aliases,
)
from recbole_genni.errors import GenNiConfigError
from recbole_genni.model.recbole_models import with_negatives_in_loss
from recbole_genni.negatives import SAMPLERS
from recbole_genni.options import (
    SAMPLED_LOSSES,
    invalid,
    resolve_window_stride,
    translated_recbole_args,
    validate_neg_keys,
)
from recbole_genni.registry import get_model
from recbole_genni.support import (
    MASKED_ENCODERS,
    ONE_PASS_ENCODERS,
    PAIRWISE_ONLY_MODELS,
    PLAIN_CE_MODELS,
    REFUSED_MODELS,
    recbole_family,
)

#: keys the config dump shows as the one negatives line (with the neg_* keys)
_SUMMARISED_KEYS = ("train_neg_sample_args", "sampled_loss", "ssm_logq", "gbce_t", "bce_logit_offset")

#: what RecBole's loader needs to set up the ``neg_item_id`` field; our loader draws the negatives itself
_RECBOLE_PAIRWISE_ARGS = {
    "distribution": "uniform", "sample_num": 1, "alpha": 1.0, "dynamic": False, "candidate_num": 0,
}


def properties_dir() -> str:
    """Folder of the package's YAML defaults, in a source checkout and in an installed wheel alike."""
    return str(resources.files("recbole_genni.properties"))


class Config(RecBole_Config):
    """RecBole's config plus ``properties/overall.yaml`` and ``properties/model/<Model>.yaml`` of this package.

    GenNi is switched on by ``neg_*`` keys, never by renaming the model: ``config["model"]`` stays RecBole's name.
    RecBole's own ``train_neg_sample_args`` still works when no ``neg_sampler`` is given: it is translated.
    Bad values raise :class:`GenNiConfigError` naming the key and the fix, before any data is loaded.
    """

    def compatibility_settings(self):
        check_recbole_version(recbole.__version__)
        restore_numpy_aliases()  # RecBole's own sets np.float = np.float_, which NumPy 2 removed
        super().compatibility_settings()

    def _get_model_and_dataset(self, model, dataset):
        if model is None and "model" in self.external_config_dict:
            model = self.external_config_dict["model"]
        if isinstance(model, str):
            model = get_model(model)
        elif model is not None:  # a class: a user's subclass of a RecBole model trains as that model does
            model = with_negatives_in_loss(model)
        return super()._get_model_and_dataset(model, dataset)

    def _convert_config_dict(self, config_dict):
        return literal_config_values(config_dict)

    def _load_internal_config_dict(self, model, model_class, dataset):
        # RecBole's defaults of the RecBole model this one is or subclasses: a user's subclass of SASRec (and
        # GenNiSASRec) starts from SASRec's hyper-parameters, as SASRec itself does
        super()._load_internal_config_dict(recbole_family(model_class), model_class, dataset)
        for path in (
            os.path.join(properties_dir(), "overall.yaml"),
            os.path.join(properties_dir(), "model", f"{model}.yaml"),
        ):
            if os.path.isfile(path):
                self._update_internal_config_dict(path)

    def _load_config_files(self, file_list):
        """RecBole's YAML loading, with a missing file, malformed YAML or a file that is not ``key: value`` lines
        refused naming the file (and line)."""
        for file in file_list or []:
            if not os.path.isfile(file):
                raise GenNiConfigError(f"{file}: no such config file (--config_files / config_file_list)")
            with open(file, encoding="utf-8") as f:
                try:
                    content = yaml.load(f.read(), Loader=self.yaml_loader)
                except yaml.YAMLError as err:
                    mark = getattr(err, "problem_mark", None)
                    where = f"{file}:{mark.line + 1}" if mark is not None else file
                    problem = getattr(err, "problem", None) or str(err).splitlines()[0]
                    raise GenNiConfigError(
                        f"{where}: not valid YAML ({problem}); write one key: value per line") from None
            if content is not None and not isinstance(content, dict):
                raise GenNiConfigError(f"{file}: expected key: value lines, got a YAML {type(content).__name__}")
        return super()._load_config_files(file_list)

    def __str__(self):
        """RecBole's dump with the negatives in one line, the settings in use (:meth:`negatives_summary`), in place
        of ``train_neg_sample_args`` (RecBole's, which says uniform while GenNi runs) and the ``neg_*`` keys."""
        full = self.final_config_dict
        self.final_config_dict = {k: v for k, v in full.items() if k not in _SUMMARISED_KEYS
                                  and not k.startswith("neg_")}
        try:
            text = super().__str__()
        finally:
            self.final_config_dict = full
        return "\n" + set_color("Negatives: ", "pink") + self.negatives_summary() + text

    def negatives_summary(self) -> str:
        """The negatives and the loss of this run in words: the sampler's own line, then the loss."""
        sampler, loss = self["neg_sampler"], self["sampled_loss"] or self["loss_type"]
        if sampler == "none":
            return f"none; loss {self['loss_type']} (full softmax over every item)"
        if loss == "SSM":
            loss += f" (logQ weight {float(self['ssm_logq']):g})"
        elif loss == "gBCE":
            loss += f" (t {self['gbce_t']})"
        if loss.startswith(("BCE", "gBCE")) and not self["bce_logit_offset"]:
            loss += ", raw logits"
        return f"{SAMPLERS[sampler].describe(self)}; loss {loss}"

    def _get_final_config_dict(self):
        final = super()._get_final_config_dict()
        _refuse_misspelt_keys(self.external_config_dict)
        _refuse_conflicting_samplers(self.external_config_dict)
        self._translate_recbole_neg_args(final)
        validate_neg_keys(final, set(self.external_config_dict))
        _validate_valid_metric(final)
        self._resolve_loss_and_recbole_args(final)
        return final

    def _init_device(self):
        """RecBole's device set-up, with distributed runs on gloo (CPU) as well as NCCL (CUDA).

        RecBole 1.2.1 hard-wires ``init_process_group(backend="nccl")`` and ``cuda:<local_rank>``.
        """
        final = self.final_config_dict
        if "local_rank" not in final:
            super()._init_device()
        else:
            init_distributed(final)
        final["use_gpu"] = final["device"].type == "cuda"  # RecBole's default says True on a CPU too

    def _translate_recbole_neg_args(self, final):
        """Map a user's ``train_neg_sample_args`` onto the ``neg_*`` keys the user did not set (those set must agree
        with it: :func:`_refuse_conflicting_samplers`), so that none of its settings is dropped."""
        ext = self.external_config_dict
        if "train_neg_sample_args" in ext:
            final.update({key: value for key, value in translated_recbole_args(ext["train_neg_sample_args"]).items()
                          if key not in ext})
        elif "neg_sampler" not in ext and ext.get("loss_type") == "CE":
            final["neg_sampler"] = "none"

    def _resolve_loss_and_recbole_args(self, final):
        model, sampler = self.model, final["neg_sampler"]
        family = recbole_family(self.model_class)  # a user's subclass of a RecBole model is treated as that model
        # RecBole's sequential models branch on loss_type, all but the pairwise-only ones (SINE declares a pairwise
        # input_type and still trains CE by default: it needs loss_type BPR to use the negatives)
        uses_loss_type = family not in PAIRWISE_ONLY_MODELS
        user_loss = self.external_config_dict.get("loss_type")
        final["sampled_loss"] = None  # the loss over K negatives, for the loss_fct of a RecBole model's BPR head
        _check_ce_chunk(final, model, family in PLAIN_CE_MODELS or hasattr(self.model_class, "loss_types"))
        if hasattr(self.model_class, "loss_types"):
            self._resolve_own_loss(final, user_loss)
            return
        if final["train_bucket_batches"]:
            raise GenNiConfigError(
                f"train_bucket_batches: {final['train_bucket_batches']} groups whole user sequences by length, but "
                f"{model} trains on RecBole's prefix rows, all padded to MAX_ITEM_LIST_LENGTH; set it to 0."
            )
        if final["train_window_stride"]:
            raise GenNiConfigError(
                f"train_window_stride: {final['train_window_stride']} adds earlier windows of long user sequences, "
                f"but {model} trains on RecBole's prefix rows, which already make every item a target; set it to 0."
            )
        if sampler == "none":
            if not uses_loss_type:
                raise GenNiConfigError(
                    f"neg_sampler: none trains with full-softmax CE, but {model} always trains on negatives; "
                    "set neg_sampler to uniform, popularity, dns or genni."
                )
            _check_ce_pairing(user_loss, sampler, "loss_type: BPR")
            final["loss_type"] = "CE"
            final["train_neg_sample_args"] = None
            return
        if family in REFUSED_MODELS:
            raise GenNiConfigError(f"model {model} cannot train with neg_sampler: {sampler}. {REFUSED_MODELS[family]}")
        if final["MODEL_TYPE"] != ModelType.SEQUENTIAL:
            raise GenNiConfigError(
                f"neg_sampler: {sampler} is for sequential models; {model} is {final['MODEL_TYPE'].name.lower()}."
            )
        _check_ce_pairing(user_loss, sampler, "loss_type: BPR")
        loss = user_loss or "BPR"
        if loss not in SAMPLED_LOSSES:
            expected = f"{' | '.join(SAMPLED_LOSSES)} with a sampler, or CE with neg_sampler: none"
            raise invalid("loss_type", loss, expected)
        dot_head = family in ONE_PASS_ENCODERS or family in MASKED_ENCODERS
        if loss != "BPR" and not dot_head:
            raise GenNiConfigError(
                f"loss_type: {loss} trains the scores of a dot-product head (the encoded sequence times the item "
                f"table), and {model} scores items otherwise; use loss_type: BPR."
            )
        SAMPLERS[sampler].check_loss(loss)
        SAMPLERS[sampler].check_model(model, dot_head)
        if family in MASKED_ENCODERS and self.external_config_dict.get("neg_scoring") == "eval_pass":
            raise GenNiConfigError(
                f"neg_scoring: eval_pass scores a model's next-item output, and {model} trains at masked positions "
                "that only its training pass encodes. Drop neg_scoring."
            )
        if uses_loss_type:
            final["loss_type"] = "BPR"  # what RecBole's constructor accepts; the head's scores train with sampled_loss
        final["sampled_loss"] = loss
        final["train_neg_sample_args"] = dict(_RECBOLE_PAIRWISE_ARGS)


    def _resolve_own_loss(self, final, user_loss):
        """Models that draw their own negatives (``loss_types``): CE goes with ``neg_sampler: none``."""
        sampler, allowed = final["neg_sampler"], self.model_class.loss_types
        loss = final["loss_type"]
        if loss not in allowed:
            raise GenNiConfigError(f"loss_type: {loss!r} is invalid for {self.model}; expected {' | '.join(allowed)}.")
        _check_ce_pairing(user_loss, sampler, "another loss_type")
        if sampler == "none":
            final["loss_type"] = "CE"
        elif loss == "CE":
            final["loss_type"] = "BCE"
        if sampler != "none":
            SAMPLERS[sampler].check_loss(final["loss_type"])
        resolve_window_stride(final["train_window_stride"], final["MAX_ITEM_LIST_LENGTH"])
        if self.external_config_dict.get("neg_scoring") == "eval_pass":
            raise GenNiConfigError(
                f"neg_scoring: eval_pass scores RecBole models from a separate pass; {self.model} scores its "
                "candidates from its own training pass. Drop neg_scoring."
            )
        final["train_neg_sample_args"] = None


def _check_ce_chunk(final, model, plain_ce):
    """``ce_item_chunk`` chunks full-softmax CE, for a model whose CE is its hidden state times its item table only
    (``plain_ce``)."""
    if not final["ce_item_chunk"]:
        return
    if final["neg_sampler"] != "none":
        raise GenNiConfigError(
            f"ce_item_chunk: {final['ce_item_chunk']} chunks full-softmax CE, which trains with neg_sampler: none, "
            f"not {final['neg_sampler']}; set neg_sampler: none, or drop ce_item_chunk."
        )
    if not plain_ce:
        raise GenNiConfigError(
            f"ce_item_chunk: {model}'s CE is not one product of its hidden state and item table (or adds terms); "
            f"it is chunked for GenNiSASRec and {', '.join(PLAIN_CE_MODELS)}. Drop ce_item_chunk."
        )


def _check_ce_pairing(user_loss, sampler, sampled_loss):
    """Full-softmax CE and sampled negatives exclude each other: say which key to change."""
    if sampler == "none" and user_loss not in (None, "CE"):
        raise GenNiConfigError(
            f"loss_type: {user_loss} needs negatives but neg_sampler is none; "
            "set neg_sampler (e.g. genni) or loss_type: CE."
        )
    if sampler != "none" and user_loss == "CE":
        raise GenNiConfigError(
            f"loss_type: CE is full softmax and uses no negatives, but neg_sampler is {sampler}; "
            f"set neg_sampler: none for CE, or {sampled_loss} to train on the sampled negatives."
        )


@functools.lru_cache(maxsize=None)
def _default_keys(root: str) -> frozenset:
    """Every key that some default YAML under ``root`` defines, for any model or dataset."""
    keys = set()
    for path in glob.glob(os.path.join(root, "**", "*.yaml"), recursive=True):
        with open(path, encoding="utf-8") as file:
            keys.update(yaml.safe_load(file) or {})
    return frozenset(keys)


def _refuse_conflicting_samplers(external):
    """The ``neg_*`` keys (ours) and ``train_neg_sample_args`` (RecBole's) both choose the negatives: refuse any of
    ours that disagrees with it, and ``neg_num`` with ``neg_sampler: none`` (full softmax uses no negatives)."""
    if external.get("neg_sampler") == "none" and "neg_num" in external:
        raise GenNiConfigError(
            f"neg_num: {external['neg_num']} asks for negatives, but neg_sampler: none trains full-softmax CE with "
            "none; drop neg_num, or choose a sampler (e.g. neg_sampler: genni)."
        )
    if "train_neg_sample_args" not in external:
        return
    translated = translated_recbole_args(external["train_neg_sample_args"])
    for key, value in translated.items():
        if external.get(key, value) != value:
            raise GenNiConfigError(
                f"train_neg_sample_args: {external['train_neg_sample_args']} means {key}: {value!r}, but {key} is "
                f"{external[key]!r}; set the negatives with the neg_* keys only (and drop train_neg_sample_args)."
            )


def _validate_valid_metric(final):
    """``valid_metric`` must be one of the computed metrics at one of the ``topk`` cut-offs (RecBole would fail
    with a KeyError after the first training epoch)."""
    name, _, cutoff = str(final["valid_metric"]).partition("@")
    metrics = [str(m).lower() for m in final["metrics"]]
    if name.lower() not in metrics:
        raise GenNiConfigError(
            f"valid_metric: {final['valid_metric']} is not computed: metrics is {final['metrics']}; add {name} to "
            "metrics or choose another valid_metric."
        )
    topk = final["topk"] if isinstance(final["topk"], list) else [final["topk"]]
    if cutoff and (not cutoff.isdigit() or int(cutoff) not in topk):
        raise GenNiConfigError(
            f"valid_metric: {final['valid_metric']} needs the cut-off {cutoff} in topk, which is {final['topk']}; "
            f"add {cutoff} to topk or choose another valid_metric."
        )


def _refuse_misspelt_keys(external):
    """RecBole ignores keys it does not know, so ``neg_exlude: target`` would train with the default exclusion:
    refuse a user's key that no default file defines (RecBole's, for any model, or ours) when it starts with
    ``neg_`` or is close to one of ours. Other unknown keys pass, as in RecBole."""
    ours = _default_keys(properties_dir())
    known = ours | _default_keys(os.path.join(os.path.dirname(recbole.__file__), "properties"))
    for key in external:
        if key in known:
            continue
        if key.lower() in ours:
            raise GenNiConfigError(f"{key} is not a configuration key (keys are case-sensitive); did you mean "
                                   f"{key.lower()}?")
        match = difflib.get_close_matches(key, sorted(ours), n=1, cutoff=0.8)
        if match or key.startswith("neg_"):
            hint = f"did you mean {match[0]}?" if match else "the neg_* keys are " + ", ".join(
                sorted(k for k in ours if k.startswith("neg_")))
            raise GenNiConfigError(f"{key} is not a configuration key; {hint}")
