"""lenet.activations (every stage's output) and ``python -m lenet.visualize`` (filters and maps as PNGs)."""

import numpy as np
import pytest
from PIL import Image, ImageDraw

import lenet
import nn
from data.preprocess import prepare_digit
from lenet import visualize
from lenet.activations import STAGE_NAMES, stage_activations
from lenet.server.model_api.upload import decode_image

EXPECTED_SHAPES = {"C1": (6, 24, 24), "S2": (6, 12, 12), "C3": (16, 8, 8), "S4": (16, 4, 4),
                   "C5": (120,), "F6": (84,), "out": (10,)}
PICTURES = ["filters_C1.png", "filters_C3.png", "input.png"] + [f"activations_{s}.png" for s in STAGE_NAMES]


@pytest.fixture(scope="module")
def untrained_model():
    return lenet.LeNet5(seed=0).eval()


def digit_picture(path, stroke=((60, 60), (220, 60), (130, 230))):
    """A PNG of a digit drawn dark on white, as the page's canvas sends it."""
    picture = Image.new("L", (280, 280), 255)
    ImageDraw.Draw(picture).line(list(stroke), fill=0, width=24)
    picture.save(path)
    return path


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_every_stage_has_lenet5s_shape_and_the_last_is_the_models_logits(untrained_model, backend):
    x = untrained_model.preprocess(np.random.default_rng(0).integers(0, 256, (3, 28, 28)))
    with nn.use_backend(backend):
        outputs = stage_activations(untrained_model, x)
        logits = untrained_model(x)  # the fused kernels on numba: an independent path to the same numbers
    assert list(outputs) == list(EXPECTED_SHAPES)
    assert {name: a.shape[1:] for name, a in outputs.items()} == EXPECTED_SHAPES
    np.testing.assert_allclose(outputs["out"], logits, rtol=1e-4, atol=1e-5)
    for stage in ("C1", "C3", "C5", "F6"):  # rectified: nothing below 0
        assert outputs[stage].min() >= 0


def test_stages_run_in_eval_mode_only_and_store_nothing(untrained_model):
    x = untrained_model.preprocess(np.zeros((1, 28, 28), dtype=np.uint8))
    stage_activations(untrained_model, x)
    assert all("_saved_for_backward" not in vars(m) for m in untrained_model.modules())
    training = lenet.LeNet5(seed=0)
    with pytest.raises(RuntimeError, match="eval"):
        stage_activations(training, x)


def test_diverging_colours_run_blue_white_red_and_clip_at_the_scale():
    colours = visualize.diverging_colours([-2.0, -1.0, 0.0, 0.5, 1.0], scale=1.0)
    assert colours[0].tolist() == list(visualize.NEGATIVE) == colours[1].tolist()
    assert colours[2].tolist() == list(visualize.WHITE)
    assert colours[4].tolist() == list(visualize.POSITIVE)
    midway = (np.array(visualize.WHITE) + np.array(visualize.POSITIVE)) / 2
    assert np.abs(colours[3] - midway).max() <= 0.5


def test_a_filter_picture_shows_each_weight_in_its_place_with_its_sign():
    weight = np.zeros((2, 1, 5, 5))
    weight[0, 0, 0, 0] = 1.0    # filter 0: one positive weight, top left
    weight[1, 0, 4, 4] = -3.0   # filter 1: one negative weight, bottom right
    picture = np.asarray(visualize.filters_picture(weight, "two filters"))
    reds = np.argwhere(np.all(picture == visualize.POSITIVE, axis=-1))
    blues = np.argwhere(np.all(picture == visualize.NEGATIVE, axis=-1))
    cell = visualize.FILTER_CELL
    assert len(reds) == len(blues) == cell * cell  # one weight each, drawn as a cell x cell square
    assert reds[:, 1].max() < blues[:, 1].min() and reds[:, 0].max() < blues[:, 0].min()


@pytest.fixture
def in_tmp(tmp_path, monkeypatch):
    """A working directory of its own: runs/ (where the latest run is looked for) is relative to it."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_the_command_writes_every_picture_for_the_builtin_digit(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no runs/ here: the shipped model is drawn
    assert visualize.main(["--out", str(tmp_path)]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(PICTURES)
    for name in PICTURES:
        with Image.open(tmp_path / name) as image:
            image.verify()
    with Image.open(tmp_path / "activations_C1.png") as image:
        assert np.asarray(image.convert("L")).min() == 0  # black background of the maps: a picture, not blank
    assert "read as 7" in capsys.readouterr().out  # the shipped model reads the built-in 7


def test_an_image_is_preprocessed_exactly_as_the_server_preprocesses_an_upload(tmp_path):
    path = digit_picture(tmp_path / "seven.png")
    from_server = prepare_digit(decode_image(path.read_bytes()))
    np.testing.assert_array_equal(visualize.read_digit(path), from_server)


def test_a_model_file_given_is_the_one_drawn(tmp_path):
    model = lenet.LeNet5(seed=3)
    nn.save(model, tmp_path / "seed3.npz")
    out = tmp_path / "pictures"
    assert visualize.main(["--model", str(tmp_path / "seed3.npz"), "--out", str(out)]) == 0
    expected = visualize.pictures(model.eval(), visualize.builtin_digit())
    for name in ("filters_C1.png", "filters_C3.png", "activations_out.png"):
        with Image.open(out / name) as written:
            np.testing.assert_array_equal(np.asarray(written.convert("RGB")), np.asarray(expected[name]), err_msg=name)


def test_a_1998_model_file_is_drawn_as_itself_with_its_own_stages(tmp_path, capsys):
    model = lenet.LeNet1998(seed=3)
    nn.save(model, tmp_path / "lenet1998.npz", metadata={"architecture": "LeNet1998"})
    assert visualize.main(["--model", str(tmp_path / "lenet1998.npz"), "--out", str(tmp_path / "pictures")]) == 0
    assert sorted(p.name for p in (tmp_path / "pictures").iterdir()) == sorted(PICTURES)
    expected = visualize.pictures(model.eval(), visualize.builtin_digit())
    for name in ("filters_C3.png", "activations_S4.png"):
        with Image.open(tmp_path / "pictures" / name) as written:
            np.testing.assert_array_equal(np.asarray(written.convert("RGB")), np.asarray(expected[name]), err_msg=name)
    maps = stage_activations(model, model.preprocess(visualize.builtin_digit()[None]))
    assert maps["S4"].shape == (1, 16, 5, 5)  # the 32x32 input's S4, not LeNet5's 4x4
    assert visualize._stage_title(model, "S4", maps["S4"][0]) == "S4: 16x5x5 (subsampled, after tanh)"


@pytest.mark.parametrize("make_input, expected", [
    (lambda tmp: str(tmp / "missing.png"), "cannot read"),
    (lambda tmp: (tmp / "text.png").write_text("not a picture") and str(tmp / "text.png"), "cannot read"),
    (lambda tmp: Image.new("L", (50, 50), 255).save(tmp / "blank.png") or str(tmp / "blank.png"), "blank image"),
], ids=["missing-file", "not-an-image", "blank-picture"])
def test_a_bad_image_is_a_one_line_error_and_nothing_is_written(tmp_path, capsys, make_input, expected):
    out = tmp_path / "pictures"
    assert visualize.main(["--image", make_input(tmp_path), "--out", str(out)]) == 2
    assert expected in capsys.readouterr().err
    assert not out.exists()


def test_an_mnist_test_digit_is_read_with_its_label(tmp_path, capsys, monkeypatch, mnist_dir):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MNIST_DIR", str(mnist_dir))
    assert visualize.main(["--mnist-index", "0", "--out", str(tmp_path)]) == 0
    first_line = capsys.readouterr().out.splitlines()[1]  # after the line naming the model
    assert first_line.startswith("read as 7 with probability") and "(labelled 7)" in first_line  # test digit 0 is a 7


def a_trained_run(folder, seed):
    """A run folder holding a model (a LeNet5 of ``seed``), as train.py leaves it; -> the model."""
    from lenet.training import runs
    folder.mkdir(parents=True)
    model = lenet.LeNet5(seed=seed)
    nn.save(model, folder / "lenet5.npz")
    runs.point_latest(str(folder.relative_to(folder.parent.parent)))
    return model.eval()


def test_without_model_the_latest_run_is_drawn_and_named(in_tmp, capsys):
    model = a_trained_run(in_tmp / "runs" / "exp", seed=5)
    assert visualize.main(["--out", "pictures"]) == 0
    assert capsys.readouterr().out.splitlines()[0] == \
        "model: runs/exp/lenet5.npz (the latest run, runs/latest; --model PATH shows another)"
    expected = visualize.pictures(model, visualize.builtin_digit())["filters_C1.png"]
    with Image.open(in_tmp / "pictures" / "filters_C1.png") as written:
        np.testing.assert_array_equal(np.asarray(written.convert("RGB")), np.asarray(expected))


def test_without_any_run_the_shipped_model_is_drawn_and_said_to_be(in_tmp, capsys):
    assert visualize.main(["--out", "pictures"]) == 0
    first = capsys.readouterr().out.splitlines()[0]
    assert first.startswith(f"model: {lenet.DEFAULT_WEIGHTS} (the shipped model: no trained run in runs/ yet")


def test_a_run_folder_given_as_model_draws_its_model(in_tmp, capsys):
    model = a_trained_run(in_tmp / "runs" / "mine", seed=6)
    assert visualize.main(["--model", "runs/mine", "--out", "pictures"]) == 0
    assert capsys.readouterr().out.startswith("model: runs/mine/lenet5.npz (--model)")
    expected = visualize.pictures(model, visualize.builtin_digit())["filters_C3.png"]
    with Image.open(in_tmp / "pictures" / "filters_C3.png") as written:
        np.testing.assert_array_equal(np.asarray(written.convert("RGB")), np.asarray(expected))
