"""GenNiSASRec: SASRec trained on every position of each user's sequence with per-step generated negatives.

Reference:
    Yongjun Chen et al. "Generating Negative Samples for Sequential Recommendation." arXiv 2208.03645.
    Wang-Cheng Kang and Julian McAuley. "Self-Attentive Sequential Recommendation." ICDM 2018.
"""

import torch
from recbole.model.sequential_recommender.sasrec import SASRec
from recbole.utils import InputType

from recbole_genni import losses
from recbole_genni.compat import recbole_loss_type
from recbole_genni.dataloader import BATCH_WEIGHT_FIELD
from recbole_genni.losses import SampledLoss
from recbole_genni.sampler import negative_sampler
from recbole_genni.scoring import DotScores, dot_scores, full_product_is_cheaper, product_columns

LOSS_TYPES = ("BCE", "BPR", "gBCE", "SSM", "CE")


class GenNiSASRec(SASRec):
    """RecBole's SASRec encoder (same hyper-parameter names), trained the way the SASRec and GenNi papers do.

    Each training row is one user's whole training sequence (:class:`~recbole_genni.dataloader.UserSequenceDataLoader`);
    the causal Transformer encodes it once and every position predicts the next item against K negatives drawn
    for that position by its :class:`~recbole_genni.negatives.base.NegativeSampler` from the same (detached) hidden
    states: the current model's preferences, at no extra encoder pass. ``loss_type`` picks the loss
    (:mod:`recbole_genni.losses`): ``BCE`` (the papers'), ``BPR``, ``gBCE``, ``SSM`` (sampled softmax with logQ;
    ``ssm_logq`` weighs the correction, 0 or False drops it) or ``CE`` (full softmax, no negatives). Evaluation is
    SASRec's: the last position against the full catalogue.
    """

    input_type = InputType.POINTWISE  # the loss is chosen here, not through RecBole's BPR/CE switch
    loss_types = LOSS_TYPES  # draws its own negatives: trained by UserSequenceDataLoader rows
    length_group_rows = 256  # rows per length group in :meth:`forward`

    def __init__(self, config, dataset):
        loss_type = config["loss_type"]
        with recbole_loss_type(config, "CE"):  # our losses are SampledLoss's, not SASRec's switch
            super().__init__(config, dataset)
        self.loss_type = loss_type
        self.TARGET_SEQ = config["TARGET_SEQ_FIELD"]
        self.position_from_end = config["position_from_end"]
        self.negatives = self.loss_fct = None  # CE: losses.full_softmax_loss_of over the whole catalogue
        self.ce_item_chunk = config["ce_item_chunk"]
        if loss_type != "CE":
            self.negatives = negative_sampler(config, dataset)
            self.loss_fct = SampledLoss(loss_type, config["neg_num"], self.n_items, config["gbce_t"],
                                        config["ssm_logq"], config["bce_logit_offset"])

    def encode(self, item_seq):
        """Hidden states of every position ``[B, L, H]`` (SASRec's forward without the final gather)."""
        input_emb = self.item_embedding(item_seq) + self.position_embedding(self.position_ids(item_seq))
        input_emb = self.dropout(self.LayerNorm(input_emb))
        mask = self.get_attention_mask(item_seq)
        return self.trm_encoder(input_emb, mask, output_all_encoded_layers=True)[-1]

    def position_ids(self, item_seq):
        """Position of each item ``[B or 1, L]``: from the row's start, as RecBole numbers them, or, with
        ``position_from_end``, so that every row's last item sits at ``MAX_ITEM_LIST_LENGTH - 1``, as in the
        left-padded rows of the SASRec and GenNi papers' code, where a position embedding means recency. Padding
        after the last item takes the last position; causal attention keeps it from the real ones."""
        positions = torch.arange(item_seq.size(1), dtype=torch.long, device=item_seq.device).unsqueeze(0)
        if not self.position_from_end:
            return positions
        shift = self.max_seq_length - (item_seq > 0).sum(dim=1, keepdim=True)
        return (positions + shift).clamp(max=self.max_seq_length - 1)

    def forward(self, item_seq, item_seq_len):
        """The state of each row's last item ``[B, H]``, as SASRec's forward computes it, at the cost of the real
        positions: rows are right-padded and attention is causal, so a row's last state ignores the padding after
        it. Rows are encoded in groups of similar length, each cut to its longest row (evaluation batches pad every
        row to ``MAX_ITEM_LIST_LENGTH``, mostly padding for short sequences)."""
        order = item_seq_len.argsort()
        groups = order.split(self.length_group_rows)
        widths = item_seq_len[torch.stack([group[-1] for group in groups])].tolist()  # one host-device sync
        output = self.item_embedding.weight.new_empty(item_seq.size(0), self.hidden_size)
        for rows, width in zip(groups, widths):
            output[rows] = self.gather_indexes(self.encode(item_seq[rows, :width]), item_seq_len[rows] - 1)
        return output

    def calculate_loss(self, interaction):
        """The mean loss over the batch's real positions, times the batch's weight when batches are bucketed by
        length (``train_bucket_batches``), so that every position weighs the same over an epoch."""
        loss = self._mean_position_loss(interaction)
        if BATCH_WEIGHT_FIELD in interaction:
            loss = loss * interaction[BATCH_WEIGHT_FIELD][0]
        return loss

    def _mean_position_loss(self, interaction):
        item_seq = interaction[self.ITEM_SEQ]
        targets = interaction[self.TARGET_SEQ]  # [B, L], 0 = padding
        real = (targets > 0).nonzero(as_tuple=True)  # one host-device sync for the three gathers below
        hidden = self.encode(item_seq)[real]  # [P, H]: real positions only
        pos_items = targets[real]  # [P]
        table = self.item_embedding.weight
        if self.loss_type == "CE":
            return losses.full_softmax_loss_of(hidden, table, pos_items, torch.ones_like(pos_items, dtype=torch.bool),
                                               self.ce_item_chunk)
        users = interaction[self.USER_ID].unsqueeze(1).expand_as(targets)[real]  # [P]
        # the current model's scores of the candidate pool, from the same encoder pass
        full = None
        if self.negatives.scores_whole_catalogue or \
                full_product_is_cheaper(self.negatives.neg_num, self.hidden_size, table.shape[0]):
            with torch.no_grad():
                full = hidden @ table.t()  # [P, |I|]: scores the pool and gives the loss its logits
        score = DotScores(hidden.detach(), table.detach(), pos_items, full)
        neg_items, neg_log_count = self.negatives.generate(
            users, pos_items, score, with_log_count=self.loss_fct.needs_log_count)
        if full is None:
            neg, pos = dot_scores(hidden, table, neg_items, pos_items)  # [P, K], [P]
        else:
            logits = product_columns(hidden, table, torch.cat([pos_items.unsqueeze(1), neg_items], dim=1), full)
            pos, neg = logits[:, 0], logits[:, 1:]
        return self.loss_fct(pos, neg, neg_log_count)
