"""data.mnist: the real files load with the canonical hashes; the folder setting; damaged or missing files."""

import hashlib
import io

import numpy as np
import pytest

from data import idx, mnist
from data.storage import CorruptFileError


@pytest.fixture(scope="module")
def train_split(mnist_dir):
    return mnist.load(mnist_dir, train=True)


@pytest.mark.parametrize("train, count", [(True, 60000), (False, 10000)])
def test_load_gives_uint8_images_and_digit_labels(mnist_dir, train, count):
    images, labels = mnist.load(mnist_dir, train=train)
    assert images.shape == (count, 28, 28) and images.dtype == np.uint8
    assert labels.shape == (count,) and labels.dtype == np.uint8
    assert set(np.unique(labels)) == set(range(10))
    assert images.min() == 0 and images.max() == 255


def test_loaded_content_has_the_canonical_hashes(train_split):
    images, labels = train_split
    for name, array in ((mnist.TRAIN_IMAGES, images), (mnist.TRAIN_LABELS, labels)):
        assert hashlib.sha256(idx.encode(array)).hexdigest() == mnist.SHA256[name]


def test_the_first_training_digits_are_the_well_known_ones(train_split):
    # MNIST's training set famously starts 5, 0, 4, 1, 9, 2, 1, 3, 1, 4.
    np.testing.assert_array_equal(train_split[1][:10], [5, 0, 4, 1, 9, 2, 1, 3, 1, 4])


def test_file_hashes_are_the_canonical_ones(mnist_dir):
    assert mnist.file_hashes(mnist_dir) == mnist.SHA256


def test_ensure_accepts_a_complete_folder_without_writing(mnist_dir):
    before = sorted(p.name for p in mnist_dir.iterdir())
    assert mnist.ensure(mnist_dir, download=False) == mnist_dir
    assert sorted(p.name for p in mnist_dir.iterdir()) == before


@pytest.mark.parametrize("data_dir, env, expected", [
    ("explicit", "from-env", "explicit"),
    (None, "from-env", "from-env"),
    (None, "", "mnist"),
    (None, None, "mnist"),
])
def test_resolve_root_prefers_argument_then_environment_then_default(monkeypatch, data_dir, env, expected):
    if env is None:
        monkeypatch.delenv(mnist.ENV_VAR, raising=False)
    else:
        monkeypatch.setenv(mnist.ENV_VAR, env)
    assert str(mnist.resolve_root(data_dir)) == expected


def write_fake_mnist(folder, rng, count=6, suffix=".gz"):
    """Files in MNIST's format (so they decode) but not MNIST's content (so they fail the hashes)."""
    for prefix in ("train", "t10k"):
        idx.write_idx(folder / f"{prefix}-images-idx3-ubyte{suffix}",
                      rng.integers(0, 256, size=(count, 28, 28), dtype=np.uint8))
        idx.write_idx(folder / f"{prefix}-labels-idx1-ubyte{suffix}",
                      rng.integers(0, 10, size=count, dtype=np.uint8))


@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_load_refuses_files_that_are_not_canonical_unless_told_not_to_verify(tmp_path, suffix):
    write_fake_mnist(tmp_path, np.random.default_rng(0), suffix=suffix)
    with pytest.raises(CorruptFileError, match="not the canonical train-images-idx3-ubyte") as caught:
        mnist.load(tmp_path)
    assert "python -m data.mnist" in str(caught.value)
    images, labels = mnist.load(tmp_path, verify=False)
    assert images.shape == (6, 28, 28) and labels.shape == (6,)


def test_load_refuses_labels_outside_0_to_9(tmp_path):
    write_fake_mnist(tmp_path, np.random.default_rng(1))
    idx.write_idx(tmp_path / "train-labels-idx1-ubyte.gz", np.full(6, 10, dtype=np.uint8))
    with pytest.raises(CorruptFileError, match="labels must be 0-9"):
        mnist.load(tmp_path, verify=False)


def test_load_refuses_images_and_labels_of_different_counts(tmp_path):
    write_fake_mnist(tmp_path, np.random.default_rng(2))
    idx.write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", np.zeros(5, dtype=np.uint8))
    with pytest.raises(CorruptFileError, match="expected 6 uint8 labels"):
        mnist.load(tmp_path, train=False, verify=False)


def test_missing_files_say_how_to_fetch_them(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"python -m data.mnist --data-dir"):
        mnist.load(tmp_path)
    with pytest.raises(FileNotFoundError, match="train-images-idx3-ubyte"):
        mnist.ensure(tmp_path, download=False)


def test_a_data_dir_that_does_not_exist_is_refused_naming_it_and_the_flag_that_creates_it(tmp_path, capsys):
    typo = tmp_path / "mnsit"
    assert mnist.main(["--data-dir", str(typo)]) == 1
    err = capsys.readouterr().err
    assert f"the MNIST folder {typo} (--data-dir) does not exist" in err and "--create-data-dir" in err
    assert not typo.exists()  # nothing created, nothing downloaded


def test_a_data_dir_from_the_environment_that_does_not_exist_says_so(tmp_path, monkeypatch):
    monkeypatch.setenv(mnist.ENV_VAR, str(tmp_path / "nowhere"))
    with pytest.raises(mnist.DataDirError, match=r"nowhere \(\$MNIST_DIR\) does not exist.*--create-data-dir"):
        mnist.ensure()


def test_a_data_dir_that_is_a_file_is_refused_in_one_line_not_a_traceback(tmp_path, capsys):
    readme = tmp_path / "README.md"
    readme.write_text("# not MNIST\n")
    assert mnist.main(["--data-dir", str(readme)]) == 1
    assert f"the MNIST folder {readme} is a file, not a folder" in capsys.readouterr().err
    assert readme.read_text() == "# not MNIST\n"


def test_the_advice_for_missing_files_in_a_missing_folder_names_the_create_flag(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"--data-dir \S*absent --create-data-dir`"):
        mnist.ensure(tmp_path / "absent", download=False)
    with pytest.raises(FileNotFoundError, match=r"--data-dir \S*[^t]` to fetch"):
        mnist.ensure(tmp_path, download=False)  # the folder exists: no flag needed


def test_a_misspelt_flag_is_an_error_not_an_abbreviation(capsys):
    with pytest.raises(SystemExit):
        mnist.main(["--data", "somewhere"])
    assert "unrecognized arguments: --data" in capsys.readouterr().err


def test_ensure_moves_non_canonical_files_aside(tmp_path):
    write_fake_mnist(tmp_path, np.random.default_rng(3))
    log = io.StringIO()
    with pytest.raises(FileNotFoundError):
        mnist.ensure(tmp_path, download=False, stream=log)
    remaining = sorted(p.name for p in tmp_path.iterdir())
    assert remaining == sorted(f"{name}.gz.rejected" for name in mnist.FILES)
    assert log.getvalue().count("SHA-256 mismatch") == 4


def test_command_line_verifies_a_complete_folder(mnist_dir, capsys):
    assert mnist.main(["--data-dir", str(mnist_dir), "--quiet"]) == 0
    assert capsys.readouterr().out.count(" ok ") == 4
