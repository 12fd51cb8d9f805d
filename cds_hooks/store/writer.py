"""The record of issued cards, written off the request path.

A hook call hands its `CardRecord` to the process's `RecordWriter` and answers at once.
The writer keeps each record in two places until the database has it:

- in memory, for the writer thread, which writes records in batches (one transaction per
  batch) every `flush_interval` seconds, or sooner when a batch is full;
- in a spool file, one JSON line per record appended with a single ``write`` (no lock
  shared with other processes, no database lock), fsync'd by the writer thread before it
  writes them to the database. The spool survives a restart of the process and an outage
  of the database: a process that starts, and every running one now and then, adopts the
  spool files whose owner is gone (a file is owned while its ``flock`` is held) and
  writes their records. Writing a record twice is harmless: the store keeps the first.

Spool files live in a directory of their own for each database (a hash of its URL), so
a record is only ever written to the database it was issued against.

Nothing is dropped silently:
- a batch the database cannot take now (away, too slow) is retried with exponential
  backoff; every failure is counted, the first of an outage and then one a minute are
  logged, and the recovery is logged with the number of records that waited;
- a record the database refuses (values it cannot hold) is retried alone, then moved to
  ``rejected.jsonl`` in the spool directory, counted and logged with its hookInstance;
- when `max_pending` records are waiting, a new record is refused: it is counted,
  logged (hookInstance and card uuids) and not kept, and the hook call still answers its
  cards. The records already waiting, older and durable, are kept. The bound keeps memory
  and disk finite during a long outage; `lipcds_store_pending_records` shows it filling.

Feedback may name a card whose record is still waiting: `write_now` finds the records of
those cards in this process's queue and in every spool file of the directory (those of
other workers too) and writes them at once, so the feedback can be recorded.

At shutdown (`close`, called at exit and from gunicorn's ``worker_exit``), the writer
writes what it can within a few seconds; what remains stays in the spool for the next
process.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import hashlib
import json
import logging
import os
import random
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url
from sqlalchemy.pool import StaticPool

from cds_hooks.store.store import CardRecord, RecordRejected, Store, StoreUnavailable

log = logging.getLogger("lipcds.store.writer")

SEGMENT_PREFIX = "records-"
SEGMENT_SUFFIX = ".jsonl"
REJECTED_FILE = "rejected.jsonl"


def spool_directory(database_url: str, base: str | os.PathLike[str] | None = None) -> Path | None:
    """Where the records for `database_url` wait: `base`/<hash of the URL>.

    Without `base`: beside a SQLite file (``<file>-spool``), else ``var/spool/<hash>``.
    An in-memory SQLite database has no spool (it does not outlive the process either).
    """
    url = make_url(database_url)
    key = hashlib.sha256(url.render_as_string(hide_password=True).encode()).hexdigest()[:16]
    if base is not None:
        return Path(base).resolve() / key
    if url.get_backend_name() == "sqlite":
        if url.database in (None, "", ":memory:"):
            return None
        database = Path(url.database).resolve()
        return database.with_name(database.name + "-spool")
    return Path("var/spool").resolve() / key


@dataclass
class WriterStats:
    """Counters since the writer started (this process)."""

    submitted: int = 0
    written: int = 0  # records now in the database
    batches: int = 0
    failures: int = 0  # batch attempts that failed (each is retried)
    rejected: int = 0  # records the database refused, kept in rejected.jsonl
    refused: int = 0  # records not kept because the queue was full
    adopted: int = 0  # records taken over from spool files of ended processes
    spool_errors: int = 0  # records kept in memory only (the spool could not be written)


@dataclass
class _Segment:
    """A spool file (or, without a spool, a list) and the records of it not yet written."""

    path: Path | None
    fd: int | None
    records: list[CardRecord] = field(default_factory=list)
    done: int = 0  # records[:done] are in the database
    dirty: bool = False  # appended since the last fsync
    own: bool = True  # False: adopted from an ended process
    first_at: float = 0.0  # monotonic time of the first record

    @property
    def waiting(self) -> int:
        return len(self.records) - self.done


_WRITERS: weakref.WeakSet[RecordWriter] = weakref.WeakSet()


class RecordWriter:
    """One per store and process: takes card records off the request path."""

    def __init__(
        self,
        store: Store,
        spool_dir: str | os.PathLike[str] | None,
        *,
        max_pending: int = 50_000,
        batch_size: int = 200,
        flush_interval: float = 0.2,
        retry_initial: float = 0.5,
        retry_max: float = 5.0,
        batch_budget: float = 10.0,
        adopt_interval: float = 30.0,
        shutdown_timeout: float = 5.0,
        on_pending: Callable[[int], None] | None = None,
        on_event: Callable[[str, int], None] | None = None,
    ):
        if max_pending < 1 or batch_size < 1:
            raise ValueError("max_pending and batch_size must be at least 1")
        self.store = store
        self.spool_dir = Path(spool_dir) if spool_dir is not None else None
        self.max_pending = max_pending
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        self.retry_initial = retry_initial
        self.retry_max = retry_max
        self.batch_budget = batch_budget
        self.adopt_interval = adopt_interval
        self.shutdown_timeout = shutdown_timeout
        self.on_pending = on_pending  # told the new count whenever it changes (a gauge)
        self.on_event = on_event  # told (name of a WriterStats counter, increment)
        self.stats = WriterStats()
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._pid = 0
        self._thread: threading.Thread | None = None
        self._started = threading.Event()
        self._stopping = False
        self._closed = False
        self._current: _Segment | None = None
        self._draining: deque[_Segment] = deque()
        self._pending = 0
        self._own_submitted = 0
        self._own_done = 0
        self._flush_requested = False
        self._outage_since: float | None = None
        self._next_outage_log = 0.0
        self._next_refusal_log = 0.0
        self._refused_unlogged = 0
        if self.spool_dir is not None:
            self.spool_dir.mkdir(parents=True, exist_ok=True)
        store.write_waiting = self.write_now  # feedback on a card still waiting
        _WRITERS.add(self)

    # -- the request side -------------------------------------------------------------

    @property
    def pending(self) -> int:
        """Records of this process (and adopted ones) not yet in the database."""
        return self._pending

    def submit(self, record: CardRecord) -> bool:
        """Queue `record`; False when the queue is full and the record was refused."""
        if not record.cards:
            return True
        line = _encode(record)
        with self._lock:
            self._ensure_running()
            if self._closed or self._pending >= self.max_pending:
                self._count("refused", 1)
                self._log_refusal(record)
                return False
            segment = self._current_segment()
            if segment.fd is not None:
                try:
                    os.write(segment.fd, line)
                    segment.dirty = True
                except OSError as exc:
                    # Disk full or gone: keep the record in memory rather than lose it.
                    self._count("spool_errors", 1)
                    log.error(
                        "spool %s not writable (%s); record of hookInstance %s kept in memory only",
                        segment.path,
                        exc.strerror or type(exc).__name__,
                        record.hook_instance,
                    )
            if not segment.records:
                segment.first_at = time.monotonic()
            segment.records.append(record)
            self._pending += 1
            self._report_pending()
            self._own_submitted += 1
            self.stats.submitted += 1
            if segment.waiting >= self.batch_size:
                self._wake.notify_all()
        return True

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until every record submitted before this call is written; False if the
        database did not take them within `timeout` seconds (they stay queued)."""
        deadline = time.monotonic() + timeout
        with self._lock:
            target = self._own_submitted
            if self._own_done >= target:
                return True
            self._ensure_running()
            self._flush_requested = True
            self._wake.notify_all()
            while self._own_done < target:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._thread is None:
                    return False
                self._wake.wait(remaining)
            return True

    def drain(self, timeout: float = 5.0) -> bool:
        """Wait until no record waits, adopted ones included; False after `timeout`."""
        deadline = time.monotonic() + timeout
        self.start(timeout)
        with self._lock:
            self._ensure_running()
            while self._pending:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._thread is None:
                    return False
                self._flush_requested = True
                self._wake.notify_all()
                self._wake.wait(min(remaining, self.flush_interval))
            return True

    def waiting_records(self) -> list[CardRecord]:
        """Every record not yet written: this process's and those in other processes'
        spool files of the same database."""
        with self._lock:
            own = [r for s in self._segments() for r in s.records[s.done :]]
        return own + list(self._foreign_records())

    def write_now(self, service_id: str, card_uuids: Iterable[str]) -> int:
        """Write at once the waiting records that hold any of these cards (feedback is
        about to name them); returns how many records that was. Raises StoreUnavailable
        when the database cannot take them."""
        wanted = set(card_uuids)
        if not wanted:
            return 0

        def holds(record: CardRecord) -> bool:
            return record.service_id == service_id and not wanted.isdisjoint(record.card_uuids)

        with self._lock:
            found = [r for s in self._segments() for r in s.records[s.done :] if holds(r)]
        missing = wanted - {u for r in found for u in r.card_uuids}
        if missing:
            found.extend(r for r in self._foreign_records(missing) if holds(r))
        if found:
            self.store.record_batch(found, budget=self.store.limits.operation_timeout)
        return len(found)

    # -- life cycle -------------------------------------------------------------------

    def start(self, timeout: float = 5.0) -> None:
        """Start the writer thread (again, after a fork) and let it adopt the spool files
        of ended processes before returning."""
        with self._lock:
            self._ensure_running()
            if self._thread is None:
                return  # closed
            started = self._started
        started.wait(timeout)

    def close(self, timeout: float | None = None) -> None:
        """Write what the database takes within `timeout` seconds, then stop. What is
        left stays in the spool file for the next process."""
        timeout = self.shutdown_timeout if timeout is None else timeout
        with self._lock:
            if self._closed:
                return
            thread = self._thread if self._pid == os.getpid() else None
            self._stopping = True
            self._shutdown_deadline = time.monotonic() + timeout
            self._wake.notify_all()
        if thread is not None:
            thread.join(timeout + 1)
        with self._lock:
            self._closed = True
            left = self._pending
            for segment in self._segments():
                _close_fd(segment)
                if segment.waiting == 0 and segment.path is not None:
                    _unlink(segment.path)
            self._current = None
            self._draining.clear()
            self._wake.notify_all()
        self.release_connections()
        if left:
            where = f"in {self.spool_dir}" if self.spool_dir else "in memory only: lost"
            log.warning("record writer stopped with %d records not yet written (%s)", left, where)

    def release_connections(self) -> None:
        """Close the pooled connections the writes opened; the next write opens new ones.
        An in-memory SQLite database lives in its one connection: that one stays."""
        if not isinstance(self.store.engine.pool, StaticPool):
            self.store.engine.dispose()

    # -- internals: segments ------------------------------------------------------------

    def _segments(self) -> list[_Segment]:
        segments = list(self._draining)
        if self._current is not None:
            segments.append(self._current)
        return segments

    def _current_segment(self) -> _Segment:
        if self._current is None:
            self._current = self._new_segment()
        return self._current

    def _new_segment(self) -> _Segment:
        if self.spool_dir is None:
            return _Segment(path=None, fd=None)
        name = f"{SEGMENT_PREFIX}{os.getpid()}-{time.time_ns()}-{random.getrandbits(32):08x}"
        temporary = self.spool_dir / f".{name}.tmp"
        path = self.spool_dir / f"{name}{SEGMENT_SUFFIX}"
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND | os.O_CLOEXEC
        try:
            fd = os.open(temporary, flags, 0o600)
            # Locked before it gets a name others adopt: an owned file is never adopted.
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.rename(temporary, path)
            _fsync_directory(self.spool_dir)
        except OSError as exc:
            self._count("spool_errors", 1)
            log.error(
                "cannot create a spool file in %s (%s); records wait in memory only",
                self.spool_dir,
                exc.strerror or type(exc).__name__,
            )
            return _Segment(path=None, fd=None)
        return _Segment(path=path, fd=fd)

    def _adopt_orphans(self) -> None:
        """Take over the spool files of processes that ended (their lock is free)."""
        if self.spool_dir is None:
            return
        try:
            names = sorted(os.listdir(self.spool_dir))
        except OSError:
            return
        for name in names:
            if not (name.startswith(SEGMENT_PREFIX) and name.endswith(SEGMENT_SUFFIX)):
                continue
            with self._lock:
                if self._pending >= self.max_pending:
                    return  # the rest waits on disk for room
                owned = {s.path for s in self._segments()}
            path = self.spool_dir / name
            if path in owned:
                continue
            segment = self._adopt(path)
            if segment is None:
                continue
            with self._lock:
                self._draining.append(segment)
                self._pending += segment.waiting
                self._report_pending()
                self._count("adopted", segment.waiting)
            log.info("adopted %d waiting records from %s", segment.waiting, name)

    def _adopt(self, path: Path) -> _Segment | None:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
        except OSError:
            return None  # written and removed meanwhile
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return None  # its process is alive
        if os.fstat(fd).st_nlink == 0:  # removed between listing and locking
            os.close(fd)
            return None
        records = []
        with open(path, "rb") as handle:
            for number, line in enumerate(handle, start=1):
                record = _decode(line)
                if record is None:
                    self._reject_line(path, number, line)
                else:
                    records.append(record)
        return _Segment(path=path, fd=fd, records=records, own=False)

    def _foreign_records(self, card_uuids: set[str] | None = None) -> Iterator[CardRecord]:
        """Records in the spool files this writer does not hold (other processes')."""
        if self.spool_dir is None:
            return
        with self._lock:
            owned = {s.path for s in self._segments()}
        try:
            names = sorted(os.listdir(self.spool_dir))
        except OSError:
            return
        for name in names:
            path = self.spool_dir / name
            if path in owned or not (
                name.startswith(SEGMENT_PREFIX) and name.endswith(SEGMENT_SUFFIX)
            ):
                continue
            try:
                with open(path, "rb") as handle:
                    for line in handle:
                        if card_uuids is not None and not any(
                            u.encode() in line for u in card_uuids
                        ):
                            continue
                        record = _decode(line)  # a line being appended reads as None
                        if record is not None:
                            yield record
            except OSError:
                continue  # written and removed meanwhile

    # -- internals: the writer thread ---------------------------------------------------

    def _after_fork_in_child(self) -> None:
        """A forked child: the parent's records and spool files are the parent's to
        write. Its locks may have been held by a thread that does not exist here."""
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        for segment in self._segments():
            # Our copy of the descriptor only: the parent keeps its lock.
            if segment.fd is not None:
                with contextlib.suppress(OSError):
                    os.close(segment.fd)
        self._current = None
        self._draining = deque()
        self._pending = 0
        self._own_submitted = self._own_done = 0
        self.stats = WriterStats()
        self._thread = None

    def _ensure_running(self) -> None:
        """With the lock held: a thread in this process (threads do not survive fork)."""
        pid = os.getpid()
        if self._pid == pid and self._thread is not None:
            return
        self._pid = pid
        if self._closed or self._stopping:
            return
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._run, name="lipcds-record-writer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        next_adoption = 0.0
        attempt = 0
        while True:
            now = time.monotonic()
            if now >= next_adoption and not self._stopping:
                self._adopt_orphans()
                next_adoption = now + self.adopt_interval
            self._started.set()
            segment = self._next_batch_segment()
            if segment is None:
                if self._wait_for_work():
                    continue
                return
            ok = self._write_segment(segment)
            if ok:
                attempt = 0
                continue
            attempt += 1
            delay = min(self.retry_max, self.retry_initial * 2 ** (attempt - 1))
            delay *= random.uniform(0.8, 1.2)  # noqa: S311 - jitter, not a secret
            if not self._sleep(delay):
                return

    def _next_batch_segment(self) -> _Segment | None:
        """The oldest segment with records to write; seals the current one when no older
        segment is left, so records are written in the order they came."""
        with self._lock:
            while self._draining and self._draining[0].waiting == 0:
                self._retire(self._draining.popleft())
            if self._draining:
                return self._draining[0]
            current = self._current
            if current is None or current.waiting == 0:
                return None
            if not (
                self._flush_requested
                or self._stopping
                or current.waiting >= self.batch_size
                or time.monotonic() - current.first_at >= self.flush_interval
            ):
                return None
            self._flush_requested = False
            self._draining.append(current)
            self._current = None
            return current

    def _wait_for_work(self) -> bool:
        """With nothing due: sleep until the current segment is due; False when it is
        time to stop."""
        with self._lock:
            if self._stopping:
                return False
            timeout = self.flush_interval
            current = self._current
            if current is not None and current.waiting:
                timeout = max(0.0, current.first_at + self.flush_interval - time.monotonic())
            self._wake.wait(timeout)
            return True

    def _sleep(self, delay: float) -> bool:
        """Back off after a failure; False when shutting down and out of time."""
        self._sync_current()  # what arrives during an outage waits on disk, not in cache
        with self._lock:
            if self._stopping:
                if time.monotonic() >= self._shutdown_deadline:
                    return False
                delay = min(delay, self._shutdown_deadline - time.monotonic())
            self._wake.wait(max(0.0, delay))
            return not (self._stopping and time.monotonic() >= self._shutdown_deadline)

    def _sync_current(self) -> None:
        with self._lock:
            segment = self._current
            if segment is None or not segment.dirty or segment.fd is None:
                return
            segment.dirty = False
            fd = segment.fd
        with contextlib.suppress(OSError):
            os.fsync(fd)

    def _write_segment(self, segment: _Segment) -> bool:
        """Write the segment's waiting records in batches; False on a failure to retry."""
        if segment.dirty and segment.fd is not None:
            segment.dirty = False
            with contextlib.suppress(OSError):
                os.fsync(segment.fd)
        while True:
            with self._lock:
                batch = segment.records[segment.done : segment.done + self.batch_size]
            if not batch:
                return True
            budget = self.batch_budget
            if self._stopping:
                budget = min(budget, max(0.5, self._shutdown_deadline - time.monotonic()))
            try:
                try:
                    self.store.record_batch(batch, budget=budget)
                    self._advance(segment, len(batch), written=True)
                except RecordRejected:
                    self._write_one_by_one(segment, batch, budget)
            except StoreUnavailable as exc:
                self._failed(str(exc))
                return False
            except Exception as exc:  # a bug or a driver error we do not know
                log.exception("writing %d card records failed", len(batch))
                self._failed(type(exc).__name__)
                return False

    def _write_one_by_one(self, segment: _Segment, batch: list[CardRecord], budget: float) -> None:
        """Find the records the database refuses; StoreUnavailable propagates (the rest
        of the batch is retried later)."""
        for record in batch:
            try:
                self.store.record_batch([record], budget=budget)
            except RecordRejected as exc:
                self._reject(record, str(exc))
                self._advance(segment, 1, written=False)
            else:
                self._advance(segment, 1, written=True)

    def _advance(self, segment: _Segment, count: int, *, written: bool) -> None:
        with self._lock:
            segment.done += count
            self._pending -= count
            self._report_pending()
            if written:
                self._count("written", count)
                self.stats.batches += 1
            if segment.own:
                self._own_done += count
            if self._outage_since is not None and written:
                log.warning(
                    "database back after %.0f s; waiting card records are being written (%d left)",
                    time.monotonic() - self._outage_since,
                    self._pending,
                )
                self._outage_since = None
            if segment.waiting == 0 and self._draining and self._draining[0] is segment:
                self._retire(self._draining.popleft())
            self._wake.notify_all()

    def _count(self, name: str, increment: int) -> None:
        """A WriterStats counter goes up, and a metrics counter with it."""
        setattr(self.stats, name, getattr(self.stats, name) + increment)
        if self.on_event is not None and increment:
            with contextlib.suppress(Exception):
                self.on_event(name, increment)

    def _report_pending(self) -> None:
        """With the lock held: tell the gauge; a failing gauge never stops the writer."""
        if self.on_pending is not None:
            with contextlib.suppress(Exception):
                self.on_pending(self._pending)

    def _retire(self, segment: _Segment) -> None:
        """With the lock held: a fully written segment's file goes."""
        if segment.path is not None:
            _unlink(segment.path)
        _close_fd(segment)

    def _failed(self, reason: str) -> None:
        with self._lock:
            self._count("failures", 1)
            now = time.monotonic()
            if self._outage_since is None:
                self._outage_since = now
                self._next_outage_log = 0.0
            if now >= self._next_outage_log:
                self._next_outage_log = now + 60
                where = f"spool {self.spool_dir}" if self.spool_dir else "memory"
                log.error(
                    "card records not written (%s); %d wait in %s and are retried",
                    reason,
                    self._pending,
                    where,
                )

    def _reject(self, record: CardRecord, reason: str) -> None:
        self._count("rejected", 1)
        log.error(
            "card record of hookInstance %s (%d cards) refused by the database: %s; kept in %s",
            record.hook_instance,
            len(record.cards),
            reason,
            self.spool_dir / REJECTED_FILE if self.spool_dir else "the log only",
        )
        self._append_rejected({"reason": reason, "record": record.to_json()})

    def _reject_line(self, path: Path, number: int, line: bytes) -> None:
        self._count("rejected", 1)
        log.error(
            "spool %s line %d is not a card record; kept in %s", path.name, number, REJECTED_FILE
        )
        self._append_rejected(
            {
                "reason": f"unreadable line {number} of {path.name}",
                "line": line.decode("ascii", "replace"),
            }
        )

    def _append_rejected(self, entry: dict[str, Any]) -> None:
        if self.spool_dir is None:
            return
        data = (json.dumps(entry, ensure_ascii=True, separators=(",", ":")) + "\n").encode()
        try:
            fd = os.open(
                self.spool_dir / REJECTED_FILE,
                os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC,
                0o600,
            )
            try:
                os.write(fd, data)
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            log.error("cannot keep a refused record: %s", exc.strerror or type(exc).__name__)

    def _log_refusal(self, record: CardRecord) -> None:
        """With the lock held: loud, but at most one line per 10 s under a flood."""
        self._refused_unlogged += 1
        now = time.monotonic()
        if now < self._next_refusal_log:
            return
        self._next_refusal_log = now + 10
        log.error(
            "card record %s (%d waiting, LIPCDS_STORE_MAX_PENDING); record of "
            "hookInstance %s refused (cards %s); %d refused since the last message",
            "writer closed" if self._closed else "queue full",
            self._pending,
            record.hook_instance,
            ",".join(record.card_uuids),
            self._refused_unlogged,
        )
        self._refused_unlogged = 0


def _encode(record: CardRecord) -> bytes:
    # ASCII only: a lone surrogate or any other character survives as an escape.
    return (json.dumps(record.to_json(), ensure_ascii=True, separators=(",", ":")) + "\n").encode()


def _decode(line: bytes) -> CardRecord | None:
    """A spool line's record; None for an incomplete or damaged line."""
    if not line.endswith(b"\n"):
        return None  # being appended, or cut by a crash mid-write
    try:
        return CardRecord.from_json(json.loads(line))
    except (ValueError, KeyError, TypeError):
        return None


def _close_fd(segment: _Segment) -> None:
    if segment.fd is not None:
        with contextlib.suppress(OSError):
            os.close(segment.fd)  # releases the flock
        segment.fd = None


def _unlink(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def drain_all(timeout: float = 5.0, *, release_connections: bool = False) -> list[RecordWriter]:
    """Wait until every open writer of this process has written what waits (and, with
    `release_connections`, close the connections that took it); returns the writers
    whose database did not take everything within `timeout`."""
    behind = []
    for writer in list(_WRITERS):
        if writer._closed:
            continue
        if writer.pending and not writer.drain(timeout):
            behind.append(writer)
        if release_connections:
            writer.release_connections()
    return behind


def close_all(timeout: float | None = None) -> None:
    """Close every writer of this process (at exit, and from gunicorn's worker_exit)."""
    for writer in list(_WRITERS):
        try:
            writer.close(timeout)
        except Exception:  # at exit: log and go on with the others
            log.exception("closing a record writer failed")


def _reset_after_fork() -> None:
    for writer in list(_WRITERS):
        writer._after_fork_in_child()


atexit.register(close_all)
os.register_at_fork(after_in_child=_reset_after_fork)


def build_writer(store: Store, spool_base: str | None = None, **options: Any) -> RecordWriter:
    """The writer for `store`, spooling beside it (see `spool_directory`)."""
    url = store.engine.url.render_as_string(hide_password=False)
    return RecordWriter(store, spool_directory(url, spool_base), **options)


class ShownCardsWithWaiting:
    """What order-select showed in an encounter: the store's answer plus the records still
    waiting to be written (in this process or another's spool), so a card shown moments
    ago is not shown again at order-sign.

    When the store cannot answer, the error propagates and the caller shows the cards
    again: the waiting records alone would miss what was written before the outage.
    """

    def __init__(self, store: Store, writer: RecordWriter):
        self.store = store
        self.writer = writer

    def shown_at_order_select(
        self, *, encounter_id: str, issuer: str | None = None, tenant: str | None = None
    ) -> set[tuple[str | None, str]]:
        shown = self.store.shown_at_order_select(
            encounter_id=encounter_id, issuer=issuer, tenant=tenant
        )
        for record in self.writer.waiting_records():
            if (
                record.hook == "order-select"
                and record.encounter_id == encounter_id
                and not record.shadow
                and record.issuer == issuer
                and record.tenant == tenant
            ):
                shown.update((card.concerns, card.card_kind) for card in record.cards)
        return shown
