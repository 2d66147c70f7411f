"""RecBole ``Trainer`` that feeds the model to the negative generator, logs its telemetry, and loads its own
checkpoints on torch >= 2.6."""

import os
import random
import time
import uuid

import numpy as np
import torch
from recbole.trainer import Trainer as RecBole_Trainer
from recbole.utils import set_color
from torch.nn.parallel import DistributedDataParallel

from recbole_genni.checkpoints import (
    plain,
    portable_config,
    read_checkpoint,
    read_training_checkpoint,
    tensor_digest,
)
from recbole_genni.compat import LeaveFit, create_folder_for_recbole, single_process_spec
from recbole_genni.data.fingerprint import check_dataset_fingerprint, dataset_fingerprint
from recbole_genni.dataloader import GenNiTrainDataLoader
from recbole_genni.errors import CheckpointWriteError, GenNiConfigError, TrainingDivergedError
from recbole_genni.evaluation import TopkCollector
from recbole_genni.scoring import multi_negative_loss
from recbole_genni.utils import atomic_write


class Trainer(RecBole_Trainer):
    """RecBole's trainer for sequential models trained with :class:`GenNiTrainDataLoader` negatives.

    - attaches the local model to the train loader before training (RecBole does so only for ``dynamic``);
    - K > 1 loader negatives per row reach the model's own loss through :func:`multi_negative_loss` (one-pass
      models draw theirs in their loss);
    - per epoch, logs and writes to TensorBoard the sampling seconds and the hardness of the negatives, flushed
      to disk when ``fit`` returns;
    - stops after ``train_time_budget`` seconds (checked after each validation), keeping the best model, and
      says why training stopped (:attr:`stop_reason`);
    - names each run's checkpoint uniquely, also for runs started in the same second;
    - collects a full ranking's top-k without RecBole's dense indicator matrix, and under DDP every rank's rows
      once each (:class:`TopkCollector`), so that metrics equal one process's;
    - writes and reads checkpoints as tensors and plain values, checked against their digest and their training
      data's fingerprint (:mod:`recbole_genni.checkpoints`).
    """

    def __init__(self, config, model):
        try:
            create_folder_for_recbole(config["checkpoint_dir"])
        except OSError as err:
            raise GenNiConfigError(f"checkpoint_dir: {config['checkpoint_dir']}: cannot create it "
                                   f"({err.strerror or err}); give a folder you can write to.") from None
        if not config["single_spec"] and config["device"].type == "cpu":
            with single_process_spec(config):
                super().__init__(config, model)
            self.distributed_model = DistributedDataParallel(self.model)
        else:
            super().__init__(config, model)
        self.eval_collector = TopkCollector(config)
        # RecBole names the checkpoint <model>-<time to the second>.pth, apart from its log and TensorBoard folder,
        # and runs started in the same second (a parallel grid) would share it: it takes the run's id instead
        # (``run_id``, set by run_recbole_genni: the log's name, with the dataset and a hash of the config), or a
        # random suffix
        stem, ext = os.path.splitext(self.saved_model_file)
        run = config["run_id"]
        name = f"{run}{ext}" if run else f"{os.path.basename(stem)}-{uuid.uuid4().hex[:6]}{ext}"
        # one checkpoint name for all ranks: rank 0's (RecBole: each its own clock)
        self.saved_model_file = self._from_rank_zero(os.path.join(config["checkpoint_dir"], name))
        self.history = []  # one dict per trained epoch: seconds, loss, negatives telemetry, valid score
        self._train_data = None
        self._epoch = None  # the epoch being trained
        self._dataset_fingerprint = None  # of the training split, stored in every checkpoint
        self._resume_rng = None
        self.stop_reason = None  # "patience", "time budget" or "epochs", once fit returns

    def fit(self, train_data, valid_data=None, verbose=True, saved=True, show_progress=False, callback_fn=None):
        if isinstance(train_data, GenNiTrainDataLoader):
            train_data.get_model(self.model)
        self._train_data = train_data
        self._dataset_fingerprint = dataset_fingerprint(train_data._dataset)
        if self._resume_rng is not None:
            self._set_rng_state(self._resume_rng)
            self._resume_rng = None

        budget, start = self.config["train_time_budget"], time.time()

        def after_validation(epoch_idx, valid_score):
            if saved:
                self._save_last_checkpoint(epoch_idx)
            if callback_fn:
                callback_fn(epoch_idx, valid_score)
            patience_spent = self.cur_step > self.stopping_step  # RecBole stops after this callback: say so
            if budget is not None and epoch_idx + 1 < self.epochs and not patience_spent \
                    and self._from_rank_zero(time.time() - start > budget):
                raise LeaveFit(epoch_idx)  # the time budget is spent

        self.stop_reason = "epochs"
        try:
            result = super().fit(train_data, valid_data, verbose, saved, show_progress, after_validation)
        except LeaveFit as spent:
            self.stop_reason = "time budget"
            self.logger.info(f"Stopped after epoch {spent.epoch}: train_time_budget ({budget} s) is spent")
            self._add_hparam_to_tensorboard(self.best_valid_score)
            return self.best_valid_score, self.best_valid_result
        finally:
            self.tensorboard.flush()  # the scalars are on disk when fit returns, however the process ends
        if self.cur_step > self.stopping_step:
            self.stop_reason = "patience"
        return result

    def _from_rank_zero(self, value):
        """Rank 0's ``value`` on every rank of a distributed run (their clocks differ), else ``value``."""
        if self.config["single_spec"]:
            return value
        shared = [value]
        torch.distributed.broadcast_object_list(shared, src=0)
        return shared[0]

    def _negative_generator(self, train_data):
        """The generator of this run's negatives: the model's own (GenNiSASRec) or the loader's, if any."""
        own = getattr(self.model, "negatives", None)
        if own is not None:
            return own
        return train_data.negatives if isinstance(train_data, GenNiTrainDataLoader) else None

    def _train_epoch(self, train_data, epoch_idx, loss_func=None, show_progress=False):
        generator = self._negative_generator(train_data)
        if generator is not None:
            generator.epoch = epoch_idx
        if (loss_func is None and isinstance(train_data, GenNiTrainDataLoader) and generator.neg_num > 1
                and not train_data.generates_in_loss):
            neg_field = train_data.neg_item_id
            loss_func = lambda batch: multi_negative_loss(self.model, batch, neg_field)  # noqa: E731
        start = time.time()
        self._epoch = epoch_idx
        loss = super()._train_epoch(train_data, epoch_idx, loss_func, show_progress)
        record = {"epoch": epoch_idx, "train_seconds": time.time() - start, "train_steps": len(train_data)}
        record["train_loss"] = float(sum(loss) if isinstance(loss, tuple) else loss)
        if generator is not None:
            record.update(self._log_negative_stats(generator, epoch_idx))
        self.history.append(record)
        return loss

    def _valid_epoch(self, valid_data, show_progress=False):
        start = time.time()
        valid_score, valid_result = super()._valid_epoch(valid_data, show_progress)
        if self.history:
            self.history[-1].update(valid_score=valid_score, valid_seconds=time.time() - start)
        return valid_score, valid_result

    def _log_negative_stats(self, generator, epoch_idx):
        stats = generator.pop_stats().summary()
        kind = generator.neg_sampler
        if generator.uses_model and not generator.generates:
            kind += " (warm-up: uniform)"
        self.logger.info(
            set_color(f"epoch {epoch_idx} negatives", "green")
            + f" [{kind}, "
            + ", ".join(f"{set_color(k, 'blue')}: {v:.4g}" for k, v in stats.items())
            + "]"
        )
        for key, value in stats.items():
            self.tensorboard.add_scalar(f"Negatives/{key}", value, epoch_idx)
        return stats

    def evaluate(self, eval_data, load_best_model=True, model_file=None, show_progress=False):
        if load_best_model and eval_data:
            if not self.config["single_spec"]:
                torch.distributed.barrier()  # rank 0 writes the checkpoint that every rank loads
            checkpoint_file = model_file or self.saved_model_file
            checkpoint = read_checkpoint(checkpoint_file, self.device, "", "the best model this run saved",
                                         self.config["trust_checkpoint_pickle"])
            self.model.load_state_dict(checkpoint["state_dict"])
            self.model.load_other_parameter(checkpoint.get("other_parameter"))
            self.logger.info(f"Loading model structure and parameters from {checkpoint_file}")
        if eval_data and not self.config["single_spec"]:
            self.eval_collector.distributed_rows = eval_data.sample_size  # every rank evaluates all rows, once
        return super().evaluate(eval_data, load_best_model=False, show_progress=show_progress)

    def _check_nan(self, loss):
        """RecBole stops a NaN loss with a traceback: one line instead, naming the learning rate and the last
        checkpoint, which stays as the last validated epoch left it."""
        if torch.isnan(loss):
            kept = self.last_checkpoint_file
            where = (f"the last validated epoch's state is kept in {kept} (resume_checkpoint)" if os.path.exists(kept)
                     else "no epoch was validated, so no checkpoint was written")
            raise TrainingDivergedError(
                f"epoch {self._epoch}: the training loss is NaN; lower learning_rate ({self.learning_rate} now) or the "
                f"key that makes the loss overflow; {where}.")

    def _map_reduce(self, result, num_sample):
        """Every rank's result is already over all rows (:class:`TopkCollector`): nothing to average."""
        return result

    @property
    def last_checkpoint_file(self):
        """Where the state after each validated epoch goes, for :meth:`resume_checkpoint` after a kill."""
        stem, ext = os.path.splitext(self.saved_model_file)
        return f"{stem}-last{ext}"

    def _save_checkpoint(self, epoch, verbose=True, **kwargs):
        """RecBole's best-model checkpoint, written atomically (temporary file, then rename)."""
        if not self.config["single_spec"] and self.config["local_rank"] != 0:
            return
        saved_model_file = kwargs.pop("saved_model_file", self.saved_model_file)
        self._write_atomically(self._training_state(epoch), saved_model_file)
        if verbose:
            self.logger.info(set_color("Saving current", "blue") + f": {saved_model_file}")

    def _save_last_checkpoint(self, epoch):
        """The state to continue from: rank 0 writes it, with every rank's random streams (``rng``, one per
        rank), so that each rank of a resumed distributed run continues its own."""
        rng = [self._rng_state()]
        if not self.config["single_spec"]:
            gathered = [None] * torch.distributed.get_world_size() if self._rank == 0 else None
            torch.distributed.gather_object(rng[0], gathered, dst=0)
            rng = gathered
            if self._rank != 0:
                return
        state = self._training_state(epoch)
        state.update(
            best_model_file=self.saved_model_file,
            best_valid_result=self.best_valid_result,
            history=self.history,
            rng=rng,
        )
        self._write_atomically(state, self.last_checkpoint_file)

    @property
    def _rank(self) -> int:
        return 0 if self.config["single_spec"] else torch.distributed.get_rank()

    def _training_state(self, epoch):
        return {
            "config": portable_config(self.config),
            "epoch": epoch,
            "cur_step": self.cur_step,
            "best_valid_score": self.best_valid_score,
            "state_dict": self.model.state_dict(),
            "other_parameter": self.model.other_parameter(),
            "optimizer": self.optimizer.state_dict(),
            "dataset_fingerprint": self._dataset_fingerprint,
        }

    @staticmethod
    def _write_atomically(state, path):
        """A kill or a full disk leaves the old checkpoint whole, never a half-written one; the state is written as
        tensors and plain values with a digest of its tensors (:mod:`recbole_genni.checkpoints`)."""
        state = plain(state)
        state["digest"] = tensor_digest(state)
        try:
            atomic_write(path, lambda f: torch.save(state, f), mode="wb")  # the protocol weights_only reads
        except OSError as err:
            raise CheckpointWriteError(
                f"{path}: could not write the checkpoint ({err.strerror or err}); the previous one is kept whole"
            ) from None

    def _rng_state(self):
        """Every random stream that decides the next epoch: dropout, shuffling and the negatives."""
        negatives = self._negative_generator(self._train_data)
        return {
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
            "numpy": np.random.get_state(),
            "random": random.getstate(),
            "shuffle": self._train_data.generator.get_state(),
            "negatives": negatives.random_state() if negatives is not None else None,
        }

    def _set_rng_state(self, state):
        torch.set_rng_state(state["torch"])
        if state["cuda"] is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda"])
        name, keys, position, has_gauss, gauss = state["numpy"]  # a checkpoint's lists and tensor: tuples, an array
        np.random.set_state((name, np.asarray(keys, dtype=np.uint32), position, has_gauss, gauss))
        version, internal, gauss_next = state["random"]
        random.setstate((version, tuple(internal), gauss_next))
        self._train_data.generator.set_state(state["shuffle"])
        negatives = self._negative_generator(self._train_data)
        if negatives is not None and state["negatives"] is not None:
            negatives.set_random_state(state["negatives"])

    def resume_checkpoint(self, resume_file, train_dataset=None):
        """Continue training from a checkpoint: the ``-last`` one (:attr:`last_checkpoint_file`) continues
        exactly where a killed run stopped, random streams included (each rank its own); a best-model one
        restarts after its epoch. Checkpoints are written where this run's ``checkpoint_dir`` says, under the
        names the checkpoint had. A missing, unreadable or foreign file raises :class:`GenNiConfigError`, and so
        does a ``train_dataset`` (the built training split) that differs from the one the checkpoint was trained
        on."""
        resume_file = str(resume_file)
        checkpoint, _ = read_training_checkpoint(resume_file, self.device, self.config)
        if train_dataset is not None:
            check_dataset_fingerprint(checkpoint.get("dataset_fingerprint"), train_dataset,
                                      f"resume_checkpoint: {resume_file}")
        best_name = os.path.basename(checkpoint.get("best_model_file", resume_file))
        self.saved_model_file = os.path.join(self.config["checkpoint_dir"], best_name)
        self.start_epoch = checkpoint["epoch"] + 1
        self.cur_step = checkpoint["cur_step"]
        self.best_valid_score = checkpoint["best_valid_score"]
        self.best_valid_result = checkpoint.get("best_valid_result")
        self.history = list(checkpoint.get("history", []))
        self._resume_rng = self._own_rng_state(checkpoint.get("rng"), resume_file)
        try:
            self.model.load_state_dict(checkpoint["state_dict"])
        except RuntimeError as err:
            raise GenNiConfigError(
                f"resume_checkpoint: {resume_file} does not fit this model ({str(err).splitlines()[-1].strip()}); "
                "resume with the settings it was trained with."
            ) from None
        self.model.load_other_parameter(checkpoint.get("other_parameter"))
        self.optimizer.load_state_dict(checkpoint["optimizer"])
        for group in self.optimizer.param_groups:  # this run's, which may differ (checkpoints.RESUME_KEYS)
            group["lr"] = self.learning_rate
        self.logger.info(f"Checkpoint loaded. Resume training from epoch {self.start_epoch}")

    def _own_rng_state(self, saved, resume_file):
        """This rank's random streams from a checkpoint's ``rng`` (one per rank; older checkpoints: one dict)."""
        if saved is None or isinstance(saved, dict):
            return saved
        world = 1 if self.config["single_spec"] else torch.distributed.get_world_size()
        if len(saved) != world:
            raise GenNiConfigError(
                f"resume_checkpoint: {resume_file} holds the random streams of {len(saved)} process(es), and this run "
                f"has {world}; resume it with --nproc={len(saved)} to continue exactly."
            )
        return saved[self._rank]


class TraditionalTrainer(Trainer):
    """RecBole's ``TraditionalTrainer`` (one epoch: Pop, ItemKNN, ...) on this package's :class:`Trainer`, which
    reloads its own checkpoints on today's torch where RecBole's ``torch.load`` refuses them."""

    def __init__(self, config, model):
        super().__init__(config, model)
        self.epochs = 1
