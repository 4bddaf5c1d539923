"""train.py end to end on real MNIST: it learns, it resumes exactly, it stops on divergence."""

import json

import numpy as np
import pytest

import nn
import train
from lenet.training.recipe import learning_rate
from lenet import load_model

# Small runs: 3,000 training images, a quick epoch even on the NumPy backend.
QUICK = ["--train-size", "3000", "--batch-size", "50", "--log-interval", "20", "--test-batch-size", "2000"]


def run(tmp_path, mnist_dir, *extra, name="lenet5.npz"):
    out = tmp_path / name
    code = train.main(QUICK + ["--data-dir", str(mnist_dir), "--out", str(out), "--no-download", *extra])
    return code, out


@pytest.mark.slow
def test_a_short_run_learns_mnist_and_writes_model_metrics_and_pictures(tmp_path, mnist_dir, capsys):
    code, out = run(tmp_path, mnist_dir, "--epochs", "1", "--train-size", "20000", "--no-augment")
    assert code == 0
    model = load_model(out)
    meta = model.metadata
    assert meta["test_accuracy"] >= 0.95, meta
    for key in ("architecture", "normalization", "epoch", "val_accuracy", "test_accuracy", "seed",
                "hyperparameters", "machine", "data_sha256", "date"):
        assert key in meta
    assert meta["machine"]["cpu"] and meta["machine"]["numpy"] == np.__version__
    assert meta["data_sha256"]["t10k-images-idx3-ubyte"].startswith("0fa7898d")
    log = capsys.readouterr().out
    assert "Train Epoch: 1 [1000/20000 (5%)]" in log and "Held-out accuracy" in log
    assert "Test set: Average loss" in log
    rows = [json.loads(line) for line in (tmp_path / "lenet5.metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1] and rows[0]["test_accuracy"] == meta["test_accuracy"]
    for picture in ("curves.png", "confusion_matrix.png", "misclassified.png"):
        assert (tmp_path / picture).stat().st_size > 1000


@pytest.mark.slow
@pytest.mark.parametrize("augmentation", [[], ["--handwriting-augment"]])
def test_an_interrupted_run_resumed_ends_with_the_same_model_bit_for_bit(tmp_path, mnist_dir, monkeypatch,
                                                                         augmentation):
    code, straight = run(tmp_path, mnist_dir, "--epochs", "2", *augmentation, name="straight.npz")
    assert code == 0

    real_epoch_rng = train.epoch_rng

    def interrupt_at_epoch_two(seed, epoch):
        if epoch == 2:
            raise KeyboardInterrupt  # as if Ctrl-C were pressed at the start of epoch 2
        return real_epoch_rng(seed, epoch)

    monkeypatch.setattr(train, "epoch_rng", interrupt_at_epoch_two)
    code, resumed = run(tmp_path, mnist_dir, "--epochs", "2", *augmentation, name="resumed.npz")
    assert code == 130
    assert nn.load(tmp_path / "resumed.checkpoint.npz")[1]["epoch"] == 1
    monkeypatch.setattr(train, "epoch_rng", real_epoch_rng)
    code, resumed = run(tmp_path, mnist_dir, "--epochs", "2", *augmentation, "--resume", name="resumed.npz")
    assert code == 0

    a, meta_a = nn.load(straight)
    b, meta_b = nn.load(resumed)
    assert meta_a["epoch"] == meta_b["epoch"]
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    ckpt_a, ckpt_b = nn.load(tmp_path / "straight.checkpoint.npz"), nn.load(tmp_path / "resumed.checkpoint.npz")
    for key in ckpt_a[0]:
        np.testing.assert_array_equal(ckpt_a[0][key], ckpt_b[0][key], err_msg=key)


@pytest.mark.slow
def test_the_untimed_warm_up_changes_nothing_a_run_computes(tmp_path, mnist_dir, monkeypatch):
    flags = ("--epochs", "1", "--train-size", "520")  # a short last batch, 520 = 10 x 50 + 20
    code, warmed = run(tmp_path, mnist_dir, *flags, name="warmed.npz")
    assert code == 0
    monkeypatch.setattr(train, "warm_up", lambda *args: None)
    code, cold = run(tmp_path, mnist_dir, *flags, name="cold.npz")
    assert code == 0
    a, b = nn.load(tmp_path / "warmed.checkpoint.npz")[0], nn.load(tmp_path / "cold.checkpoint.npz")[0]
    assert list(a) == list(b)
    for key in a:  # the model and the optimizer's momentum buffers
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)


def test_missing_data_without_download_is_one_line_not_a_traceback(tmp_path, capsys):
    code = train.main(["--data-dir", str(tmp_path / "empty"), "--out", str(tmp_path / "m.npz"), "--no-download"])
    assert code == 1
    err = capsys.readouterr().err
    assert err.startswith("train.py: MNIST files missing") and "python -m data.mnist" in err
    assert "Traceback" not in err


@pytest.mark.parametrize("flags,refused", [
    (["--epoch", "1"], "--epoch"),        # not taken for --epochs
    (["--batch", "32"], "--batch"),       # not taken for --batch-size
    (["--seed", "1", "--no-aug"], "--no-aug"),
])
def test_a_misspelt_flag_is_refused_not_taken_as_an_abbreviation(flags, refused, capsys):
    with pytest.raises(SystemExit):
        train.parse_args(flags)
    assert f"unrecognized arguments: {refused}" in capsys.readouterr().err


def test_a_data_dir_that_does_not_exist_is_refused_before_anything_is_fetched(tmp_path, capsys):
    typo = tmp_path / "mnsit"
    assert train.main(["--data-dir", str(typo), "--out", str(tmp_path / "m.npz")]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"train.py: the MNIST folder {typo} (--data-dir) does not exist") and "--create-data-dir" in err
    assert "Traceback" not in err and not typo.exists()


def test_a_data_dir_that_is_a_file_is_one_line_not_a_traceback(tmp_path, capsys):
    (tmp_path / "README.md").write_text("text")
    assert train.main(["--data-dir", str(tmp_path / "README.md"), "--out", str(tmp_path / "m.npz")]) == 1
    err = capsys.readouterr().err
    assert "is a file, not a folder" in err and "Traceback" not in err


@pytest.mark.slow
def test_resume_refuses_a_run_defined_differently(tmp_path, mnist_dir):
    assert run(tmp_path, mnist_dir, "--epochs", "1", "--train-size", "500")[0] == 0
    with pytest.raises(SystemExit, match="--lr was 0.05, now 0.01"):
        run(tmp_path, mnist_dir, "--epochs", "1", "--train-size", "500", "--lr", "0.01", "--resume")


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:overflow encountered", "ignore:invalid value encountered")
def test_a_diverging_loss_stops_training_with_advice_and_saves_nothing(tmp_path, mnist_dir):
    with pytest.raises(SystemExit, match=r"loss became (nan|inf).*smaller --lr"):
        run(tmp_path, mnist_dir, "--epochs", "1", "--lr", "1e6", "--lr-schedule", "constant")
    assert not (tmp_path / "lenet5.npz").exists()


@pytest.mark.parametrize("schedule,expected", [
    ("constant", [0.1, 0.1, 0.1, 0.1]),
    ("step", [0.1, 0.1, 0.01, 0.001]),
    ("cosine", [0.1, 0.1 * (1 + np.cos(np.pi / 4)) / 2, 0.05, 0.1 * (1 + np.cos(3 * np.pi / 4)) / 2]),
])
def test_learning_rate_schedules(schedule, expected):
    got = [learning_rate(schedule, 0.1, step, 8) for step in (0, 2, 4, 6)]
    np.testing.assert_allclose(got, expected, rtol=1e-12)


@pytest.mark.parametrize("flags,words", [
    (["--epochs", "0"], "--epochs must be >= 1"),
    (["--lr", "-1"], "--lr must be"),
    (["--momentum", "1.5"], "--momentum must be"),
    (["--lr-schedule", "linear"], "invalid choice"),
    (["--validation-size", "60000"], "--validation-size must be below the 60,000 training images"),
])
def test_bad_flags_are_rejected_with_the_reason(flags, words, capsys):
    with pytest.raises(SystemExit):
        train.parse_args(flags)
    assert words in capsys.readouterr().err


def test_every_flag_says_its_default_in_the_help():
    options = [a for a in train.build_parser()._actions if a.option_strings and a.dest != "help"]
    assert len(options) >= 20
    for action in options:
        assert "default" in action.help, f"{action.option_strings[0]}: {action.help!r}"


@pytest.mark.slow
def test_the_log_says_once_that_the_cores_look_busy_when_the_kernels_measured_so(tmp_path, mnist_dir, monkeypatch,
                                                                                 capsys):
    line = "the cores look busy (load average 6.0 on 2 cores): 5 of 6 parallel kernels run on one thread"
    monkeypatch.setattr(train, "busy_cores_message", lambda: line)
    code, _ = run(tmp_path, mnist_dir, "--epochs", "2", "--train-size", "1000", "--no-augment")
    assert code == 0
    assert capsys.readouterr().out.count(line) == 1


@pytest.mark.slow
def test_the_log_says_nothing_of_busy_cores_when_the_kernels_did_not_find_them(tmp_path, mnist_dir, monkeypatch,
                                                                              capsys):
    monkeypatch.setattr(train, "busy_cores_message", lambda: None)
    code, _ = run(tmp_path, mnist_dir, "--epochs", "1", "--train-size", "1000", "--no-augment")
    assert code == 0
    assert "cores look busy" not in capsys.readouterr().out


# -- the 1998 paper's LeNet-5: --model lenet5-1998 --------------------------------------------------

QUICK_1998 = ["--model", "lenet5-1998", "--train-size", "500", "--validation-size", "1000"]


@pytest.mark.parametrize("model,expected", [
    ("lenet5", {"optimizer": "sgd", "lr": 0.05, "weight_decay": 5e-4}),
    ("lenet5-1998", {"optimizer": "adam", "lr": 1e-3, "weight_decay": 0.0}),
])
def test_each_model_takes_its_own_defaults_and_flags_given_override_them(model, expected):
    args = train.parse_args(["--model", model])
    assert {k: getattr(args, k) for k in expected} == expected
    args = train.parse_args(["--model", model, "--optimizer", "sgd", "--lr", "0.02", "--weight-decay", "0"])
    assert (args.optimizer, args.lr, args.weight_decay) == ("sgd", 0.02, 0.0)


def test_the_1998_models_training_batches_are_what_its_preprocess_makes(mnist_dir):
    """Padding the uint8 pixels with 0, then normalizing as the model does, is model.preprocess bit for bit."""
    from data import mnist
    from data.batches import iterate
    from lenet.training.recipe import input_pixels, make_model
    images, labels = mnist.load(mnist_dir, train=False)
    images, labels = images[:100], labels[:100]
    for name, input_size in (("lenet5", 28), ("lenet5-1998", 32)):
        model = make_model(0, name)
        pixels = input_pixels(model, images)
        assert pixels.shape == (100, input_size, input_size)
        (x, _), = iterate(pixels, labels, 100, shuffle=False, **model.normalization)
        np.testing.assert_array_equal(x, model.preprocess(images), err_msg=name)
    assert input_pixels(make_model(0, "lenet5"), images) is images  # LeNet5's batches are untouched


def test_the_paper_schedule_spreads_the_papers_20_rates_over_the_run():
    rates = [learning_rate("paper", 5e-4, step, 40) for step in range(0, 40, 2)]  # one per "pass"
    np.testing.assert_allclose(rates, [5e-4] * 2 + [2e-4] * 3 + [1e-4] * 3 + [5e-5] * 4 + [1e-5] * 8, rtol=1e-12)


@pytest.mark.slow
def test_the_1998_model_trains_saves_its_geometry_and_loads_back_as_itself(tmp_path, mnist_dir):
    code, out = run(tmp_path, mnist_dir, *QUICK_1998, "--epochs", "1", "--train-size", "3000", "--no-augment",
                    "--lr", "2e-3", "--lr-schedule", "constant")
    assert code == 0
    model = load_model(out)
    meta = model.metadata
    assert type(model).__name__ == "LeNet1998" and meta["architecture"] == "LeNet1998"
    assert meta["input"]["shape"] == [1, 32, 32] and meta["input"]["digit"] == [28, 28]
    assert meta["normalization"] == model.normalization and model.normalization["std"] == pytest.approx(1 / 1.275)
    assert meta["hyperparameters"]["model"] == "lenet5-1998" and meta["hyperparameters"]["optimizer"] == "adam"
    assert meta["test_accuracy"] >= 0.6, meta  # 60 steps of Adam: far above chance (76% measured; SGD stays at 10%)


@pytest.mark.slow
def test_an_interrupted_1998_run_resumed_ends_with_the_same_model_bit_for_bit(tmp_path, mnist_dir, monkeypatch):
    code, straight = run(tmp_path, mnist_dir, *QUICK_1998, "--epochs", "2", name="straight.npz")
    assert code == 0
    real_epoch_rng = train.epoch_rng

    def interrupt_at_epoch_two(seed, epoch):
        if epoch == 2:
            raise KeyboardInterrupt
        return real_epoch_rng(seed, epoch)

    monkeypatch.setattr(train, "epoch_rng", interrupt_at_epoch_two)
    assert run(tmp_path, mnist_dir, *QUICK_1998, "--epochs", "2", name="resumed.npz")[0] == 130
    monkeypatch.setattr(train, "epoch_rng", real_epoch_rng)
    assert run(tmp_path, mnist_dir, *QUICK_1998, "--epochs", "2", "--resume", name="resumed.npz")[0] == 0
    for name in ("straight", "resumed"):
        assert nn.load(tmp_path / f"{name}.checkpoint.npz")[1]["epoch"] == 2
    ckpt_a, ckpt_b = nn.load(tmp_path / "straight.checkpoint.npz")[0], nn.load(tmp_path / "resumed.checkpoint.npz")[0]
    assert list(ckpt_a) == list(ckpt_b) and any(k.endswith("exp_avg_sq") for k in ckpt_a)  # Adam's moments too
    for key in ckpt_a:
        np.testing.assert_array_equal(ckpt_a[key], ckpt_b[key], err_msg=key)


@pytest.mark.slow
def test_resume_refuses_a_run_of_the_other_model(tmp_path, mnist_dir):
    assert run(tmp_path, mnist_dir, "--epochs", "1", "--train-size", "500")[0] == 0
    with pytest.raises(SystemExit, match="--model was 'lenet5', now 'lenet5-1998'"):
        run(tmp_path, mnist_dir, "--epochs", "1", "--train-size", "500", "--model", "lenet5-1998", "--resume")
