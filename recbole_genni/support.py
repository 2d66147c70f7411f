"""Which RecBole sequential models train with generated negatives, and how each one is scored.

``ONE_PASS_ENCODERS`` lists dot-product models: each sequence is encoded once by ``model.forward`` (arguments named
below, as the model's own loss passes them; in the loss itself, or in a separate eval pass with ``neg_scoring:
eval_pass``) and the hidden state is dotted with the candidates' rows of ``model.item_embedding``, the score the
model's BPR loss gives a negative (tested for every model). Their BPR heads also broadcast a ``[K, B]`` negatives
tensor, so K negatives cost one encoder pass in the loss too.

``MASKED_ENCODERS`` (BERT4Rec) train at masked positions: the negatives of each masked position are drawn in the
loss, from its one pass.

``GENERIC_MODELS`` have other heads (distances, biases, candidate-dependent forwards): they are scored with
``full_sort_predict`` once per row, then gathered, and K > 1 negatives repeat the row K times in the loss
(RecBole's own layout).

``REFUSED_MODELS`` cannot train on sampled negatives; the reason is the error the user sees.

A model is looked up by the RecBole class it is or subclasses (:func:`recbole_family`), not by its own name.
"""

#: model name -> interaction fields passed to ``model.forward`` (attribute names on the model)
ONE_PASS_ENCODERS = {
    "SASRec": ("ITEM_SEQ", "ITEM_SEQ_LEN"),
    "GRU4Rec": ("ITEM_SEQ", "ITEM_SEQ_LEN"),
    "NARM": ("ITEM_SEQ", "ITEM_SEQ_LEN"),
    "STAMP": ("ITEM_SEQ", "ITEM_SEQ_LEN"),
    "SRGNN": ("ITEM_SEQ", "ITEM_SEQ_LEN"),
    "GCSAN": ("ITEM_SEQ", "ITEM_SEQ_LEN"),
    "LightSANs": ("ITEM_SEQ", "ITEM_SEQ_LEN"),
    "SINE": ("ITEM_SEQ", "ITEM_SEQ_LEN"),
    "FEARec": ("ITEM_SEQ", "ITEM_SEQ_LEN"),
    "FDSA": ("ITEM_SEQ", "ITEM_SEQ_LEN"),
    "SASRecF": ("ITEM_SEQ", "ITEM_SEQ_LEN"),
    "GRU4RecF": ("ITEM_SEQ", "ITEM_SEQ_LEN"),
    "GRU4RecKG": ("ITEM_SEQ", "ITEM_SEQ_LEN"),
    "Caser": ("USER_ID", "ITEM_SEQ"),
    "NextItNet": ("ITEM_SEQ",),
    "FOSSIL": ("ITEM_SEQ", "ITEM_SEQ_LEN", "USER_ID"),
    "HRM": ("ITEM_SEQ", "USER_ID", "ITEM_SEQ_LEN"),
    # SHAN's loss encodes the left-padded copy of the sequence (its full_sort_predict, RecBole 1.2.1, the other)
    "SHAN": ("INVERSE_ITEM_SEQ", "USER_ID"),
    # HGN's BPR loss scores negatives with item_embedding (positives and ranking with item_embedding_for_prediction,
    # RecBole 1.2.1): the negatives are generated from the score that loss trains
    "HGN": ("ITEM_SEQ", "USER_ID"),
}

#: one-pass models whose CE loss is RecBole's cross-entropy of ``forward``'s output times ``item_embedding`` alone,
#: which ``ce_item_chunk`` computes in chunks of items (tests/test_recbole_models.py checks each against RecBole's)
PLAIN_CE_MODELS = ("SASRec", "GRU4Rec", "NARM", "STAMP", "SRGNN", "GCSAN", "LightSANs", "FDSA", "SASRecF",
                   "GRU4RecF", "FOSSIL", "HRM")  # not Caser and NextItNet: their CE adds a regulariser

#: masked-item models: their loss encodes the masked sequence once and scores each masked position with the item
#: table plus an output bias; negatives are drawn there
#: (:class:`~recbole_genni.model.recbole_models.NegativesAtMaskedPositions`)
MASKED_ENCODERS = ("BERT4Rec",)

#: models that train only on sampled negatives, with BPR whatever ``loss_type`` says (no CE)
PAIRWISE_ONLY_MODELS = ("FPMC", "TransRec")

#: models scored through ``full_sort_predict`` (exact, one pass per row, but |I| scores per row)
GENERIC_MODELS = ("FPMC", "TransRec", "NPE")

REFUSED_MODELS = {
    "CORE": "CORE trains with full-softmax CE only; use neg_sampler: none.",
    "SASRecCPR": "SASRecCPR calls sys.exit(0) on BPR, which would look like success; use neg_sampler: none.",
    "GRU4RecCPR": "GRU4RecCPR calls sys.exit(0) on BPR, which would look like success; use neg_sampler: none.",
    "RepeatNet": "RepeatNet trains sampled negatives as positives; use neg_sampler: none.",
    "DIN": "DIN is a CTR model with its own labelled negatives and no full ranking.",
    "DIEN": "DIEN is a CTR model with its own labelled negatives and no full ranking.",
    "S3Rec": "S3Rec pre-trains with its own objective; generated negatives are not wired into it.",
    "KSR": "RecBole 1.2.1's KSR builds its relation matrix in float64 and its forward fails with "
    "'expected m1 and m2 to have the same dtype' on any loss; it cannot train here.",
}


def recbole_class(model_class):
    """The RecBole model class that ``model_class`` is or subclasses (the first in its MRO defined by RecBole), or
    None for a model of the package's own."""
    return next((cls for cls in model_class.__mro__ if cls.__module__.startswith("recbole.model.")), None)


def recbole_family(model_class) -> str:
    """The name of the RecBole model that ``model_class`` is or subclasses, so that a user's subclass of SASRec is
    scored, refused or trained as SASRec is; else its own name."""
    return (recbole_class(model_class) or model_class).__name__
