"""Evaluate saved checkpoints again under three rules for the user's earlier items, and report each.

    python benchmarks/reevaluate.py saved/GenNiSASRec-...pth [...] --out benchmarks/results/<name>.jsonl

The rules: ``unmasked`` (RecBole's sequential evaluation), ``masked`` (``eval_mask_history``: ranked last) and
``zeroed``, the S3-Rec / ICLRec / ELECRec / BSARec code's, which sets their scores to 0 rather than minus infinity
(so they still outrank every item scored below 0), the target's too where it is in the row's sequence.
Each checkpoint is rebuilt from the config saved in it (dataset, model, hyper-parameters; run from the folder the
run was started in, so its ``data_path`` resolves), on the CPU unless a GPU is visible. It prints one JSON line per
checkpoint (valid NDCG@10 and test HR/NDCG@10 and @20 under each rule) and appends it to ``--out``. With ``--groups``
(a TSV of item groups, as ``benchmarks/negatives.py`` reads it), it adds the masked rule's test HR/NDCG@10 of each
group of users, a user's group being their test item's.
"""

import argparse
import json
import os
import sys
from pathlib import Path

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the repo, run as a script
from recbole.data import create_dataset  # noqa: E402
from recbole.utils import init_seed  # noqa: E402

from recbole_genni.checkpoints import checkpoint_config, read_checkpoint  # noqa: E402
from recbole_genni.config import Config  # noqa: E402
from recbole_genni.data.checks import check_sequential_inter  # noqa: E402
from recbole_genni.quick_start import data_preparation  # noqa: E402
from recbole_genni.registry import get_trainer  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # benchmarks/
from groups import item_groups, read_group_names  # noqa: E402
from run_suite import append_result  # noqa: E402

TEST_METRICS = ("hit@10", "ndcg@10", "hit@20", "ndcg@20")
DESCRIBED_KEYS = ("neg_sampler", "loss_type", "neg_num", "neg_pool_size", "neg_pool_shared")


RULES = ("unmasked", "masked", "zeroed")


def zeroing(trainer_class):
    """``trainer_class`` with the ``zeroed`` rule: the history's scores (and a repeated target's) set to 0."""

    class ZeroedHistoryTrainer(trainer_class):
        def _full_sort_batch_eval(self, batched_data):
            interaction, history_index, positive_u, positive_i = batched_data
            interaction, scores, positive_u, positive_i = super()._full_sort_batch_eval(
                (interaction, None, positive_u, positive_i))
            scores[history_index] = 0
            rows, targets = positive_u.to(scores.device), positive_i.to(scores.device)
            sequence = interaction[self.model.ITEM_SEQ].to(scores.device)[rows]
            repeated = (sequence == targets.unsqueeze(1)).any(dim=1)
            scores[rows[repeated], targets[repeated]] = 0
            return interaction, scores, positive_u, positive_i

    return ZeroedHistoryTrainer


def rebuild(checkpoint: dict, rule=None):
    """The checkpoint's model in its trainer, and the valid and test loaders of its dataset, under one of
    :data:`RULES` (``None``: the run's own rule)."""
    config = checkpoint_config(checkpoint, Config)
    check_sequential_inter(config)  # as the run did: RecBole's default load_col gets the time column
    if rule is not None:
        config["eval_mask_history"] = rule != "unmasked"
    config["device"] = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    init_seed(config["seed"], config["reproducibility"])
    train, valid, test = data_preparation(config, create_dataset(config))
    model = config.model_class(config, train._dataset).to(config["device"])
    model.load_state_dict(checkpoint["state_dict"])
    trainer_class = get_trainer(config["MODEL_TYPE"], config["model"])
    trainer = (zeroing(trainer_class) if rule == "zeroed" else trainer_class)(config, model)
    return trainer, valid, test


def evaluate(checkpoint: dict, rule: str, groups_file=None) -> dict:
    """Valid NDCG@10 and the test metrics of the checkpoint's weights under one of :data:`RULES`; with
    ``groups_file``, also ``by_group``: the test HR/NDCG@10 of each group of users (:func:`evaluate_by_group`)."""
    trainer, valid, test = rebuild(checkpoint, rule)
    valid_result = trainer.evaluate(valid, load_best_model=False)
    if groups_file is None:
        test_result = trainer.evaluate(test, load_best_model=False)
    else:
        test_result, by_group = evaluate_by_group(trainer, test, groups_file)
    result = {"valid ndcg@10": valid_result["ndcg@10"], **{m: test_result[m] for m in TEST_METRICS}}
    if groups_file is not None:
        result["by_group"] = by_group
    return result


def evaluate_by_group(trainer, eval_data, groups_file):
    """``trainer.evaluate(eval_data)``'s metrics, and from the same ranking ``{group name: {users, hit@10,
    ndcg@10}}``: each row in its target item's group (``groups_file``: :func:`groups.read_groups`), its rank the
    number of items scored above its target once the trainer's rule has masked the user's earlier items."""
    dataset = eval_data._dataset
    groups = item_groups(groups_file, dataset.field2id_token[dataset.iid_field])
    ranks, row_groups = [], []
    score_batch = trainer._full_sort_batch_eval

    def ranking_batch(batched_data):
        interaction, scores, positive_u, positive_i = score_batch(batched_data)
        rows, targets = positive_u.to(scores.device), positive_i.to(scores.device)
        ranks.append((scores[rows] > scores[rows, targets].unsqueeze(1)).sum(dim=1).cpu())
        row_groups.append(groups[targets.cpu()])
        return interaction, scores, positive_u, positive_i

    trainer._full_sort_batch_eval = ranking_batch  # RecBole's evaluate looks it up on the instance
    try:
        result = trainer.evaluate(eval_data, load_best_model=False)
    finally:
        del trainer._full_sort_batch_eval
    ranks, row_groups = torch.cat(ranks), torch.cat(row_groups)
    hit = (ranks < 10).double()
    ndcg = hit / torch.log2(ranks.double() + 2)
    return result, {name: {"users": int((row_groups == index).sum()), "hit@10": hit[row_groups == index].mean().item(),
                           "ndcg@10": ndcg[row_groups == index].mean().item()}
                    for index, name in enumerate(read_group_names(groups_file))}


def describe(config) -> str:
    """The run in a few words: model, dataset, seed and how it drew its negatives (or full softmax)."""
    head = f"{config['model']} on {config['dataset']}, seed {config['seed']}: "
    if config["neg_sampler"] == "none":
        return head + f"loss_type {config['loss_type']} (full softmax)"
    return head + ", ".join(f"{k} {config[k]}" for k in DESCRIBED_KEYS)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoints", nargs="+", help="best-model checkpoints written by a run")
    parser.add_argument("--out", type=Path, help="results JSONL to append to")
    parser.add_argument("--trust_pickle", action="store_true", help="load checkpoints of earlier versions of the "
                                                                     "package (pickles: only files you wrote)")
    parser.add_argument("--groups", type=Path, help="TSV of item groups (category, first_item, last_item): "
                                                     "the masked rule's test metrics per group of users")
    args = parser.parse_args()
    command = " ".join(["python", *sys.argv])
    for path in args.checkpoints:
        checkpoint = read_checkpoint(path, "cpu", "", "a best-model checkpoint", args.trust_pickle)
        config = checkpoint_config(checkpoint, Config)
        record = {"file": path, "dataset": config["dataset"], "cell": describe(config)}
        for rule in RULES:
            record[rule] = evaluate(checkpoint, rule, args.groups if rule == "masked" else None)
        print(json.dumps(record), flush=True)
        if args.out:
            append_result(args.out, {**record, "command": command})


if __name__ == "__main__":
    main()
