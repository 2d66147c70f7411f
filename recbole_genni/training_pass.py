"""Negatives generated inside a one-pass RecBole model's own ``calculate_loss``, from its training pass.

A one-pass model (:data:`~recbole_genni.support.ONE_PASS_ENCODERS`) encodes each row once in ``forward`` and dots
the hidden state with rows of ``item_embedding``, for its positive and for ``interaction[NEG_ITEM_ID]``. Its
``forward`` is wrapped on the instance: the first call of each ``calculate_loss`` hands its output (detached) to
the :class:`~recbole_genni.generator.NegativeGenerator`, which scores the pool from it and draws K negatives, and
writes them (``[K, N]``, which the model's BPR head broadcasts) where the model reads them next. GenNi then costs
no encoder pass beyond the one the loss makes; ``neg_scoring: eval_pass`` scores from a separate no-grad pass in
eval mode instead (no dropout). The model's own loss code runs unchanged, extra terms included (FEARec's
contrastive term, regularisers); with ``loss_type`` SSM, BCE or gBCE its ``loss_fct`` is :class:`SampledLoss`.

A masked-item model (:data:`~recbole_genni.support.MASKED_ENCODERS`, BERT4Rec) reads its negatives before it encodes,
so :class:`MaskedPositionNegatives` replaces its loss: the same single pass, with K negatives per masked position.
"""

import torch
from recbole.data.interaction import Interaction

from recbole_genni import losses
from recbole_genni.scoring import dot_scores


class SampledLoss(torch.nn.Module):
    """Stands in for a RecBole model's ``BPRLoss``, with the same call ``(pos_score [N], neg_score [N] or
    [K, N])``, and trains the K negatives with ``loss_type`` (:mod:`recbole_genni.losses`). ``log_count``
    ``[N, K]`` (SSM's logQ) is set by :class:`TrainingPassNegatives` before each call."""

    def __init__(self, loss_type, gbce_beta=None, logq_weight=1.0):
        super().__init__()
        self.loss_type, self.gbce_beta, self.logq_weight = loss_type, gbce_beta, float(logq_weight)
        self.log_count = None

    def forward(self, pos_score, neg_score):
        neg = neg_score.unsqueeze(-1) if neg_score.dim() == 1 else neg_score.t()  # [N, K]
        mask = torch.ones_like(pos_score, dtype=torch.bool)
        if self.loss_type == "BCE":
            return losses.bce_loss(pos_score, neg, mask)
        if self.loss_type == "gBCE":
            return losses.gbce_loss(pos_score, neg, mask, self.gbce_beta)
        log_count = self.log_count if self.logq_weight > 0 else None
        return losses.sampled_softmax_loss(pos_score, neg, mask, log_count, self.logq_weight)


def sampled_loss_for(config, generator):
    """``(with_log_count, SampledLoss or None)`` for the run's ``sampled_loss`` (None: the model's own BPR)."""
    loss_type = config["sampled_loss"] or "BPR"
    if loss_type == "BPR":
        return False, None
    beta = losses.gbce_beta(generator.neg_num, generator.sampler.item_num - 1, config["gbce_t"])  # less padding
    return loss_type == "SSM" and float(config["ssm_logq"]) > 0, SampledLoss(loss_type, beta, config["ssm_logq"])


class TrainingPassNegatives:
    """Installs generation from the training pass on a one-pass RecBole model (see the module's docstring).

    Args:
        model: the RecBole model (the local module, never a DDP wrapper).
        generator: the :class:`~recbole_genni.generator.NegativeGenerator` of the training loader.
        eval_scorer: ``eval_scorer(interaction, targets) -> score`` for ``neg_scoring: eval_pass``, the training
            loader's scoring callback from a separate no-grad pass in eval mode.
        config: the run's config (``sampled_loss``, ``neg_scoring``, ``gbce_t``, ``ssm_logq``).
    """

    def __init__(self, model, generator, eval_scorer, config):
        self.model, self.generator, self.eval_scorer = model, generator, eval_scorer
        self.eval_pass = config["neg_scoring"] == "eval_pass"
        self.with_log_count, sampled_loss = sampled_loss_for(config, generator)
        if sampled_loss is not None:
            model.loss_fct = sampled_loss
        self._forward = model.forward  # the class's method, bound
        self._calculate_loss = model.calculate_loss
        self._armed = None
        model.forward = self.forward
        model.calculate_loss = self.calculate_loss

    def calculate_loss(self, interaction):
        """The model's own loss, its negatives drawn when its first ``forward`` returns."""
        self._armed = interaction
        try:
            return self._calculate_loss(interaction)
        finally:
            self._armed = None

    def forward(self, *args, **kwargs):
        output = self._forward(*args, **kwargs)
        interaction, self._armed = self._armed, None
        if interaction is not None:  # the loss's first pass (not evaluation, not a second, augmented one)
            self._generate(interaction, output)
        return output

    def _generate(self, interaction, output):
        model = self.model
        users, targets = interaction[model.USER_ID], interaction[model.POS_ITEM_ID]
        score = None
        if self.generator.generates and self.eval_pass:
            score = self.eval_scorer(interaction, targets)
        elif self.generator.generates:
            hidden, table = output.detach(), model.item_embedding.weight.detach()
            score = lambda candidates: dot_scores(hidden, table, candidates, targets)  # noqa: E731
        negatives, log_count = self.generator.generate(users, targets, score, self.with_log_count)
        neg = negatives[:, 0] if negatives.shape[1] == 1 else negatives.t()  # [K, N]: one encoder pass for K
        interaction.update(Interaction({model.NEG_ITEM_ID: neg}))
        if isinstance(model.loss_fct, SampledLoss):
            model.loss_fct.log_count = log_count


class MaskedPositionNegatives:
    """Installs generation from the training pass on a masked-item model (BERT4Rec), by replacing its loss.

    RecBole's BERT4Rec reads the negatives of its masked positions (drawn uniformly by its mask transform) before
    it encodes. This loss does what BERT4Rec's BPR branch does, once: encode the masked sequence, take the hidden
    state at each masked position (``MASK_INDEX`` > 0, as BERT4Rec counts them) and score items by the dot product
    with ``item_embedding`` plus ``output_bias``; from those scores (detached) the generator draws K negatives per
    masked position, trained with ``loss_type``. With BPR and one negative it is BERT4Rec's own BPR loss.
    """

    def __init__(self, model, generator, config):
        self.model, self.generator = model, generator
        self.with_log_count, self.sampled_loss = sampled_loss_for(config, generator)
        model.calculate_loss = self.calculate_loss

    def calculate_loss(self, interaction):
        model = self.model
        masked_index = interaction[model.MASK_INDEX]  # [B, m], 0: padding
        output = model.forward(interaction[model.MASK_ITEM_SEQ])  # [B, L, H]
        hidden = output.gather(1, masked_index.unsqueeze(2).expand(-1, -1, output.shape[2]))  # [B, m, H]
        masked = masked_index > 0
        targets = interaction[model.POS_ITEMS][masked]  # [N]
        users = interaction[model.USER_ID].unsqueeze(1).expand_as(masked_index)[masked]
        # an item's score is hidden . embedding + bias: one product, the bias an extra column against a 1
        query = torch.cat([hidden[masked], hidden.new_ones(len(targets), 1)], dim=1)  # [N, H + 1]
        table = torch.cat([model.item_embedding.weight[:model.n_items], model.output_bias.unsqueeze(1)], dim=1)
        score = None
        if self.generator.generates:
            fixed_query, fixed_table = query.detach(), table.detach()
            score = lambda candidates: dot_scores(fixed_query, fixed_table, candidates, targets)  # noqa: E731
        negatives, log_count = self.generator.generate(users, targets, score, self.with_log_count)  # [N, K]
        pos_score = (query * table[targets]).sum(dim=1)
        neg_score = torch.bmm(table[negatives], query.unsqueeze(2)).squeeze(2)  # [N, K]
        if self.sampled_loss is None:  # BERT4Rec's own BPR, over the K negatives
            return -torch.log(1e-14 + torch.sigmoid(pos_score.unsqueeze(1) - neg_score)).mean()
        self.sampled_loss.log_count = log_count
        return self.sampled_loss(pos_score, neg_score.t())
