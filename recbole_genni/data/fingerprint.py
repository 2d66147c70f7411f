"""What a checkpoint's ids mean: a fingerprint of the dataset it was trained on, checked wherever it is used again.

A model's rows are internal ids, which RecBole assigns from the tokens of the data as loaded; renamed or added
items, or reordered lines, give the same ids to other items without a word. Every checkpoint stores the training
split's fingerprint, and resuming or recommending from it refuses a dataset whose fingerprint differs.
"""

import hashlib

from recbole_genni.errors import GenNiConfigError


def _digest(values) -> str:
    return hashlib.sha256(values).hexdigest()[:16]


def dataset_fingerprint(train_dataset) -> dict:
    """The user and item token maps (a count and a digest each) and the training split's interactions (a count
    and a digest of its user and item ids) of a built training split."""
    fingerprint = {}
    for kind, field in (("users", train_dataset.uid_field), ("items", train_dataset.iid_field)):
        tokens = train_dataset.field2id_token[field]
        fingerprint[kind] = len(tokens) - 1  # the padding token is not one
        fingerprint[f"{kind}_digest"] = _digest("\n".join(map(str, tokens)).encode())
    feat = train_dataset.inter_feat
    fingerprint["interactions"] = len(feat)
    ids = [feat[train_dataset.uid_field], feat[train_dataset.iid_field]]
    fingerprint["interactions_digest"] = _digest(b"".join(t.cpu().numpy().tobytes() for t in ids))
    return fingerprint


def check_dataset_fingerprint(saved, train_dataset, what: str):
    """Refuse ``saved`` (a checkpoint's fingerprint; None for a checkpoint written before fingerprints, which
    passes) against ``train_dataset`` in one line naming what changed; ``what`` names the checkpoint's use."""
    if saved is None:
        return
    now = dataset_fingerprint(train_dataset)
    changes = []
    for kind in ("items", "users"):
        if saved[kind] != now[kind]:
            changes.append(f"{saved[kind]} {kind} then, {now[kind]} now")
        elif saved[f"{kind}_digest"] != now[f"{kind}_digest"]:
            changes.append(f"the same {saved[kind]} {kind}, but their ids stand for other tokens "
                           "(renamed or reordered)")
    if saved["interactions"] != now["interactions"]:
        changes.append(f"{saved['interactions']} training interactions then, {now['interactions']} now")
    elif saved["interactions_digest"] != now["interactions_digest"] and not changes:
        changes.append("the same number of training interactions, but other ones")
    if changes:
        name = train_dataset.dataset_name
        raise GenNiConfigError(
            f"{what}: dataset {name} changed since the checkpoint was written ({'; '.join(changes)}), so its ids "
            f"would mean other users and items; use the data it was trained on, or train again."
        )
