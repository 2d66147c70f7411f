"""Bad configuration stops the run before training with one message naming the key and the fix."""

import sys
from pathlib import Path

import pytest
from recbole.data import create_dataset

from recbole_genni import run_recbole_genni
from recbole_genni.config import Config
from recbole_genni.data.checks import check_sequential_inter
from recbole_genni.errors import GenNiConfigError
from recbole_genni.quick_start import data_preparation

BAD_INPUTS = [
    ({"neg_sampler": "hard"},
     r"neg_sampler: 'hard' is invalid; expected uniform \| popularity \| dns \| genni \| midx \| none"),
    ({"neg_temperature": 0}, r"neg_temperature: 0 is invalid; expected a number > 0"),
    ({"neg_temperature": -1.5}, r"neg_temperature: -1.5 is invalid"),
    ({"neg_temperature": "warm"}, r"neg_temperature: 'warm' is invalid"),
    ({"neg_temperature": 3e38}, r"neg_temperature: 3e\+38 is invalid; expected a number <= 1e\+06 \(the draws add "
                               r"temperature x Gumbel noise in float32"),
    ({"neg_temperature": 1e-40}, r"neg_temperature: 1e-40 is invalid; expected a number >= 1.18e-38, float32's "
                                 r"smallest normal number"),
    ({"neg_pool_size": 0}, r"neg_pool_size: 0 is invalid; expected an integer >= 1"),
    ({"neg_pool_size": 1.5}, r"neg_pool_size: 1.5 is invalid; expected a fraction in \(0, 1\]"),
    ({"neg_pool_size": "most"}, r"neg_pool_size: 'most' is invalid"),
    ({"neg_pool_size": 500}, r"neg_pool_size: 500 is larger than the catalogue \(40 items\)"),
    ({"neg_num": 30, "neg_pool_size": 20}, r"neg_num: 30 is larger than neg_pool_size: 20"),
    ({"neg_num": 0}, r"neg_num: 0 is invalid; expected an integer >= 1"),
    ({"neg_exclude": "future"}, r"neg_exclude: 'future' is invalid; expected none \| target \| history"),
    ({"neg_uniform_mix": 2}, r"neg_uniform_mix: 2 is invalid; expected a number in \[0, 1\]"),
    ({"neg_warmup_epochs": -1}, r"neg_warmup_epochs: -1 is invalid"),
    ({"neg_score_chunk": 0}, r"neg_score_chunk: 0 is invalid; expected an integer >= 1"),
    ({"train_time_budget": 0}, r"train_time_budget: 0 is invalid; expected a number of seconds > 0"),
    ({"neg_pool_proposal": "zipf"}, r"neg_pool_proposal: 'zipf' is invalid"),
    ({"train_bucket_batches": -1}, r"train_bucket_batches: -1 is invalid; expected an integer >= 0"),
    ({"train_bucket_batches": 4}, r"train_bucket_batches: 4 groups whole user sequences by length, but SASRec"),
    ({"train_window_stride": -1}, r"train_window_stride: -1 is invalid; expected an integer >= 0"),
    ({"train_window_stride": 5}, r"train_window_stride: 5 adds earlier windows of long user sequences, but SASRec"),
    ({"eval_mask_history": "yes"}, r"eval_mask_history: 'yes' is invalid; expected True or False"),
    ({"keep_freed_memory": 1}, r"keep_freed_memory: 1 is invalid; expected True or False"),
    ({"neg_replacement": "yes"}, r"neg_replacement: 'yes' is invalid; expected True or False"),
    ({"neg_replacement": True, "neg_sampler": "dns"},
     r"neg_replacement: True draws from a softmax, and neg_sampler: dns"),
    ({"loss_type": "CE", "neg_sampler": "genni"}, r"loss_type: CE is full softmax and uses no negatives"),
    ({"loss_type": "BPR", "neg_sampler": "none"}, r"loss_type: BPR needs negatives but neg_sampler is none"),
    ({"worker": 2}, r"worker: 2 runs the collate step in other processes"),
    ({"topk": [10, 50]}, r"topk: \[10, 50\] ranks more items than the catalogue has \(40\)"),
    ({"neg_exlude": "target"}, r"neg_exlude is not a configuration key; did you mean neg_exclude\?"),
    ({"train_time_budge": 60}, r"train_time_budge is not a configuration key; did you mean train_time_budget\?"),
    ({"neg_sampling": "genni"},
     r"neg_sampling is not a configuration key; the neg_\* keys are neg_exclude, neg_index_clusters, .*, neg_num"),
    ({"NEG_SAMPLER": "uniform"}, r"NEG_SAMPLER is not a configuration key \(keys are case-sensitive\); did you mean "
                                 r"neg_sampler\?"),
    ({"Neg_Num": 2}, r"Neg_Num is not a configuration key \(keys are case-sensitive\); did you mean neg_num\?"),
    ({"neg_num": 30, "neg_pool_size": 0.25},
     r"neg_num: 30 is larger than neg_pool_size: 0.25 \(10 candidates here\); raise neg_pool_size, lower neg_num"),
    ({"neg_num": 50, "neg_pool_size": "all"}, r"neg_num: 50 is larger than neg_pool_size: all \(40 candidates here\)"),
    ({"neg_sampler": "uniform", "neg_num": 10**7},
     r"neg_num: 10000000 needs at least [\d.]+ GiB for one batch's negatives \(64 rows x 10000000 negatives x 148 "
     r"bytes\), more than the [\d.]+ GiB of cpu; lower neg_num or train_batch_size"),
    ({"MAX_ITEM_LIST_LENGTH": 2000, "train_batch_size": 2048, "n_heads": 2, "n_layers": 2},
     r"train_batch_size: 2048 rows of up to 2000 items \(MAX_ITEM_LIST_LENGTH\) need at least 488.3 GiB a training "
     r"step \(attention 488.3 GiB\), more than the [\d.]+ GiB of cpu; lower train_batch_size or "
     r"MAX_ITEM_LIST_LENGTH"),
    ({"topk": [5, 20]}, r"valid_metric: NDCG@10 needs the cut-off 10 in topk, which is \[5, 20\]; add 10 to topk"),
    ({"metrics": ["Hit"]}, r"valid_metric: NDCG@10 is not computed: metrics is \['Hit'\]; add NDCG to metrics"),
    ({"neg_sampler": "genni", "train_neg_sample_args": {"distribution": "uniform", "sample_num": 1}},
     r"train_neg_sample_args: .* means neg_sampler: 'uniform', but neg_sampler is 'genni'; set the negatives with "
     r"the neg_\* keys only"),
    ({"neg_num": 4, "train_neg_sample_args": {"distribution": "uniform", "sample_num": 2}, "neg_sampler": "uniform"},
     r"means neg_num: 2, but neg_num is 4"),
    ({"neg_sampler": "none", "neg_num": 4}, r"neg_num: 4 asks for negatives, but neg_sampler: none trains full-softmax "
                                            r"CE with none; drop neg_num"),
]


GENNISASREC_BAD_INPUTS = [
    ({"loss_type": "gBCE", "gbce_t": 1.5}, r"gbce_t: 1.5 is invalid; expected a number in \[0, 1\]"),
    ({"loss_type": "SSM", "ssm_logq": "no"}, r"ssm_logq: 'no' is invalid; expected True, False or a weight"),
    ({"loss_type": "SSM", "ssm_logq": 1.5}, r"ssm_logq: 1.5 is invalid; expected True, False or a weight in \[0, 1\]"),
    ({"loss_type": "gBCE", "bce_logit_offset": "yes"}, r"bce_logit_offset: 'yes' is invalid; expected True or False"),
    ({"position_from_end": "yes"}, r"position_from_end: 'yes' is invalid; expected True or False"),
    ({"neg_sampler": "none", "loss_type": "CE", "train_batch_size": 10**8},  # every position: 10^9 rows x 41 items
     r"need at least 454.5 GiB a training step \(attention 149.0 GiB, full-softmax logits 305.5 GiB\), more than "
     r".*; lower train_batch_size or MAX_ITEM_LIST_LENGTH, or compute CE in chunks of items \(ce_item_chunk: 16384\)"),
    ({"neg_sampler": "none", "loss_type": "CE", "train_batch_size": 10**8, "ce_item_chunk": 4},  # 4 of 41 items
     r"need at least 178.8 GiB a training step \(attention 149.0 GiB, full-softmax logits 29.8 GiB\), more than "
     r".*; lower train_batch_size or MAX_ITEM_LIST_LENGTH\.$"),
    ({"train_window_stride": 11}, r"train_window_stride: 11 is invalid; expected at most MAX_ITEM_LIST_LENGTH = 10 "
                                   r"items, or a fraction of it in \(0, 1\]"),
    ({"train_window_stride": 1.5}, r"train_window_stride: 1.5 is invalid; expected an integer >= 0 \(items; 0 = the "
                                   r"last window only\) or a fraction of MAX_ITEM_LIST_LENGTH in \(0, 1\]"),
    ({"loss_type": "SSM", "ssm_logQ": 0.5},
     r"ssm_logQ is not a configuration key \(keys are case-sensitive\); did you mean ssm_logq\?"),
]


BAD_CONFIGS = [("SASRec", *case) for case in BAD_INPUTS] + [("GenNiSASRec", *case) for case in GENNISASREC_BAD_INPUTS]


@pytest.mark.parametrize("model, overrides, message", BAD_CONFIGS, ids=[f"{m}-{o}" for m, o, _ in BAD_CONFIGS])
def test_bad_input_fails_before_training(model, overrides, message, base_config, tmp_path):
    with pytest.raises(GenNiConfigError, match=message):
        run_recbole_genni(model, "tiny", config_dict={**base_config, **overrides})
    assert not list((tmp_path / "saved").glob("*.pth"))


@pytest.mark.parametrize("text, message", [
    ("neg_num: [1,\nneg_sampler: genni\n", r"bad.yaml:3: not valid YAML \(.*\); write one key: value per line"),
    ("neg_sampler genni\nneg_num: 2\n", r"bad.yaml:2: not valid YAML"),
    ("- neg_num\n- 2\n", r"bad.yaml: expected key: value lines, got a YAML list"),
])
def test_malformed_yaml_names_its_line(text, message, base_config, tmp_path):
    (tmp_path / "bad.yaml").write_text(text)
    with pytest.raises(GenNiConfigError, match=message):
        Config("SASRec", "tiny", config_file_list=[str(tmp_path / "bad.yaml")], config_dict=base_config)


def test_a_missing_config_file_is_named(base_config, tmp_path):
    with pytest.raises(GenNiConfigError, match=r"nope.yaml: no such config file"):
        Config("SASRec", "tiny", config_file_list=[str(tmp_path / "nope.yaml")], config_dict=base_config)


def test_yaml_is_never_run_as_python(base_config, tmp_path, monkeypatch):
    """A quoted YAML value stays a string (RecBole evaluates only command-line and config_dict strings)."""
    (tmp_path / "run.yaml").write_text('neg_num: "2"\n')
    with pytest.raises(GenNiConfigError, match=r"neg_num: '2' is invalid; expected an integer >= 1"):
        Config("SASRec", "tiny", config_file_list=[str(tmp_path / "run.yaml")],
               config_dict={k: v for k, v in base_config.items()})
    monkeypatch.setattr("sys.argv", ["run", "--neg_num=2"])
    assert Config("SASRec", "tiny", config_dict=base_config)["neg_num"] == 2


def test_unrelated_user_keys_kept(base_config):
    config = Config("GenNiSASRec", "tiny", config_dict={**base_config, "experiment_tag": "k128", "neg_num": 2})
    assert config["experiment_tag"] == "k128" and config["neg_num"] == 2


@pytest.mark.parametrize("ours", [{}, {"neg_sampler": "uniform"}])
def test_agreeing_recbole_neg_args_applied(ours, base_config):
    # a key of ours that disagrees with it: neg_pool_size 20 (base_config) against candidate_num 7
    with pytest.raises(GenNiConfigError, match=r"train_neg_sample_args: .* means neg_(pool_size: 7|sampler: 'dns'), "
                                               r"but .*; set the negatives with the neg_\* keys only"):
        Config("SASRec", "tiny", config_dict={**base_config, **ours, "train_neg_sample_args": {
            "distribution": "uniform", "sample_num": 2, "dynamic": True, "candidate_num": 7}})
    config = Config("SASRec", "tiny", config_dict={
        **base_config, **ours, "train_neg_sample_args": {"distribution": "uniform", "sample_num": 3}})
    assert config["neg_sampler"] == "uniform" and config["neg_num"] == 3


def test_replacement_may_outnumber_pool(base_config):
    """K independent draws need no K distinct candidates: neg_num above neg_pool_size is refused only without them."""
    config = Config("SASRec", "tiny", config_dict={**base_config, "neg_num": 30, "neg_pool_size": 20,
                                                     "neg_replacement": True})
    assert config["neg_num"] == 30


def test_negatives_required_refuse_none(base_config):
    with pytest.raises(GenNiConfigError, match="FPMC always trains on negatives"):
        run_recbole_genni("FPMC", "tiny", config_dict={**base_config, "neg_sampler": "none"})


HEADER = "user_id:token\titem_id:token\ttimestamp:float\n"
FOUR_EACH = "".join(f"{u}\t{u + t}\t{t}\n" for u in range(1, 4) for t in range(4))
BAD_FILES = [
    ("user_id:token\ttimestamp:float\n1\t1\n", r"tiny.inter:1: no item column 'item_id'"),
    ("item_id:token\ttimestamp:float\n1\t1\n", r"tiny.inter:1: no user column 'user_id'"),
    ("user_id:token\titem_id:token\n1\t1\n", r"tiny.inter:1: no time column 'timestamp'"),
    (HEADER, r"tiny.inter: no interactions after the header"),
    (HEADER + "1\t1\t1\n1\t2\t2\n1\t3\tyesterday\n", r"tiny.inter:4: timestamp 'yesterday' is not a number"),
    (HEADER + FOUR_EACH + "9\t1\t1\n9\t2\t2\n9\t3\t3\n",
     r"1 user\(s\) have fewer than 4 interactions \(e.g. '9' with 3\), too few .*\[4,inf\)"),
    ("user_id:token\titem_id:token\titem_id:token\ttimestamp:float\n1\t1\t1\t1\n",
     r"tiny.inter:1: column 'item_id' appears more than once in the header"),
    ("user_id:token\titem_id:tokn\ttimestamp:float\n1\t1\t1\n",
     r"tiny.inter:1: column 'item_id:tokn' has no known type; write name:type with type one of token, token_seq"),
    ("user_id:token\titem_id\ttimestamp:float\n1\t1\t1\n", r"tiny.inter:1: column 'item_id' has no known type"),
    ("user_id:token\titem_id:float\ttimestamp:float\n1\t1\t1\n",
     r"tiny.inter:1: column 'item_id:float' must be 'item_id:token': ids are tokens"),
    ("user_id:float\titem_id:token\ttimestamp:float\n1\t1\t1\n", r"column 'user_id:float' must be 'user_id:token'"),
    ("user_id:token\titem_id:token\ttimestamp:token\n" + FOUR_EACH,
     r"tiny.inter:1: column 'timestamp:token' must be 'timestamp:float': RecBole orders each user's interactions by "
     r"it, and a token is ordered by its id"),
]


@pytest.mark.parametrize("content, message", BAD_FILES, ids=[m.split(":")[-1][:30] for _, m in BAD_FILES])
def test_bad_atomic_file_fails_early(content, message, base_config, tmp_path):
    (tmp_path / "bad" / "tiny").mkdir(parents=True)
    (tmp_path / "bad" / "tiny" / "tiny.inter").write_text(content)
    with pytest.raises(GenNiConfigError, match=message):
        run_recbole_genni("SASRec", "tiny", config_dict={**base_config, "data_path": str(tmp_path / "bad")})
    assert not (tmp_path / "saved").exists() or not list((tmp_path / "saved").iterdir())


def test_minimum_users_get_all_three_rows(base_config, tmp_path):
    """The check's minimum is what RecBole's split needs: with every user at 4 interactions, each has a valid and a
    test row (at 3, RecBole's split gives them a test row and no valid row, which the check refuses)."""
    (tmp_path / "four" / "tiny").mkdir(parents=True)
    (tmp_path / "four" / "tiny" / "tiny.inter").write_text(HEADER + FOUR_EACH)
    config = Config("SASRec", "tiny", config_dict={**base_config, "data_path": str(tmp_path / "four"), "topk": [1],
                                                     "valid_metric": "NDCG@1", "neg_pool_size": 2})
    check_sequential_inter(config)
    train, valid, test = data_preparation(config, create_dataset(config))
    assert len(train._dataset) == len(valid._dataset) == len(test._dataset) == 3


@pytest.mark.parametrize("listed, filtered, message", [
    (range(1, 21), True, r"tiny.item: 20 item_id\(s\) of .*tiny.inter are not listed \(e.g. '.*'\), so RecBole would "
                         r"drop \d+ of its \d+ interactions \(\d+%\); list them in tiny.item"),
    (range(1, 21), None, None),  # RecBole keeps them when the key is not set
    (range(1, 41), True, None),
])
def test_item_file_missing_items_refused(listed, filtered, message, base_config):
    item_file = Path(base_config["data_path"]) / "tiny" / "tiny.item"
    item_file.write_text("item_id:token\tclass:token\n" + "".join(f"{i}\tc{i % 3}\n" for i in listed))
    config = Config("SASRec", "tiny", config_dict={**base_config, "filter_inter_by_user_or_item": filtered})
    if message is None:
        check_sequential_inter(config)
        assert len(create_dataset(config).inter_feat) == sum(
            1 for _ in (Path(base_config["data_path"]) / "tiny" / "tiny.inter").open()) - 1
    else:
        with pytest.raises(GenNiConfigError, match=message):
            check_sequential_inter(config)


def test_load_col_without_time_named(base_config):
    with pytest.raises(GenNiConfigError, match=r"load_col: inter \['user_id', 'item_id'\] leaves out \['timestamp'\]"):
        run_recbole_genni("SASRec", "tiny", config_dict={**base_config, "load_col": {"inter": ["user_id", "item_id"]}})


def test_time_header_needs_no_load_col(base_config):
    config_dict = {k: v for k, v in base_config.items() if k != "load_col"}  # RecBole's default: user and item
    config = Config("SASRec", "tiny", config_dict=config_dict)
    assert config["load_col"]["inter"] == ["user_id", "item_id"]
    check_sequential_inter(config)
    assert config["load_col"]["inter"] == ["user_id", "item_id", "timestamp"]
    result = run_recbole_genni("SASRec", "tiny", config_dict=config_dict)
    assert result["test_result"]["ndcg@10"] >= 0


def test_short_users_pass_when_filtered(base_config, tmp_path):
    (tmp_path / "ok" / "tiny").mkdir(parents=True)
    rows = "".join(f"{u}\t{(u + t) % 25 + 1}\t{t}\n" for u in range(1, 31) for t in range(10)) + "99\t1\t1\n"
    (tmp_path / "ok" / "tiny" / "tiny.inter").write_text(HEADER + rows)
    config = Config("SASRec", "tiny", config_dict={
        **base_config, "data_path": str(tmp_path / "ok"), "neg_pool_size": 3, "user_inter_num_interval": "[4,inf)",
    })
    check_sequential_inter(config)
    dataset = create_dataset(config)
    assert dataset.user_num - 1 == 30 and "99" not in dataset.field2id_token["user_id"]


def test_users_cut_short_by_filters_refused(base_config, tmp_path):
    """The file has 5 interactions a user; val_interval drops the timestamps above 2, leaving 3: no valid rows."""
    (tmp_path / "cut" / "tiny").mkdir(parents=True)
    rows = "".join(f"{u}\t{(u + t) % 25 + 1}\t{t}\n" for u in range(1, 31) for t in range(5))
    (tmp_path / "cut" / "tiny" / "tiny.inter").write_text(HEADER + rows)
    config = {**base_config, "data_path": str(tmp_path / "cut"), "neg_pool_size": 3,
              "val_interval": {"timestamp": "[0,2]"}}
    with pytest.raises(GenNiConfigError, match=r"dataset tiny: after RecBole's filters, 30 user\(s\) have fewer than 4 "
                                               r"interactions \(e.g. '1' with 3\), .*add user_inter_num_interval: "
                                               r'"\[4,inf\)" to drop them after the other filters'):
        run_recbole_genni("SASRec", "tiny", config_dict=config)


def test_dump_shows_negatives_in_one_line(base_config):
    config = Config("GRU4Rec", "tiny", config_dict={
        **base_config, "neg_sampler": "genni", "loss_type": "SSM", "neg_num": 8, "neg_pool_size": "all",
        "neg_replacement": True, "neg_temperature": 0.5, "neg_exclude": "target"})
    dump = str(config)
    assert ("Negatives: \x1b[0mgenni, K=8 with replacement from softmax(score / 0.5) over the whole catalogue, "
            "excluding target; loss SSM (logQ weight 1)") in dump
    assert "train_neg_sample_args" not in dump and "neg_score_chunk" not in dump and "gbce_t" not in dump
    full_softmax = Config("GRU4Rec", "tiny", config_dict={**base_config, "neg_sampler": "none"})
    assert full_softmax.negatives_summary() == "none; loss CE (full softmax over every item)"
    raw_gbce = Config("GRU4Rec", "tiny", config_dict={
        **base_config, "neg_sampler": "uniform", "loss_type": "gBCE", "neg_num": 8, "bce_logit_offset": False})
    assert raw_gbce.negatives_summary().endswith("; loss gBCE (t 0.75), raw logits")
    assert "bce_logit_offset" not in str(raw_gbce)


def test_values_are_never_run_as_code(base_config, tmp_path,
                                                                                   monkeypatch):
    marker = tmp_path / "ran"
    payload = f"__import__('pathlib').Path({str(marker)!r}).touch()"
    monkeypatch.setattr("sys.argv", ["pytest", f"--experiment_tag={payload}", "--topk=[5,10]"])
    config = Config("SASRec", "tiny", config_dict={**base_config, "note": payload})
    assert not marker.exists()
    assert config["experiment_tag"] == payload and config["note"] == payload  # kept as the strings they are
    assert config["topk"] == [5, 10]  # literals still become values
    monkeypatch.setattr("sys.argv", ["pytest", "--neg_num=[2][0]"])  # an expression, not a literal: a string
    with pytest.raises(GenNiConfigError, match=r"neg_num: '\[2\]\[0\]' is invalid; expected an integer >= 1"):
        Config("SASRec", "tiny", config_dict=base_config)


def test_unwritable_folders_refused(base_config, tmp_path, monkeypatch):
    (tmp_path / "file").write_text("")
    with pytest.raises(GenNiConfigError, match=r"checkpoint_dir: .*file/saved: cannot create it \(.*\); give a "
                                               r"folder you can write to"):
        run_recbole_genni("SASRec", "tiny", config_dict={**base_config, "checkpoint_dir": str(tmp_path / "file" /
                                                                                             "saved")})
    monkeypatch.chdir(tmp_path)
    (tmp_path / "log").write_text("")  # ./log is a file here: RecBole cannot make its log folder
    with pytest.raises(GenNiConfigError, match=r"\./log/SASRec: cannot write the run's log there \(.*\); run from a "
                                               r"folder you can write to"):
        run_recbole_genni("SASRec", "tiny", config_dict=base_config)


def test_command_line_overrides_like_recbole(monkeypatch, base_config):
    monkeypatch.setattr(sys, "argv",
                        ["run", "--epochs=3", "--train_batch_size=32", "--neg_temperature=0.5", "--seed=3"])
    config = Config("GRU4Rec", "tiny", config_dict=base_config)
    assert (config["epochs"], config["train_batch_size"], config["neg_temperature"], config["seed"]) == (3, 32, 0.5, 3)
    assert config["model"] == "GRU4Rec"


def test_defaults_and_loss(base_config):
    config = Config("SASRec", "tiny", config_dict=base_config)
    assert config["neg_sampler"] == "genni" and config["loss_type"] == "BPR"
    assert config["valid_metric"] == "NDCG@10" and config["topk"] == [5, 10, 20]
    ce = Config("SASRec", "tiny", config_dict={**base_config, "neg_sampler": "none"})
    assert ce["loss_type"] == "CE" and ce["train_neg_sample_args"]["distribution"] == "none"


def test_train_neg_sample_args_work(base_config):
    ours = {k: v for k, v in base_config.items() if k != "neg_pool_size"}  # candidate_num sets it
    dns = Config("SASRec", "tiny", config_dict={
        **ours, "loss_type": "BPR",
        "train_neg_sample_args": {"distribution": "uniform", "sample_num": 2, "dynamic": True, "candidate_num": 7},
    })
    assert (dns["neg_sampler"], dns["neg_num"], dns["neg_pool_size"]) == ("dns", 2, 7)
    ce = Config("SASRec", "tiny", config_dict={**base_config, "train_neg_sample_args": None})
    assert ce["neg_sampler"] == "none" and ce["loss_type"] == "CE"


def test_properties_installed():
    from recbole_genni.config import properties_dir

    assert (Path(properties_dir()) / "overall.yaml").is_file()
