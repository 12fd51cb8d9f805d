"""The CPU gate: one hook computation at a time per process, first come first served."""

from __future__ import annotations

import threading
import time

from cds_hooks.hooks.gate import CpuGate


def _wait_until(condition, seconds=5.0):
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


def test_one_at_a_time_in_arrival_order():
    gate = CpuGate()
    order: list[int] = []
    inside = []
    gate.acquire()  # the gate is busy; threads queue in the order they arrive

    def work(n: int) -> None:
        with gate:
            inside.append(n)
            assert len(inside) == 1
            order.append(n)
            inside.remove(n)

    threads = []
    for n in range(6):
        thread = threading.Thread(target=work, args=(n,))
        thread.start()
        threads.append(thread)
        _wait_until(lambda n=n: len(gate._waiting) == n + 1)
    gate.release()
    for thread in threads:
        thread.join(timeout=5)
    assert order == list(range(6))


def test_a_wait_outside_the_gate_lets_the_next_call_compute():
    gate = CpuGate()
    fetched = threading.Event()
    other_ran = threading.Event()

    def slow_fetch() -> str:
        assert other_ran.wait(timeout=5)  # only possible if the gate was left
        fetched.set()
        return "data"

    fetch = gate.outside(slow_fetch)

    def first() -> None:
        with gate:
            assert fetch() == "data"
            assert gate.held

    def second() -> None:
        with gate:
            other_ran.set()

    a = threading.Thread(target=first)
    a.start()
    _wait_until(lambda: gate._free == 1 or other_ran.is_set() or gate._waiting)
    b = threading.Thread(target=second)
    b.start()
    a.join(timeout=5)
    b.join(timeout=5)
    assert fetched.is_set() and other_ran.is_set()
    assert gate._free == 1 and not gate._waiting


def test_outside_without_the_gate_just_calls():
    gate = CpuGate()
    assert gate.outside(lambda x: x + 1)(1) == 2
    assert gate._free == 1


def test_an_exception_frees_the_gate():
    gate = CpuGate()
    try:
        with gate:
            raise ValueError("boom")
    except ValueError:
        pass
    assert gate._free == 1 and not gate.held
