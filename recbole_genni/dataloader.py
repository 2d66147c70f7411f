"""Data loaders: negatives for any RecBole model, whole user sequences for all-position models, and full-ranking
evaluation with each user's earlier items masked."""

import torch
from recbole.data.dataloader import AbstractDataLoader, FullSortEvalDataLoader, TrainDataLoader
from recbole.data.interaction import Interaction

from recbole_genni.negatives import SAMPLERS
from recbole_genni.options import resolve_window_stride
from recbole_genni.sampling import history_pairs
from recbole_genni.scoring import eval_mode_scorer, neg_item_field, scorer_for
from recbole_genni.support import MASKED_ENCODERS, ONE_PASS_ENCODERS, recbole_family

#: per-row copy of a bucketed batch's loss weight (:class:`UserSequenceDataLoader`)
BATCH_WEIGHT_FIELD = "batch_weight"


class GenNiTrainDataLoader(TrainDataLoader):
    """RecBole's ``TrainDataLoader`` with ``neg_sampler``-driven negatives: one row per positive, K negatives
    per row.

    Models that draw their negatives in their own loss (:mod:`recbole_genni.model.recbole_models`: the one-pass and
    masked-item models) get RecBole's rows as they are. The others get them here, where RecBole hooks its own
    sampling (``_neg_sampling``, in ``collate_fn``), in ``neg_item_id`` (``[B]`` for K = 1, ``[B, K]`` otherwise):
    for ``genni``/``dns`` the pool is scored by the attached model with ``full_sort_predict``, ``torch.no_grad()``,
    eval mode (no dropout), on the model's device, when the generator first asks for scores (so a batch drawn
    without the model pays none); train mode is restored afterwards.

    Attributes:
        negatives: the :class:`~recbole_genni.negatives.base.NegativeSampler` of the loader's draws, or None when the
            model draws its own.
    """

    def __init__(self, config, dataset, sampler, shuffle=False):
        family = recbole_family(config.model_class)
        self.generates_in_loss = family in ONE_PASS_ENCODERS or family in MASKED_ENCODERS
        self.negatives = None if self.generates_in_loss else SAMPLERS[config["neg_sampler"]](config, sampler)
        self.model = self.scorer = None
        super().__init__(config, dataset, sampler, shuffle=shuffle)

    def get_model(self, model):
        """Attach the model whose preferences generate the negatives (the local module, never a DDP wrapper)."""
        self.model = getattr(model, "module", model)
        self.scorer = scorer_for(self.model)

    def _neg_sampling(self, inter_feat):
        if self.generates_in_loss:
            return inter_feat
        users, targets = inter_feat[self.uid_field], inter_feat[self.iid_field]
        score = None
        if self.negatives.generates:
            if self.scorer is None:
                raise RuntimeError("neg_sampler needs the model: call get_model(model) before iterating")
            device = self.model.device  # pools, masks and draws on the model's device: no per-row host work
            users, targets = users.to(device), targets.to(device)
            score = eval_mode_scorer(self.model, self.scorer, inter_feat.to(device), targets)
        negatives = self.negatives.generate(users, targets, score)[0].cpu()
        inter_feat.update(Interaction({self.neg_item_id: neg_item_field(negatives, broadcast=False)}))
        return inter_feat


class UserSequenceDataLoader(AbstractDataLoader):
    """One row per user and epoch (more for long sequences, below): the user's whole training sequence
    (``ITEM_SEQ``, up to ``MAX_ITEM_LIST_LENGTH`` items) with the next item as target at every position
    (``TARGET_SEQ``, 0 = no target).

    Built once from RecBole's augmented training split (each user's last prefix row holds the whole training
    sequence and its last target), so valid and test items are never targets; batches are slices of a few tensors.

    A sequence longer than ``MAX_ITEM_LIST_LENGTH`` (L) loses its earlier items unless ``train_window_stride: S``
    > 0 (items, or a fraction of L): then the user also has rows for the windows ending S, 2S, ... items before
    the last, down to the window at the start of the sequence, and each window's targets are only its last S
    (those after the next earlier window), so every training item is a target exactly once, with at least L - S
    items before it in its row.

    A batch is as wide as its longest sequence. ``train_bucket_batches: n`` > 0 sorts the shuffled users by length
    within chunks of n batches and shuffles the batches, so batches hold users of similar length and pad far less
    (Beauty: 171k encoded positions an epoch instead of 1.07M, for 128k real ones). Each batch then carries
    ``BATCH_WEIGHT_FIELD``, its real positions over the epoch's mean per batch, by which the model scales its mean
    loss: every position keeps the weight it has in randomly composed batches.
    """

    def __init__(self, config, dataset, sampler=None, shuffle=False):
        feat = dataset.inter_feat
        self.uid_field, self.iid_field = dataset.uid_field, dataset.iid_field
        self.seq_field = self.iid_field + config["LIST_SUFFIX"]
        self.len_field = config["ITEM_LIST_LENGTH_FIELD"]
        self.target_field = config["TARGET_SEQ_FIELD"]
        stride = resolve_window_stride(config["train_window_stride"], config["MAX_ITEM_LIST_LENGTH"])
        rows, earliest = self._window_rows(feat[self.uid_field], stride, config["MAX_ITEM_LIST_LENGTH"])
        self.users = feat[self.uid_field][rows]
        self.item_seq = feat[self.seq_field][rows]
        self.lengths = feat[self.len_field][rows]
        targets = torch.zeros_like(self.item_seq)
        targets[:, :-1] = self.item_seq[:, 1:]
        targets[torch.arange(len(rows)), self.lengths - 1] = feat[self.iid_field][rows]
        if stride:  # a later window's first targets are the next earlier window's last ones
            targets[~earliest, : self.item_seq.size(1) - stride] = 0
        self.targets = targets  # [rows, L]
        self.target_counts = (targets > 0).sum(dim=1)
        self.sample_size = len(rows)
        self.bucket_batches = config["train_bucket_batches"]
        self.order = None  # this epoch's users in bucketed order, or None: batches are the shuffled indices
        super().__init__(config, dataset, sampler, shuffle=shuffle and not self.bucket_batches)
        self.shuffle = shuffle  # the caller's flag: with buckets, _bucketed_order shuffles, not torch's sampler
        self.mean_batch_positions = float(self.target_counts.double().mean()) * self.step  # self.step: this rank's rows

    @staticmethod
    def _window_rows(users, stride, max_length):
        """The prefix rows to train on (each user's last, and with ``stride`` > 0 those every ``stride`` rows before
        it down to the first that starts the sequence) and which of them start their user's sequence."""
        order = torch.sort(users, stable=True).indices  # rows of a user stay in time order
        _, counts = torch.unique_consecutive(users[order], return_counts=True)
        rank = torch.arange(len(order)) - torch.repeat_interleave(counts.cumsum(0) - counts, counts)
        from_end = torch.repeat_interleave(counts, counts) - 1 - rank  # 0 = the user's last row
        prefix = rank + 1  # items before the row's target: a prefix longer than max_length is cut
        keep = from_end == 0
        if stride:  # every stride-th row back, as long as the window after it did not start the sequence
            keep |= (from_end % stride == 0) & (prefix + stride > max_length)
        return order[keep], prefix[keep] <= max_length

    def __iter__(self):
        if self.bucket_batches:
            self.order = self._bucketed_order()
        return super().__iter__()

    def _bucketed_order(self):
        """Users shuffled, sorted by length within chunks of ``bucket_batches`` batches, the full batches shuffled
        (the last, partial one stays last: the loader slices at fixed offsets). Drawn from the loader's generator,
        so a resumed run repeats it."""
        step, users = self.config["train_batch_size"], self.sample_size  # whole batches, split across DDP ranks
        order = torch.randperm(users, generator=self.generator) if self.shuffle else torch.arange(users)
        chunk = step * self.bucket_batches
        order = torch.cat([part[torch.sort(self.lengths[part], stable=True).indices] for part in order.split(chunk)])
        full = users // step * step
        batches = order[:full].view(-1, step)
        if self.shuffle:
            batches = batches[torch.randperm(len(batches), generator=self.generator)]
        return torch.cat([batches.reshape(-1), order[full:]])

    def _init_batch_size_and_step(self):
        self.step = self.config["train_batch_size"]
        self.set_batch_size(self.step)

    def collate_fn(self, index):
        index = torch.as_tensor(index)
        if self.order is not None:
            index = self.order[index]
        lengths = self.lengths[index]
        width = int(lengths.max())  # sequences are left-aligned: columns past the longest are all padding
        batch = {
            self.uid_field: self.users[index],
            self.seq_field: self.item_seq[index, :width],
            self.len_field: lengths,
            self.target_field: self.targets[index, :width],
        }
        if self.order is not None:
            weight = float(self.target_counts[index].sum()) / self.mean_batch_positions
            batch[BATCH_WEIGHT_FIELD] = torch.full((len(index),), weight)
        return Interaction(batch)


class HistoryMaskedEvalDataLoader(FullSortEvalDataLoader):
    """RecBole's full-ranking loader for sequential models, with each user's earlier items ranked last.

    The S3-Rec / ICLRec / GenNi protocol masks every item the user interacted with before the target; RecBole does
    so for general models (``history_index``) but not for sequential ones. ``history_keys`` (from
    :func:`~recbole_genni.sampler.dataset_history_keys`) holds those items: the whole training history for the
    valid split, plus the valid item for the test split, not only the ``MAX_ITEM_LIST_LENGTH`` items of the row's
    input. The row's own target is never masked, as RecBole's general loaders never mask a positive (a dataset with
    repeated items, such as Yelp, can have the target among the earlier items). RecBole's trainer applies the
    mask: ``scores[history_index] = -inf``.
    """

    def __init__(self, config, dataset, sampler, history_keys, shuffle=False):
        self.history_keys = history_keys
        super().__init__(config, dataset, sampler, shuffle=shuffle)

    def collate_fn(self, index):
        interaction, _, positive_u, positive_i = super().collate_fn(index)
        users = interaction[self.uid_field]
        rows, items = history_pairs(self.history_keys, users, self._dataset.item_num)
        keep = items != positive_i[rows]
        return interaction, (rows[keep], items[keep]), positive_u, positive_i
