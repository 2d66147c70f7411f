"""RecBole's built-in sequential models that draw their negatives in their own loss: one visible subclass each.

A one-pass model (:data:`~recbole_genni.support.ONE_PASS_ENCODERS`) encodes each row once in ``forward`` and dots
the hidden state with rows of ``item_embedding``, for its positive and for ``interaction[NEG_ITEM_ID]``. Its subclass
here (:class:`NegativesFromTrainingPass` before the RecBole class) draws K negatives when the first ``forward`` of
each ``calculate_loss`` returns, from that output (detached), and writes them (``[K, N]``, which the model's BPR head
broadcasts) where RecBole's loss code reads them next: GenNi costs no encoder pass beyond the one the loss makes
(``neg_scoring: eval_pass`` scores from a separate no-grad pass in eval mode instead). RecBole's own loss code runs
unchanged, extra terms included (FEARec's contrastive term, regularisers); with ``loss_type`` SSM, BCE or gBCE the
model's ``loss_fct`` is :class:`BPRHeadLoss`.

A masked-item model (BERT4Rec) reads its negatives before it encodes, so :class:`NegativesAtMaskedPositions`
replaces its loss: the same single pass, with K negatives per masked position.

:func:`with_negatives_in_loss` gives the class that trains for any model class; ``get_model`` uses it, so
``--model=GRU4Rec`` runs :class:`GRU4Rec` below, and a user's subclass of a RecBole model gets the same behaviour.
Without negatives (``neg_sampler: none``) every subclass is its RecBole model.
"""

import torch
from recbole.data.interaction import Interaction

from recbole_genni.compat import recbole_sequential_models
from recbole_genni.losses import SampledLoss, full_softmax_loss_of
from recbole_genni.sampler import negative_sampler
from recbole_genni.scoring import DotProductScorer, DotScores, eval_mode_scorer, neg_item_field
from recbole_genni.support import MASKED_ENCODERS, ONE_PASS_ENCODERS, recbole_family

recbole_seq = recbole_sequential_models()


def _negatives_and_loss(config, dataset, loss_class):
    """``(NegativeSampler or None, loss_class or None)`` of a built-in model: None without negatives, and no
    loss for ``loss_type: BPR`` (the model's own)."""
    if config["neg_sampler"] == "none":
        return None, None
    negatives = negative_sampler(config, dataset)
    loss_type = config["sampled_loss"] or "BPR"
    if loss_type == "BPR":
        return negatives, None
    return negatives, loss_class(loss_type, negatives.neg_num, dataset.item_num, config["gbce_t"],
                                 config["ssm_logq"], config["bce_logit_offset"])


class BPRHeadLoss(SampledLoss):
    """Stands in for a RecBole model's ``BPRLoss``, with its call ``(pos_score [N], neg_score [N] or [K, N])``;
    :class:`NegativesFromTrainingPass` sets :attr:`log_count` ``[N, K]`` (SSM's logQ) before each call."""

    log_count = None

    def forward(self, pos_score, neg_score):
        neg = neg_score.unsqueeze(-1) if neg_score.dim() == 1 else neg_score.t()  # [N, K]
        return super().forward(pos_score, neg, self.log_count)


class NegativesFromTrainingPass:
    """Put before a one-pass RecBole model: its loss trains on negatives drawn from its own training pass.

    Attributes:
        negatives: the :class:`~recbole_genni.negatives.base.NegativeSampler` (None for ``neg_sampler: none``).
    """

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        self.negatives, sampled_loss = _negatives_and_loss(config, dataset, BPRHeadLoss)
        if sampled_loss is not None:
            self.loss_fct = sampled_loss  # the BPR head's scores, trained with loss_type
        self.eval_pass = config["neg_scoring"] == "eval_pass"
        self._scorer = DotProductScorer(self, ONE_PASS_ENCODERS[recbole_family(type(self))])
        self._loss_batch = None  # set while calculate_loss waits for its first forward
        self.ce_item_chunk = config["ce_item_chunk"]

    def calculate_loss(self, interaction):
        """RecBole's loss, its negatives drawn when its first ``forward`` returns; CE chunked over the items with
        ``ce_item_chunk``."""
        if self.negatives is None and self.ce_item_chunk:
            targets = interaction[self.POS_ITEM_ID]
            return full_softmax_loss_of(self._scorer.encode(interaction), self.item_embedding.weight, targets,
                                        torch.ones_like(targets, dtype=torch.bool), self.ce_item_chunk)
        self._loss_batch = interaction if self.negatives is not None else None
        try:
            return super().calculate_loss(interaction)
        finally:
            self._loss_batch = None

    def forward(self, *args, **kwargs):
        output = super().forward(*args, **kwargs)
        interaction, self._loss_batch = self._loss_batch, None
        if interaction is not None:  # the loss's first pass (not evaluation, not a second, augmented one)
            self._draw_negatives(interaction, output)
        return output

    def _draw_negatives(self, interaction, output):
        users, targets = interaction[self.USER_ID], interaction[self.POS_ITEM_ID]
        score = None
        if self.negatives.generates and self.eval_pass:
            score = eval_mode_scorer(self, self._scorer, interaction, targets)
        elif self.negatives.generates:
            score = DotScores(output.detach(), self.item_embedding.weight.detach(), targets)
        with_log_count = isinstance(self.loss_fct, BPRHeadLoss) and self.loss_fct.needs_log_count
        negatives, log_count = self.negatives.generate(users, targets, score, with_log_count)
        interaction.update(Interaction({self.NEG_ITEM_ID: neg_item_field(negatives, broadcast=True)}))
        if isinstance(self.loss_fct, BPRHeadLoss):
            self.loss_fct.log_count = log_count


class NegativesAtMaskedPositions:
    """Put before a masked-item RecBole model (BERT4Rec): its loss trains each masked position on K negatives
    drawn from the same pass.

    RecBole's BERT4Rec reads the negatives of its masked positions (drawn uniformly by its mask transform) before
    it encodes. This loss does what BERT4Rec's BPR branch does, once: encode the masked sequence, take the hidden
    state at each masked position (``MASK_INDEX`` > 0, as BERT4Rec counts them) and score items by the dot product
    with ``item_embedding`` plus ``output_bias``; from those scores (detached) the generator draws K negatives per
    masked position, trained with ``loss_type``. With BPR and one negative it is BERT4Rec's own BPR loss.
    """

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        self.negatives, self.sampled_loss = _negatives_and_loss(config, dataset, SampledLoss)

    def calculate_loss(self, interaction):
        if self.negatives is None:
            return super().calculate_loss(interaction)
        masked_index = interaction[self.MASK_INDEX]  # [B, m], 0: padding
        output = self.forward(interaction[self.MASK_ITEM_SEQ])  # [B, L, H]
        hidden = output.gather(1, masked_index.unsqueeze(2).expand(-1, -1, output.shape[2]))  # [B, m, H]
        masked = masked_index > 0
        targets = interaction[self.POS_ITEMS][masked]  # [N]
        users = interaction[self.USER_ID].unsqueeze(1).expand_as(masked_index)[masked]
        # an item's score is hidden . embedding + bias: one product, the bias an extra column against a 1
        query = torch.cat([hidden[masked], hidden.new_ones(len(targets), 1)], dim=1)  # [N, H + 1]
        table = torch.cat([self.item_embedding.weight[:self.n_items], self.output_bias.unsqueeze(1)], dim=1)
        score = None
        if self.negatives.generates:
            score = DotScores(query.detach(), table.detach(), targets)
        with_log_count = self.sampled_loss is not None and self.sampled_loss.needs_log_count
        negatives, log_count = self.negatives.generate(users, targets, score, with_log_count)  # [N, K]
        pos_score = (query * table[targets]).sum(dim=1)
        neg_score = torch.bmm(table[negatives], query.unsqueeze(2)).squeeze(2)  # [N, K]
        if self.sampled_loss is None:  # BERT4Rec's own BPR, over the K negatives
            return -torch.log(1e-14 + torch.sigmoid(pos_score.unsqueeze(1) - neg_score)).mean()
        return self.sampled_loss(pos_score, neg_score, log_count)


# RecBole's one-pass models (support.ONE_PASS_ENCODERS), as `--model=<name>` trains them
class SASRec(NegativesFromTrainingPass, recbole_seq.SASRec):
    """RecBole's SASRec; its loss's negatives drawn from its training pass."""


class GRU4Rec(NegativesFromTrainingPass, recbole_seq.GRU4Rec):
    """RecBole's GRU4Rec; its loss's negatives drawn from its training pass."""


class NARM(NegativesFromTrainingPass, recbole_seq.NARM):
    """RecBole's NARM; its loss's negatives drawn from its training pass."""


class STAMP(NegativesFromTrainingPass, recbole_seq.STAMP):
    """RecBole's STAMP; its loss's negatives drawn from its training pass."""


class SRGNN(NegativesFromTrainingPass, recbole_seq.SRGNN):
    """RecBole's SRGNN; its loss's negatives drawn from its training pass."""


class GCSAN(NegativesFromTrainingPass, recbole_seq.GCSAN):
    """RecBole's GCSAN; its loss's negatives drawn from its training pass."""


class LightSANs(NegativesFromTrainingPass, recbole_seq.LightSANs):
    """RecBole's LightSANs; its loss's negatives drawn from its training pass."""


class SINE(NegativesFromTrainingPass, recbole_seq.SINE):
    """RecBole's SINE; its loss's negatives drawn from its training pass."""


class FEARec(NegativesFromTrainingPass, recbole_seq.FEARec):
    """RecBole's FEARec; its loss's negatives drawn from its training pass."""


class FDSA(NegativesFromTrainingPass, recbole_seq.FDSA):
    """RecBole's FDSA; its loss's negatives drawn from its training pass."""


class SASRecF(NegativesFromTrainingPass, recbole_seq.SASRecF):
    """RecBole's SASRecF; its loss's negatives drawn from its training pass."""


class GRU4RecF(NegativesFromTrainingPass, recbole_seq.GRU4RecF):
    """RecBole's GRU4RecF; its loss's negatives drawn from its training pass."""


class GRU4RecKG(NegativesFromTrainingPass, recbole_seq.GRU4RecKG):
    """RecBole's GRU4RecKG; its loss's negatives drawn from its training pass."""


class Caser(NegativesFromTrainingPass, recbole_seq.Caser):
    """RecBole's Caser; its loss's negatives drawn from its training pass."""


class NextItNet(NegativesFromTrainingPass, recbole_seq.NextItNet):
    """RecBole's NextItNet; its loss's negatives drawn from its training pass."""


class FOSSIL(NegativesFromTrainingPass, recbole_seq.FOSSIL):
    """RecBole's FOSSIL; its loss's negatives drawn from its training pass."""


class HRM(NegativesFromTrainingPass, recbole_seq.HRM):
    """RecBole's HRM; its loss's negatives drawn from its training pass."""


class SHAN(NegativesFromTrainingPass, recbole_seq.SHAN):
    """RecBole's SHAN; its loss's negatives drawn from its training pass."""


class HGN(NegativesFromTrainingPass, recbole_seq.HGN):
    """RecBole's HGN; its loss's negatives drawn from its training pass."""


# the masked-item model (support.MASKED_ENCODERS)
class BERT4Rec(NegativesAtMaskedPositions, recbole_seq.BERT4Rec):
    """RecBole's BERT4Rec; each masked position's negatives drawn from its training pass."""


#: RecBole model name -> the subclass above that trains it
SUBCLASSES = {cls.__name__: cls for cls in (
    SASRec, GRU4Rec, NARM, STAMP, SRGNN, GCSAN, LightSANs, SINE, FEARec, FDSA, SASRecF, GRU4RecF, GRU4RecKG, Caser,
    NextItNet, FOSSIL, HRM, SHAN, HGN, BERT4Rec)}


def with_negatives_in_loss(model_class):
    """The class that trains ``model_class`` with the package's negatives: its subclass above for a RecBole model,
    the class itself when it already draws them (or draws in the loader, as models without a dot-product head do),
    and for a user's subclass of a one-pass or masked RecBole model, that subclass with the same mixin before it."""
    family = recbole_family(model_class)
    if issubclass(model_class, (NegativesFromTrainingPass, NegativesAtMaskedPositions)):
        return model_class
    ours = SUBCLASSES.get(model_class.__name__)
    if ours is not None and ours.__bases__[-1] is model_class:
        return ours
    if family in ONE_PASS_ENCODERS or family in MASKED_ENCODERS:
        mixin = NegativesAtMaskedPositions if family in MASKED_ENCODERS else NegativesFromTrainingPass
        return type(model_class.__name__, (mixin, model_class), {"__module__": model_class.__module__,
                                                                  "__doc__": model_class.__doc__})
    return model_class
