"""Run folders: every train.py run writes runs/<name>/ and never overwrites another run.

The fast tests drive the naming and the runs/latest pointer directly; the slow ones run train.py
on a sliver of real MNIST, in a temporary working directory (runs/ is relative to it).
"""

import hashlib
import os
import signal

import pytest

import nn
import train

TINY = ["--train-size", "500", "--validation-size", "1000", "--log-interval", "0", "--epochs", "1"]


@pytest.fixture
def in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


def run(mnist_dir, *flags):
    return train.main([*TINY, "--data-dir", str(mnist_dir), "--no-download", *flags])


def digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("existing,expected", [
    ([], "exp"),
    (["exp"], "exp2"),
    (["exp", "exp2", "exp7", "latest", "quick"], "exp8"),
    (["exp3", "expert", "exp-old"], "exp4"),  # one more than the highest, not the first gap
])
def test_automatic_names_are_exp_then_exp2_exp3_and_never_reuse_a_lower_number(in_tmp, existing, expected):
    for name in existing:
        (in_tmp / "runs" / name).mkdir(parents=True)
    assert train.next_run_name() == expected


@pytest.mark.parametrize("symlinks", [True, False], ids=["symlink", "text-file-where-no-symlinks"])
def test_the_latest_pointer_is_a_symlink_or_a_text_file_and_both_are_read(in_tmp, monkeypatch, symlinks):
    if not symlinks:
        def no_symlinks(*args, **kwargs):
            raise OSError("symbolic links are not available here")
        monkeypatch.setattr(os, "symlink", no_symlinks)
    assert train.read_latest() is None
    for name in ("exp", "exp2"):
        (in_tmp / "runs" / name).mkdir(parents=True)
        train.point_latest(os.path.join("runs", name))
        assert train.read_latest() == os.path.join("runs", name)
    pointer = in_tmp / "runs" / "latest"
    assert pointer.is_symlink() == symlinks
    assert sorted(os.listdir(in_tmp / "runs")) == ["exp", "exp2", "latest"]  # no temporary file left


@pytest.mark.parametrize("name,problem", [
    ("latest", "pointer to the latest run"),
    ("a/b", "without '/'"),
    ("..", "not start with '.'"),
    ("", "non-empty"),
])
def test_a_name_that_cannot_be_a_run_folder_is_refused(name, problem, capsys):
    with pytest.raises(SystemExit):
        train.parse_args(["--name", name])
    assert problem in capsys.readouterr().err


def test_out_excludes_the_run_folder_flags(capsys):
    with pytest.raises(SystemExit):
        train.parse_args(["--out", "m.npz", "--name", "x"])
    assert "--out PATH writes outside the run folders" in capsys.readouterr().err


def test_an_existing_name_is_refused_before_anything_is_loaded(in_tmp):
    (in_tmp / "runs" / "mine").mkdir(parents=True)
    with pytest.raises(SystemExit, match="runs/mine already exists .* --resume --name mine, or replace it with "
                                         "--exist-ok"):
        train.choose_model_path(train.parse_args(["--name", "mine"]))
    assert train.choose_model_path(train.parse_args(["--name", "mine", "--exist-ok"])) == "runs/mine/lenet5.npz"


def test_resume_without_any_run_says_there_is_none(in_tmp):
    with pytest.raises(SystemExit, match="no run to continue, runs/latest does not exist"):
        train.choose_model_path(train.parse_args(["--resume"]))


@pytest.mark.slow
def test_two_runs_with_different_flags_leave_both_models_intact(in_tmp, mnist_dir, capsys):
    assert run(mnist_dir) == 0
    first = in_tmp / "runs" / "exp" / "lenet5.npz"
    first_digest = digest(first)
    assert run(mnist_dir, "--no-augment", "--lr", "0.01") == 0
    second = in_tmp / "runs" / "exp2" / "lenet5.npz"

    assert digest(first) == first_digest
    assert nn.load(first)[1]["hyperparameters"]["lr"] == 0.05
    assert nn.load(second)[1]["hyperparameters"]["lr"] == 0.01
    for folder in ("exp", "exp2"):
        names = set(os.listdir(in_tmp / "runs" / folder))
        assert names == {"lenet5.npz", "lenet5.checkpoint.npz", "lenet5.metrics.jsonl", "curves.png",
                         "confusion_matrix.png", "misclassified.png"}
    assert train.read_latest() == os.path.join("runs", "exp2")
    log = capsys.readouterr().out
    assert "Serve it: python serve.py --model runs/exp2/lenet5.npz" in log
    assert ("Metrics: runs/exp2/lenet5.metrics.jsonl; pictures: runs/exp2/curves.png, "
            "runs/exp2/confusion_matrix.png, runs/exp2/misclassified.png") in log

    with pytest.raises(SystemExit, match="already exists"):
        run(mnist_dir, "--name", "exp")
    assert digest(first) == first_digest
    assert run(mnist_dir, "--name", "exp", "--exist-ok", "--seed", "2") == 0
    assert nn.load(first)[1]["seed"] == 2
    assert train.read_latest() == os.path.join("runs", "exp")


@pytest.mark.slow
def test_sigterm_stops_like_ctrl_c_and_resume_continues_the_latest_run(in_tmp, mnist_dir, monkeypatch, capsys):
    real_epoch_rng = train.epoch_rng

    def terminate_at_epoch_two(seed, epoch):
        if epoch == 2:
            os.kill(os.getpid(), signal.SIGTERM)  # what `kill PID` sends
        return real_epoch_rng(seed, epoch)

    monkeypatch.setattr(train, "epoch_rng", terminate_at_epoch_two)
    assert run(mnist_dir, "--epochs", "2") == 128 + signal.SIGTERM
    err = capsys.readouterr().err
    assert "Terminated (SIGTERM). The last finished epoch is checkpointed in runs/exp/lenet5.checkpoint.npz" in err
    assert "--epochs 2 --resume --name exp" in err
    assert signal.getsignal(signal.SIGTERM) is not train._raise_terminated  # the handler is put back

    monkeypatch.setattr(train, "epoch_rng", real_epoch_rng)
    (in_tmp / "runs" / "other").mkdir()  # not a run: --resume follows runs/latest, not the newest folder
    assert run(mnist_dir, "--epochs", "2", "--resume") == 0
    assert "Resuming after epoch 1 from runs/exp/lenet5.checkpoint.npz" in capsys.readouterr().out
    assert nn.load(in_tmp / "runs" / "exp" / "lenet5.checkpoint.npz")[1]["epoch"] == 2
    assert not (in_tmp / "runs" / "exp2").exists()
