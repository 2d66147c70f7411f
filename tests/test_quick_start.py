"""End-to-end runs on tiny data: results, stops, checkpoint reload on the installed torch, run ids and logs."""

import contextlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from recbole.data import create_dataset

from recbole_genni import run_recbole_genni
from recbole_genni.config import Config
from recbole_genni.errors import GenNiConfigError
from recbole_genni.quick_start import data_preparation
from recbole_genni.registry import get_trainer
from recbole_genni.utils import MALLOC_ENVIRONMENT, glibc, keep_freed_memory

ROOT = Path(__file__).resolve().parents[1]


def test_run_returns_results(base_config, tmp_path):
    result = run_recbole_genni("SASRec", "tiny", config_dict={**base_config, "epochs": 2})
    assert set(result) >= {"best_valid_score", "valid_score_bigger", "best_valid_result", "test_result"}
    assert set(result["test_result"]) == {f"{m}@{k}" for m in ("hit", "ndcg") for k in (5, 10, 20)}
    assert result["best_valid_score"] == result["best_valid_result"]["ndcg@10"]
    best = [p for p in (tmp_path / "saved").glob("SASRec-*.pth") if not p.stem.endswith("-last")]
    assert len(best) == 1  # and nothing else (no temporary file) but its -last twin
    assert sorted((tmp_path / "saved").iterdir()) == sorted([best[0], best[0].with_name(best[0].stem + "-last.pth")])


def test_stop_reasons(base_config):
    """Patience and the epoch cap stop as RecBole does; a spent ``train_time_budget`` stops after the epoch it
    was spent in, and the best model so far is tested."""
    capped = run_recbole_genni("SASRec", "tiny", config_dict={**base_config, "epochs": 2, "stopping_step": 10})
    assert capped["stop_reason"] == "epochs" and len(capped["history"]) == 2
    patient = run_recbole_genni("SASRec", "tiny", config_dict={**base_config, "epochs": 50, "stopping_step": 0})
    scores = [h["valid_score"] for h in patient["history"]]
    assert patient["stop_reason"] == "patience" and len(scores) < 50 and scores[-1] < max(scores)
    timed = run_recbole_genni("SASRec", "tiny", config_dict={
        **base_config, "epochs": 50, "stopping_step": 100, "train_time_budget": 1e-6})
    assert timed["stop_reason"] == "time budget" and len(timed["history"]) == 1
    assert timed["best_valid_score"] == timed["history"][0]["valid_score"] == timed["best_valid_result"]["ndcg@10"]


def test_a_run_sets_its_allocator(base_config, monkeypatch):
    """``keep_freed_memory`` reaches the C allocator before training, as the run's config says."""
    import recbole_genni.quick_start as quick_start

    calls = []

    @contextlib.contextmanager
    def recorded(keep):
        calls.append(keep)
        yield False

    monkeypatch.setattr(quick_start, "freed_memory_kept", recorded)
    run_recbole_genni("SASRec", "tiny", config_dict={**base_config, "epochs": 1, "keep_freed_memory": False})
    run_recbole_genni("SASRec", "tiny", config_dict={**base_config, "epochs": 1})
    assert calls == [False, True]


#: a process that allocates and frees 64 MB ten times, then prints the page faults of five more such steps
FAULTS_OF_FIVE_ALLOCATIONS = """
import resource, sys, torch
from recbole_genni.utils import keep_freed_memory
assert keep_freed_memory(sys.argv[1] == "keep") == (sys.argv[1] == "keep")
for _ in range(10):  # until the heap has grown to what the loop needs (each aligned request wants a bit more)
    torch.ones(2**24)
start = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(5):
    torch.ones(2**24)
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - start)
"""


@pytest.mark.skipif(glibc() is None, reason="glibc's malloc only")
def test_kept_memory_is_not_mapped_again(monkeypatch):
    """Kept, a freed tensor's memory serves the next one once the heap has grown; glibc's defaults (left as they
    are by ``keep=False``) map every large tensor anew, a page fault per 4 KiB page (16,384 for 64 MB)."""
    for name in MALLOC_ENVIRONMENT:
        monkeypatch.delenv(name, raising=False)
    faults = {how: int(subprocess.run([sys.executable, "-c", FAULTS_OF_FIVE_ALLOCATIONS, how], capture_output=True,
                                      text=True, check=True).stdout) for how in ("keep", "default")}
    assert faults["default"] >= 5 * 16384 * 0.9
    assert faults["keep"] < 16384 * 0.1


#: a process that frees a 256 MB tensor while it keeps freed memory, and prints its resident MB before, after the
#: free and after the stretch
RESIDENT_INSIDE_AND_AFTER = """
import os, torch
from recbole_genni.utils import freed_memory_kept

def resident_mb():
    return int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20

before = resident_mb()
with freed_memory_kept(True) as kept:
    assert kept
    torch.ones(2**26)
    inside = resident_mb()
print(before, inside, resident_mb())
"""


@pytest.mark.skipif(glibc() is None, reason="glibc's malloc only")
def test_memory_is_kept_for_a_stretch_of_work(monkeypatch):
    """Freed memory stays with the process inside the stretch (a run's training and test) and is handed back when
    it ends, so that what follows does not grow the heap around the kept blocks."""
    for name in MALLOC_ENVIRONMENT:
        monkeypatch.delenv(name, raising=False)
    out = subprocess.run([sys.executable, "-c", RESIDENT_INSIDE_AND_AFTER], capture_output=True, text=True,
                         check=True)
    before, inside, after = map(float, out.stdout.split())
    assert inside - before > 200
    assert after - before < 50


def test_the_environment_decides_malloc(monkeypatch):
    """A user's ``MALLOC_*`` (or ``GLIBC_TUNABLES``) setting wins over ``keep_freed_memory``."""
    monkeypatch.setenv("MALLOC_MMAP_MAX_", "65536")
    assert keep_freed_memory(True) is False


def test_patience_at_budget_end(base_config, monkeypatch):
    """Epoch 1 both spends the budget and ends patience (its score falls, stopping_step 0): RecBole's stop."""
    import time

    from recbole.trainer import Trainer as RecBole_Trainer

    scores, clock_offset, real_time = iter([0.5, 0.4]), [0.0], time.time

    def scripted_valid_epoch(self, valid_data, show_progress=False):
        score = next(scores)
        if score == 0.4:
            clock_offset[0] = 1e6  # the budget is spent during epoch 1's validation
        return score, {"ndcg@10": score}

    monkeypatch.setattr(RecBole_Trainer, "_valid_epoch", scripted_valid_epoch)
    monkeypatch.setattr(time, "time", lambda: real_time() + clock_offset[0])
    result = run_recbole_genni("SASRec", "tiny", config_dict={
        **base_config, "epochs": 50, "stopping_step": 0, "train_time_budget": 1000})
    assert result["stop_reason"] == "patience" and len(result["history"]) == 2


def test_best_model_reload(base_config, tmp_path):
    """Trainer.evaluate(load_best_model=True) must load RecBole's pickled checkpoint on torch >= 2.6."""
    from recbole.data import create_dataset

    from recbole_genni.quick_start import data_preparation
    from recbole_genni.trainer import Trainer

    config = Config("SASRec", "tiny", config_dict={**base_config, "epochs": 1})
    train, valid, test = data_preparation(config, create_dataset(config))
    model = config.model_class(config, train._dataset)
    trainer = Trainer(config, model)
    trainer.fit(train, valid, saved=True)
    saved = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    reloaded = trainer.evaluate(test, load_best_model=True)
    assert all(torch.equal(saved[k], v) for k, v in model.state_dict().items())
    assert reloaded == trainer.evaluate(test, load_best_model=False)


def test_same_second_runs_own_checkpoints(base_config):
    """RecBole names checkpoints by the second; parallel grid cells must never test each other's models."""
    from recbole.data import create_dataset

    from recbole_genni.quick_start import data_preparation
    from recbole_genni.trainer import Trainer

    config = Config("SASRec", "tiny", config_dict={**base_config, "epochs": 1})
    train, _, _ = data_preparation(config, create_dataset(config))
    names = {Trainer(config, config.model_class(config, train._dataset)).saved_model_file for _ in range(3)}
    assert len(names) == 3 and all(n.endswith(".pth") for n in names)


def test_unknown_model_lists_supported():
    with pytest.raises(GenNiConfigError, match=r"unknown model 'NoSuchModel'; supported sequential models: .*SASRec"):
        Config("NoSuchModel", "tiny")


def test_a_misspelt_model_gets_a_guess():
    with pytest.raises(GenNiConfigError, match=r"unknown model 'SASRek'; did you mean SASRec\? supported"):
        Config("SASRek", "tiny")
    with pytest.raises(GenNiConfigError, match=r"unknown model 'gru4rec'; did you mean GRU4Rec\? supported"):
        Config("gru4rec", "tiny")


def _cli(args, cwd):
    cwd.mkdir(exist_ok=True)
    return subprocess.run([sys.executable, str(ROOT / "run_recbole_genni.py"), *args], capture_output=True,
                          text=True, timeout=600, cwd=cwd)


def _files(folder):
    return [p for p in folder.rglob("*") if p.is_file()]


@pytest.mark.slow
def test_one_run_id_everywhere(base_config, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    flags = [f"--{k}={v}" for k, v in {**base_config, "state": "INFO", "epochs": 2}.items()]
    proc = _cli(["--model=GRU4Rec", "--dataset=tiny", *flags], tmp_path / "work")
    assert proc.returncode == 0, proc.stderr[-2000:]
    log, = (tmp_path / "work" / "log" / "GRU4Rec").glob("*.log")
    run = log.stem
    assert run.startswith("GRU4Rec-tiny-")
    assert (Path(base_config["checkpoint_dir"]) / f"{run}.pth").is_file()
    results = json.loads((log.parent / f"{run}.json").read_text())
    assert results["run_id"] == run and results["checkpoint"].endswith(f"{run}.pth")
    assert set(results["test_result"]) == {f"{m}@{k}" for m in ("hit", "ndcg") for k in (5, 10, 20)}
    events = EventAccumulator(str(tmp_path / "work" / "log_tensorboard" / run))
    events.Reload()
    assert events.Scalars("test/ndcg@10")[0].value == pytest.approx(results["test_result"]["ndcg@10"])


def test_pop_trains_and_tests(base_config):
    result = run_recbole_genni("Pop", "tiny", config_dict={**base_config, "neg_sampler": "none"})
    assert 0 < result["test_result"]["hit@10"] <= 1  # reloaded from its checkpoint, by this package's trainer


def test_logs_stay_out_of_the_checkout(base_config):
    run_recbole_genni("GRU4Rec", "tiny", config_dict=base_config)
    assert list((Path.cwd() / "log" / "GRU4Rec").glob("*.log")) and (Path.cwd() / "log_tensorboard").is_dir()
    assert not Path.cwd().is_relative_to(ROOT)  # the suite's own folder (conftest.in_a_work_folder), not the repo


def test_log_agrees_with_the_run(base_config, tmp_path):
    keys = {**base_config, "state": "INFO", "neg_sampler": "genni", "loss_type": "SSM", "neg_num": 3}
    proc = _cli(["--model=GRU4Rec", "--dataset=tiny", *(f"--{k}={v}" for k, v in keys.items())], tmp_path / "work")
    assert proc.returncode == 0, proc.stderr[-2000:]
    log = next((tmp_path / "work" / "log" / "GRU4Rec").glob("*.log")).read_text()
    negatives = "genni, K=3 distinct from softmax(score / 1.0) over a pool of 20"
    assert f"Negatives: {negatives}" in log and "train_neg_sample_args" not in log
    assert f"[Training]: train_batch_size = [64] negatives: {negatives}" in log
    assert f"use_gpu = {torch.cuda.is_available()}" in log
    assert "(loss_fct): BPRHeadLoss(loss_type=SSM, logq_weight=1)" in log


@pytest.mark.parametrize("refused, message", [
    ({"topk": [10, 50]}, "topk: [10, 50] ranks more items than the catalogue has"),  # refused with the data
    ({"resume_checkpoint": "/no/such.pth"}, "resume_checkpoint: /no/such.pth: no such file"),  # by the trainer
])
def test_refused_run_leaves_no_log(refused, message, base_config, tmp_path):
    flags = [f"--{k}={v}" for k, v in {**base_config, "state": "INFO", **refused}.items()]
    proc = _cli(["--model=GRU4Rec", "--dataset=tiny", *flags], tmp_path / "work")
    assert proc.returncode == 2 and message in proc.stderr
    assert not _files(tmp_path / "work") and not _files(Path(base_config["checkpoint_dir"]))


def test_missing_dataset_one_line(base_config, tmp_path):
    proc = _cli(["--model=GRU4Rec", "--dataset=nosuch", f"--data_path={tmp_path}"], tmp_path / "work")
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip().splitlines()[-1]]  # one line
    assert "nosuch.inter: no such file" in proc.stderr and not _files(tmp_path / "work")


def test_same_seed_same_losses_and_metrics(base_config):
    config = {**base_config, "epochs": 2, "neg_num": 2, "seed": 11, "reproducibility": True}
    first = run_recbole_genni("SASRec", "tiny", config_dict=dict(config))
    second = run_recbole_genni("SASRec", "tiny", config_dict=dict(config))
    assert [h["train_loss"] for h in first["history"]] == [h["train_loss"] for h in second["history"]]
    assert first["test_result"] == second["test_result"]


def _earlier_items(data_path, dataset):
    """``{(user token, position): set of item tokens before it}`` from the raw ``.inter`` file, in time order."""
    lines = (Path(data_path) / "tiny" / "tiny.inter").read_text().splitlines()[1:]
    sequences = {}
    for user, item, time in sorted((line.split("\t") for line in lines), key=lambda r: (r[0], float(r[2]))):
        sequences.setdefault(user, []).append(item)
    return sequences


@pytest.mark.parametrize("model", ["SASRec", "GenNiSASRec"])
def test_evaluation_masks_history(model, base_config):
    """As in the S3-Rec protocol, every item the user had before the target ranks last (the whole training history
    for valid rows, plus the valid item for test rows), however much longer than ``MAX_ITEM_LIST_LENGTH`` the
    history is, but never the target itself (the tiny data repeats items, so some targets are among them); masking
    only removes competitors, so no metric drops."""
    metrics = {}
    short_inputs = {**base_config, "MAX_ITEM_LIST_LENGTH": 3}  # tiny's users have 6-14 items
    sequences = _earlier_items(base_config["data_path"], "tiny")
    for mask in (False, True):
        config = Config(model, "tiny", config_dict={**short_inputs, "eval_mask_history": mask})
        dataset = create_dataset(config)
        train, valid, test = data_preparation(config, dataset)
        torch.manual_seed(0)
        net = config.model_class(config, train._dataset)
        trainer = get_trainer(config["MODEL_TYPE"], model)(config, net)
        metrics[mask] = [trainer.evaluate(data, load_best_model=False) for data in (valid, test)]
        masked_beyond_input = repeats = 0
        for data, from_end in ((valid, 2), (test, 1)):
            for interaction, history, _, targets in data:
                if not mask:
                    assert history is None
                    continue
                expected = set()
                for row, user in enumerate(interaction[dataset.uid_field].tolist()):
                    items = sequences[dataset.id2token(dataset.uid_field, user)]
                    assert dataset.token2id(dataset.iid_field, items[-from_end]) == targets[row]
                    earlier = {int(dataset.token2id(dataset.iid_field, i)) for i in items[:-from_end]}
                    expected |= {(row, i) for i in earlier if i != targets[row]}
                    repeats += int(targets[row]) in earlier
                    masked_beyond_input += len(earlier - set(interaction["item_id_list"][row].tolist()))
                assert set(zip(*(h.tolist() for h in history))) == expected
        if mask:
            assert masked_beyond_input > 0  # items older than the row's input are masked too
            assert repeats > 0  # the exception for targets is exercised
    for unmasked, masked in zip(metrics[False], metrics[True]):
        assert all(masked[k] >= unmasked[k] for k in unmasked)
    assert any(masked[k] > unmasked[k] for unmasked, masked in zip(*metrics.values()) for k in unmasked)
