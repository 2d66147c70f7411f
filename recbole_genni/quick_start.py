"""``run_recbole_genni``: RecBole's quick start for this package, without ``recbole.quick_start`` (it imports ray)."""

import errno
import json
import logging
import os
import shutil
import socket
import sys
import time

import colorlog
import torch
import torch.multiprocessing as mp
from recbole.data import create_dataset
from recbole.data import data_preparation as recbole_data_preparation
from recbole.data.dataloader import FullSortEvalDataLoader
from recbole.utils import ModelType, init_logger, init_seed, set_color

from recbole_genni.compat import create_folder_for_recbole, exit_rank, training_line_names
from recbole_genni.config import Config
from recbole_genni.data.checks import check_filtered_users, check_sequential_inter
from recbole_genni.dataloader import GenNiTrainDataLoader, HistoryMaskedEvalDataLoader, UserSequenceDataLoader
from recbole_genni.errors import GenNiConfigError, GenNiError
from recbole_genni.negatives import SAMPLERS
from recbole_genni.registry import get_trainer
from recbole_genni.sampler import candidates_for, dataset_history_keys
from recbole_genni.utils import (
    atomic_write,
    freed_memory_kept,
    hide_upstream_future_warnings,
    run_id,
    run_log_file,
)

SUMMARY_METRICS = ("hit@10", "ndcg@10")


def data_preparation(config, dataset):
    """RecBole's split and loaders, with the training loader replaced by :class:`GenNiTrainDataLoader`
    (whose :class:`CandidatePoolSampler` sees the training split only), or by :class:`UserSequenceDataLoader`
    for models that draw their own negatives at every position; with ``eval_mask_history``, a sequential model's
    full-ranking loaders are :class:`HistoryMaskedEvalDataLoader`.
    """
    real_items = dataset.item_num - 1
    if config["eval_args"]["mode"]["test"] == "full" and max(config["topk"]) > real_items:
        raise GenNiConfigError(
            f"topk: {config['topk']} ranks more items than the catalogue has ({real_items}); lower topk"
        )
    _check_negatives_fit(config, dataset.item_num)
    _check_step_fits(config, dataset.item_num)
    with training_line_names(config.negatives_summary()):
        train_data, valid_data, test_data = recbole_data_preparation(config, dataset)
    if hasattr(config.model_class, "loss_types"):
        train_data = UserSequenceDataLoader(config, train_data._dataset, None, shuffle=config["shuffle"])
    elif config["neg_sampler"] != "none":
        train_dataset = train_data._dataset
        train_data = GenNiTrainDataLoader(config, train_dataset, candidates_for(config, train_dataset),
                                          shuffle=config["shuffle"])
    if config["eval_mask_history"] and config["MODEL_TYPE"] == ModelType.SEQUENTIAL:
        valid_data, test_data = _history_masked(config, train_data._dataset, valid_data, test_data)
    return train_data, valid_data, test_data


#: bytes a training negative holds beyond its embedding: its id, score, log count and the score's gradient
_BYTES_PER_NEGATIVE = 8 + 3 * 4


def _check_negatives_fit(config, num_items):
    """Refuse, before training, a ``neg_num`` that the pool cannot give (K distinct draws from a fractional or
    ``all`` pool) or whose negatives for one batch cannot fit in memory (ids, scores, and the gathered embeddings
    with their gradients: a lower bound of what a step holds)."""
    sampler, k = config["neg_sampler"], config["neg_num"]
    if sampler == "none":
        return
    SAMPLERS[sampler].check_catalogue(config, num_items)
    rows = _training_rows(config)
    hidden = config["hidden_size"] or config["embedding_size"] or 64
    needed = rows * k * (_BYTES_PER_NEGATIVE + 2 * 4 * hidden)
    device, available = config["device"], _device_memory(config["device"])
    if needed > available:
        raise GenNiConfigError(
            f"neg_num: {k} needs at least {needed / 2**30:.1f} GiB for one batch's negatives ({rows} rows x {k} "
            f"negatives x {_BYTES_PER_NEGATIVE + 8 * hidden} bytes), more than the {available / 2**30:.1f} GiB of "
            f"{device}; lower neg_num or train_batch_size."
        )


def _training_rows(config) -> int:
    """Rows a training batch scores: a row per position for the models trained on every position (whole
    sequences a row), else one per row."""
    every_position = hasattr(config.model_class, "loss_types")
    return config["train_batch_size"] * (config["MAX_ITEM_LIST_LENGTH"] if every_position else 1)


def _device_memory(device) -> int:
    if device.type == "cuda":
        return torch.cuda.get_device_properties(device).total_memory
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def _check_step_fits(config, num_items):
    """Refuse, before training, a batch whose largest activations alone cannot fit in memory (a lower bound of a
    step): a Transformer's attention maps (batch x heads x length^2 a layer, four times: the scores, the masked
    scores, their softmax and its dropout, kept for the backward pass) and full softmax's logits with their gradient
    (rows x |I|, or rows x ``ce_item_chunk`` when CE is chunked)."""
    batch, length = config["train_batch_size"], config["MAX_ITEM_LIST_LENGTH"] or 1
    parts = {}
    if config["n_heads"] and config["n_layers"]:
        parts["attention"] = batch * config["n_heads"] * length ** 2 * 4 * 4 * config["n_layers"]
    if config["neg_sampler"] == "none":
        columns = min(config["ce_item_chunk"] or num_items, num_items)
        parts["full-softmax logits"] = _training_rows(config) * columns * 4 * 2
    needed, available = sum(parts.values()), _device_memory(config["device"])
    if needed > available:
        shares = ", ".join(f"{name} {size / 2**30:.1f} GiB" for name, size in parts.items())
        chunk = ", or compute CE in chunks of items (ce_item_chunk: 16384)" if config["neg_sampler"] == "none" \
            and not config["ce_item_chunk"] else ""
        raise GenNiConfigError(
            f"train_batch_size: {batch} rows of up to {length} items (MAX_ITEM_LIST_LENGTH) need at least "
            f"{needed / 2**30:.1f} GiB a training step ({shares}), more than the {available / 2**30:.1f} GiB of "
            f"{config['device']}; lower train_batch_size or MAX_ITEM_LIST_LENGTH{chunk}."
        )


def _history_masked(config, train_dataset, valid_data, test_data):
    """The full-ranking loaders as :class:`HistoryMaskedEvalDataLoader`: valid rows mask every training item of
    their user, test rows also the valid item."""
    earlier = [train_dataset]
    loaders = []
    for data in (valid_data, test_data):
        if isinstance(data, FullSortEvalDataLoader):
            data = HistoryMaskedEvalDataLoader(config, data._dataset, data._sampler, dataset_history_keys(*earlier))
        loaders.append(data)
        earlier.append(data._dataset)
    return loaders


def _record_test(config, trainer, best_valid_result, test_result, train_seconds):
    """The test metrics as TensorBoard scalars (``test/<metric>``) and, for a run with a log, in the run's results
    JSON beside it (``log/<model>/<run id>.json``): metrics, training time, why training stopped, the
    checkpoint."""
    for metric, value in (test_result or {}).items():
        trainer.tensorboard.add_scalar(f"test/{metric}", value, 0)
    trainer.tensorboard.flush()
    if not config["run_id"]:
        return
    record = {
        "run_id": config["run_id"], "model": config["model"], "dataset": config["dataset"],
        "negatives": config.negatives_summary(),
        "best_valid_result": dict(best_valid_result or {}), "test_result": dict(test_result or {}),
        "train_seconds": train_seconds, "epochs": len(getattr(trainer, "history", [])),
        "stop_reason": getattr(trainer, "stop_reason", None),
        "checkpoint": trainer.saved_model_file if os.path.isfile(trainer.saved_model_file) else None,
    }
    path = os.path.join(os.path.dirname(run_log_file()), f"{config['run_id']}.json")
    atomic_write(path, lambda f: json.dump(record, f, indent=1))


def summary_table(best_valid_result, test_result, train_seconds) -> str:
    """A few lines: best-valid and test HR@10 / NDCG@10, and the training time."""
    rows = [f"{'':<12}" + "".join(f"{m.upper():>10}" for m in SUMMARY_METRICS)]
    for name, result in (("best valid", best_valid_result), ("test", test_result)):
        result = result or {}
        rows.append(f"{name:<12}" + "".join(f"{result.get(m, float('nan')):>10.4f}" for m in SUMMARY_METRICS))
    rows.append(f"training time: {train_seconds:.1f}s")
    return "\n".join(rows)


def run_recbole_genni(
    model=None, dataset=None, config_file_list=None, config_dict=None, saved=True,
    nproc=1, world_size=-1, ip="localhost", port="5678", group_offset=0,
):
    """Train and test a model, as RecBole's ``run``/``run_recbole`` do, with the package's negative sampling.

    ``nproc`` > 1 (or ``world_size`` > 0) trains with DistributedDataParallel: ``nproc`` processes here, ranks
    ``group_offset .. group_offset + nproc - 1`` of ``world_size`` across machines that meet at ``ip:port``;
    gloo on CPU, NCCL on CUDA. Each rank generates the negatives of its own rows with its local model.

    Args:
        model (str): RecBole model name (``SASRec``, ``GRU4Rec``, ...) or this package's (``GenNiSASRec``).
        dataset (str): dataset name under ``data_path`` (``ml-100k`` resolves to RecBole's bundled copy).
        config_file_list (list of str): YAML files.
        config_dict (dict): overrides; the command line (``--key=value``) overrides both.
        saved (bool): save the best model and reload it for the test.
        nproc, world_size, ip, port, group_offset: distributed training, as RecBole's ``run``.

    Returns:
        dict: ``best_valid_score``, ``valid_score_bigger``, ``best_valid_result``, ``test_result``
        (as RecBole's ``run_recbole``), plus ``train_seconds``, ``history`` (one dict per epoch: seconds,
        loss, negatives telemetry, valid score), ``stop_reason`` (``patience``, ``time budget`` or
        ``epochs``) and ``checkpoint`` (the tested model's file, None unless ``saved``); from rank 0 in a
        distributed run.
    """
    if nproc > 1 or world_size > 0:
        config_dict = {
            **(config_dict or {}),
            "world_size": world_size if world_size > 0 else nproc,
            "ip": ip, "port": port, "nproc": nproc, "offset": group_offset,
        }
        if group_offset == 0:  # this machine hosts rank 0: its port must be free
            _check_port_free(ip, port)
        queue = mp.get_context("spawn").SimpleQueue()
        try:
            mp.spawn(_run_rank, args=(model, dataset, config_file_list, config_dict, saved, queue), nprocs=nproc,
                     join=True)
        except (mp.ProcessRaisedException, mp.ProcessExitedException):
            refusal = next((item for item in _drain(queue) if isinstance(item, GenNiError)), None)
            if refusal is None:
                raise
            raise refusal from None  # a rank's one-line refusal, not a spawn traceback
        results = _drain(queue)
        return results[0] if results else None
    return _run(model, dataset, config_file_list, config_dict, saved)


def _drain(queue) -> list:
    items = []
    while not queue.empty():
        items.append(queue.get())
    return items


def _check_port_free(ip, port):
    """Refuse a rendezvous port already in use here (the ranks would fail one by one with a traceback)."""
    host = "127.0.0.1" if ip == "localhost" else ip
    with socket.socket() as probe:
        try:
            probe.bind((host, int(port)))
        except OSError as err:
            if err.errno == errno.EADDRINUSE:
                raise GenNiConfigError(f"--port: {port} is in use on {ip}; choose a free --port.") from None


#: Process groups of finished runs, kept referenced until :func:`exit_rank` ends the process.
_FINISHED_GROUPS = []


def _run_rank(local_rank, model, dataset, config_file_list, config_dict, saved, queue):
    hide_upstream_future_warnings()  # a spawned rank starts with fresh warning filters
    try:
        result = _run(model, dataset, config_file_list, {**config_dict, "local_rank": local_rank}, saved)
    except GenNiError as refusal:  # for the parent to raise as one line
        queue.put(refusal)
        logging.shutdown()
        os._exit(2)
    if local_rank == 0:
        queue.put(result)
    exit_rank()


def _make_log_dir(config):
    """Create RecBole's ``./log/<model>`` (:func:`~recbole_genni.compat.create_folder_for_recbole`)."""
    folder = os.path.join("log", config["model"])
    try:
        create_folder_for_recbole(folder)
    except OSError as err:
        raise GenNiConfigError(f"./{folder}: cannot write the run's log there ({err.strerror or err}); run from a "
                               "folder you can write to.") from None


def _close_root_handlers(which):
    root = logging.getLogger()
    for handler in list(root.handlers):
        if which(handler):
            root.removeHandler(handler)
            handler.close()


def _init_run_logger(config):
    """RecBole's ``init_logger``, after closing the handlers it attached for an earlier run of this process: its
    ``logging.basicConfig`` applies once per process, so a second run would log into the first one's file."""
    _close_root_handlers(lambda h: isinstance(h, logging.FileHandler)
                         or isinstance(h.formatter, colorlog.ColoredFormatter))
    init_logger(config)


def _discard_log(config):
    """Delete this run's log file and TensorBoard folder: a run refused before training leaves none behind."""
    path = run_log_file()
    _close_root_handlers(lambda h: isinstance(h, logging.FileHandler))
    if path and os.path.isfile(path):
        os.remove(path)
    if config["run_id"]:
        shutil.rmtree(os.path.join("log_tensorboard", config["run_id"]), ignore_errors=True)


def _prepare(config, logger):
    """The loaders, the model and its trainer (resumed if asked): every check that can refuse the run."""
    dataset = create_dataset(config)
    logger.info(dataset)
    if config["MODEL_TYPE"] == ModelType.SEQUENTIAL:
        check_filtered_users(config, dataset)
    train_data, valid_data, test_data = data_preparation(config, dataset)
    init_seed(config["seed"] + config["local_rank"], config["reproducibility"])
    model = config.model_class(config, train_data._dataset).to(config["device"])
    logger.info(model)
    trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, model)
    if config["resume_checkpoint"]:
        trainer.resume_checkpoint(config["resume_checkpoint"], train_data._dataset)
    return trainer, train_data, valid_data, test_data


def _run(model, dataset, config_file_list, config_dict, saved):
    config = Config(model=model, dataset=dataset, config_file_list=config_file_list, config_dict=config_dict)
    if config["MODEL_TYPE"] == ModelType.SEQUENTIAL:
        check_sequential_inter(config)  # bad data stops the run before it has a log
    _make_log_dir(config)
    init_seed(config["seed"], config["reproducibility"])
    _init_run_logger(config)
    config["run_id"] = run_id()  # the log's name: its TensorBoard folder, checkpoints and results JSON take it
    logger = logging.getLogger()
    logger.info(sys.argv)
    logger.info(config)
    try:
        trainer, train_data, valid_data, test_data = _prepare(config, logger)
    except GenNiConfigError:
        _discard_log(config)
        raise
    with freed_memory_kept(config["keep_freed_memory"]):  # after loading: the dataset's frees go back to the system
        start = time.time()
        best_valid_score, best_valid_result = trainer.fit(
            train_data, valid_data, saved=saved, show_progress=config["show_progress"]
        )
        train_seconds = time.time() - start
        test_result = trainer.evaluate(test_data, load_best_model=saved, show_progress=config["show_progress"])

    logger.info(set_color("best valid ", "yellow") + f": {best_valid_result}")
    logger.info(set_color("test result", "yellow") + f": {test_result}")
    logger.info(set_color("summary", "yellow") + "\n" + summary_table(best_valid_result, test_result, train_seconds))
    if config["local_rank"] == 0:
        _record_test(config, trainer, best_valid_result, test_result, train_seconds)
    if not config["single_spec"]:
        _FINISHED_GROUPS.append(torch.distributed.group.WORLD)  # never freed under the GIL: see exit_rank
        torch.distributed.destroy_process_group()
    return {
        "best_valid_score": best_valid_score,
        "valid_score_bigger": config["valid_metric_bigger"],
        "best_valid_result": best_valid_result,
        "test_result": test_result,
        "train_seconds": train_seconds,
        "history": getattr(trainer, "history", []),
        "stop_reason": getattr(trainer, "stop_reason", None),
        "checkpoint": trainer.saved_model_file if saved and os.path.isfile(trainer.saved_model_file) else None,
    }
