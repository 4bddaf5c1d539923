"""The server's limits per client, over real sockets on 127.0.0.1: each test is one way a client
(or many) could hold the server's time, threads, descriptors or memory, or slip a request past
its header checks, and what the server does instead. Limits are set small so the tests are quick;
``python -m benchmarks.attack_server`` runs the same attacks at full size.
"""

import errno
import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest

import nn
from lenet.server import PredictionServer, serving_in_background
from lenet.server.httpd.budget import MemoryBudget
from lenet.server.httpd.errors import HTTPError
from lenet.server.httpd.hosts import HostCheck

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TIMEOUT = 1.0                   # the test servers' request_timeout: idle, head deadline, body floor
BODY_MEMORY = 1536 * 1024       # room for one 1 MiB body (the /api/predict limit), not two
MAX_HEADERS = 20
PIXELS = json.dumps([255] * 784).encode()  # a blank canvas for /api/mnist


@pytest.fixture(scope="module")
def server(model):
    server = PredictionServer(model, port=0, request_timeout=TIMEOUT, log=None, max_headers=MAX_HEADERS,
                              body_memory=BODY_MEMORY, allowed_hosts=("digits.lan",))
    with serving_in_background(server):
        yield server


def connect(server):
    return socket.create_connection(server.server_address[:2], timeout=10)


def read_response(sock):
    """``(status, headers with lower-case names, body bytes)`` of one response, read to its end."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"connection closed after {data!r}")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {name.lower(): value for name, value in (line.split(": ", 1) for line in lines[1:])}
    while len(body) < int(headers.get("content-length", 0)):
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return int(lines[0].split()[1]), headers, body


def exchange(server, request_bytes):
    """Send ``request_bytes`` on a new connection -> ``(status, headers, JSON document)``."""
    with connect(server) as sock:
        sock.sendall(request_bytes)
        status, headers, body = read_response(sock)
    return status, headers, json.loads(body)


def get(path="/ping", host="localhost", version="HTTP/1.1", extra=""):
    host_line = f"Host: {host}\r\n" if host is not None else ""
    return f"GET {path} {version}\r\n{host_line}{extra}\r\n".encode("latin-1")


# -- the head: one deadline, byte and line caps, strict lines -------------------------------------
def test_a_client_dripping_its_head_is_closed_at_the_head_deadline(server):
    # One byte every 0.2 s: each recv returns well within any per-read timeout, so only a deadline
    # on the whole head ends this.
    with connect(server) as sock:
        began = time.monotonic()
        sock.sendall(b"GET /ping HTTP/1.1\r\nX-Drip: ")
        sock.settimeout(0.2)
        received = b""
        while time.monotonic() - began < 5 * TIMEOUT:
            try:
                chunk = sock.recv(65536)
            except socket.timeout:
                sock.sendall(b"a")
                continue
            except ConnectionResetError:
                break
            if not chunk:
                break
            received += chunk
        closed_after = time.monotonic() - began
    assert closed_after < TIMEOUT + 1.0, f"still open after {closed_after:.1f} s"
    assert received == b"" or received.startswith(b"HTTP/1.1 408"), received[:100]


@pytest.mark.parametrize("header_lines", [
    ["X-Big: " + "a" * (20 * 1024)],
    ["X-Part-%d: %s" % (i, "b" * 1800) for i in range(10)],
], ids=["one-20KiB-line", "ten-1800-byte-lines"])
def test_headers_over_16_kib_in_all_are_431(server, header_lines):
    request = get(extra="".join(line + "\r\n" for line in header_lines))
    status, headers, answer = exchange(server, request)
    assert status == 431 and "16384 bytes" in answer["error"] and headers["connection"] == "close"


def test_more_header_lines_than_the_cap_is_431(server):
    request = get(extra="".join(f"X-{i}: 1\r\n" for i in range(MAX_HEADERS + 1)))
    status, _, answer = exchange(server, request)
    assert status == 431 and f"more than {MAX_HEADERS} header lines" in answer["error"]


@pytest.mark.parametrize("bad_line", [
    "NoColonHere",                 # once ended the headers silently: the Content-Length below was lost
    "X-Name : value",              # whitespace before the colon
    "X-Name\t: value",
    " folded-continuation",        # obsolete line folding (after the Host line)
    ": no name",
    "X Name: value",
    "X-Name: a\rTransfer-Encoding: chunked",  # a lone CR: a line end to Python's header parser
    "X-Name: a\x00b",
])
def test_malformed_header_lines_are_400_and_nothing_after_them_is_ignored(server, bad_line):
    request = (f"POST /api/mnist HTTP/1.1\r\nHost: localhost\r\n{bad_line}\r\n"
               f"Content-Length: {len(PIXELS)}\r\n\r\n").encode() + PIXELS
    status, headers, answer = exchange(server, request)
    assert status == 400 and "header line" in answer["error"] and headers["connection"] == "close"
    assert answer["error"].isprintable()


@pytest.mark.parametrize("request_line", [b"GET /ping\rX HTTP/1.1", b"GET /ping\x00 HTTP/1.1"])
def test_a_request_line_with_a_cr_or_nul_inside_is_400(server, request_line):
    status, _, answer = exchange(server, request_line + b"\r\nHost: localhost\r\n\r\n")
    assert status == 400 and "request line" in answer["error"]


# -- Host and the request target ------------------------------------------------------------------
@pytest.mark.parametrize("host_lines", ["", "Host: localhost\r\nHost: localhost\r\n"], ids=["none", "two"])
def test_http_1_1_without_exactly_one_host_is_400(server, host_lines):
    status, _, answer = exchange(server, f"GET /ping HTTP/1.1\r\n{host_lines}\r\n".encode())
    assert status == 400 and "exactly one Host header" in answer["error"]


def test_http_1_0_without_host_is_still_served(server):
    assert exchange(server, get(host=None, version="HTTP/1.0"))[0] == 200


@pytest.mark.parametrize("host, status", [
    ("localhost", 200), ("localhost:8000", 200), ("LOCALHOST", 200), ("127.0.0.1", 200), ("127.0.0.1:80", 200),
    ("[::1]", 200), ("[::1]:8000", 200), ("digits.lan", 200), ("Digits.LAN:8000", 200),
    ("rebound.example", 403), ("rebound.example:8000", 403), ("localhost.rebound.example", 403),
    ("127.0.0.1.rebound.example", 403), ("digits.lan.example", 403),
])
def test_on_loopback_only_this_machines_names_and_allowed_hosts_are_answered(server, host, status):
    answer = exchange(server, get(host=host))
    assert answer[0] == status
    if status == 403:
        assert "--allow-host" in answer[2]["error"]


def test_a_server_on_a_network_address_checks_no_host():
    check = HostCheck("0.0.0.0")
    assert not check.active and check.allows("anything.example:8000")
    assert HostCheck("127.0.0.1").active and HostCheck("::1").allows("[::1]:80")


@pytest.mark.parametrize("target, host_header, status", [
    ("http://127.0.0.1:{port}/ping", "127.0.0.1", 200),
    ("http://localhost/ping?x=1", "localhost", 200),
    ("http://127.0.0.1:{port}//ping", "127.0.0.1", 200),
    ("http://rebound.example/ping", "localhost", 403),  # the target's host is the one checked
    ("http://127.0.0.1:{port}/nope", "127.0.0.1", 404),
])
def test_absolute_form_targets_are_routed_by_their_path(server, target, host_header, status):
    target = target.format(port=server.server_address[1])
    answer = exchange(server, get(path=target, host=host_header))
    assert answer[0] == status
    if status == 200:
        assert answer[2] == {"status": "Healthy"}


# -- Expect: 100-continue -------------------------------------------------------------------------
def test_100_continue_is_not_sent_for_a_body_over_the_limit(server):
    with connect(server) as sock:
        sock.sendall(b"POST /api/predict HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5242880\r\n"
                     b"Expect: 100-continue\r\n\r\n")
        status, headers, body = read_response(sock)
    assert status == 413 and "limit" in json.loads(body)["error"]


def test_100_continue_is_sent_once_the_body_is_wanted_then_the_answer(server):
    with connect(server) as sock:
        sock.sendall(f"POST /api/mnist HTTP/1.1\r\nHost: localhost\r\nContent-Length: {len(PIXELS)}\r\n"
                     f"Expect: 100-continue\r\n\r\n".encode())
        assert read_response(sock)[0] == 100
        sock.sendall(PIXELS)
        status, _, body = read_response(sock)
    assert status == 200 and len(json.loads(body)["results"]) == 10


# -- memory held by bodies ------------------------------------------------------------------------
def wait_for(condition, seconds=5.0):
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


def test_bodies_beyond_the_memory_budget_get_503_with_retry_after(server):
    length = 1024 * 1024
    head = f"POST /api/predict HTTP/1.1\r\nHost: localhost\r\nContent-Length: {length}\r\n\r\n".encode()
    with connect(server) as holder:
        holder.sendall(head + b"\x89PNG")  # and then nothing: its 1 MiB stays counted meanwhile
        wait_for(lambda: server.body_memory.held == length)
        began = time.monotonic()
        status, headers, answer = exchange(server, head)
        assert time.monotonic() - began < 0.5  # answered at once, not when the holder times out
        assert status == 503 and headers["retry-after"] == "1" and "memory budget" in answer["error"]
        # Small bodies still fit beside the one held.
        small = f"POST /api/mnist HTTP/1.1\r\nHost: localhost\r\nContent-Length: {len(PIXELS)}\r\n\r\n"
        assert exchange(server, small.encode() + PIXELS)[0] == 200
    wait_for(lambda: server.body_memory.held == 0)  # the holder timed out or left: its share is back


def test_the_memory_budget_refuses_what_does_not_fit_and_gets_back_what_was_held():
    budget = MemoryBudget(100)
    with pytest.raises(HTTPError) as raised:  # could never fit, however long the client waited
        with budget.hold(101):
            pass
    assert raised.value.status == 413 and budget.held == 0
    with budget.hold(60):
        with pytest.raises(HTTPError) as raised:  # fits once the 60 are given back
            with budget.hold(41):
                pass
        assert raised.value.status == 503 and raised.value.headers == {"Retry-After": "1"} and budget.held == 60
        with budget.hold(40):
            assert budget.held == 100
    assert budget.held == 0


def test_large_bodies_leave_an_eighth_of_the_budget_to_small_ones():
    budget = MemoryBudget(1024 * 1024)  # large bodies (over 64 KiB) may fill 896 KiB of it
    with pytest.raises(HTTPError) as raised:
        with budget.hold(900 * 1024):
            pass
    assert raised.value.status == 413
    with budget.hold(800 * 1024):
        with pytest.raises(HTTPError) as raised:
            with budget.hold(100 * 1024):
                pass
        assert raised.value.status == 503
        with budget.hold(64 * 1024), budget.hold(64 * 1024):  # small ones still fit beside it
            assert budget.held == 928 * 1024


# -- connections ----------------------------------------------------------------------------------
def png_upload(server):
    from benchmarks.hostile import digit_picture, png_bytes

    body = png_bytes(digit_picture(64))
    return (f"POST /api/predict HTTP/1.1\r\nHost: localhost\r\nContent-Type: image/png\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode("latin-1") + body


def test_an_upload_waits_at_most_a_second_for_a_decoding_slot_then_gets_503_with_retry_after(server):
    from lenet.server.model_api.routes import DECODING_WAIT_SECONDS, IMAGE_DECODING_SLOT_COUNT, IMAGE_DECODING_SLOTS

    held = [IMAGE_DECODING_SLOTS.acquire(timeout=10) for _ in range(IMAGE_DECODING_SLOT_COUNT)]  # all busy
    try:
        began = time.monotonic()
        status, headers, answer = exchange(server, png_upload(server))
        waited = time.monotonic() - began
    finally:
        for _ in held:
            IMAGE_DECODING_SLOTS.release()
    assert all(held) and status == 503 and headers["retry-after"] == "1"
    assert "decoding as many images as it allows" in answer["error"]
    assert DECODING_WAIT_SECONDS <= waited < DECODING_WAIT_SECONDS + 2
    assert exchange(server, png_upload(server))[0] == 200  # slots free again: decoded


def test_nothing_is_decoded_for_a_client_that_left_while_waiting_for_a_slot(server, monkeypatch):
    from lenet.server.model_api import routes

    decoded = []
    monkeypatch.setattr(routes, "decode_image", lambda data: decoded.append(data))
    routes.IMAGE_DECODING_SLOTS.acquire()
    routes.IMAGE_DECODING_SLOTS.acquire()
    try:
        with connect(server) as sock:
            sock.sendall(png_upload(server))
            time.sleep(0.3)  # the server has read the body and waits for a slot
        time.sleep(0.1)
    finally:
        routes.IMAGE_DECODING_SLOTS.release()
        routes.IMAGE_DECODING_SLOTS.release()
    time.sleep(0.3)
    assert decoded == []


def test_connections_over_the_cap_get_a_fast_503_with_retry_after(model):
    server = PredictionServer(model, port=0, request_timeout=5.0, log=None, max_connections=2)
    with serving_in_background(server):
        holders = [connect(server) for _ in range(2)]  # idle: each holds a connection's thread
        try:
            began = time.monotonic()
            status, headers, answer = exchange(server, get())
            assert time.monotonic() - began < 1.0
            assert status == 503 and headers["retry-after"] == "1" and "connections" in answer["error"]
            holders.pop().close()
            # Once the server has seen that one go, a new client is served again.
            deadline = time.monotonic() + 5
            while (status := exchange(server, get())[0]) != 200 and time.monotonic() < deadline:
                time.sleep(0.05)
            assert status == 200
        finally:
            for sock in holders:
                sock.close()


def process_cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@pytest.mark.skipif(not os.path.isdir("/proc/self") or not hasattr(os, "sysconf"), reason="needs Linux /proc")
def test_accept_failing_for_want_of_descriptors_does_not_spin(tmp_path, model):
    # A cap set above what the descriptor limit allows, so accept() itself fails (EMFILE).
    path = tmp_path / "model.npz"
    nn.save(model, path, metadata={"test_accuracy": 0.5, "normalization": model.normalization})

    def low_descriptor_limit():
        import resource
        resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))

    process = subprocess.Popen([sys.executable, "serve.py", "--model", str(path), "--port", "0",
                                "--max-connections", "500", "--timeout", "5"], cwd=REPO_ROOT,
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
                               text=True, preexec_fn=low_descriptor_limit)
    sockets = []
    try:
        host, port = re.search(r"http://([0-9.]+):(\d+)/", process.stdout.readline()).groups()
        for _ in range(100):
            sockets.append(socket.create_connection((host, int(port)), timeout=5))
        time.sleep(0.5)  # the server is now at its descriptor limit, connections still queued
        used_before = process_cpu_seconds(process.pid)
        time.sleep(2.0)
        cpu_share = (process_cpu_seconds(process.pid) - used_before) / 2.0
        assert cpu_share < 0.3, f"the server used {cpu_share:.0%} of a core while unable to accept"
        for sock in sockets:
            sock.close()
        sockets = []
        status = None
        deadline = time.monotonic() + 5
        while status != 200 and time.monotonic() < deadline:  # service resumes once descriptors are free
            try:
                connection = http.client.HTTPConnection(host, int(port), timeout=2)
                connection.request("GET", "/ping")
                status = connection.getresponse().status
                connection.close()
            except OSError:
                time.sleep(0.1)
        assert status == 200
    finally:
        for sock in sockets:
            sock.close()
        process.terminate()
        process.communicate(timeout=30)


# -- logging --------------------------------------------------------------------------------------
def test_a_log_that_blocks_never_blocks_requests(model):
    # Like stderr piped to a process that stopped reading: every write waits.
    unblocked, lines = threading.Event(), []

    def stuck_log(line):
        unblocked.wait()
        lines.append(line)

    server = PredictionServer(model, port=0, log=stuck_log, log_queue_size=5)
    with serving_in_background(server):
        connection = http.client.HTTPConnection(*server.server_address[:2], timeout=5)
        for _ in range(30):
            connection.request("GET", "/ping?blocked-log")
            response = connection.getresponse()
            assert response.status == 200 and json.loads(response.read()) == {"status": "Healthy"}
        connection.close()
        unblocked.set()
    assert any(re.fullmatch(r"\d+ log lines dropped: .*", line) for line in lines), lines
    dropped = sum(int(line.split()[0]) for line in lines if "log lines dropped" in line)
    logged = [line for line in lines if "blocked-log" in line]
    assert dropped + len(logged) == 30


def test_serve_py_answers_on_while_nobody_reads_its_stderr_pipe(tmp_path, model):
    # A pipe holds 64 KiB: about 1,900 log lines of /ping. Then every write to stderr waits.
    path = tmp_path / "model.npz"
    nn.save(model, path, metadata={"test_accuracy": 0.5, "normalization": model.normalization})
    process, host, port = start_serve("--model", str(path), "--port", "0")
    try:
        connection = http.client.HTTPConnection(host, port, timeout=5)
        for _ in range(3000):
            connection.request("GET", "/ping?stderr-not-read")
            response = connection.getresponse()
            assert response.status == 200 and response.read() == b'{"status":"Healthy"}'
        connection.close()
    finally:
        process.kill()
        process.communicate()


# -- serve.py -------------------------------------------------------------------------------------
def start_serve(*args):
    """``python serve.py ARGS`` in the background -> (process, host, port) once it serves."""
    process = subprocess.Popen([sys.executable, "serve.py", *args], cwd=REPO_ROOT, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
    banner = process.stdout.readline()
    found = re.search(r"http://([0-9.]+):(\d+)/", banner)
    if not found:
        process.kill()
        raise AssertionError(f"no banner: {banner!r} {process.communicate()[1]}")
    return process, found.group(1), int(found.group(2))


def children_of(pid):
    path = f"/proc/{pid}/task/{pid}/children"
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return [int(child) for child in f.read().split()]


def test_serve_py_with_two_workers_serves_on_one_port_and_stops_them_all(tmp_path, model):
    path = tmp_path / "model.npz"
    nn.save(model, path, metadata={"test_accuracy": 0.5, "normalization": model.normalization})
    process, host, port = start_serve("--model", str(path), "--port", "0", "--workers", "2",
                                      "--allow-host", "digits.lan")
    try:
        children = children_of(process.pid)
        statuses = []
        for i in range(20):
            connection = http.client.HTTPConnection(host, port, timeout=10)
            connection.request("POST", "/api/mnist", body=PIXELS, headers={"Content-Type": "application/json",
                                                                           "Host": "digits.lan:8000"})
            response = connection.getresponse()
            statuses.append((response.status, len(json.loads(response.read())["results"])))
            connection.close()
        connection = http.client.HTTPConnection(host, port, timeout=10)
        connection.request("GET", "/ping", headers={"Host": "rebound.example"})
        refused = connection.getresponse().status
        connection.close()
        process.send_signal(signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert statuses == [(200, 10)] * 20 and refused == 403
    assert process.returncode == 0 and "Stopped." in stdout and "Traceback" not in stderr
    assert len(re.findall(r"127\.0\.0\.1 POST /api/mnist 200 \d+\.\d ms", stderr)) == 20
    if children is not None:  # the workers (and multiprocessing's resource tracker) end with it
        assert len(children) >= 2
        wait_for(lambda: not any(alive(child) for child in children))


def worker_pids(pid):
    """The worker processes of serve.py ``pid`` (not multiprocessing's resource tracker)."""
    workers = []
    for child in children_of(pid) or []:
        with open(f"/proc/{child}/cmdline", "rb") as f:
            if b"resource_tracker" not in f.read():
                workers.append(child)
    return workers


def mnist_statuses(host, port, count=20):
    statuses = []
    for _ in range(count):
        connection = http.client.HTTPConnection(host, port, timeout=10)
        try:
            connection.request("POST", "/api/mnist", body=PIXELS, headers={"Content-Type": "application/json"})
            statuses.append(connection.getresponse().status)
        except OSError as exc:
            statuses.append(type(exc).__name__)
        finally:
            connection.close()
    return statuses


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_a_killed_worker_is_replaced_and_a_killed_parent_takes_its_workers_with_it(tmp_path, model):
    path = tmp_path / "model.npz"
    nn.save(model, path, metadata={"test_accuracy": 0.5, "normalization": model.normalization})
    process, host, port = start_serve("--model", str(path), "--port", "0", "--workers", "2")
    try:
        first, second = worker_pids(process.pid)
        os.kill(first, signal.SIGKILL)
        time.sleep(5)
        assert mnist_statuses(host, port) == [200] * 20  # the other worker served meanwhile
        wait_for(lambda: len(worker_pids(process.pid)) == 2, seconds=60)
        replacement = (set(worker_pids(process.pid)) - {second}).pop()
        os.kill(process.pid, signal.SIGKILL)
        time.sleep(5)
        assert not any(alive(pid) for pid in (second, replacement))
        with socket.socket() as rebound:  # the port is free: no orphan holds it
            rebound.bind((host, port))
    finally:
        if process.poll() is None:
            process.kill()
        stderr = process.communicate()[1]
    assert re.search(rf"worker lenet5-worker-\d \(pid {first}\) exited with status -9 .*starting another", stderr)


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_serve_py_says_in_one_line_that_the_port_is_in_use_and_suggests_port():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run([sys.executable, "serve.py", "--port", str(port)], cwd=REPO_ROOT,
                                capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert result.returncode == 1 and result.stderr.strip().count("\n") == 0
    assert "already in use" in result.stderr and "--port" in result.stderr


def test_bind_errors_on_privileged_ports_say_so_and_suggest_port(monkeypatch):
    # Tested on the message alone: as root (as CI often runs), binding port 80 would succeed.
    monkeypatch.syspath_prepend(REPO_ROOT)
    from serve import bind_error
    message = bind_error("0.0.0.0", 80, OSError(errno.EACCES, "Permission denied"))
    assert "below 1024" in message and "--port" in message and "\n" not in message
    assert bind_error("127.0.0.1", 9000, OSError(errno.EACCES, "Permission denied")).endswith("Permission denied")


def test_serve_py_help_shows_every_flags_default():
    result = subprocess.run([sys.executable, "serve.py", "--help"], cwd=REPO_ROOT, capture_output=True, text=True,
                            timeout=60, stdin=subprocess.DEVNULL)
    options = re.split(r"\n  (?=-)", result.stdout.split("options:", 1)[1])[1:]
    flags = [option.split()[0] for option in options]
    assert {"--model", "--host", "--port", "--workers", "--timeout", "--max-connections", "--body-memory",
            "--allow-host"} <= set(flags)
    for option in options:
        if not option.startswith("-h"):
            assert "(default:" in " ".join(option.split()), option
