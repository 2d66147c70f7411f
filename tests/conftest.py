"""Tiny synthetic RecBole datasets and configs, so every test runs on CPU in seconds."""

import math
import os
import platform
import sys

# One set of CPU kernels for this process and every process it starts (the resume tests compare a killed
# subprocess's epochs with this process's to the last bit). torch and MKL pick their SIMD kernels from the CPU
# flags a process sees when it starts, and a virtual machine can show new processes other flags than older ones:
# SASRec's first epoch on ``tiny`` sums to 2.787895619869232 under AVX-512 and 2.7878955602645874 under AVX2.
# Set before torch is imported; a value already in the environment wins.
if platform.machine() in ("x86_64", "AMD64"):
    os.environ.setdefault("ATEN_CPU_CAPABILITY", "avx2")
    os.environ.setdefault("MKL_CBWR", "AVX2")
# Under pytest-xdist (``make test``) one worker runs on each core: one thread each, not one per core each.
if "PYTEST_XDIST_WORKER" in os.environ:
    os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

#: small model sizes for every model family that the tests train
TINY_MODEL = {
    "hidden_size": 16,
    "embedding_size": 16,
    "inner_size": 32,
    "n_layers": 1,
    "n_heads": 1,
    "num_layers": 1,
    "kg_embedding_size": 16,
    "MAX_ITEM_LIST_LENGTH": 10,
}


@pytest.fixture(autouse=True)
def clean_argv(monkeypatch):
    """RecBole's Config reads ``--key=value`` from ``sys.argv``: keep pytest's own flags out of it."""
    monkeypatch.setattr(sys, "argv", ["pytest"])


@pytest.fixture(autouse=True)
def in_a_work_folder(tmp_path_factory, monkeypatch):
    """Each test runs in a folder of its own, so the ``log/``, ``log_tensorboard/`` and ``saved/`` folders that
    RecBole writes relative to the working directory never land in the checkout."""
    monkeypatch.chdir(tmp_path_factory.mktemp("work"))


def write_atomic(folder, name, num_users=30, num_items=40, min_len=6, max_len=14, seed=0, item_features=False):
    """A sequential dataset ``folder/name/name.inter`` with a learnable next-item pattern; returns the folder."""
    rng = np.random.default_rng(seed)
    path = folder / name
    path.mkdir(parents=True, exist_ok=True)
    lines = ["user_id:token\titem_id:token\ttimestamp:float"]
    for user in range(1, num_users + 1):
        length = int(rng.integers(min_len, max_len + 1))
        start = int(rng.integers(1, num_items + 1))
        for t in range(length):
            item = (start + t - 1) % num_items + 1 if rng.random() < 0.8 else int(rng.integers(1, num_items + 1))
            lines.append(f"{user}\t{item}\t{t}")
    (path / f"{name}.inter").write_text("\n".join(lines) + "\n")
    if item_features:
        rows = ["item_id:token\tclass:token_seq"] + [f"{i}\tc{i % 3} c{i % 5}" for i in range(1, num_items + 1)]
        (path / f"{name}.item").write_text("\n".join(rows) + "\n")
    return folder


def write_knowledge(folder, name, num_items=40, dim=16, seed=0):
    """Entity and relation files for the knowledge-aware sequential models: one entity per item, its pre-trained
    embedding in ``.ent``, three relations with embeddings in ``.rel``, a ring-shaped ``.kg`` and the ``.link``."""
    rng = np.random.default_rng(seed)
    path = folder / name

    def vectors(ids):
        return "".join(f"{i}\t" + " ".join(f"{x:.4f}" for x in rng.normal(size=dim)) + "\n" for i in ids)

    (path / f"{name}.ent").write_text("ent_id:token\tent_emb:float_seq\n" + vectors(range(1, num_items + 1)))
    (path / f"{name}.rel").write_text("rel_id:token\trel_emb:float_seq\n" + vectors(f"r{i}" for i in range(1, 4)))
    (path / f"{name}.link").write_text(
        "item_id:token\tentity_id:token\n" + "".join(f"{i}\te{i}\n" for i in range(1, num_items + 1))
    )
    (path / f"{name}.kg").write_text(
        "head_id:token\trelation_id:token\ttail_id:token\n"
        + "".join(f"e{i}\tr{i % 3 + 1}\te{i % num_items + 1}\n" for i in range(1, num_items + 1))
    )


#: config for the knowledge-aware models (RecBole's own quick-start gives them no leave-one-out split)
KNOWLEDGE_CONFIG = {
    "load_col": {
        "inter": ["user_id", "item_id", "timestamp"],
        "ent": ["ent_id", "ent_emb"],
        "rel": ["rel_id", "rel_emb"],
        "kg": ["head_id", "relation_id", "tail_id"],
        "link": ["item_id", "entity_id"],
    },
    "additional_feat_suffix": ["ent", "rel"],
    "preload_weight": {"ent_id": "ent_emb", "rel_id": "rel_emb"},
    "alias_of_item_id": ["ent_id"],
    "alias_of_relation_id": ["rel_id"],
    "eval_args": {"split": {"LS": "valid_and_test"}, "order": "TO", "mode": "full"},
}


@pytest.fixture
def tiny_data(tmp_path):
    """``data_path`` holding the dataset ``tiny`` (with item features and a small knowledge graph)."""
    folder = write_atomic(tmp_path / "data", "tiny", item_features=True)
    write_knowledge(folder, "tiny")
    return folder


@pytest.fixture
def base_config(tiny_data, tmp_path):
    """A config_dict for one quick epoch on ``tiny``."""
    return {
        "data_path": str(tiny_data),
        "checkpoint_dir": str(tmp_path / "saved"),
        "epochs": 1,
        "train_batch_size": 64,
        "eval_batch_size": 256,
        "show_progress": False,
        "state": "ERROR",
        "seed": 7,
        "load_col": None,
        "neg_pool_size": 20,
        **TINY_MODEL,
    }


@pytest.fixture
def make_dataset():
    """``make_dataset(folder, name, **sizes)``: write a sequential dataset as :func:`write_atomic` does."""
    return write_atomic


@pytest.fixture
def model_overrides():
    """Per model, the config beyond the tiny defaults that its own hyper-parameters or data need."""
    return {"FEARec": {"n_layers": 2}, "GRU4RecKG": KNOWLEDGE_CONFIG}


def _loader_for(base_config, model="SASRec", **overrides):
    from recbole.data import create_dataset
    from recbole.utils import init_seed

    from recbole_genni.config import Config
    from recbole_genni.quick_start import data_preparation

    config = Config(model, "tiny", config_dict={**base_config, **overrides})
    init_seed(config["seed"], True)
    train, _, _ = data_preparation(config, create_dataset(config))
    net = config.model_class(config, train._dataset)
    train.get_model(net)
    return train, net


def _train_one_epoch(base_config, **overrides) -> dict:
    from recbole.data import create_dataset

    from recbole_genni.config import Config
    from recbole_genni.quick_start import data_preparation

    config = Config("GenNiSASRec", "tiny", config_dict={**base_config, **overrides})
    train, _, _ = data_preparation(config, create_dataset(config))
    model = config.model_class(config, train._dataset)
    for batch in train:
        loss = model.calculate_loss(batch)
        assert math.isfinite(loss.item())
        loss.backward()
    return model.negatives.pop_stats().summary()


@pytest.fixture
def loader_for():
    """``loader_for(base_config, model="SASRec", **overrides)``: the tiny dataset's training loader with its model
    attached, and the model."""
    return _loader_for


@pytest.fixture
def train_one_epoch():
    """``train_one_epoch(base_config, **overrides)``: backpropagate every GenNiSASRec training batch once, checking
    each loss is finite; returns the epoch's negatives telemetry."""
    return _train_one_epoch


def _with_negatives(train, net):
    """The loader's batches with their negatives in ``neg_item_id`` (``[B]`` for K = 1, ``[B, K]`` otherwise): a
    one-pass model draws them in its own loss, run here without gradient."""
    import torch
    from recbole.data.interaction import Interaction

    for batch in train:
        if train.generates_in_loss:
            with torch.no_grad():
                net.calculate_loss(batch)
            negatives = batch[train.neg_item_id]
            if negatives.dim() == 2:
                batch.update(Interaction({train.neg_item_id: negatives.t()}))
        yield batch


@pytest.fixture
def with_negatives():
    """``with_negatives(train, net)``: the loader's batches, each with the negatives its model draws for it."""
    return _with_negatives


def write_earlier_version(checkpoint, target):
    """``checkpoint`` as an earlier version of the package wrote it: RecBole's Config pickled, no digest."""
    import torch

    from recbole_genni.checkpoints import checkpoint_config
    from recbole_genni.compat import load_checkpoint
    from recbole_genni.config import Config

    state = load_checkpoint(checkpoint, "cpu")
    state.pop("digest")
    state["config"] = checkpoint_config(state, Config)
    torch.save(state, target)
    return target
