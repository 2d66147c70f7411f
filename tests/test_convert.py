"""Dataset conversion: exact atomic output, xz atomic input, malformed lines named with their line number,
overlapping conversions of one dataset."""

import gzip
import lzma
import os
import sys

import pytest

from recbole_genni.data.convert import convert, main, train_command
from recbole_genni.errors import GenNiConfigError
from recbole_genni.utils import atomic_write


def test_sequence_file_to_atomic_file(tmp_path):
    source = tmp_path / "Toy.txt"
    source.write_text("1 5 3 9\n2 3 3\n\n10 7\n")
    stats = convert(source, tmp_path / "out")
    assert stats == {"name": "Toy", "users": 3, "items": 4, "interactions": 6, "short_users": 3}
    assert (tmp_path / "out" / "Toy" / "Toy.inter").read_text() == (
        "user_id:token\titem_id:token\ttimestamp:float\n"
        "1\t5\t0\n1\t3\t1\n1\t9\t2\n"
        "2\t3\t0\n2\t3\t1\n"
        "10\t7\t0\n"
    )


@pytest.mark.parametrize(
    "text, match",
    [
        ("1 2 3\n2 x 4\n", r"Bad.txt:2: token 'x' is not a non-negative integer id"),
        ("1 2 3\n2 4\n3\n", r"Bad.txt:3: a line needs a user id and at least one item id"),
        ("1 2.5 3\n", r"Bad.txt:1: token '2.5'"),
        ("1 2 \u0663\n", r"Bad.txt:1: token '\u0663' is not a non-negative integer id \(0-9\)"),  # an Arabic-Indic 3
        ("1 2 3\n2 4 5\n1 6\n", r"Bad.txt:3: user 1 already has line 1; a sequence file has one line a user, their "
                               r"items in time order: join the two lines"),
    ],
)
def test_malformed_line_named(tmp_path, text, match):
    source = tmp_path / "Bad.txt"
    source.write_text(text)
    with pytest.raises(GenNiConfigError, match=match):
        convert(source, tmp_path / "out")
    assert not (tmp_path / "out" / "Bad" / "Bad.inter").exists()  # nothing half-written


def test_xz_atomic_files_taken_as_is(tmp_path, capsys):
    content = "user_id:token\titem_id:token\ttimestamp:float\nu1\tA\t1\nu1\tB\t2\nu2\tA\t5\n"
    src = tmp_path / "src"
    src.mkdir()
    with lzma.open(src / "mini.inter.xz", "wt") as f:
        f.write(content)
    (src / "mini.item").write_text("item_id:token\nA\nB\n")
    assert main([str(src / "mini.inter.xz"), "--out", str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / "mini" / "mini.inter").read_text() == content
    assert (tmp_path / "out" / "mini" / "mini.item").read_text() == "item_id:token\nA\nB\n"
    out = capsys.readouterr().out
    assert "mini: 2 users, 2 items, 3 interactions, avg length 1.50" in out
    assert (f"  train on it: {train_command()} --model=GenNiSASRec --dataset=mini --data_path={tmp_path / 'out'}"
            in out)
    assert f"    data_path: {tmp_path / 'out'}\n" in out
    assert '    user_inter_num_interval: "[4,inf)"   # 2 users have fewer than 4 interactions' in out


def test_cli_reports_errors_in_one_line(tmp_path, capsys):
    source = tmp_path / "Bad.txt"
    source.write_text("1 a\n")
    assert main([str(source), "--out", str(tmp_path)]) == 2
    assert capsys.readouterr().err.strip() == f"error: {source}:1: token 'a' is not a non-negative integer id (0-9)"


def test_two_inputs_one_name_refused(tmp_path, capsys):
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "Shop.txt").write_text("1 2 3 4 5\n")
    first, second = tmp_path / "a" / "Shop.txt", tmp_path / "b" / "Shop.txt"
    assert main([str(first), str(second), "--out", str(tmp_path / "out")]) == 2
    assert capsys.readouterr().err.strip() == (f"error: {first} and {second} would both be written to "
                                               f"{tmp_path / 'out' / 'Shop'}; rename one, or convert them into "
                                               "different --out folders.")
    assert not (tmp_path / "out").exists()


def test_overlapping_writes_leave_file_whole(tmp_path):
    """A grid's parallel cells convert the same dataset at once; a shared temporary name made one of them fail."""
    target = tmp_path / "Beauty" / "Beauty.inter"

    def outer(f):
        f.write("outer\n")
        atomic_write(target, lambda inner: inner.write("inner\n"))  # a second run writes while this one is open

    atomic_write(target, outer)
    assert target.read_text() == "outer\n"
    assert list(target.parent.iterdir()) == [target]


def test_failed_write_keeps_old_file(tmp_path):
    target = tmp_path / "Beauty.inter"
    target.write_text("old\n")

    def fail(f):
        f.write("half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(target, fail)
    assert target.read_text() == "old\n"
    assert list(tmp_path.iterdir()) == [target]


def test_write_synced_before_replace(tmp_path, monkeypatch):
    synced, replaced = [], []
    monkeypatch.setattr(os, "fsync", lambda fd: synced.append(fd))
    real_replace = os.replace
    monkeypatch.setattr(os, "replace", lambda a, b: (replaced.append(bool(synced)), real_replace(a, b)))
    atomic_write(tmp_path / "x.inter", lambda f: f.write("x\n"))
    assert synced and replaced == [True]


def test_killed_writers_temporary_removed(tmp_path):
    import signal
    import subprocess
    import sys
    import time

    target = tmp_path / "model.pth"
    writer = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from recbole_genni.utils import atomic_write; "
        f"atomic_write({str(target)!r}, lambda f: (f.write('half'), f.flush(), print('writing', flush=True), "
        "time.sleep(60)))")], stdout=subprocess.PIPE, text=True)
    assert writer.stdout.readline().strip() == "writing"
    os.kill(writer.pid, signal.SIGKILL)
    writer.wait()
    left = list(tmp_path.glob("model.pth.*.tmp"))
    assert len(left) == 1 and f".{writer.pid}." in left[0].name
    start = time.time()
    atomic_write(target, lambda f: f.write("whole"))
    assert target.read_text() == "whole" and list(tmp_path.iterdir()) == [target] and time.time() - start < 5


def test_gzip_input_converts_as_plain_text(tmp_path):
    import gzip

    with gzip.open(tmp_path / "Shop.txt.gz", "wt") as f:
        f.write("1 2 3 4 5\n2 3 4 5 6\n")
    stats = convert(tmp_path / "Shop.txt.gz", tmp_path / "out")
    assert stats["name"] == "Shop" and stats["interactions"] == 8
    assert (tmp_path / "out" / "Shop" / "Shop.inter").read_text().splitlines()[1] == "1\t2\t0"


@pytest.mark.parametrize("line, fields", [("\n", 1), ("u1\n", 1), ("u1\tA\n", 2)])
def test_short_inter_line_named(line, fields, tmp_path):
    source = tmp_path / "mini.inter"
    source.write_text("user_id:token\titem_id:token\ttimestamp:float\nu1\tA\t1\n" + line)
    with pytest.raises(GenNiConfigError, match=rf"mini.inter:3: {fields} tab-separated field\(s\) where the header "
                                               r"has 3 \(user_id:token, item_id:token, timestamp:float\)"):
        convert(source, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_an_out_that_is_a_file_is_refused(tmp_path, capsys):
    source = tmp_path / "Shop.txt"
    source.write_text("1 2 3 4 5\n")
    (tmp_path / "taken").write_text("")
    assert main([str(source), "--out", str(tmp_path / "taken")]) == 2
    assert capsys.readouterr().err.strip() == (f"error: --out: {tmp_path / 'taken'} is a file; give the folder "
                                               "(data_path) to write <name>/<name>.inter in")


class TestDelimited:
    HEADER = "user_id:token\titem_id:token\ttimestamp:float\n"

    @pytest.mark.parametrize("sep", [None, "::"])
    def test_movielens_dat_without_header(self, sep, tmp_path):
        source = tmp_path / "ratings.dat"
        source.write_text("1::1193::5::978300760\n1::661::3::978302109\n2::1357::5::978298709\n")
        stats = convert(source, tmp_path / "out", sep=sep)
        assert stats == {"name": "ratings", "users": 2, "items": 3, "interactions": 3, "short_users": 2}
        assert (tmp_path / "out" / "ratings" / "ratings.inter").read_text() == self.HEADER + (
            "1\t1193\t978300760\n1\t661\t978302109\n2\t1357\t978298709\n")

    def test_csv_with_a_usual_header(self, tmp_path):
        source = tmp_path / "ratings.csv"
        source.write_text("userId,movieId,rating,timestamp\n7,31,2.5,1260759144\n7,\"1029\",3.0,1260759179\n")
        assert convert(source, tmp_path / "out")["interactions"] == 2
        assert (tmp_path / "out" / "ratings" / "ratings.inter").read_text() == self.HEADER + (
            "7\t31\t1260759144\n7\t1029\t1260759179\n")

    def test_gzip_and_columns_by_name_and_position(self, tmp_path, capsys):
        source = tmp_path / "events.tsv.gz"
        with gzip.open(source, "wt") as f:
            f.write("when\tproduct\tvisitor\n5\tp1\tv1\n9\tp2\tv1\n")
        assert main([str(source), "--out", str(tmp_path / "out"), "--user", "visitor", "--item", "1",
                     "--time", "when"]) == 0
        assert (tmp_path / "out" / "events" / "events.inter").read_text() == self.HEADER + "v1\tp1\t5\nv1\tp2\t9\n"
        assert "events: 1 users, 2 items, 2 interactions" in capsys.readouterr().out

    def test_a_second_conversion_says_it_replaced_the_dataset(self, tmp_path, capsys):
        first, second = tmp_path / "a" / "ratings.dat", tmp_path / "b" / "ratings.csv"
        first.parent.mkdir(), second.parent.mkdir()
        first.write_text("1::10::5::1\n1::11::5::2\n")
        second.write_text("userId,movieId,timestamp\n2,12,1\n2,13,2\n")
        assert main([str(first), "--out", str(tmp_path / "out")]) == 0
        assert "replaced" not in capsys.readouterr().out
        assert main([str(second), "--out", str(tmp_path / "out")]) == 0
        assert "-> " + str(tmp_path / "out" / "ratings") + " (replaced the dataset that was there)" in (
            capsys.readouterr().out)
        assert (tmp_path / "out" / "ratings" / "ratings.inter").read_text() == self.HEADER + "2\t12\t1\n2\t13\t2\n"

    def test_time_none_keeps_file_order(self, tmp_path):
        source = tmp_path / "clicks.csv"
        source.write_text("user,item\nu,b\nu,a\nw,a\n")
        convert(source, tmp_path / "out", time="none")
        assert (tmp_path / "out" / "clicks" / "clicks.inter").read_text() == self.HEADER + "u\tb\t0\nu\ta\t1\nw\ta\t0\n"

    @pytest.mark.parametrize("name, text, keys, match", [
        ("bad.csv", "userId,movieId,timestamp\n1,2,3\n1,4,noon\n", {},
         r"bad.csv:3: time 'noon' is not a number .* --time none"),
        ("bad.csv", "userId,movieId,timestamp\n1,2,3\n1,4\n", {},
         r"bad.csv:3: 2 field\(s\) separated by ',' where column 2 is read; fix the line, or give the file's "
         r"separator with --sep"),
        ("bad.csv", "who,what,stars\na,b,5\n", {},
         r"bad.csv:1: the header \(who, what, stars\) has no user column of a usual name; name it with --user COLUMN"),
        ("bad.csv", "userId,movieId\n1,2\n", {"item": "sku"}, r"bad.csv:1: --item sku: no such column"),
        ("bad.inter", "user_id:token,item_id:token\n1,2\n", {},
         r"bad.inter:1: a RecBole .inter file is tab-separated .* give its separator: --sep ','"),
    ])
    def test_refusals_name_the_line_and_leave_no_folder(self, name, text, keys, match, tmp_path):
        source = tmp_path / name
        source.write_text(text)
        with pytest.raises(GenNiConfigError, match=match):
            convert(source, tmp_path / "out", **keys)
        assert not (tmp_path / "out").exists()

    def test_a_comma_inter_converts_with_sep(self, tmp_path):
        source = tmp_path / "mini.inter"
        source.write_text("user_id:token,item_id:token,timestamp:float\n1,2,3\n1,4,5\n")
        convert(source, tmp_path / "out", sep=",")
        assert (tmp_path / "out" / "mini" / "mini.inter").read_text() == self.HEADER + "1\t2\t3\n1\t4\t5\n"


def test_train_command_runs_where_the_venv_is_not_activated(tmp_path, monkeypatch):
    bin_dir = tmp_path / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / "recbole-genni").touch(mode=0o755)
    monkeypatch.setattr(sys, "executable", str(bin_dir / "python"))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PATH", "/nonexistent")
    assert train_command() == ".venv/bin/recbole-genni"  # as the README calls it
    monkeypatch.setenv("PATH", str(bin_dir))
    assert train_command() == "recbole-genni"  # activated
