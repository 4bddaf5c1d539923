"""The page in a real browser: headless Chromium driven by selenium draws digits with pointer events.

Needs Debian's chromium and chromium-driver (/usr/bin/chromium, /usr/bin/chromedriver); without
them every test here is skipped with that reason. Recognition tests need the shipped trained model.
"""

import base64
import http.client
import json
import os
import shutil

import numpy as np
import pytest
from PIL import Image, ImageDraw

import lenet
from lenet.server import PredictionServer, serving_in_background

pytestmark = pytest.mark.slow  # a real browser: seconds per test

webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install .[test])")
from selenium.webdriver.chrome.service import Service  # noqa: E402  (only once selenium is known to import)
from selenium.webdriver.common.actions.action_builder import ActionBuilder  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

CHROMIUM = os.environ.get("CHROMIUM_BINARY") or shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = os.environ.get("CHROMEDRIVER") or shutil.which("chromedriver") or "/usr/bin/chromedriver"
CANVAS_SIDE = 280  # the drawing canvas's own pixels (index.html), whatever its size on screen
WAIT_SECONDS = 20


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    missing = [path for path in (CHROMIUM, CHROMEDRIVER) if not os.path.isfile(path)]
    if missing:
        pytest.skip(f"no headless browser: {', '.join(missing)} not found "
                    "(apt-get install chromium chromium-driver)")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                     "--disable-background-networking", "--disable-component-update", "--disable-sync",
                     "--window-size=1200,900", f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def serve(model):
    return serving_in_background(PredictionServer(model, port=0, log=None))


@pytest.fixture(scope="module")
def untrained_server():
    with serve(lenet.LeNet5(seed=0).eval()) as server:
        yield server


def open_page(browser, server):
    browser.get(server.url + "/")
    WebDriverWait(browser, WAIT_SECONDS).until(lambda b: b.find_element("id", "status").text)
    return browser.find_element("id", "canvas")


def draw_strokes(browser, canvas, strokes):
    """Draw with the mouse pointer; each stroke is a list of (x, y) points in canvas pixels (0..280)."""
    box = canvas.rect  # CSS pixels; the page does not scroll at this window size
    scale = box["width"] / CANVAS_SIDE
    actions = ActionBuilder(browser, duration=20)  # ms per move; selenium's default 250 makes tracing slow
    for stroke in strokes:
        (x, y), rest = stroke[0], stroke[1:]
        actions.pointer_action.move_to_location(int(box["x"] + x * scale), int(box["y"] + y * scale))
        actions.pointer_action.pointer_down()
        for x, y in rest:
            actions.pointer_action.move_to_location(int(box["x"] + x * scale), int(box["y"] + y * scale))
        actions.pointer_action.pointer_up()
    actions.perform()


def settled_prediction(browser):
    """The text of #prediction once no newer answer is on its way."""
    result = browser.find_element("id", "result")
    WebDriverWait(browser, WAIT_SECONDS).until(
        lambda b: result.get_attribute("aria-busy") == "false" and b.find_element("id", "prediction").text)
    return browser.find_element("id", "prediction").text


def strokes_tracing(image, threshold=128, scale=CANVAS_SIDE // 28):
    """Horizontal strokes along every run of ink pixels of a 28x28 MNIST digit, scaled to the canvas."""
    strokes = []
    for y, row in enumerate(image > threshold):
        x = 0
        while x < 28:
            if row[x]:
                start = x
                while x < 28 and row[x]:
                    x += 1
                cy = (y + 0.5) * scale
                strokes.append([((start + 0.5) * scale, cy), ((x - 0.5) * scale, cy)])
            x += 1
    return strokes


def test_page_loads_cleanly_with_nothing_predicted_yet(browser, untrained_server):
    open_page(browser, untrained_server)
    assert browser.find_element("id", "prediction").text == ""
    assert browser.execute_script("return getComputedStyle(document.getElementById('canvas')).touchAction") == "none"
    errors = [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
    assert errors == []


def test_drawing_shows_a_prediction_and_clear_empties_canvas_and_result(browser, untrained_server):
    canvas = open_page(browser, untrained_server)
    draw_strokes(browser, canvas, [[(140, 40), (140, 140), (140, 240)]])
    assert settled_prediction(browser) in list("0123456789")
    assert browser.find_element("css selector", "#probabilities tr.top")
    browser.find_element("id", "clear").click()
    assert browser.find_element("id", "prediction").text == ""
    assert browser.find_elements("css selector", "#probabilities tr.top") == []
    white = browser.execute_script(
        "const c = document.getElementById('canvas');"
        "return Array.from(c.getContext('2d').getImageData(0, 0, c.width, c.height).data).every(v => v === 255);")
    assert white


def drawn_zero_file(folder):
    """A PNG of a 0 drawn dark on white, in ``folder``."""
    picture = Image.new("L", (120, 160), 255)
    ImageDraw.Draw(picture).ellipse([20, 20, 100, 140], outline=0, width=12)
    path = folder / "zero.png"
    picture.save(path)
    return path


def api_answer(server, route, path):
    """The server's JSON answer to the PNG file ``path`` posted to ``route``, asked over HTTP directly."""
    connection = http.client.HTTPConnection(*server.server_address[:2], timeout=10)
    try:
        connection.request("POST", route, body=path.read_bytes(), headers={"Content-Type": "image/png"})
        return json.loads(connection.getresponse().read())
    finally:
        connection.close()


def test_an_image_file_chosen_with_the_file_picker_is_read_like_the_api_reads_it(browser, untrained_server,
                                                                               tmp_path):
    path = drawn_zero_file(tmp_path)
    expected = api_answer(untrained_server, "/api/predict", path)["prediction"]

    open_page(browser, untrained_server)
    browser.find_element("id", "file").send_keys(str(path))
    WebDriverWait(browser, WAIT_SECONDS).until(lambda b: b.find_element("id", "prediction").text)
    assert browser.find_element("id", "prediction").text == str(expected)


def test_a_vertical_stroke_is_read_as_1(browser, shipped_server):
    canvas = open_page(browser, shipped_server)
    draw_strokes(browser, canvas, [[(140, 40), (140, 140), (138, 240)]])
    assert settled_prediction(browser) == "1"


@pytest.mark.parametrize("index", [0, 1, 2, 3, 4])
def test_a_traced_real_mnist_digit_is_recognized(browser, shipped_server, mnist_dir, index):
    from data.mnist import load
    images, labels = load(mnist_dir, train=False)
    canvas = open_page(browser, shipped_server)
    draw_strokes(browser, canvas, strokes_tracing(images[index]))
    assert settled_prediction(browser) == str(labels[index])
    seen = browser.execute_script(
        "return Array.from(document.getElementById('seen').getContext('2d').getImageData(0, 0, 28, 28).data);")
    assert np.asarray(seen).reshape(28, 28, 4)[..., 0].max() == 255  # the 28x28 image the model saw is shown


# -- the activation maps ("Inside the network") ---------------------------------------------------
STAGE_LAYOUT = {  # stage: (maps or values, map height, map width, maps per row), as app.js tiles them
    "C1": (6, 24, 24, 6), "S2": (6, 12, 12, 6), "C3": (16, 8, 8, 8), "S4": (16, 4, 4, 8),
    "C5": (120, 1, 1, 40), "F6": (84, 1, 1, 42), "out": (10, 1, 1, 10),
}
GAP_GREY = 232


def stage_pixels(browser, stage):
    """The grey levels (red channel) and alpha of the stage's canvas, as (H, W) arrays."""
    width, height, data = browser.execute_script(
        "const c = document.getElementById('map-' + arguments[0]);"
        "return [c.width, c.height, Array.from(c.getContext('2d').getImageData(0, 0, c.width, c.height).data)];",
        stage)
    rgba = np.asarray(data, dtype=np.uint8).reshape(height, width, 4)
    return rgba[..., 0], rgba[..., 3]


def tiled(levels, stage):
    """The server's uint8 levels of one stage laid out as app.js draws them (gaps light grey)."""
    count, height, width, columns = STAGE_LAYOUT[stage]
    gap = 1 if height > 1 else 0
    rows = -(-count // columns)
    picture = np.full((rows * (height + gap) - gap, columns * (width + gap) - gap), GAP_GREY, dtype=np.uint8)
    for k, tile in enumerate(levels.reshape(count, height, width)):
        top, left = (k // columns) * (height + gap), (k % columns) * (width + gap)
        picture[top:top + height, left:left + width] = tile
    return picture


def test_drawing_shows_every_stages_maps_and_clear_empties_them(browser, untrained_server):
    canvas = open_page(browser, untrained_server)
    draw_strokes(browser, canvas, [[(140, 40), (140, 140), (140, 240)]])
    settled_prediction(browser)
    for stage, (count, height, width, columns) in STAGE_LAYOUT.items():
        assert "shown" in browser.find_element("id", f"map-{stage}").get_attribute("class"), stage
        grey, alpha = stage_pixels(browser, stage)
        assert alpha.min() == 255, stage  # every pixel painted
        assert grey.shape == tiled(np.zeros(count * height * width, np.uint8), stage).shape, stage
    assert [e for e in browser.get_log("browser") if e["level"] == "SEVERE"] == []  # no CSP violation either
    browser.find_element("id", "clear").click()
    for stage in STAGE_LAYOUT:
        assert stage_pixels(browser, stage)[1].max() == 0, stage  # cleared: transparent again


def test_the_maps_drawn_are_the_servers_for_the_digit_read(browser, untrained_server, tmp_path):
    path = drawn_zero_file(tmp_path)
    answer = api_answer(untrained_server, "/api/activations", path)

    open_page(browser, untrained_server)
    browser.find_element("id", "file").send_keys(str(path))
    WebDriverWait(browser, WAIT_SECONDS).until(
        lambda b: "shown" in b.find_element("id", "map-out").get_attribute("class"))
    for entry in answer["activations"]:
        levels = np.frombuffer(base64.b64decode(entry["data"]), dtype=np.uint8)
        np.testing.assert_array_equal(stage_pixels(browser, entry["stage"])[0], tiled(levels, entry["stage"]),
                                      err_msg=entry["stage"])
