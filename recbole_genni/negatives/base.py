"""The interface every negative sampler implements, and what they share: telemetry, warm-up, the uniform mix,
fallbacks and random streams.

A sampler turns a ``score(candidates) -> (scores, target_scores)`` callback into K negatives per row, following the
``neg_*`` keys, and keeps the telemetry of the current epoch. Each sampler is one subclass in its own module,
registered by the name users write in ``neg_sampler`` (:mod:`recbole_genni.negatives`); it owns its key checks
(:meth:`NegativeSampler.resolve_keys`, :meth:`~NegativeSampler.check_catalogue`, :meth:`~NegativeSampler.check_loss`,
:meth:`~NegativeSampler.check_model`),
its line in the run's log (:meth:`~NegativeSampler.describe`) and how it draws
(:meth:`~NegativeSampler.draw_from_scores`, with the log expected count of each negative that SSM's logQ correction
subtracts). Plain PyTorch: the candidates (``candidates``, a :class:`~recbole_genni.sampler.CandidatePoolSampler`)
bring the dataset.
"""

import math
from logging import getLogger

import torch

from recbole_genni.telemetry import NegativeStats, NegativeTelemetry


class NegativeSampler:
    """K negatives per row for the loss, drawn from the proposal (:attr:`proposal`) or, for a sampler that
    :attr:`uses_model`, from the model's scores.

    ``neg_warmup_epochs`` draws from the proposal for the first epochs of a model-based sampler;
    ``neg_uniform_mix`` replaces each negative by a uniform one with that probability (1: every negative, and the
    model is not asked). Rows with too few allowed candidates get proposal negatives, counted in :attr:`stats`
    (``fallback_rows``).

    Args:
        config: the run's config (a mapping with the ``neg_*`` keys, ``seed`` and ``local_rank``).
        candidates: the :class:`~recbole_genni.sampler.CandidatePoolSampler` of the training split, built with
            this class's :attr:`proposal`.
    """

    #: the distribution of proposal draws: ``uniform`` or ``popularity`` (RecBole's names)
    proposal = "uniform"
    #: whether the negatives come from the model's scores (then the loader or the loss passes ``score``)
    uses_model = False

    def __init__(self, config, candidates):
        self.candidates = candidates
        self.neg_sampler = config["neg_sampler"]
        self.neg_num = config["neg_num"]
        self.warmup_epochs = config["neg_warmup_epochs"]
        self.uniform_mix = float(config["neg_uniform_mix"])
        self.epoch = 0
        self._device_generators = {}
        self.telemetry = NegativeTelemetry(config["seed"] + config["local_rank"] + 7919)

    # what a sampler says about its keys -------------------------------------------------------------------------
    @classmethod
    def resolve_keys(cls, config, user_keys):
        """Set this sampler's defaults in ``config`` (the final config dict) where the user set nothing (``user_keys``)
        and refuse keys it cannot honour, with :class:`~recbole_genni.errors.GenNiConfigError`; the keys' own ranges
        are checked already (:data:`~recbole_genni.options.KEY_CHECKS`)."""

    @classmethod
    def check_catalogue(cls, config, num_items):
        """Refuse keys that the catalogue of ``num_items`` ids (padding included) cannot honour, once it is loaded."""

    @classmethod
    def check_loss(cls, loss_type):
        """Refuse a ``loss_type`` this sampler's negatives cannot train."""

    @classmethod
    def check_model(cls, model, dot_head):
        """Refuse a RecBole ``model`` this sampler cannot draw for; ``dot_head``: whether it scores items by its
        hidden state times its item table, from its training pass."""

    @classmethod
    def describe(cls, config) -> str:
        """The negatives of a run in words, for its log: the sampler, K, where they come from, exclusions."""
        return f"{config['neg_sampler']}, K={config['neg_num']}, {excluding(config)}"

    # drawing ---------------------------------------------------------------------------------------------------
    @property
    def stats(self) -> NegativeStats:
        """The current epoch's telemetry (see :mod:`recbole_genni.telemetry`)."""
        return self.telemetry.stats

    @property
    def generates(self) -> bool:
        """Whether this epoch's negatives come from the model."""
        return self.uses_model and self.epoch >= self.warmup_epochs and self.uniform_mix < 1

    @property
    def scores_whole_catalogue(self) -> bool:
        """Whether this epoch's draws score every item in one ``[N, |I|]`` matrix, so that a model holding that
        product can give it (``score(None)``) and read its loss's logits from it too."""
        return False

    def pop_stats(self) -> NegativeStats:
        """This epoch's telemetry, reset for the next; warns if the model gave NaN/inf scores."""
        stats = self.telemetry.pop()
        stats.relaxed_rows += self.candidates.relaxed_rows
        self.candidates.relaxed_rows = 0
        if stats.nonfinite_rows:
            getLogger().warning(
                f"epoch {self.epoch}: the model gave NaN/inf scores for {int(stats.nonfinite_rows)} row(s); their "
                "negatives ignore the scores (counted as nonfinite_rows)"
            )
        return stats

    def generate(self, users, targets, score=None, with_log_count=False):
        """``(negatives [N, K], log_count [N, K] or None)`` on the device of ``targets``.

        A model-scored batch is drawn on the model's device: pools, masks and draws involve no host work per
        row, and only three host-device syncs (one checks for NaN/inf scores, two for rows with too few allowed
        candidates). The telemetry stays on the device until :meth:`pop_stats`.

        Args:
            users, targets: LongTensor ``[N]``, on the device of the model's scores when :attr:`generates`.
            score: ``score(candidates) -> (scores [N, M], target_scores [N])`` for ``candidates`` ``[M]`` or
                ``[N, M]`` on ``targets``' device, or None for every real item (ids ``1 .. |I| - 1``, which a score
                matrix can give as a view, with no copy); needed when :attr:`generates`, and called only then. The
                sampler never writes to the scores. Its time is reported as ``scoring_seconds``.
            with_log_count: also return, for each negative, the log of the number of times it is expected among
                the row's K draws, over the whole catalogue: what a sampled softmax subtracts (logQ correction).
                Proposal draws: ``log(K q)``, q restricted to the row's allowed items. Model draws with
                ``neg_replacement``: ``log(K q)``; without: the log inclusion probability given the pool
                (:func:`~recbole_genni.sampling.softmax_draw`); both plus the log of the item's
                expected copies in the pool (:meth:`~recbole_genni.sampler.CandidatePoolSampler.log_pool_rate`).
                With ``0 < neg_uniform_mix = m < 1``: the expected count of the item in its slot under the mixture
                given the pool, ``(1 - m) c(item) + m K u(item)``, ``c`` the count under the model's draw from this
                pool (no pool rate: the uniform part reaches every allowed item) and ``u`` the uniform proposal.
        """
        device = targets.device
        users = users.to(device)
        if score is not None:
            score = self._timed_scoring(score, device)
        with self.telemetry.clock("generation", device):
            count_of = None
            if self.generates:
                negatives, log_count, count_of = self.draw_from_scores(users, targets, score, with_log_count)
            else:
                distribution = "uniform" if self.uniform_mix == 1 else None
                negatives = self.candidates.proposal_negatives(
                    users.cpu(), targets.cpu(), self.neg_num, distribution).to(device)
                log_count = self._proposal_log_count(negatives, users, targets, distribution) if with_log_count \
                    else None
            if 0 < self.uniform_mix < 1:
                negatives, log_count = self._mix_uniform(users, targets, negatives, log_count, count_of)
        self.telemetry.hits(users, targets, negatives, self.candidates.on_device("used_ids", negatives.device),
                            self.candidates.item_num)
        return negatives, log_count

    def _timed_scoring(self, score, device):
        return TimedScores(score, self.telemetry.clock("scoring", device))

    def _mix_uniform(self, users, targets, negatives, log_count, count_of):
        """Replace each negative by a uniform one with probability ``neg_uniform_mix``, and give every negative
        its expected count under the mixture (see :meth:`generate`)."""
        device = negatives.device
        mixed = (torch.rand(negatives.shape, generator=self.candidates.generator) < self.uniform_mix).to(device)
        rows = mixed.any(dim=1)
        if bool(rows.any()):
            rows_cpu = rows.cpu()
            uniform = self.candidates.proposal_negatives(
                users.cpu()[rows_cpu], targets.cpu()[rows_cpu], self.neg_num, "uniform")
            negatives = negatives.clone()
            negatives[rows] = torch.where(mixed[rows], uniform.to(device), negatives[rows])
        if log_count is None:
            return negatives, None
        if count_of is None:  # proposal draws: the count of any item is the proposal's
            own = self._proposal_log_count(negatives, users, targets)
        else:
            own = count_of(negatives)
        uniform_count = self._proposal_log_count(negatives, users, targets, "uniform")
        mix = self.uniform_mix
        return negatives, torch.logaddexp(own + math.log1p(-mix), uniform_count + math.log(mix))

    def _proposal_log_count(self, negatives, users, targets, distribution=None):
        """``log(K q)`` of proposal draws (uniform or popularity, q over the row's allowed items)."""
        return self.candidates.log_proposal(negatives, users, targets, distribution) + math.log(self.neg_num)

    def random_state(self) -> dict:
        """The random streams (the candidates', the per-device Gumbel streams and the telemetry's), for
        checkpoints."""
        return {
            "sampler": self.candidates.generator.get_state(),
            "devices": {key: gen.get_state() for key, gen in self._device_generators.items()},
            "telemetry": self.telemetry.generator.get_state(),
        }

    def set_random_state(self, state):
        # device streams first: creating one draws a seed from the candidates' stream
        for device, value in state["devices"].items():
            self._generator(device).set_state(value)
        self.candidates.generator.set_state(state["sampler"])
        if "telemetry" in state:
            self.telemetry.generator.set_state(state["telemetry"])

    def _generator(self, device):
        """The Gumbel-noise stream on ``device``, seeded from the candidates' stream on first use."""
        key = str(device)
        if key not in self._device_generators:
            gen = torch.Generator(device=key)
            gen.manual_seed(int(torch.randint(2**62, (1,), generator=self.candidates.generator)))
            self._device_generators[key] = gen
        return self._device_generators[key]

    def draw_from_scores(self, users, targets, score, with_log_count):
        """``(negatives [N, K], log_count [N, K] or None, count_of)`` drawn from the model's scores, for a sampler
        that :attr:`uses_model`; ``count_of(items)`` gives the log expected count of any items ``[N, J]`` under this
        draw (for the uniform mix), or is None without ``with_log_count``."""
        raise NotImplementedError(f"neg_sampler: {self.neg_sampler} draws from its proposal only")

    def _replace_rows(self, rows, users, targets, negatives, log_count):
        """Give ``rows`` (bool [N]) proposal negatives in place (and their log expected counts): rows whose scores
        cannot be used (too few allowed candidates; NaN/inf in a streamed pool)."""
        if not bool(rows.any()):
            return
        rows_cpu = rows.cpu()
        proposal = self.candidates.proposal_negatives(users.cpu()[rows_cpu], targets.cpu()[rows_cpu], self.neg_num)
        negatives[rows] = proposal.to(negatives.device)
        if log_count is not None:
            log_count[rows] = self._proposal_log_count(negatives[rows], users[rows], targets[rows])


class TimedScores:
    """A ``score`` callback whose calls add their time to ``scoring_seconds``; its other attributes (a dot-product
    scorer's ``query`` and ``table``) read through."""

    def __init__(self, score, clock):
        self._score, self._clock = score, clock

    def __call__(self, candidates):
        with self._clock:
            return self._score(candidates)

    def __getattr__(self, name):
        return getattr(self._score, name)


def excluding(config) -> str:
    """``neg_exclude`` in words."""
    return f"excluding {config['neg_exclude']}" if config["neg_exclude"] != "none" else "excluding nothing"
