"""nn.ops.parallel: the measured choice between a kernel's serial and parallel drivers.

The choice logic is driven here by a fake clock (each fake kernel advances it by a chosen time),
so nothing depends on the machine's load. The real kernels are checked for identical bits under
every policy, including the adaptive one flipping between ways in the middle of training.
"""

import threading

import numpy as np
import pytest

import nn
from lenet.model import LeNet5
from nn.ops import parallel

pytest.importorskip("numba")


@pytest.fixture
def fresh(monkeypatch):
    """An empty table of measurements and the adaptive policy, restored afterwards."""
    monkeypatch.setattr(parallel, "_choices", {})
    monkeypatch.setattr(parallel, "_kernel_seconds", 0.0)
    previous = parallel.set_policy("adaptive")
    yield
    parallel.set_policy(previous)


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def perf_counter(self):
        return self.now


@pytest.fixture
def clock(monkeypatch, fresh):
    fake = FakeClock()
    monkeypatch.setattr(parallel.time, "perf_counter", fake.perf_counter)
    monkeypatch.setattr(parallel.numba, "get_num_threads", lambda: 2)
    return fake


def kernels(clock, serial_seconds, parallel_seconds):
    """A fake (serial, parallel) pair taking the given (fake) seconds; ``ways`` logs which ran."""
    ways = []

    def serial():
        ways.append("serial")
        clock.now += serial_seconds

    def parallel_():
        ways.append("parallel")
        clock.now += parallel_seconds
    return serial, parallel_, ways


def launch(serial, parallel_, times, work=1_000_000):
    for _ in range(times):
        parallel.drive(serial, parallel_, 64, work)


@pytest.mark.parametrize("serial_seconds, parallel_seconds, winner", [
    (2e-3, 1e-3, "parallel"),   # a quiet machine: two cores share the work
    (1e-3, 50e-3, "serial"),    # busy cores: every parallel launch waits for a time slice
])
def test_adaptive_runs_the_way_measured_faster(clock, serial_seconds, parallel_seconds, winner):
    serial, parallel_, ways = kernels(clock, serial_seconds, parallel_seconds)
    launch(serial, parallel_, 4)
    # Warm-up and one timing of each way, serial first.
    assert ways == ["serial", "serial", "parallel", "parallel"]
    launch(serial, parallel_, 12000)
    later = ways[4:]
    assert later.count(winner) > 0.95 * len(later)
    assert len(set(later)) == 2  # the other way is still probed now and then


@pytest.mark.parametrize("serial_seconds, parallel_seconds, launches, probes", [
    (2e-3, 1e-3, 2000, 2000 * parallel.PROBE_BUDGET / 2),  # a serial probe costs 2 launches: every 200
    (1e-3, 50e-3, 20000, 20000 * parallel.PROBE_BUDGET / 50),  # a parallel one costs 50: every 5,000
    # Costing 500 launches, every 50,000 launches by the budget, but every PROBE_SECONDS_MAX at the latest.
    (1e-3, 500e-3, 20000, 20000 * 1e-3 / parallel.PROBE_SECONDS_MAX),
])
def test_probes_are_rarer_the_more_the_slower_way_costs(clock, serial_seconds, parallel_seconds, launches, probes):
    serial, parallel_, ways = kernels(clock, serial_seconds, parallel_seconds)
    launch(serial, parallel_, 4 + launches)
    slower = "serial" if parallel_seconds < serial_seconds else "parallel"
    assert ways[4:].count(slower) == pytest.approx(probes, abs=1)


def test_a_pause_between_launches_does_not_bring_the_next_probe_closer(clock):
    serial, parallel_, ways = kernels(clock, 1e-3, 500e-3)  # probes every PROBE_SECONDS_MAX of kernel time
    launch(serial, parallel_, 4 + 100)
    for _ in range(50):
        clock.now += 2 * parallel.PROBE_SECONDS_MAX  # the program does something else
        launch(serial, parallel_, 1)
    assert ways[4:] == ["serial"] * 150


def test_the_choice_follows_the_machine_from_quiet_to_busy_and_back(clock):
    timing = {"parallel": 1e-3}
    ways = []

    def serial():
        ways.append("serial")
        clock.now += 2e-3

    def parallel_():
        ways.append("parallel")
        clock.now += timing["parallel"]
    launch(serial, parallel_, 200)
    assert ways[-1] == "parallel"
    timing["parallel"] = 50e-3  # another program takes a core: no probe needed, the mean rises
    start = len(ways)
    launch(serial, parallel_, 10)
    assert ways[start:].count("parallel") <= 3 and ways[-1] == "serial"
    timing["parallel"] = 1e-3  # quiet again: noticed at the next probe
    start = len(ways)
    launch(serial, parallel_, int(parallel.PROBE_SECONDS_MAX / 2e-3) + 10)
    assert ways[-1] == "parallel"


def test_a_lucky_probe_on_busy_cores_is_undone_by_the_next_launch(clock):
    choice = parallel.LaunchChoice()
    for way, seconds in ((False, 1.0), (False, 1.0), (True, 50.0), (True, 50.0)):
        assert choice.next_way(now=0.0) == way
        choice.record(way, seconds, now=0.0)
    assert choice.preferred() is False
    choice.record(True, 0.5, now=0.0)  # a probe that found the other thread running
    assert choice.preferred() is True
    choice.record(True, 50.0, now=0.0)
    assert choice.preferred() is False


def test_the_first_launch_of_each_way_is_not_measured():
    choice = parallel.LaunchChoice()
    choice.record(False, 1000.0, now=0.0)  # compiling or loading the kernel
    assert choice.seconds[False] is None
    choice.record(False, 1.0, now=0.0)
    assert choice.seconds[False] == 1.0


@pytest.mark.parametrize("policy, expected", [("serial", {"serial"}), ("parallel", {"parallel"})])
def test_fixed_policies_never_measure(clock, policy, expected):
    serial, parallel_, ways = kernels(clock, 1e-3, 50e-3)
    parallel.set_policy(policy)
    launch(serial, parallel_, 20)
    assert set(ways) == expected and parallel._choices == {}


def test_small_jobs_and_one_thread_always_run_serially(clock, monkeypatch):
    serial, parallel_, ways = kernels(clock, 2e-3, 1e-3)
    launch(serial, parallel_, 5, work=parallel.PARALLEL_MIN_WORK - 1)
    parallel.drive(serial, parallel_, 1, 10 ** 9)
    monkeypatch.setattr(parallel.numba, "get_num_threads", lambda: 1)
    parallel.set_policy("parallel")
    launch(serial, parallel_, 5)
    assert ways == ["serial"] * 11 and parallel._choices == {}


def test_a_launch_while_another_thread_holds_the_pool_runs_serially(fresh, monkeypatch):
    monkeypatch.setattr(parallel.numba, "get_num_threads", lambda: 2)
    seen = []

    def serial():
        seen.append((threading.current_thread().name, "serial"))

    def inner_parallel():
        seen.append((threading.current_thread().name, "parallel"))

    def outer_parallel():
        # The pool is taken: a launch from another thread must neither nest nor wait.
        other = threading.Thread(target=parallel.drive, args=(serial, inner_parallel, 64, 10 ** 9), name="other")
        other.start()
        other.join(timeout=10)
        assert not other.is_alive()

    parallel.set_policy("parallel")
    parallel.drive(serial, outer_parallel, 64, 10 ** 9)
    assert seen == [("other", "serial")]
    parallel.drive(serial, inner_parallel, 64, 10 ** 9)  # the pool is free again
    assert seen[-1] == (threading.current_thread().name, "parallel")


def train_lenet5(steps, seed=3):
    """LeNet5's weights after ``steps`` SGD steps at batch 64 on the numba backend."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((64, 1, 28, 28)).astype(np.float32)
    labels = rng.integers(0, 10, 64)
    model = LeNet5(seed=seed)
    criterion = nn.CrossEntropyLoss()
    optimizer = nn.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, nesterov=True, weight_decay=5e-4)
    with nn.use_backend("numba"):
        for _ in range(steps):
            criterion(model(x), labels)
            optimizer.zero_grad()
            model.backward(criterion.backward(), need_input_grad=False)
            optimizer.step()
    return [p.data.copy() for p in model.parameters()]


def test_training_gives_the_same_bits_under_every_policy(fresh):
    import numba
    if numba.get_num_threads() < 2:
        pytest.skip("one numba thread: every kernel is serial")
    weights = {}
    for policy in ("serial", "parallel", "adaptive"):
        parallel.set_policy(policy)
        weights[policy] = train_lenet5(steps=6)
    # The adaptive run switched ways between steps: its first launches of each kernel measure both.
    assert parallel._choices and all(None not in c.seconds.values() for c in parallel._choices.values())
    for policy in ("parallel", "adaptive"):
        for got, want in zip(weights[policy], weights["serial"]):
            np.testing.assert_array_equal(got, want)


def test_busy_cores_message_says_so_only_when_most_kernels_run_serially(clock):
    assert parallel.busy_cores_message() is None  # nothing measured yet
    fast_pool = [kernels(clock, 2e-3, 1e-3) for _ in range(2)]
    slow_pool = [kernels(clock, 1e-3, 50e-3) for _ in range(2)]
    for serial, parallel_, _ in fast_pool + slow_pool[:1]:
        launch(serial, parallel_, 10)
    assert parallel.busy_cores_message() is None  # 1 of 3 serial
    launch(*slow_pool[1][:2], 10)
    assert parallel.busy_cores_message() is None  # 2 of 4: not most
    launch(*kernels(clock, 1e-3, 30e-3)[:2], 10)
    message = parallel.busy_cores_message()
    assert "the cores look busy" in message and "3 of 5 parallel kernels run on one thread" in message
    assert "50.0x slower" in message  # the median slowdown of the three


def test_an_unknown_policy_is_refused_by_name(fresh):
    with pytest.raises(ValueError, match="adaptive, parallel, serial, got 'fast'"):
        parallel.set_policy("fast")
    assert parallel.get_policy() == "adaptive"


def test_the_first_large_launch_compiles_both_drivers_for_its_argument_types(fresh, monkeypatch):
    import numba
    monkeypatch.setattr(parallel.numba, "get_num_threads", lambda: 2)
    compiled = []

    class Driver:
        def __init__(self, name):
            self.name = name

        def compile(self, signature):
            compiled.append((self.name, signature))

        def __call__(self, *args):
            pass

    x = np.zeros((4, 3), dtype=np.float32)
    serial, parallel_ = Driver("serial"), Driver("parallel")
    for _ in range(3):
        parallel.drive(serial, parallel_, 64, 10 ** 6, x, 2)
    signature = (numba.typeof(x), numba.typeof(2))
    assert compiled == [("serial", signature), ("parallel", signature)]  # once, for the first launch only


def test_one_slow_launch_on_a_quiet_machine_does_not_move_the_kernel_off_the_pool():
    choice = parallel.LaunchChoice()
    for way, seconds in ((True, 0.5), (False, 1.0), (True, 0.5), (False, 1.0)):  # warm-ups, then one of each
        choice.record(way, seconds, now=0.0)
    for _ in range(5):
        choice.record(True, 0.5, now=0.0)
    choice.record(True, 100.0, now=0.0)  # an interrupt or a page fault in one launch
    assert choice.preferred() is True
    for _ in range(2):
        choice.record(True, 100.0, now=0.0)  # every launch slow: the cores are taken
    assert choice.preferred() is False


@pytest.mark.parametrize("serial_seconds,chosen", [(0.9, True), (0.8, False)])
def test_the_pool_stays_unless_one_thread_is_clearly_faster(serial_seconds, chosen):
    choice = parallel.LaunchChoice()
    for way, seconds in ((True, 1.0), (False, serial_seconds), (True, 1.0), (False, serial_seconds)):
        choice.record(way, seconds, now=0.0)
    assert choice.preferred() is chosen
