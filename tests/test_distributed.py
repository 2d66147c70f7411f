"""Distributed training on CPU (gloo): two ranks end with identical parameters, one checkpoint name and the
same map-reduced metrics; generated negatives come from each rank's local model."""

import socket
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from recbole_genni import run_recbole_genni
from recbole_genni.compat import exit_rank

pytestmark = pytest.mark.slow


def free_port() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return str(s.getsockname()[1])


def train_rank(rank, config_dict, queue):
    """One rank: RecBole's pieces as ``run_recbole_genni`` wires them, reporting what the test compares."""
    import sys

    from recbole.data import create_dataset
    from recbole.utils import init_seed

    from recbole_genni.config import Config
    from recbole_genni.quick_start import data_preparation
    from recbole_genni.trainer import Trainer

    sys.argv = sys.argv[:1]
    config = Config("SASRec", "tiny", config_dict={**config_dict, "local_rank": rank})
    init_seed(config["seed"], config["reproducibility"])
    train, valid, test = data_preparation(config, create_dataset(config))
    init_seed(config["seed"], config["reproducibility"])  # the same initial weights on every rank
    model = config.model_class(config, train._dataset)
    trainer = Trainer(config, model)
    trainer.fit(train, valid, saved=True)
    result = trainer.evaluate(test, load_best_model=True)
    params = torch.cat([p.detach().flatten() for p in model.parameters()]).numpy()  # by value, not shared memory
    queue.put((rank, params, trainer.saved_model_file, dict(result), len(train)))
    torch.distributed.destroy_process_group()
    exit_rank()  # as run_recbole_genni's ranks: DDP keeps gloo's threads alive past destroy_process_group


@pytest.mark.timeout(300)
def test_two_ranks_train_identically(base_config):
    config = {**base_config, "neg_sampler": "genni", "nproc": 2, "world_size": 2, "offset": 0,
              "ip": "127.0.0.1", "port": free_port(), "epochs": 1}
    queue = mp.get_context("spawn").SimpleQueue()
    mp.spawn(train_rank, args=(config, queue), nprocs=2, join=True)
    reports = sorted(queue.get() for _ in range(2))
    (_, params0, name0, result0, batches0), (_, params1, name1, result1, batches1) = reports
    assert (params0 == params1).all()
    assert name0 == name1
    assert result0 == result1
    assert batches0 == batches1  # each rank trains on its half of the rows


@pytest.mark.timeout(300)
def test_run_recbole_genni_with_nproc_two(base_config, tmp_path, monkeypatch):
    """The ranks leave without interpreter finalization (:func:`exit_rank`): their logs and TensorBoard scalars
    are on disk all the same."""
    monkeypatch.chdir(tmp_path)  # RecBole writes ./log and ./log_tensorboard
    result = run_recbole_genni("SASRec", "tiny", config_dict={
        **base_config, "neg_sampler": "genni", "state": "INFO", "epochs": 2,
    }, nproc=2, ip="127.0.0.1", port=free_port())
    assert len(result["history"]) == 2 and result["stop_reason"] == "epochs"
    logs = list((tmp_path / "log" / "SASRec").glob("*.log"))
    assert any("test result" in log.read_text() for log in logs)  # rank 0 logs; RecBole silences the others
    steps = {}  # tag -> epochs on disk
    for run in (tmp_path / "log_tensorboard").iterdir():
        events = EventAccumulator(str(run)).Reload()
        for tag in events.Tags()["scalars"]:
            steps[tag] = max(steps.get(tag, 0), len(events.Scalars(tag)))
    assert {"Loss/Train", "Negatives/sampling_seconds", "Negatives/score_margin", "test/ndcg@10"} <= steps.keys()
    assert {tag: n for tag, n in steps.items() if not tag.startswith("test/")} == {
        tag: 2 for tag in steps if not tag.startswith("test/")}  # every epoch
    assert steps["test/ndcg@10"] == 1
    # its checkpoint loads in one process and tests as the distributed run did
    from recbole_genni import load_data_and_model
    from recbole_genni.trainer import Trainer

    best, = (p for p in Path(base_config["checkpoint_dir"]).glob("*.pth") if not p.name.endswith("-last.pth"))
    config, model, _, _, _, test = load_data_and_model(best)
    assert dict(Trainer(config, model).evaluate(test, load_best_model=False)) == dict(result["test_result"])


def finished_rank(rank, config_dict, queue):
    """One rank of ``run_recbole_genni``'s ``_run``: how many groups it still holds once the run is over."""
    import sys

    from recbole_genni import quick_start

    sys.argv = sys.argv[:1]
    quick_start._run("SASRec", "tiny", None, {**config_dict, "local_rank": rank}, True)
    queue.put((rank, len(quick_start._FINISHED_GROUPS)))
    quick_start.exit_rank()


@pytest.mark.timeout(300)
def test_a_finished_rank_keeps_its_group(base_config):
    """Freeing a gloo group from Python can deadlock against its worker threads (seen once), so a finished rank
    keeps its group referenced for :func:`exit_rank` to end with the process."""
    config = {**base_config, "neg_sampler": "genni", "nproc": 2, "world_size": 2, "offset": 0,
              "ip": "127.0.0.1", "port": free_port()}
    queue = mp.get_context("spawn").SimpleQueue()
    mp.spawn(finished_rank, args=(config, queue), nprocs=2, join=True)
    assert sorted(queue.get() for _ in range(2)) == [(0, 1), (1, 1)]


@pytest.mark.timeout(300)
def test_ranks_stop_together_on_budget(base_config):
    """Rank 0 decides when the budget is spent, so no rank waits for another at a collective."""
    result = run_recbole_genni("SASRec", "tiny", config_dict={
        **base_config, "neg_sampler": "genni", "epochs": 5, "stopping_step": 100, "train_time_budget": 1e-6,
    }, nproc=2, ip="127.0.0.1", port=free_port())
    assert result["stop_reason"] == "time budget" and len(result["history"]) == 1


def bucketed_rank(rank, config_dict, queue):
    """One GenNiSASRec rank with bucketed batches: the users and the lengths of each of its batches in one epoch."""
    import sys

    from recbole.data import create_dataset

    from recbole_genni.config import Config
    from recbole_genni.quick_start import data_preparation

    sys.argv = sys.argv[:1]
    config = Config("GenNiSASRec", "tiny", config_dict={**config_dict, "local_rank": rank})
    train, _, _ = data_preparation(config, create_dataset(config))
    batches = [(b[train.uid_field].tolist(), b[train.len_field].tolist()) for b in train]
    queue.put((rank, batches, train.users.tolist()))
    torch.distributed.destroy_process_group()


@pytest.mark.timeout(300)
def test_two_ranks_split_each_bucketed_batch(base_config):
    """Both ranks draw the same bucketed order: together they see every user, and batch j of each rank is its
    half of the same global batch, so the two halves hold users of similar length."""
    config = {**base_config, "nproc": 2, "world_size": 2, "offset": 0, "ip": "127.0.0.1", "port": free_port(),
              "train_batch_size": 8, "train_bucket_batches": 4}
    queue = mp.get_context("spawn").SimpleQueue()
    mp.spawn(bucketed_rank, args=(config, queue), nprocs=2, join=True)
    (_, batches0, users), (_, batches1, _) = sorted(queue.get() for _ in range(2))
    seen = [u for batches in (batches0, batches1) for users_of_batch, _ in batches for u in users_of_batch]
    assert set(seen) == set(users) and len(seen) == len(users) + len(users) % 2  # DistributedSampler pads to even
    assert len(batches0) == len(batches1)
    for (_, lengths0), (_, lengths1) in zip(batches0, batches1):
        # a global batch is sorted by length and dealt out rank by rank: the halves interleave
        assert all(a <= b for a, b in zip(lengths0, lengths1))
        assert all(b <= a for a, b in zip(lengths0[1:], lengths1))
    assert [len(b) for b, _ in batches0[:-1]] == [4] * (len(batches0) - 1)


def evaluate_rank(rank, config_dict, state_dict, queue):
    """One rank evaluating given weights on the test split: its metrics."""
    import sys

    from recbole.data import create_dataset
    from recbole.utils import init_seed

    from recbole_genni.config import Config
    from recbole_genni.quick_start import data_preparation
    from recbole_genni.trainer import Trainer

    sys.argv = sys.argv[:1]
    config = Config("SASRec", "odd", config_dict={**config_dict, "local_rank": rank})
    init_seed(config["seed"], config["reproducibility"])
    train, _, test = data_preparation(config, create_dataset(config))
    model = config.model_class(config, train._dataset)
    model.load_state_dict(state_dict)
    queue.put((rank, dict(Trainer(config, model).evaluate(test, load_best_model=False))))
    exit_rank()


@pytest.mark.timeout(300)
@pytest.mark.parametrize("users", [3, 5])
def test_ddp_metrics_equal_one_process(users, base_config, make_dataset, tmp_path):
    """RecBole pads each rank's rows with repeats and weighs ranks by their batches: 3 users on 2 ranks gave hit@5
    0.5 where one process gives 0.6667."""
    config = {**base_config, "data_path": str(make_dataset(tmp_path / "data", "odd", num_users=users)),
              "neg_sampler": "uniform", "neg_pool_size": 3, "topk": [5, 10], "valid_metric": "NDCG@10"}
    from recbole.data import create_dataset

    from recbole_genni.config import Config
    from recbole_genni.quick_start import data_preparation
    from recbole_genni.trainer import Trainer

    single = Config("SASRec", "odd", config_dict=config)
    train, _, test = data_preparation(single, create_dataset(single))
    model = single.model_class(single, train._dataset)
    expected = dict(Trainer(single, model).evaluate(test, load_best_model=False))
    distributed = {**config, "nproc": 2, "world_size": 2, "offset": 0, "ip": "127.0.0.1", "port": free_port()}
    queue = mp.get_context("spawn").SimpleQueue()
    mp.spawn(evaluate_rank, args=(distributed, model.state_dict(), queue), nprocs=2, join=True)
    results = dict(queue.get() for _ in range(2))
    assert results[0] == results[1] == expected
    assert len({round(v, 4) for v in expected.values()}) > 1  # not all zero: the comparison means something


@pytest.mark.timeout(300)
def test_refusal_under_ddp_is_one_line(base_config):
    from recbole_genni.errors import GenNiConfigError

    with pytest.raises(GenNiConfigError, match=r"^neg_sampler: 'hard' is invalid; expected uniform"):
        run_recbole_genni("SASRec", "tiny", config_dict={**base_config, "neg_sampler": "hard"}, nproc=2,
                          ip="127.0.0.1", port=free_port())
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = str(busy.getsockname()[1])
        with pytest.raises(GenNiConfigError, match=rf"--port: {port} is in use on 127.0.0.1; choose a free --port"):
            run_recbole_genni("SASRec", "tiny", config_dict=base_config, nproc=2, ip="127.0.0.1", port=port)
