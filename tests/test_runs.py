"""Run folders: every train.py run writes runs/<name>/ and never overwrites another run.

The fast tests drive the naming and the runs/latest pointer directly; the slow ones run train.py
on a sliver of real MNIST, in a temporary working directory (runs/ is relative to it).
"""

import hashlib
import os
import shutil
import signal
import subprocess
import sys

import pytest

import lenet
import nn
import train
from lenet.training import runs, signals

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
    assert runs.next_run_name() == expected


@pytest.mark.parametrize("symlinks", [True, False], ids=["symlink", "text-file-where-no-symlinks"])
def test_the_latest_pointer_is_a_symlink_or_a_text_file_and_both_are_read(in_tmp, monkeypatch, symlinks):
    if not symlinks:
        def no_symlinks(*args, **kwargs):
            raise OSError("symbolic links are not available here")
        monkeypatch.setattr(os, "symlink", no_symlinks)
    assert runs.read_latest() is None
    for name in ("exp", "exp2"):
        (in_tmp / "runs" / name).mkdir(parents=True)
        runs.point_latest(os.path.join("runs", name))
        assert runs.read_latest() == os.path.join("runs", name)
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
        runs.choose_model_path(train.parse_args(["--name", "mine"]))
    assert runs.choose_model_path(train.parse_args(["--name", "mine", "--exist-ok"])) == "runs/mine/lenet5.npz"


def test_resume_without_any_run_says_there_is_none(in_tmp):
    with pytest.raises(SystemExit, match="no run to continue, runs/latest does not exist"):
        runs.choose_model_path(train.parse_args(["--resume"]))


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
    assert runs.read_latest() == os.path.join("runs", "exp2")
    log = capsys.readouterr().out
    assert "Serve it: python serve.py --model runs/exp2/lenet5.npz" in log
    assert ("Metrics: runs/exp2/lenet5.metrics.jsonl; pictures: runs/exp2/curves.png, "
            "runs/exp2/confusion_matrix.png, runs/exp2/misclassified.png") in log

    with pytest.raises(SystemExit, match="already exists"):
        run(mnist_dir, "--name", "exp")
    assert digest(first) == first_digest
    assert run(mnist_dir, "--name", "exp", "--exist-ok", "--seed", "2") == 0
    assert nn.load(first)[1]["seed"] == 2
    assert runs.read_latest() == os.path.join("runs", "exp")


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
    assert signal.getsignal(signal.SIGTERM) is not signals._raise_terminated  # the handler is put back

    monkeypatch.setattr(train, "epoch_rng", real_epoch_rng)
    (in_tmp / "runs" / "other").mkdir()  # not a run: --resume follows runs/latest, not the newest folder
    assert run(mnist_dir, "--epochs", "2", "--resume") == 0
    assert "Resuming after epoch 1 from runs/exp/lenet5.checkpoint.npz" in capsys.readouterr().out
    assert nn.load(in_tmp / "runs" / "exp" / "lenet5.checkpoint.npz")[1]["epoch"] == 2
    assert not (in_tmp / "runs" / "exp2").exists()


def test_ctrl_c_before_the_first_epoch_removes_the_empty_run_and_puts_latest_back(in_tmp, mnist_dir, monkeypatch,
                                                                                   capsys):
    (in_tmp / "runs" / "exp").mkdir(parents=True)
    (in_tmp / "runs" / "exp" / "lenet5.npz").write_bytes(b"a finished run")
    runs.point_latest(os.path.join("runs", "exp"))

    def interrupted(*args):
        raise KeyboardInterrupt  # Ctrl-C while the kernels compile, before the first epoch

    monkeypatch.setattr(train, "warm_up", interrupted)
    assert run(mnist_dir) == 130
    assert not (in_tmp / "runs" / "exp2").exists()
    assert runs.read_latest() == os.path.join("runs", "exp")  # never left pointing at a missing folder
    err = capsys.readouterr().err
    assert "Interrupted before the first epoch finished; nothing was saved (removed the empty runs/exp2; " \
           "runs/latest points to runs/exp again)." in err


def test_ctrl_c_before_the_first_ever_epoch_leaves_no_pointer(in_tmp, mnist_dir, monkeypatch):
    monkeypatch.setattr(train, "warm_up", lambda *args: (_ for _ in ()).throw(KeyboardInterrupt))
    assert run(mnist_dir) == 130
    assert sorted(os.listdir(in_tmp / "runs")) == [] and runs.read_latest() is None


@pytest.fixture
def a_run(in_tmp):
    folder = in_tmp / "runs" / "exp"
    folder.mkdir(parents=True)
    (folder / "lenet5.npz").write_bytes(b"model")
    (folder / "lenet5.checkpoint.npz").write_bytes(b"checkpoint")
    return folder


def test_a_run_folder_names_its_model(a_run):
    assert runs.resolve_model_path("runs/exp") == os.path.join("runs/exp", "lenet5.npz")
    assert runs.resolve_model_path("runs/exp/lenet5.npz") == "runs/exp/lenet5.npz"


def test_a_checkpoint_is_refused_naming_the_model_beside_it(a_run):
    with pytest.raises(ValueError, match=r"runs/exp/lenet5.checkpoint.npz is a training checkpoint .*"
                                         r"pass the model beside it: --model runs/exp/lenet5.npz"):
        runs.resolve_model_path("runs/exp/lenet5.checkpoint.npz")


def test_a_folder_without_a_model_and_a_missing_file_say_what_to_pass(in_tmp):
    (in_tmp / "runs" / "exp").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match=r"runs/exp is a folder without a lenet5.npz"):
        runs.resolve_model_path("runs/exp")
    with pytest.raises(FileNotFoundError, match=r"no model file at nothing.npz .*python train.py"):
        runs.resolve_model_path("nothing.npz")


def test_the_latest_model_is_the_one_runs_latest_points_to_once_it_has_one(a_run, in_tmp):
    assert runs.latest_model_path() is None  # no pointer yet
    runs.point_latest(os.path.join("runs", "exp"))
    assert runs.latest_model_path() == os.path.join("runs", "exp", "lenet5.npz")
    (in_tmp / "runs" / "exp2").mkdir()
    runs.point_latest(os.path.join("runs", "exp2"))
    assert runs.latest_model_path() is None  # the latest run has saved no model yet


def run_serve(*flags, cwd):
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    return subprocess.run([sys.executable, os.path.join(repo, "serve.py"), *flags, "--port", "0"], cwd=cwd,
                          capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)


def test_serve_py_given_a_checkpoint_names_the_model_to_serve_instead_of_listing_keys(a_run, in_tmp):
    shutil.copy(lenet.DEFAULT_WEIGHTS, a_run / "lenet5.npz")
    model = nn.load(a_run / "lenet5.npz")[0]
    nn.save({f"model.{k}": v for k, v in model.items()}, a_run / "lenet5.checkpoint.npz", metadata={"epoch": 1})
    done = run_serve("--model", "runs/exp/lenet5.checkpoint.npz", cwd=in_tmp)
    assert done.returncode != 0 and done.stderr.count("\n") == 1, done.stderr
    assert "is a training checkpoint" in done.stderr and "--model runs/exp/lenet5.npz" in done.stderr
    assert "unexpected" not in done.stderr and "missing" not in done.stderr


def test_serve_py_given_a_run_folder_without_a_model_says_what_the_folder_lacks(in_tmp):
    (in_tmp / "runs" / "exp").mkdir(parents=True)
    done = run_serve("--model", "runs/exp", cwd=in_tmp)
    assert done.returncode != 0 and "runs/exp is a folder without a lenet5.npz" in done.stderr, done.stderr
