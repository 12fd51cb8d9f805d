"""One hook computation at a time per process, in arrival order.

The pipeline is CPU-bound Python: threads of one process cannot compute in parallel (the
GIL), and when they try, each call is slowed by all the others and the slowest wait for
whoever the interpreter switches to. The gate lets one call compute at a time, first come
first served, while the other threads keep doing what needs no CPU: reading slow clients'
requests, writing answers, waiting on the EHR's FHIR server (a fetch leaves the gate and
queues again after it).
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

T = TypeVar("T")


class CpuGate:
    """A first-come-first-served gate with `slots` places (1: one computation at a time)."""

    def __init__(self, slots: int = 1):
        self._lock = threading.Lock()
        self._free = slots
        self._waiting: deque[threading.Event] = deque()
        self._local = threading.local()

    def __enter__(self) -> CpuGate:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def acquire(self) -> None:
        with self._lock:
            if self._free and not self._waiting:
                self._free -= 1
                self._local.held = True
                return
            turn = threading.Event()
            self._waiting.append(turn)
        turn.wait()  # release() hands its slot to us
        self._local.held = True

    def release(self) -> None:
        self._local.held = False
        with self._lock:
            if self._waiting:
                self._waiting.popleft().set()
            else:
                self._free += 1

    @property
    def held(self) -> bool:
        """Whether the calling thread holds a slot."""
        return getattr(self._local, "held", False)

    @contextmanager
    def left(self) -> Iterator[None]:
        """Leave the gate for a wait (I/O), queue again afterwards; nothing if not held."""
        if not self.held:
            yield
            return
        self.release()
        try:
            yield
        finally:
            self.acquire()

    def outside(self, function: Callable[..., T]) -> Callable[..., T]:
        """`function`, called outside the gate."""

        def call(*args: Any, **kwargs: Any) -> T:
            with self.left():
                return function(*args, **kwargs)

        return call
