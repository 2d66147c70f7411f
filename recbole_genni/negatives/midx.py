"""``neg_sampler: midx``: K negatives from a multi-index proposal close to the model's softmax, at sublinear cost.

Every ``neg_index_refresh`` batches the item table is quantised into c x c cells (``neg_index_clusters`` = c;
:mod:`recbole_genni.multi_index`); each row then draws K items from the softmax over the catalogue of their quantised
scores / ``neg_temperature``, with replacement, never scoring the catalogue. ``log q`` is exact, so SSM's logQ
correction is too. With ``neg_index_resample: M`` each row draws M items from the index, the model scores them, and
K are resampled in proportion to ``exp(score / tau) / q`` (sampling-importance-resampling): closer to the model's
softmax, at the cost of scoring M items a row.
"""

import math

import torch

from recbole_genni import multi_index, sampling
from recbole_genni.errors import GenNiConfigError
from recbole_genni.negatives.base import NegativeSampler, excluding
from recbole_genni.negatives.genni import schedule_in_words
from recbole_genni.telemetry import SAMPLED_ROWS

#: proposal draws per row, beyond K, that give room for the excluded items (redrawn when too few remain)
_SPARE_DRAWS = 16
_REDRAWS = 4


class MIDXNegatives(NegativeSampler):
    """Draws from an inverted multi-index over the item table (MIDX: Chen et al., WWW 2022), rebuilt from the
    current embeddings every ``neg_index_refresh`` batches; needs a model that scores by a dot product with its item
    table (the scores' ``query`` and ``table``).

    Excluded items (``neg_exclude``) are rejected and redrawn, so a row's proposal is ``q`` restricted to its allowed
    items, ``q(i) / (1 - q(excluded))``; rows that keep too few allowed draws get proposal negatives
    (``fallback_rows``).
    """

    uses_model = True

    def __init__(self, config, candidates):
        super().__init__(config, candidates)
        self.temperature = float(config["neg_temperature"])
        self.clusters = config["neg_index_clusters"]
        self.refresh = config["neg_index_refresh"]
        self.resample = config["neg_index_resample"]
        self.index = None
        self.batches_since_build = 0

    @classmethod
    def resolve_keys(cls, config, user_keys):
        if "neg_replacement" not in user_keys:
            config["neg_replacement"] = True
        if not config["neg_replacement"]:
            raise GenNiConfigError(
                "neg_replacement: False asks for distinct negatives, and neg_sampler: midx draws each negative "
                "independently from its proposal; set neg_replacement: True (the default for midx)."
            )
        if config["neg_scoring"] == "eval_pass":
            raise GenNiConfigError(
                "neg_scoring: eval_pass scores from a separate pass, and neg_sampler: midx reads the training "
                "pass's hidden states; set neg_scoring: train_pass."
            )

    @classmethod
    def check_model(cls, model, dot_head):
        if not dot_head:
            raise GenNiConfigError(
                f"neg_sampler: midx indexes the item table of a dot-product head, and {model} scores items otherwise; "
                "use neg_sampler: genni."
            )

    @classmethod
    def describe(cls, config) -> str:
        c = config["neg_index_clusters"]
        index = f"a {c}x{c}-cell multi-index rebuilt every {config['neg_index_refresh']} batches"
        drawn = f"K={config['neg_num']} with replacement from softmax(score / {config['neg_temperature']}) over {index}"
        if config["neg_index_resample"]:
            drawn += f", resampled from {config['neg_index_resample']} scored draws"
        return f"{config['neg_sampler']}, {drawn}, {excluding(config)}{schedule_in_words(config)}"

    @torch.no_grad()
    def draw_from_scores(self, users, targets, score, with_log_count):
        query, table = getattr(score, "query", None), getattr(score, "table", None)
        if query is None or table is None:
            raise RuntimeError("neg_sampler: midx needs the model's hidden states and item table; none were given")
        device = targets.device
        if self.index is not None and self.index.cell_items.device != device:  # restored from a checkpoint
            self.index = multi_index.MultiIndex(*(part.to(device) for part in self.index))
        self._refresh_index(table)
        if self.resample:
            negatives, log_count, count_of = self._resampled(users, targets, score, query)
        else:
            negatives, log_count, count_of = self._proposed(users, targets, query)
        rows = self.telemetry.sampled_rows(len(users), SAMPLED_ROWS, device)
        neg_scores = torch.bmm(table[negatives[rows]].float(), query[rows].float().unsqueeze(2)).squeeze(2)
        target_scores = (query[rows].float() * table[targets[rows]].float()).sum(dim=1, keepdim=True)
        self.telemetry.margins(target_scores - neg_scores, torch.ones(len(rows), dtype=torch.bool, device=device))
        return negatives, log_count if with_log_count else None, count_of if with_log_count else None

    def _refresh_index(self, table):
        """Rebuild the index from the current item table when it is due (its time: ``index_seconds``)."""
        if self.index is None or self.batches_since_build >= self.refresh:
            with self.telemetry.clock("index", table.device):
                self.index = multi_index.build_index(table.detach(), self.clusters,
                                                     generator=self._generator(table.device))
            self.batches_since_build = 0
        self.batches_since_build += 1

    def _proposed(self, users, targets, query):
        """K proposal draws a row, excluded items rejected: ``(negatives, log_count, count_of)``."""
        n, k, device = len(users), self.neg_num, targets.device
        negatives = torch.zeros(n, k, dtype=torch.long, device=device)
        todo = torch.arange(n, device=device)
        log_weights = log_norm = None
        for _ in range(_REDRAWS):
            drawn = multi_index.index_draw(self.index, query[todo], k + _SPARE_DRAWS, self.temperature,
                                           self._generator(device))
            if log_weights is None:
                log_weights, log_norm = drawn.log_weights, drawn.log_norm
            valid = self.candidates.valid_mask(drawn.items, users[todo], targets[todo])
            done = valid.sum(dim=1) >= k
            # the first K allowed draws of each row that has K
            order = torch.sort((~valid[done]).to(torch.int8), dim=1, stable=True).indices[:, :k]
            negatives[todo[done]] = drawn.items[done].gather(1, order)
            todo = todo[~done]
            if todo.numel() == 0:
                break
        short = torch.zeros(n, dtype=torch.bool, device=device)
        short[todo] = True
        self.stats.fallback_rows += short.sum()
        allowed_mass = self._allowed_log_mass(users, targets, log_weights, log_norm)

        def count_of(items):
            counts = math.log(k) + multi_index.index_log_prob(self.index, items, log_weights, log_norm) \
                - allowed_mass.unsqueeze(1)
            return torch.where(short.unsqueeze(1), self._proposal_log_count(items, users, targets), counts)

        log_count = count_of(negatives.clamp(min=1))
        self._replace_rows(short, users, targets, negatives, log_count)
        return negatives, log_count, count_of

    def _allowed_log_mass(self, users, targets, log_weights, log_norm):
        """``log(1 - q(excluded items))`` per row ``[N]``: the share of the proposal a row's draws may land on."""
        exclude = self.candidates.exclude
        if exclude == "none":
            return torch.zeros(len(users), device=targets.device)
        log_q = multi_index.index_log_prob
        mass = log_q(self.index, targets.unsqueeze(1), log_weights, log_norm).squeeze(1).double().exp()
        if exclude == "history":
            keys = self.candidates.on_device("used_ids", targets.device)
            rows, items = sampling.history_pairs(keys, users, self.candidates.item_num)
            apart = items != targets[rows]  # the target counted once
            rows, items = rows[apart], items[apart]
            item_mass = log_q(self.index, items, log_weights, log_norm, rows=rows)
            mass = mass.index_add(0, rows, item_mass.double().exp())
        return torch.log1p(-mass.clamp(max=1 - 1e-12)).float()

    def _resampled(self, users, targets, score, query):
        """M proposal draws a row, scored by the model, and K resampled from them by ``exp(score / tau) / q``."""
        m, k, device = self.resample, self.neg_num, targets.device
        generator = self._generator(device)
        pool = multi_index.index_draw(self.index, query, m, self.temperature, generator)
        scores = score(pool.items)[0].float()  # [N, M]
        finite = torch.isfinite(scores.sum(dim=1))
        scores = torch.where(finite.unsqueeze(1), scores, torch.zeros_like(scores))
        self.stats.nonfinite_rows += (~finite).sum()
        valid = self.candidates.valid_mask(pool.items, users, targets)
        short = ~valid.any(dim=1) | ~finite
        # importance weights exp(s / tau) / q, as logits at temperature 1
        logits = scores / self.temperature - pool.log_prob
        drawn = sampling.softmax_draw(logits, k, 1.0, valid | short.unsqueeze(1), generator, replacement=True)
        negatives = pool.items.gather(1, drawn.columns)
        # the partition estimate over the allowed items: Z = mean over the M draws of exp(s / tau) / q
        log_z = torch.logsumexp(logits.masked_fill(~valid, float("-inf")), dim=1) - math.log(m)

        def count_of(items):
            counts = math.log(k) + score(items)[0].float() / self.temperature - log_z.unsqueeze(1)
            return torch.where(short.unsqueeze(1), self._proposal_log_count(items, users, targets), counts)

        log_count = math.log(k) + scores.gather(1, drawn.columns) / self.temperature - log_z.unsqueeze(1)
        self.stats.fallback_rows += (short & finite).sum()
        self._replace_rows(short, users, targets, negatives, log_count)
        return negatives, log_count, count_of

    def random_state(self) -> dict:
        """The random streams, and the index with its age, so that a resumed run draws as the run it continues."""
        state = super().random_state()
        if self.index is not None:
            state["index"] = {**self.index.state(), "batches_since_build": self.batches_since_build}
        return state

    def set_random_state(self, state):
        super().set_random_state(state)
        if "index" in state:
            index = dict(state["index"])
            self.batches_since_build = int(index.pop("batches_since_build"))
            self.index = multi_index.MultiIndex(**index)
