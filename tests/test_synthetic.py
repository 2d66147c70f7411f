"""The synthetic scale dataset: exact shape, a learnable rule, a long popularity tail, and RecBole reads it whole."""

import numpy as np
from recbole.data import create_dataset

from recbole_genni.config import Config
from recbole_genni.data.synthetic import generate, main


def test_sequences_follow_rule():
    users, items, positions = generate(num_items=5000, num_users=400, min_len=5, max_len=30, signal=0.6, seed=1)
    assert users.min() == 1 and users.max() == 400 and items.min() >= 1 and items.max() <= 5000
    assert np.all(np.bincount(users)[1:] >= 5) and np.all(np.bincount(users)[1:] <= 30)
    same_user = users[1:] == users[:-1]
    pairs = {}
    for a, b in zip(items[:-1][same_user], items[1:][same_user]):
        pairs.setdefault(a, []).append(b)
    # the most common successor of an item accounts for most of its transitions (the rule, followed 60% of the time)
    top_share = np.mean([max(np.bincount(v)) / len(v) for v in pairs.values() if len(v) >= 5])
    assert top_share > 0.5
    counts = np.sort(np.bincount(items)[1:])[::-1]
    assert counts[:50].sum() > 0.2 * counts.sum()  # 1% of the items take over a fifth of the interactions
    assert np.array_equal(positions[:3], [0, 1, 2])


def test_cli_writes_atomic_files(tmp_path, base_config):
    assert main(["--items", "60", "--users", "40", "--out", str(tmp_path), "--name", "synth"]) == 0
    catalogue = (tmp_path / "synth" / "synth.item").read_text().split()
    assert catalogue == ["item_id:token"] + [str(i) for i in range(1, 61)]  # the whole catalogue, drawn or not
    config = Config("GenNiSASRec", "synth", config_dict={**base_config, "data_path": str(tmp_path)})
    assert create_dataset(config).item_num == 61  # RecBole's catalogue: every id of the .item file, and padding
