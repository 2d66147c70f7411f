"""How hard each sampler's negatives are, for one trained model: every cell draws from the same model state.

    python benchmarks/negatives.py saved/amazon_six/GenNiSASRec-Amazon2014-Six-...pth \
        benchmarks/suites/amazon_six.yaml --only ssm-uniform-k256 --only genni-pool2048 --only recipe \
        --groups ../shared/datasets/Amazon2014-Six/Amazon2014-Six.domains.tsv

The checkpoint (a GenNiSASRec run's, best or ``-last``) gives the model and the training rows; each cell of the suite
gives the ``neg_*`` keys of a sampler, which draws the negatives of the same training positions from that model's
scores (its encoder in eval mode). For each cell it reports:

- ``mean_rank``: the mean rank of the negatives among all items under the model, as a fraction of the catalogue
  (0 = the model's top item, 0.5 = what a uniform item gets); ``top1000_share``: the share among its 1,000 best;
- ``own_group_share`` (with ``--groups``): the share of negatives in the target item's group, from a TSV with
  ``category``, ``first_item`` and ``last_item`` columns over the dataset's item tokens (the Amazon2014-Six
  categories: a user's items all lie in one);
- ``tv_to_softmax``: the total variation distance, per position, between the distribution one of the sampler's
  draws follows (given its pool or index) and the model's softmax over the allowed items, at temperature 1 (0: the
  exact draw; uniform, popularity and dns cells have none).

One record per cell is appended to ``benchmarks/results/<suite>_negatives.jsonl``.
"""

import argparse
import os
import sys
from datetime import date
from pathlib import Path

import torch
import yaml

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # benchmarks/, run as a script
import reevaluate  # noqa: E402
from groups import item_groups  # noqa: E402
from run_suite import append_result, expand, package_commit  # noqa: E402

from recbole_genni.checkpoints import read_checkpoint  # noqa: E402
from recbole_genni.recommend import load_data_and_model  # noqa: E402
from recbole_genni.sampler import negative_sampler  # noqa: E402
from recbole_genni.scoring import DotScores  # noqa: E402

#: the keys that make a cell's sampler; the rest of a cell's config (the encoder, the loss) is the checkpoint's
SAMPLER_KEYS = ("neg_sampler", "neg_num", "neg_pool_size", "neg_temperature", "neg_replacement", "neg_exclude",
                "neg_score_chunk", "neg_pool_shared", "neg_pool_proposal", "neg_popularity_alpha", "neg_uniform_mix",
                "neg_index_clusters", "neg_index_refresh", "neg_index_resample")
TOP = 1000


def cell_keys(config, cell) -> dict:
    """The loss and sampler keys a suite ``cell`` runs with on the checkpoint's model and dataset, as the package's
    config resolves them (its defaults, the model's, the cell's own)."""
    from recbole_genni.config import Config

    resolved = Config(config["model"], config["dataset"],
                      config_dict={**cell["config"], "data_path": config["data_path"], "state": "ERROR"})
    return {key: resolved[key] for key in ("loss_type", *SAMPLER_KEYS)}


def cell_of(config, cells: dict) -> str:
    """The name of the suite cell (``{name: its keys}``) whose loss and sampler keys the checkpoint's config has
    (``?`` if none)."""
    return next((name for name, keys in cells.items() if all(config[k] == v for k, v in keys.items())), "?")


def training_positions(model, train_data, positions, seed):
    """``(users [P], targets [P], hidden [P, H])`` of ``positions`` real positions drawn at random from the
    training rows of the first batches: their hidden states under the model (eval mode, no gradient), as
    GenNiSASRec scores its pool."""
    users, targets, hidden = [], [], []
    with torch.no_grad():
        for interaction in train_data:
            interaction = interaction.to(model.device)
            target_seq = interaction[model.TARGET_SEQ]
            real = (target_seq > 0).nonzero(as_tuple=True)
            hidden.append(model.encode(interaction[model.ITEM_SEQ])[real])
            targets.append(target_seq[real])
            users.append(interaction[model.USER_ID].unsqueeze(1).expand_as(target_seq)[real])
            if sum(len(t) for t in targets) >= 4 * positions:
                break
        chosen = torch.randperm(sum(len(t) for t in targets), generator=torch.Generator().manual_seed(seed))
        chosen = chosen[:positions].to(model.device)
        return torch.cat(users)[chosen], torch.cat(targets)[chosen], torch.cat(hidden)[chosen]


def draw_negatives(config, train_dataset, keys, users, targets, score):
    """The negatives ``[P, K]`` that a sampler with ``keys`` draws for these positions from ``score`` (a
    :class:`~recbole_genni.scoring.DotScores`), and the sampler."""
    for key, value in keys.items():
        config[key] = value
    sampler = negative_sampler(config, train_dataset)
    return sampler.generate(users, targets, score)[0], sampler


def draw_distribution(sampler, users, targets, score):
    """``[P, |I|]``: the distribution one draw of ``sampler`` follows at these positions, given the pool or index it
    holds after drawing once (None for samplers that do not draw from the model's softmax)."""
    import math

    from recbole_genni import multi_index

    candidates, scores = sampler.candidates, score.full.double()
    allowed = candidates.valid_mask(torch.arange(candidates.item_num, device=scores.device), users, targets)
    if getattr(sampler, "index", None) is not None:  # midx: q restricted to the allowed items
        weights = multi_index.cell_log_weights(sampler.index, score.query, sampler.temperature)
        items = torch.arange(1, candidates.item_num).expand(len(users), -1)
        log_q = multi_index.index_log_prob(sampler.index, items, weights, torch.logsumexp(weights, 1, keepdim=True))
        if not sampler.resample:
            q = torch.zeros_like(scores)
            q[:, 1:] = log_q.double().exp()
            q = q * allowed
            return q / q.sum(dim=1, keepdim=True)
        drawn = multi_index.index_draw(sampler.index, score.query, sampler.resample, sampler.temperature,
                                       torch.Generator().manual_seed(0))
        logits = scores.gather(1, drawn.items) / sampler.temperature - drawn.log_prob.double()
        logits = logits.masked_fill(~allowed.gather(1, drawn.items), -math.inf)
        return torch.zeros_like(scores).scatter_add_(1, drawn.items, torch.softmax(logits, dim=1))
    if not getattr(sampler, "temperature", 0):  # proposal samplers and dns: no softmax to compare with
        return None
    pool = candidates.candidate_pool(sampler.pool_size, None if sampler.pool_shared else len(users),
                                     torch.Generator().manual_seed(0))
    pool = pool.expand(len(users), -1) if pool.dim() == 1 else pool
    logits = (scores.gather(1, pool) / sampler.temperature).masked_fill(~allowed.gather(1, pool), -math.inf)
    return torch.zeros_like(scores).scatter_add_(1, pool, torch.softmax(logits, dim=1))


def tv_to_softmax(distribution, scores, users, targets, candidates) -> float:
    """Mean over positions of the total variation distance between ``distribution`` and softmax(scores) over the
    allowed items."""
    allowed = candidates.valid_mask(torch.arange(candidates.item_num, device=scores.device), users, targets)
    exact = torch.softmax(scores.double().masked_fill(~allowed, float("-inf")), dim=1)
    return (0.5 * (exact - distribution).abs().sum(dim=1)).mean().item()


def hardness(scores, targets, negatives, groups=None) -> dict:
    """Mean catalogue rank of ``negatives`` under ``scores`` (padding excluded), their share in the top ``TOP``,
    and, with ``groups``, their share in their target's group."""
    ascending = scores[:, 1:].sort(dim=1).values
    neg_scores = scores.gather(1, negatives).contiguous()  # [P, K]
    above = ascending.shape[1] - torch.searchsorted(ascending, neg_scores, right=True)  # items scored higher
    record = {
        "mean_rank": (above.double() / ascending.shape[1]).mean().item(),
        f"top{TOP}_share": (above < TOP).double().mean().item(),
        "positions": len(targets),
        "negatives_per_position": negatives.shape[1],
    }
    if groups is not None:
        record["own_group_share"] = (groups[negatives] == groups[targets].unsqueeze(1)).double().mean().item()
    return record


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", help="a GenNiSASRec checkpoint (saved/<run id>.pth or its -last.pth)")
    parser.add_argument("suite", help="the suite YAML whose cells name the samplers")
    parser.add_argument("--only", action="append", required=True, metavar="NAME", help="a cell (repeatable)")
    parser.add_argument("--groups", type=Path, help="TSV of item groups: category, first_item, last_item")
    parser.add_argument("--positions", type=int, default=1024, help="training positions drawn for, at random")
    parser.add_argument("--out", help="results JSONL (default: benchmarks/results/<suite name>_negatives.jsonl)")
    parser.add_argument("--trust_pickle", action="store_true", help="load a checkpoint of an earlier version of the "
                                                                     "package (a pickle: only files you wrote)")
    args = parser.parse_args()
    command = " ".join(["python", *sys.argv])
    sys.argv = sys.argv[:1]  # RecBole's Config reads --key=value from sys.argv
    suite = yaml.safe_load(Path(args.suite).read_text())
    by_name = {cell["name"]: cell for cell in expand({**suite, "seeds": suite["seeds"][:1]})}
    unknown = [name for name in args.only if name not in by_name]
    if unknown:
        parser.error(f"--only {unknown}: not cells of {args.suite}")
    config, model, dataset, train_data, _, _ = load_data_and_model(args.checkpoint, trust_pickle=args.trust_pickle)
    keys_of = {name: cell_keys(config, cell) for name, cell in by_name.items()}
    # before the cells' keys are set on the config
    trained_with, trained_cell = reevaluate.describe(config), cell_of(config, keys_of)
    if not hasattr(model, "encode"):
        parser.error(f"{args.checkpoint}: a {type(model).__name__} checkpoint; this needs GenNiSASRec's")
    groups = None if args.groups is None else item_groups(args.groups, dataset.field2id_token[dataset.iid_field])
    users, targets, hidden = training_positions(model, train_data, args.positions, config["seed"])
    table = model.item_embedding.weight.detach()
    score = DotScores(hidden, table, targets, full=hidden @ table.t())
    saved = read_checkpoint(args.checkpoint, "cpu", "", "a GenNiSASRec checkpoint", args.trust_pickle)
    epoch, valid_score = saved.get("epoch"), saved.get("best_valid_score")
    out = Path(args.out or f"benchmarks/results/{Path(args.suite).stem}_negatives.jsonl")
    for name in args.only:
        keys = {key: value for key, value in keys_of[name].items() if key != "loss_type"}
        if keys["neg_sampler"] == "none":
            parser.error(f"--only {name}: a full-softmax cell draws no negatives")
        torch.manual_seed(config["seed"])
        negatives, sampler = draw_negatives(config, train_data._dataset, keys, users, targets, score)
        record = hardness(score.full, targets, negatives, groups)
        distribution = draw_distribution(sampler, users, targets, score)
        if distribution is not None:
            record["tv_to_softmax"] = tv_to_softmax(distribution, score.full, users, targets, sampler.candidates)
        print(f"{name:<24} mean rank {record['mean_rank']:.4f}  top{TOP} {record[f'top{TOP}_share']:.4f}" + (
            f"  own group {record['own_group_share']:.4f}" if groups is not None else "")
            + (f"  TV {record['tv_to_softmax']:.4f}" if "tv_to_softmax" in record else ""), flush=True)
        append_result(out, {
            "name": name, "dataset": config["dataset"], "checkpoint": Path(args.checkpoint).name,
            "checkpoint_model": trained_with, "checkpoint_cell": trained_cell, "checkpoint_epoch": epoch,
            "checkpoint_valid_score": valid_score, **record, "sampler": keys,
            "commit": package_commit(), "date": date.today().isoformat(), "command": command,
        })


if __name__ == "__main__":
    main()
