"""From a checkpoint back to the model and its recommendations: the loaded model tests as the run did, and its
top-k are the evaluation's own ranking with the history masked."""

import re
from pathlib import Path

import pytest
import torch

from recbole_genni import load_data_and_model, run_recbole_genni
from recbole_genni.recommend import main, next_item_input, topk
from recbole_genni.registry import get_trainer
from recbole_genni.sampler import dataset_history_keys
from recbole_genni.sampling import history_pairs
from tests.conftest import write_earlier_version

CASES = {
    "GRU4Rec": {"neg_sampler": "genni", "loss_type": "SSM", "neg_num": 4},
    "GenNiSASRec": {},
}


@pytest.fixture(params=sorted(CASES))
def trained(request, base_config):
    """``(model name, the run's result, its best-model checkpoint)``."""
    model = request.param
    result = run_recbole_genni(model, "tiny", config_dict={**base_config, **CASES[model], "epochs": 2})
    checkpoint, = (p for p in Path(base_config["checkpoint_dir"]).glob(f"{model}-*.pth")
                   if not p.name.endswith("-last.pth"))
    return model, result, checkpoint


def test_a_run_on_recboles_default_load_col_loads_back(base_config):
    """RecBole's default load_col leaves out the time column; the run adds it (the header has it), and so does
    loading its checkpoint, or RecBole could not order each user's items."""
    config_dict = {k: v for k, v in base_config.items() if k != "load_col"}
    result = run_recbole_genni("GRU4Rec", "tiny", config_dict={**config_dict, "epochs": 1})
    checkpoint, = (p for p in Path(base_config["checkpoint_dir"]).glob("GRU4Rec-*.pth")
                   if not p.name.endswith("-last.pth"))
    config, model, dataset, *splits = load_data_and_model(checkpoint)
    assert config["load_col"]["inter"] == ["user_id", "item_id", "timestamp"]
    trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, model)
    assert trainer.evaluate(splits[2], load_best_model=False) == result["test_result"]


def test_loaded_checkpoint_tests_as_run(trained):
    model_name, result, checkpoint = trained
    config, model, dataset, *splits = load_data_and_model(checkpoint)
    test_data = splits[2]
    trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, model)
    assert trainer.evaluate(test_data, load_best_model=False) == result["test_result"]

    # the evaluation's own ranking of every test row: its scores, its history mask
    expected, users = [], []
    with torch.no_grad():
        for interaction, history_index, _, _ in test_data:
            scores = model.full_sort_predict(interaction).view(len(interaction), -1)
            scores[history_index] = float("-inf")
            scores[:, 0] = float("-inf")
            expected.append(scores.topk(5, dim=1).indices)
            users.append(interaction[dataset.uid_field])
    items, _ = topk(model, splits, torch.cat(users), k=5, include_last=False)
    assert torch.equal(items, torch.cat(expected))


def test_recommends_after_history(trained):
    _, _, checkpoint = trained
    config, model, dataset, *splits = load_data_and_model(checkpoint)
    test_rows = splits[2]._dataset.inter_feat
    users = test_rows[dataset.uid_field][:6]
    batch = next_item_input(splits[2], users)
    seq, lengths = batch[model.ITEM_SEQ], batch[model.ITEM_SEQ_LEN]
    assert torch.equal(seq[torch.arange(len(users)), lengths - 1], test_rows[dataset.iid_field][:6])
    items, scores = topk(model, splits, users, k=5)
    keys = dataset_history_keys(*(s._dataset for s in splits))
    rows, seen = history_pairs(keys, users, dataset.item_num)
    assert not any(int(seen[rows == r].eq(items[r].unsqueeze(1)).sum()) for r in range(len(users)))
    assert torch.isfinite(scores).all() and (scores[:, :-1] >= scores[:, 1:]).all()


def test_fewer_items_than_k(trained, tmp_path):
    _, _, checkpoint = trained
    config, model, dataset, *splits = load_data_and_model(checkpoint)
    users = splits[2]._dataset.inter_feat[dataset.uid_field][:4]
    keys = dataset_history_keys(*(s._dataset for s in splits))
    rows, seen = history_pairs(keys, users, dataset.item_num)
    k = dataset.item_num - 1  # every real item: more than any user has left
    items, scores = topk(model, splits, users, k=k)
    for row in range(len(users)):
        left = k - len(set(seen[rows == row].tolist()))
        assert set(items[row, :left].tolist()).isdisjoint(seen[rows == row].tolist() + [0])
        assert (items[row, left:] == -1).all() and torch.isinf(scores[row, left:]).all()
    out = tmp_path / "all.tsv"
    token = dataset.id2token(dataset.uid_field, users[:1].numpy())[0]
    assert main([str(checkpoint), f"--users={token}", f"--k={k}", f"--output={out}"]) == 0
    written = [line.split("\t") for line in out.read_text().splitlines()[1:]]
    assert len(written) == k - len(set(seen[rows == 0].tolist())) and all(s != "-inf" for *_, s in written)
    assert main([str(checkpoint), "--k=0", f"--output={out}"]) == 2


def test_command_writes_top_k(trained, tmp_path, capsys):
    _, _, checkpoint = trained
    out = tmp_path / "recs.tsv"
    assert main([str(checkpoint), "--users=1,2", "--k=3", f"--output={out}"]) == 0
    lines = out.read_text().splitlines()
    assert lines[0] == "user_id\trank\titem_id\tscore"
    assert [line.split("\t")[:2] for line in lines[1:]] == [[u, str(r)] for u in ("1", "2") for r in (1, 2, 3)]
    assert main([str(checkpoint), "--users=nobody", f"--output={tmp_path / 'x.tsv'}"]) == 2
    assert "--users: ['nobody'] not in tiny's user_id column" in capsys.readouterr().err
    assert not (tmp_path / "x.tsv").exists()
    assert main([str(tmp_path / "none.pth")]) == 2
    assert "none.pth: no such checkpoint" in capsys.readouterr().err


def _rename_item(inter, old="5", new="99"):
    lines = inter.read_text().splitlines()
    inter.write_text("\n".join([lines[0]] + ["\t".join(new if i == 1 and f == old else f
                                                       for i, f in enumerate(line.split("\t")))
                                             for line in lines[1:]]) + "\n")


def _add_item(inter):
    inter.write_text(inter.read_text() + "1\t41\t100\n")  # user 1's newest item, never seen before


@pytest.mark.parametrize("change, message", [
    (_rename_item, "the same 40 items, but their ids stand for other tokens (renamed or reordered)"),
    (_add_item, "40 items then, 41 now"),
])
def test_changed_dataset_refused(change, message, base_config, make_dataset, tmp_path, capsys):
    from recbole_genni.errors import GenNiConfigError

    config = {**base_config, "data_path": str(make_dataset(tmp_path / "plain", "tiny")), "epochs": 1}
    run_recbole_genni("GenNiSASRec", "tiny", config_dict=config)
    saved = Path(config["checkpoint_dir"])
    best, = (p for p in saved.glob("*.pth") if not p.name.endswith("-last.pth"))
    last, = saved.glob("*-last.pth")
    change(tmp_path / "plain" / "tiny" / "tiny.inter")
    assert main([str(best), "--users=2"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {best}: dataset tiny changed since the checkpoint was written (") and message in err
    with pytest.raises(GenNiConfigError, match=r"resume_checkpoint: .*-last.pth: dataset tiny changed since the "
                                                r"checkpoint was written \(.*" + re.escape(message)):
        run_recbole_genni("GenNiSASRec", "tiny", config_dict={**config, "epochs": 2, "resume_checkpoint": str(last)})


def test_command_refuses_bad_paths(trained, tmp_path, capsys):
    import shutil

    _, _, checkpoint = trained
    cut = tmp_path / "cut.pth"
    cut.write_bytes(checkpoint.read_bytes()[:1000])
    foreign = tmp_path / "notes.pth"
    foreign.write_text("not a checkpoint")
    cases = [
        ([str(cut)], f"error: {cut} is not readable as a checkpoint ("),
        ([str(foreign)], f"error: {foreign} is not readable as a checkpoint ("),
        ([str(checkpoint), f"--output={tmp_path}"], f"error: --output: {tmp_path}: cannot write there (a folder)"),
        ([str(checkpoint), f"--output={tmp_path / 'no' / 'r.tsv'}"], "cannot write there (no such folder)"),
    ]
    for argv, message in cases:
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and message in err, err
    # the dataset's folder moved since training: named, and found again with --data_path
    data = Path(load_checkpoint_config(checkpoint)["data_path"]).parent
    shutil.move(data, tmp_path / "moved")
    out = tmp_path / "r.tsv"
    assert main([str(checkpoint), "--users=1", f"--output={out}"]) == 2
    assert "its dataset is not where it was trained (" in capsys.readouterr().err
    assert main([str(checkpoint), "--users=1", f"--output={out}", f"--data_path={tmp_path / 'moved'}"]) == 0
    assert out.read_text().startswith("user_id\trank\titem_id\tscore\n1\t1\t")


def load_checkpoint_config(path):
    from recbole_genni.checkpoints import checkpoint_config
    from recbole_genni.compat import load_checkpoint
    from recbole_genni.config import Config

    return checkpoint_config(load_checkpoint(path, "cpu"), Config)


class _RunsCode:
    """A pickled object that would create a file when unpickled."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


def test_unsafe_checkpoint_refused(trained, tmp_path, capsys):
    from recbole_genni.compat import load_checkpoint

    _, _, checkpoint = trained
    crafted, marker = tmp_path / "crafted.pth", tmp_path / "ran"
    state = load_checkpoint(checkpoint, "cpu")
    torch.save({**state, "payload": _RunsCode(marker)}, crafted)
    assert main([str(crafted), f"--output={tmp_path / 'r.tsv'}"]) == 2
    assert not marker.exists()
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "holds Python objects, not only tensors and plain values" in err
    # an earlier version's checkpoint (RecBole's Config pickled) loads when trusted
    earlier = write_earlier_version(checkpoint, tmp_path / "earlier.pth")
    assert main([str(earlier), "--users=1", f"--output={tmp_path / 'r.tsv'}"]) == 2
    assert "set trust_checkpoint_pickle: True (--trust_pickle for recbole-genni-recommend)" in capsys.readouterr().err
    assert main([str(earlier), "--users=1", f"--output={tmp_path / 'r.tsv'}", "--trust_pickle"]) == 0
    # bytes overwritten inside a tensor after writing: the tensors no longer match their digest
    data = checkpoint.read_bytes()
    weights = state["state_dict"]["item_embedding.weight"][1:3].contiguous().numpy().tobytes()
    at = data.index(weights)
    changed = tmp_path / "changed.pth"
    changed.write_bytes(data[:at] + bytes(len(weights)) + data[at + len(weights):])
    assert main([str(changed), f"--output={tmp_path / 'r.tsv'}"]) == 2
    assert "its tensors do not match the digest written with them" in capsys.readouterr().err
