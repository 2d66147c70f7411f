"""From a checkpoint back to a model, its data and its recommendations.

``load_data_and_model`` is RecBole's counterpart for this package's checkpoints (its config, its models and
loaders). ``topk`` ranks the whole catalogue for users with their history masked, and the
``recbole-genni-recommend`` command writes the top-k items of given users (or all) to a file.
"""

import argparse
import os
import sys

import torch
from recbole.data import create_dataset
from recbole.data.interaction import Interaction
from recbole.utils import ModelType, init_seed

from recbole_genni.checkpoints import checkpoint_config, read_checkpoint
from recbole_genni.config import Config
from recbole_genni.data.checks import check_sequential_inter
from recbole_genni.data.fingerprint import check_dataset_fingerprint
from recbole_genni.errors import GenNiConfigError
from recbole_genni.quick_start import data_preparation
from recbole_genni.sampler import dataset_history_keys
from recbole_genni.sampling import history_pairs
from recbole_genni.utils import atomic_write, run_cli


def load_data_and_model(model_file, device=None, data_path=None, trust_pickle=False):
    """``(config, model, dataset, train_data, valid_data, test_data)`` from a checkpoint this package's trainer
    wrote (``saved/<run id>.pth``, or its ``-last.pth``), for GenNiSASRec and for RecBole's models alike: the
    dataset is loaded and split as the run did, the model holds the checkpoint's weights, in eval mode. ``device``
    (default: the run's, or the CPU where CUDA is missing) is where the model goes; ``data_path`` (default: the
    run's) where its dataset is now; ``trust_pickle`` loads a checkpoint of an earlier version of the package, a
    pickle that can run code (only for files you wrote). A checkpoint of a distributed run loads in one process."""
    if not os.path.isfile(model_file):
        raise GenNiConfigError(f"{model_file}: no such checkpoint")
    checkpoint = read_checkpoint(model_file, "cpu", "", "a checkpoint a training run saved (saved/<run id>.pth)",
                                 trust_pickle)
    if not isinstance(checkpoint, dict) or "config" not in checkpoint or "state_dict" not in checkpoint:
        raise GenNiConfigError(f"{model_file}: not a checkpoint of a training run (no config and state_dict)")
    config = checkpoint_config(checkpoint, Config)
    if data_path is not None:
        config["data_path"] = os.path.join(data_path, config["dataset"])  # RecBole keeps <data_path>/<dataset>
    inter = os.path.join(config["data_path"], f"{config['dataset']}.inter")
    if not os.path.isfile(inter):
        raise GenNiConfigError(
            f"{model_file}: its dataset is not where it was trained ({inter}: no such file); give the folder that "
            f"holds {config['dataset']}/ now with --data_path (load_data_and_model(..., data_path=...)).")
    if config["MODEL_TYPE"] == ModelType.SEQUENTIAL:
        check_sequential_inter(config)  # as the run did: RecBole's default load_col gets the time column
    if not config["single_spec"]:  # a distributed run's checkpoint, loaded in this one process
        config["single_spec"], config["local_rank"] = True, 0
    if device is not None or (config["device"].type == "cuda" and not torch.cuda.is_available()):
        config["device"] = torch.device(device or "cpu")
    init_seed(config["seed"], config["reproducibility"])
    dataset = create_dataset(config)
    train_data, valid_data, test_data = data_preparation(config, dataset)
    check_dataset_fingerprint(checkpoint.get("dataset_fingerprint"), train_data._dataset, model_file)
    init_seed(config["seed"], config["reproducibility"])
    model = config.model_class(config, train_data._dataset).to(config["device"])
    model.load_state_dict(checkpoint["state_dict"])
    model.load_other_parameter(checkpoint.get("other_parameter"))
    return config, model.eval(), dataset, train_data, valid_data, test_data


def next_item_input(test_data, users, append_last=True):
    """The test rows of ``users`` (internal ids); with ``append_last``, the input for their next item after
    everything they did: each row's own item appended to every ``*_list`` field (the oldest dropped at
    ``MAX_ITEM_LIST_LENGTH``)."""
    feat = test_data._dataset.inter_feat
    uid_field = test_data._dataset.uid_field
    rows = torch.full((test_data._dataset.user_num,), -1, dtype=torch.long)
    rows[feat[uid_field]] = torch.arange(len(feat))
    index = rows[users]
    if bool((index < 0).any()):
        missing = users[index < 0].tolist()
        raise GenNiConfigError(f"users {missing[:5]} have no test row (too few interactions to be split)")
    batch = feat[index]
    if not append_last:
        return batch
    length_field = test_data.config["ITEM_LIST_LENGTH_FIELD"]
    suffix = test_data.config["LIST_SUFFIX"]
    lengths = batch[length_field]
    full = lengths == batch[test_data._dataset.iid_field + suffix].shape[1]
    fields = {}
    for name in batch.interaction:
        if not name.endswith(suffix) or name[: -len(suffix)] not in batch.interaction:
            continue
        seq = batch[name].clone()
        seq[full] = seq[full].roll(-1, dims=1)  # full: drop the oldest item to make room
        seq[torch.arange(len(seq)), torch.where(full, lengths - 1, lengths)] = batch[name[: -len(suffix)]]
        fields[name] = seq
    fields[length_field] = torch.where(full, lengths, lengths + 1)
    batch.update(Interaction(fields))
    return batch


#: users scored at once: a chunk holds [users, |I|] scores
USERS_PER_CHUNK = 1024


@torch.no_grad()
def topk(model, splits, users, k=10, include_last=True):
    """Each user's top-k of the whole catalogue by the model's ``full_sort_predict``, never an item of the user's.

    Args:
        model: a trained model.
        splits: the ``(train_data, valid_data, test_data)`` loaders of :func:`load_data_and_model`.
        users: internal user ids.
        k: items per user.
        include_last: rank the next item after everything the user did (the test item appended to the input, every
            item of the user masked); False ranks as the test evaluation does (the test row's input, its earlier
            items masked, the test item itself not).

    Returns:
        ``(items [U, k], scores [U, k])``, internal ids; a user with fewer than k items left gets them all, then
        item -1 with score -inf.
    """
    train_data, valid_data, test_data = splits
    dataset = test_data._dataset
    users = torch.as_tensor(users, dtype=torch.long)
    if k < 1:
        raise GenNiConfigError(f"k: {k} is invalid; expected an integer >= 1")
    if k > dataset.item_num - 1:
        raise GenNiConfigError(f"k: {k} is more than the catalogue's {dataset.item_num - 1} items")
    earlier = [train_data._dataset, valid_data._dataset] + ([dataset] if include_last else [])
    keys = dataset_history_keys(*earlier)
    items, scores = [], []
    for chunk in users.split(USERS_PER_CHUNK):
        batch = next_item_input(test_data, chunk, append_last=include_last)
        score = model.full_sort_predict(batch.to(model.device)).view(len(chunk), -1).float()
        rows, masked = history_pairs(keys.to(score.device), chunk.to(score.device), dataset.item_num)
        if not include_last:  # as the evaluation: the row's own target stays rankable
            keep = masked != batch[dataset.iid_field].to(score.device)[rows]
            rows, masked = rows[keep], masked[keep]
        score[rows, masked] = float("-inf")
        score[:, 0] = float("-inf")  # padding
        top = score.topk(k, dim=1)
        items.append(top.indices.masked_fill(top.values == float("-inf"), -1).cpu())  # masked or padding: none
        scores.append(top.values.cpu())
    return torch.cat(items), torch.cat(scores)


def write_recommendations(checkpoint, output, users=None, k=10, include_last=True, data_path=None,
                          trust_pickle=False):
    """Write ``output`` (TSV: user, rank, item, score; the dataset's own tokens) with the top-k items of ``users``
    (the dataset's user tokens; None: every user with a test row); returns the number of users written. An output
    that cannot be written is refused before the model is loaded."""
    folder = os.path.dirname(os.path.abspath(output))
    if os.path.isdir(output) or not os.path.isdir(folder) or not os.access(folder, os.W_OK):
        why = "a folder" if os.path.isdir(output) else ("no such folder" if not os.path.isdir(folder)
                                                         else "a folder you cannot write to")
        raise GenNiConfigError(f"--output: {output}: cannot write there ({why}); give a file in a writable folder")
    config, model, dataset, *splits = load_data_and_model(checkpoint, data_path=data_path, trust_pickle=trust_pickle)
    test = splits[2]._dataset
    uid_field, iid_field = dataset.uid_field, dataset.iid_field
    if users is None:
        ids = test.inter_feat[uid_field]
    else:
        unknown = [u for u in users if u not in dataset.field2token_id[uid_field]]
        if unknown:
            raise GenNiConfigError(f"--users: {unknown[:5]} not in {config['dataset']}'s {uid_field} column")
        ids = torch.as_tensor([dataset.field2token_id[uid_field][u] for u in users])
    items, scores = topk(model, splits, ids, k, include_last)
    user_tokens = dataset.id2token(uid_field, ids.numpy())
    item_tokens = dataset.id2token(iid_field, items.clamp(min=0).numpy())

    def write(f):
        f.write(f"{uid_field}\trank\t{iid_field}\tscore\n")
        for user, row_ids, row_items, row_scores in zip(user_tokens, items.tolist(), item_tokens, scores.tolist()):
            for rank, (item_id, item, score) in enumerate(zip(row_ids, row_items, row_scores), start=1):
                if item_id >= 0:  # fewer than k left to recommend: the row ends early
                    f.write(f"{user}\t{rank}\t{item}\t{score:.6g}\n")

    atomic_write(output, write)
    return len(ids)


def main(argv=None) -> int:
    """``recbole-genni-recommend CHECKPOINT``: the top-k items of users from a trained model, to a TSV file."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("checkpoint", help="a checkpoint a training run saved (saved/<run id>.pth)")
    parser.add_argument("--users", help="comma-separated user ids of the dataset (default: every user)")
    parser.add_argument("--k", type=int, default=10, help="items per user (default 10)")
    parser.add_argument("--output", default="recommendations.tsv", help="TSV to write (default recommendations.tsv)")
    parser.add_argument("--as_evaluated", action="store_true",
                        help="rank as the test evaluation does: the input before each user's test item, that item "
                             "rankable (default: the next item after everything the user did)")
    parser.add_argument("--data_path", help="the folder that holds the dataset's folder now, if it moved since "
                                                "training (default: where the run read it)")
    parser.add_argument("--trust_pickle", action="store_true",
                        help="load a checkpoint of an earlier version of the package (a pickle, which can run code: "
                             "only files you wrote)")
    args = parser.parse_args(argv)
    users = args.users.split(",") if args.users else None

    def action():
        count = write_recommendations(args.checkpoint, args.output, users, args.k, not args.as_evaluated,
                                      args.data_path, args.trust_pickle)
        print(f"wrote the top {args.k} items of {count} users to {args.output}")
    return run_cli(action)


def console_main():
    sys.exit(main())
