"""Database engines that a slow, frozen or vanished database cannot hold for long.

Three bounds apply to every engine the service opens:

- opening a connection: the driver's connect timeout (PostgreSQL: libpq's
  ``connect_timeout``, which covers the TCP connect and the start-up exchange);
- a statement: PostgreSQL's ``statement_timeout`` and
  ``idle_in_transaction_session_timeout``, enforced by the server; SQLite's busy timeout
  bounds the wait for another process's write lock;
- one use of a connection, from checkout to checkin (ping, statements, commit): a
  client-side deadline. A server that accepts bytes and never answers (a stopped process,
  a network that drops packets without a reset) defeats every server-side timeout and,
  while the kernel still acknowledges, TCP keepalives too. When the deadline passes, the
  watchdog shuts the connection's socket down (PostgreSQL) or interrupts the statement
  (SQLite); the driver raises, the pool discards the connection, and the caller gets an
  ordinary `OperationalError` in about the deadline.

TCP keepalives and ``tcp_user_timeout`` find dead peers on idle and busy connections, so
the pool does not hand out a connection the network has silently lost.

Connections are pinged at checkout (our own ping, under the deadline, instead of
SQLAlchemy's ``pool_pre_ping``, which would run outside it).
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import logging
import os
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import make_url
from sqlalchemy.pool import StaticPool

log = logging.getLogger("lipcds.store")


@dataclass(frozen=True)
class EngineLimits:
    """Time bounds of one engine, in seconds. See the module docstring."""

    connect_timeout: float = 2.0
    statement_timeout: float = 1.5
    # Client-side bound on one checkout; None: no bound (migrations, long reports).
    operation_timeout: float | None = 2.0
    idle_in_transaction_timeout: float = 10.0
    keepalive_idle: int = 5
    keepalive_interval: int = 2
    keepalive_count: int = 2
    busy_timeout: float = 2.0  # SQLite: wait this long for another writer's lock
    pool_size: int = 5
    max_overflow: int = 5

    def unbounded(self) -> EngineLimits:
        """The same engine without statement or operation bounds (schema migrations)."""
        return replace(self, statement_timeout=0, operation_timeout=None)


def make_engine(database_url: str, limits: EngineLimits | None = None) -> Engine:
    """An engine for the store: bounded in time, SQLite in WAL mode, parameters kept out of
    error messages (they hold feedback text and patient-derived values)."""
    limits = limits or EngineLimits()
    url = make_url(database_url)
    backend = url.get_backend_name()
    if backend == "sqlite":
        engine = _sqlite_engine(database_url, limits)
    else:
        connect_args: dict[str, Any] = {}
        if backend == "postgresql":
            connect_args = postgres_connect_args(limits)
        engine = create_engine(
            database_url,
            pool_size=limits.pool_size,
            max_overflow=limits.max_overflow,
            pool_timeout=max(limits.connect_timeout, 1.0),
            pool_recycle=1800,
            connect_args=connect_args,
            hide_parameters=True,
        )
    _install_deadline(engine, limits)
    return engine


def postgres_connect_args(limits: EngineLimits) -> dict[str, Any]:
    """libpq parameters: connect timeout, TCP keepalives, server-side statement bounds."""
    statement_ms = int(limits.statement_timeout * 1000)
    idle_ms = int(limits.idle_in_transaction_timeout * 1000)
    options = [
        f"-c statement_timeout={statement_ms}",
        f"-c idle_in_transaction_session_timeout={idle_ms}",
    ]
    probes = limits.keepalive_interval * limits.keepalive_count
    dead_peer_ms = (limits.keepalive_idle + probes) * 1000
    return {
        # libpq takes whole seconds and treats anything below 2 as 2.
        "connect_timeout": max(2, round(limits.connect_timeout)),
        "keepalives": 1,
        "keepalives_idle": limits.keepalive_idle,
        "keepalives_interval": limits.keepalive_interval,
        "keepalives_count": limits.keepalive_count,
        # Sent data unacknowledged this long: the peer is gone.
        "tcp_user_timeout": dead_peer_ms,
        "application_name": "lipcds",
        "options": " ".join(options),
    }


def _sqlite_engine(database_url: str, limits: EngineLimits) -> Engine:
    url = make_url(database_url)
    in_memory = url.database in (None, "", ":memory:")
    engine = create_engine(
        database_url,
        # Several processes write the same file: wait a bounded time for the lock.
        connect_args={"timeout": limits.busy_timeout, "check_same_thread": False},
        poolclass=StaticPool if in_memory else None,
        hide_parameters=True,
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the driver, issue BEGIN (see _on_begin).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        if not in_memory:
            cursor.execute("PRAGMA journal_mode=WAL")  # readers never block the writer
            cursor.execute("PRAGMA synchronous=NORMAL")  # durable enough under WAL
        cursor.execute(f"PRAGMA busy_timeout={int(limits.busy_timeout * 1000)}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        # Take the write lock up front. A deferred transaction that reads and then writes
        # fails at once with SQLITE_BUSY when another process wrote in between, and the
        # busy timeout does not help then.
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


# -- the client-side deadline ---------------------------------------------------------

_budget = threading.local()


@contextlib.contextmanager
def operation_budget(seconds: float | None, *, start: float | None = None) -> Iterator[None]:
    """Connections checked out by this thread inside the block get `seconds` (None: no
    bound) from `start` (default: now), instead of the engine's operation timeout."""
    previous = getattr(_budget, "value", _UNSET)
    begin = time.monotonic() if start is None else start
    _budget.value = None if seconds is None else begin + seconds
    try:
        yield
    finally:
        if previous is _UNSET:
            del _budget.value
        else:
            _budget.value = previous


_UNSET = object()


def _deadline_for(limits: EngineLimits) -> float | None:
    value = getattr(_budget, "value", _UNSET)
    if value is not _UNSET:
        return value
    if limits.operation_timeout is None:
        return None
    return time.monotonic() + limits.operation_timeout


def _install_deadline(engine: Engine, limits: EngineLimits) -> None:
    is_sqlite = engine.dialect.name == "sqlite"

    @event.listens_for(engine, "connect")
    def _fresh(_dbapi_connection: Any, record: Any) -> None:
        record.info["lipcds_fresh"] = True

    @event.listens_for(engine, "checkout")
    def _checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        deadline = _deadline_for(limits)
        if deadline is not None:
            WATCHDOG.arm(dbapi_connection, deadline)
        if record.info.pop("lipcds_fresh", False) or is_sqlite:
            return  # just opened (or a local file): nothing to find stale
        try:
            cursor = dbapi_connection.cursor()
            try:
                cursor.execute("SELECT 1")
            finally:
                cursor.close()
        except Exception as exc:
            WATCHDOG.disarm(dbapi_connection)
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is None or remaining > limits.connect_timeout:
                # The pool replaces the connection and checks out a fresh one.
                raise sa_exc.DisconnectionError(f"stale connection: {type(exc).__name__}") from exc
            raise

    @event.listens_for(engine, "checkin")
    def _checkin(dbapi_connection: Any, _record: Any) -> None:
        if dbapi_connection is not None:
            WATCHDOG.disarm(dbapi_connection)

    @event.listens_for(engine, "invalidate")
    def _invalidate(dbapi_connection: Any, _record: Any, _exception: Any) -> None:
        if dbapi_connection is not None:
            WATCHDOG.disarm(dbapi_connection)


class Watchdog:
    """One thread per process that cuts connections whose deadline has passed."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._armed: dict[int, tuple[float, int, Any]] = {}
        self._heap: list[tuple[float, int, int]] = []
        self._counter = itertools.count()
        self._thread: threading.Thread | None = None
        self._pid = 0
        self.expired = 0  # connections cut since start, for metrics and tests

    def arm(self, dbapi_connection: Any, deadline: float) -> None:
        key = id(dbapi_connection)
        with self._lock:
            self._ensure_thread()
            token = next(self._counter)
            self._armed[key] = (deadline, token, dbapi_connection)
            heapq.heappush(self._heap, (deadline, token, key))
            if self._heap[0][1] == token:
                self._wake.notify()

    def disarm(self, dbapi_connection: Any) -> None:
        with self._lock:
            self._armed.pop(id(dbapi_connection), None)

    def _ensure_thread(self) -> None:
        if self._thread is not None and self._pid == os.getpid() and self._thread.is_alive():
            return
        # First use, or first use in a forked child (threads do not survive fork).
        self._pid = os.getpid()
        self._thread = threading.Thread(target=self._run, name="lipcds-db-watchdog", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:  # a daemon thread: ends with the process
            with self._lock:
                due = self._pop_due()
                if not due:
                    timeout = self._heap[0][0] - time.monotonic() if self._heap else 60.0
                    self._wake.wait(max(0.0, min(timeout, 60.0)))
                    continue
            for dbapi_connection in due:
                self.expired += 1
                log.warning("database call exceeded its deadline; cutting the connection")
                _cut(dbapi_connection)

    def _pop_due(self) -> list[Any]:
        now = time.monotonic()
        due = []
        while self._heap and self._heap[0][0] <= now:
            _deadline, token, key = heapq.heappop(self._heap)
            entry = self._armed.get(key)
            if entry is not None and entry[1] == token:
                del self._armed[key]
                due.append(entry[2])
        return due


def _cut(dbapi_connection: Any) -> None:
    """Make the driver's blocked call return with an error, from another thread."""
    pgconn = getattr(dbapi_connection, "pgconn", None)  # psycopg 3
    if pgconn is not None:
        try:
            fd = pgconn.socket
        except Exception:  # already closed
            return
        try:
            sock = socket.socket(fileno=os.dup(fd))
        except OSError:
            return
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        sock.close()
        return
    interrupt = getattr(dbapi_connection, "interrupt", None)  # sqlite3
    if interrupt is not None:
        with contextlib.suppress(Exception):
            interrupt()


WATCHDOG = Watchdog()


def _watchdog_after_fork() -> None:
    # Its lock may have been held by a thread that does not exist in the child.
    WATCHDOG.__init__()  # type: ignore[misc]


os.register_at_fork(after_in_child=_watchdog_after_fork)
