"""Acceptance-size attacks on the server's limits, run by hand (not collected by pytest): loopback, Linux.

    python -m benchmarks.attack_server [--attack drip headers bodies slow] [--seconds 30]

Each attack starts its own ``python serve.py`` on a free loopback port, measures the server
process's memory (RSS) and CPU and, every 0.25 s throughout, the latency of a normal client
(a new connection, one ``POST /api/mnist``), then stops the server. Bounded in connections
and time; prints its figures and exits 1 if an acceptance bound was missed:

    drip     1,000 connections sending their head one byte every 2 s: all closed by the server
             within its head deadline (10 s), RSS growth < 100 MB, the normal client answered < 1 s.
    headers  200 connections each trying to send ~6 MB of header lines, 64 KiB every 0.5 s:
             refused (431) or closed early, RSS growth < 100 MB.
    bodies   500 connections each declaring a 4 MiB inference body and sending 64 KiB a second
             for 20 s: those past the body memory budget (64 MiB) refused 503 at once, RSS growth
             < 100 MB, the normal client answered < 1 s.
    cost     each small hostile request of benchmarks/hostile.py (progressive JPEG bombs, gzip member
             floods, echoed ids, JSON container floods, strips of pixels, PNG chunk floods...) alone:
             refused or served for <= 0.25 s of server CPU and <= 150 MB more resident memory, a
             normal client answered < 1 s right after; ordinary photos up to 4096x4096 still read.
    flood    8 senders repeating the cheapest hostile request: a normal client's p99 < 100 ms.
    slow     the server under ``ulimit -n 1024``; 1,100 connections holding half a head (each
             reconnecting at most once a second when closed): the normal client gets 200 or a
             fast 503 (< 1 s), never a hang; the server's CPU < 30%; full service < 1 s after.
"""

import argparse
import http.client
import json
import os
import re
import resource
import selectors
import socket
import subprocess
import sys
import threading
import time

from benchmarks import hostile

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PIXELS = json.dumps([255] * 784).encode()
HEAD_DEADLINE = 10.0  # serve.py's default --timeout


def start_server(descriptor_limit=None):
    """``python serve.py --port 0`` (log to /dev/null) -> (process, port), once it serves."""
    def limit_descriptors():
        if descriptor_limit is not None:
            resource.setrlimit(resource.RLIMIT_NOFILE, (descriptor_limit, descriptor_limit))

    process = subprocess.Popen([sys.executable, "serve.py", "--port", "0"], cwd=REPO_ROOT, stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, text=True,
                               preexec_fn=limit_descriptors)
    found = re.search(r"http://127\.0\.0\.1:(\d+)/", process.stdout.readline())
    if not found:
        process.kill()
        raise SystemExit("the server did not start")
    return process, int(found.group(1))


def stop_server(process):
    process.terminate()
    try:
        process.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()


class Monitor(threading.Thread):
    """Samples the server's RSS and CPU time, and a normal client's latency, every ``interval`` s."""

    def __init__(self, pid, port, interval=0.25):
        super().__init__(daemon=True)
        self.pid, self.port, self.interval = pid, port, interval
        self.stopping = threading.Event()
        self.rss_mb, self.cpu, self.answers = [], [], []  # answers: (time, status or error, seconds)

    def run(self):
        while not self.stopping.is_set():
            began = time.monotonic()
            self.rss_mb.append(rss_mb(self.pid))
            self.cpu.append((began, cpu_seconds(self.pid)))
            self.answers.append((began, *normal_request(self.port)))
            self.stopping.wait(max(0.0, self.interval - (time.monotonic() - began)))

    def stop(self):
        self.stopping.set()
        self.join()

    def cpu_share(self, since, until):
        """The server's CPU use between two times, as a share of one core."""
        window = [(t, c) for t, c in self.cpu if since <= t <= until]
        if len(window) < 2:
            return float("nan")
        return (window[-1][1] - window[0][1]) / (window[-1][0] - window[0][0])

    def worst_answer(self):
        """(slowest seconds, statuses seen, count of failures: errors or answers over 1 s)."""
        statuses = sorted({str(status) for _, status, _ in self.answers})
        failures = sum(1 for _, status, seconds in self.answers if status not in (200, 503) or seconds >= 1.0)
        return max(seconds for _, _, seconds in self.answers), statuses, failures


def rss_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        return int(re.search(r"VmRSS:\s+(\d+) kB", f.read()).group(1)) / 1024


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def normal_request(port):
    """One POST /api/mnist on a new connection -> (status or error name, seconds)."""
    began = time.monotonic()
    try:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        connection.request("POST", "/api/mnist", PIXELS, {"Content-Type": "application/json"})
        response = connection.getresponse()
        response.read()
        connection.close()
        return response.status, time.monotonic() - began
    except (OSError, http.client.HTTPException) as exc:
        return type(exc).__name__, time.monotonic() - began


def finish(process, monitor, sockets):
    """Close the attack's sockets, stop measuring and the server -> (peak RSS MB, monitor.worst_answer())."""
    peak = max(monitor.rss_mb)
    for sock in sockets:
        sock.close()
    monitor.stop()
    stop_server(process)
    return peak, monitor.worst_answer()


def closed_by_server(sock):
    """Whether a readable socket was closed by the server (reading and dropping its answer)."""
    try:
        return not sock.recv(65536) or False
    except (ConnectionResetError, BrokenPipeError):
        return True
    except BlockingIOError:
        return False


def attack_drip(count=1000, interval=2.0):
    process, port = start_server()
    monitor = Monitor(process.pid, port)
    monitor.start()
    time.sleep(1.0)
    baseline = rss_mb(process.pid)
    selector = selectors.DefaultSelector()
    opened = {}
    for _ in range(count):
        sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        sock.sendall(b"GET /ping HTTP/1.1\r\nHost: localhost\r\nX-Drip: ")
        sock.setblocking(False)
        selector.register(sock, selectors.EVENT_READ)
        opened[sock] = time.monotonic()
    closed_after, next_drip = [], time.monotonic() + interval
    bound = time.monotonic() + HEAD_DEADLINE + 3 * interval + 5
    while opened and time.monotonic() < bound:
        for key, _ in selector.select(timeout=0.1):
            sock = key.fileobj
            if closed_by_server(sock):
                closed_after.append(time.monotonic() - opened.pop(sock))
                selector.unregister(sock)
                sock.close()
        if time.monotonic() >= next_drip:
            next_drip += interval
            for sock in list(opened):
                try:
                    sock.send(b"a")
                except OSError:
                    pass  # closed: the selector reports it
    peak, (slowest, statuses, failures) = finish(process, monitor, opened)
    figures = {
        "connections": count, "closed by the server": len(closed_after),
        "latest close (s after opening)": round(max(closed_after, default=float("nan")), 2),
        "RSS baseline MB": round(baseline, 1), "RSS growth MB": round(peak - baseline, 1),
        "normal client: slowest s": round(slowest, 3), "normal client: statuses": statuses,
        "normal client: failures": failures,
    }
    passed = (len(closed_after) == count and max(closed_after) < HEAD_DEADLINE + 1.5 * interval
              and peak - baseline < 100 and failures == 0)
    return figures, passed


def attack_headers(count=200, total=6 * 1024 * 1024, chunk=64 * 1024, interval=0.5):
    process, port = start_server()
    monitor = Monitor(process.pid, port)
    monitor.start()
    time.sleep(1.0)
    baseline = rss_mb(process.pid)
    line = b"X-Flood: " + b"a" * 8183 + b"\r\n"  # 8 KiB header lines
    payload = b"GET /ping HTTP/1.1\r\nHost: localhost\r\n" + line * (total // len(line))
    sockets = []
    for _ in range(count):
        sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        sock.setblocking(False)
        sockets.append(sock)
    sent, answers, ended = [0] * count, [b""] * count, [None] * count
    began = time.monotonic()
    bound = began + total / chunk * interval + 10
    while any(e is None for e in ended) and time.monotonic() < bound:
        for i, sock in enumerate(sockets):
            if ended[i] is not None:
                continue
            try:
                data = sock.recv(65536)
                if not data:
                    ended[i] = time.monotonic() - began
                answers[i] += data
            except BlockingIOError:
                pass
            except OSError:
                ended[i] = time.monotonic() - began
                continue
            if ended[i] is None and sent[i] < len(payload):
                try:
                    sent[i] += sock.send(payload[sent[i]:sent[i] + chunk])
                except BlockingIOError:
                    pass
                except OSError:
                    ended[i] = time.monotonic() - began
        time.sleep(interval)
    peak, (slowest, statuses, failures) = finish(process, monitor, sockets)
    refused = sum(1 for answer in answers if answer.startswith(b"HTTP/1.1 431"))
    closed = [e for e in ended if e is not None]
    figures = {
        "connections": count, "answered 431": refused, "closed by the server": len(closed),
        "latest close (s)": round(max(closed, default=float("nan")), 2),
        "most bytes sent by one before its close (KiB)": max(sent) // 1024,
        "RSS baseline MB": round(baseline, 1), "RSS growth MB": round(peak - baseline, 1),
        "normal client: slowest s": round(slowest, 3), "normal client: statuses": statuses,
        "normal client: failures": failures,
    }
    passed = len(closed) == count and peak - baseline < 100 and max(sent) < len(payload)
    return figures, passed


def attack_bodies(count=500, length=4 * 1024 * 1024, chunk=64 * 1024, interval=1.0, seconds=20.0):
    process, port = start_server()
    monitor = Monitor(process.pid, port)
    monitor.start()
    time.sleep(1.0)
    baseline = rss_mb(process.pid)
    head = (f"POST /v2/models/lenet5/infer HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
            f"Content-Length: {length}\r\n\r\n").encode()
    sockets = []
    for _ in range(count):
        sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        sock.sendall(head)
        sock.setblocking(False)
        sockets.append(sock)
    answers, began = [b""] * count, time.monotonic()
    while time.monotonic() - began < seconds:
        for i, sock in enumerate(sockets):
            try:
                answers[i] += sock.recv(65536)
            except BlockingIOError:
                pass
            except OSError:
                continue
            if not answers[i]:
                try:
                    sock.send(b" " * chunk)  # valid JSON whitespace, 64 KiB a second: 64 s for the body
                except OSError:
                    pass
        time.sleep(interval)
    peak, (slowest, statuses, failures) = finish(process, monitor, sockets)
    refused = sum(1 for answer in answers if answer.startswith(b"HTTP/1.1 503"))
    figures = {
        "connections": count, "body declared (MiB)": length / 2 ** 20, "seconds": seconds,
        "refused 503 at once": refused, "still being read": sum(1 for answer in answers if not answer),
        "RSS baseline MB": round(baseline, 1), "RSS growth MB": round(peak - baseline, 1),
        "normal client: slowest s": round(slowest, 3), "normal client: statuses": statuses,
        "normal client: failures": failures,
    }
    passed = peak - baseline < 100 and failures == 0
    return figures, passed


def attack_slow(count=1100, seconds=30.0, descriptor_limit=1024):
    process, port = start_server(descriptor_limit)
    monitor = Monitor(process.pid, port)
    monitor.start()
    time.sleep(1.0)
    baseline = rss_mb(process.pid)
    slots = [None] * count           # the socket each slot holds, or None
    next_try = [0.0] * count         # a slot reconnects at most once a second
    refused_503 = 0
    began = time.monotonic()
    while time.monotonic() - began < seconds:
        now = time.monotonic()
        for i in range(count):
            sock = slots[i]
            if sock is not None:
                try:
                    data = sock.recv(65536)
                except BlockingIOError:
                    continue
                except OSError:
                    data = b""
                refused_503 += data.startswith(b"HTTP/1.1 503")
                sock.close()
                slots[i] = None
            if now >= next_try[i]:
                next_try[i] = now + 1.0
                try:
                    sock = socket.create_connection(("127.0.0.1", port), timeout=2)
                    sock.sendall(b"GET /ping HTTP/1.1\r\nHost: localhost\r\n")  # half a head, then nothing
                    sock.setblocking(False)
                    slots[i] = sock
                except OSError:
                    pass
        time.sleep(0.05)
    attack_end = time.monotonic()
    cpu_share = monitor.cpu_share(began + 2, attack_end)
    peak = max(monitor.rss_mb)
    held = sum(sock is not None for sock in slots)
    for sock in slots:
        if sock is not None:
            sock.close()
    recovered_after = None
    while recovered_after is None and time.monotonic() - attack_end < 10:
        status, _ = normal_request(port)
        if status == 200:
            recovered_after = time.monotonic() - attack_end
    during = [a for a in monitor.answers if began <= a[0] <= attack_end]
    monitor.stop()
    stop_server(process)
    statuses = sorted({str(status) for _, status, _ in during})
    slowest = max(s for _, _, s in during)
    hangs = sum(1 for _, status, s in during if status not in (200, 503) or s >= 1.0)
    figures = {
        "descriptor limit": descriptor_limit, "connections attempted at once": count,
        "attacker sockets open at the end": held, "503s seen by the attacker": refused_503,
        "normal client during: statuses": statuses, "slowest s": round(slowest, 3), "hangs or > 1 s": hangs,
        "server CPU share during": round(cpu_share, 3), "RSS growth MB": round(peak - baseline, 1),
        "full service after the attack (s)": None if recovered_after is None else round(recovered_after, 3),
    }
    passed = hangs == 0 and cpu_share < 0.3 and recovered_after is not None and recovered_after < 1.0
    return figures, passed


def attack_cost(cpu_budget=0.25, memory_budget=150.0):
    """Each request of ``hostile.HOSTILE`` alone: the server's CPU and peak RSS growth around it, then a
    normal client. Ordinary photos (``hostile.normal_photos()``) must still be answered 200."""
    process, port = start_server()
    figures, passed = {}, True
    try:
        for name, build in hostile.HOSTILE.items():
            status, _, cpu, memory = hostile.request_cost(process.pid, port, build())
            normal_status, normal_seconds = normal_request(port)
            ok = cpu <= cpu_budget and memory <= memory_budget and normal_status == 200 and normal_seconds < 1.0
            passed &= ok
            figures[f"{name} ({len(build()[2])} B)"] = (f"{status}, {cpu:.2f} s CPU, +{memory:.0f} MB, normal client "
                                                       f"{normal_status} in {normal_seconds * 1000:.0f} ms"
                                                       + ("" if ok else "  <-- over"))
        for name, (content_type, data) in hostile.normal_photos().items():
            status, _, cpu, memory = hostile.request_cost(process.pid, port, (hostile.PREDICT,
                                                          {"Content-Type": content_type}, data), settle=0.05)
            passed &= status == 200
            figures[f"photo {name} ({len(data)} B)"] = f"{status}, {cpu:.2f} s CPU, +{memory:.0f} MB"
    finally:
        stop_server(process)
    return figures, passed


def attack_flood(senders=8, seconds=10.0, request=None):
    """``senders`` connections repeating the cheapest hostile request (1 kB of gzip that inflates to 1 MiB
    of ``[],``) as fast as they are answered, while a normal client measures its latency: p99 < 100 ms."""
    path, headers, body = request or hostile.hostile_empty_arrays(hostile.PREDICT)
    process, port = start_server()
    stop = threading.Event()
    sent = [0] * senders

    def send_repeatedly(index):
        while not stop.is_set():
            try:
                hostile.send(port, path, headers, body, timeout=10)
                sent[index] += 1
            except (OSError, http.client.HTTPException):
                pass

    threads = [threading.Thread(target=send_repeatedly, args=(i,), daemon=True) for i in range(senders)]
    try:
        for thread in threads:
            thread.start()
        time.sleep(0.5)
        cpu_before, began = cpu_seconds(process.pid), time.monotonic()
        latencies, statuses = [], set()
        while time.monotonic() - began < seconds:
            status, elapsed = normal_request(port)
            statuses.add(status)
            latencies.append(elapsed)
            time.sleep(0.01)
        cpu = cpu_seconds(process.pid) - cpu_before
        stop.set()
        for thread in threads:
            thread.join(15)
    finally:
        stop.set()
        stop_server(process)
    latencies.sort()
    p50, p99 = latencies[len(latencies) // 2], latencies[int(len(latencies) * 0.99)]
    figures = {"hostile requests answered": sum(sent), "server CPU (share of a core)": round(cpu / seconds, 2),
               "normal requests": len(latencies), "normal statuses": sorted(map(str, statuses)),
               "normal p50 (ms)": round(p50 * 1000, 1), "normal p99 (ms)": round(p99 * 1000, 1)}
    return figures, statuses == {200} and p99 < 0.1


ATTACKS = {"drip": attack_drip, "headers": attack_headers, "bodies": attack_bodies, "slow": attack_slow,
           "cost": attack_cost, "flood": attack_flood}


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m benchmarks.attack_server", description=__doc__.split("\n\n")[0])
    parser.add_argument("--attack", nargs="+", choices=list(ATTACKS), default=list(ATTACKS),
                        help="which attacks to run (default: all)")
    parser.add_argument("--seconds", type=float, default=30.0, help="length of the slow attack (default: 30)")
    args = parser.parse_args(argv)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 2500 <= hard:  # this process needs a descriptor per attacking connection
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    all_passed = True
    for name in args.attack:
        attack = ATTACKS[name]
        figures, passed = attack(seconds=args.seconds) if name == "slow" else attack()
        all_passed &= passed
        print(f"{name}: {'PASS' if passed else 'FAIL'}")
        for key, value in figures.items():
            print(f"  {key:45} {value}")
        sys.stdout.flush()
    return 0 if all_passed else 1


if __name__ == "__main__":
    sys.exit(main())
