"""Replay protection for the EHR's JWT: each (issuer, jti) is accepted once while it is valid.

The seen-set must be shared by every worker and replica, so it lives in Redis when one is
configured and in the service's database otherwise. Keys are hashes of issuer and jti: the
jti is not a secret, but hashing bounds the key length whatever the EHR sends.
"""

from __future__ import annotations

import hashlib
import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import Engine, delete, insert, select
from sqlalchemy.exc import IntegrityError

from cds_hooks.store.models import JwtReplay

log = logging.getLogger("lipcds.auth.replay")

# Created by the store's migrations (revision 0003), like the store's other tables.
jwt_replay = JwtReplay.__table__

_PURGE_INTERVAL_SECONDS = 300


class ReplayGuardUnavailable(RuntimeError):
    """The shared seen-set cannot be reached; the caller must refuse the request."""


class ReplayGuard(Protocol):
    def claim(self, issuer: str, jti: str, expires_at: datetime) -> bool:
        """Record (issuer, jti) until `expires_at`; True if it was not seen before."""
        ...

    def check(self) -> None:
        """Raise ReplayGuardUnavailable unless the seen-set answers (readiness)."""
        ...


def replay_key(issuer: str, jti: str) -> str:
    # The separator keeps ("ab", "c") and ("a", "bc") apart.
    return hashlib.sha256(f"{issuer}\x00{jti}".encode()).hexdigest()


class RedisReplayGuard:
    """SET NX with an expiry: atomic across every process that shares the Redis."""

    prefix = "lipcds:jti:"

    def __init__(self, client: Any, clock: Callable[[], datetime]):
        self._client = client
        self._clock = clock

    @classmethod
    def from_url(cls, url: str, clock: Callable[[], datetime]) -> RedisReplayGuard:
        import redis  # optional dependency (the `redis` extra)

        client = redis.Redis.from_url(url, socket_timeout=1.0, socket_connect_timeout=1.0)
        return cls(client, clock)

    def claim(self, issuer: str, jti: str, expires_at: datetime) -> bool:
        # A relative TTL from our clock, not EXAT: Redis's clock and ours may differ.
        ttl = max(1, math.ceil((expires_at - self._clock()).total_seconds()))
        try:
            created = self._client.set(self.prefix + replay_key(issuer, jti), b"1", nx=True, ex=ttl)
        except Exception as exc:  # redis.RedisError and socket errors alike
            raise ReplayGuardUnavailable(f"redis: {type(exc).__name__}") from None
        return bool(created)

    def check(self) -> None:
        """Raise ReplayGuardUnavailable unless Redis answers (within its socket timeout)."""
        try:
            self._client.ping()
        except Exception as exc:
            raise ReplayGuardUnavailable(f"redis: {type(exc).__name__}") from None


class DatabaseReplayGuard:
    """A row per (issuer, jti); the primary key makes the second insert fail everywhere.

    It runs on the store's engine: the table is one of the store's migrated tables.
    """

    def __init__(self, engine: Engine, clock: Callable[[], datetime]):
        self._engine = engine
        self._clock = clock
        self._purge_lock = threading.Lock()
        self._next_purge = 0.0

    @property
    def engine(self) -> Engine:
        return self._engine

    def claim(self, issuer: str, jti: str, expires_at: datetime) -> bool:
        now = self._clock().timestamp()
        key = replay_key(issuer, jti)
        expires = math.ceil(expires_at.timestamp())
        try:
            if self._insert(key, expires):
                first_use = True
            else:
                # Seen before; a row that has outlived its token no longer counts.
                with self._engine.begin() as conn:
                    removed = conn.execute(
                        delete(jwt_replay).where(
                            jwt_replay.c.key_hash == key, jwt_replay.c.expires_at < now
                        )
                    ).rowcount
                first_use = bool(removed) and self._insert(key, expires)
        except Exception as exc:  # OperationalError and driver errors: fail closed
            raise ReplayGuardUnavailable(f"database: {type(exc).__name__}") from None
        # After the claim, so a database that stopped answering costs one wait, not two.
        self._purge_now_and_then(now)
        return first_use

    def check(self) -> None:
        """Raise ReplayGuardUnavailable unless the database answers (bounded by the engine)."""
        try:
            with self._engine.connect() as conn:
                conn.execute(select(1))
        except Exception as exc:
            raise ReplayGuardUnavailable(f"database: {type(exc).__name__}") from None

    def _insert(self, key: str, expires: int) -> bool:
        try:
            with self._engine.begin() as conn:
                conn.execute(insert(jwt_replay).values(key_hash=key, expires_at=expires))
        except IntegrityError:
            return False
        return True

    def _purge_now_and_then(self, now: float) -> None:
        # One purge per interval per process; a failed purge is retried next interval.
        if now < self._next_purge or not self._purge_lock.acquire(blocking=False):
            return
        try:
            self._next_purge = now + _PURGE_INTERVAL_SECONDS
            with self._engine.begin() as conn:
                removed = conn.execute(delete(jwt_replay).where(jwt_replay.c.expires_at < now))
            if removed.rowcount:
                log.debug("purged %d expired jti records", removed.rowcount)
        except Exception as exc:
            log.warning("could not purge expired jti records: %s", type(exc).__name__)
        finally:
            self._purge_lock.release()


def build_replay_guard(
    redis_url: str | None,
    engine: Engine,
    clock: Callable[[], datetime],
    fallback: str = "local",
) -> FallbackReplayGuard:
    """Redis when configured, else the store's database (`engine`); while that shared
    seen-set is away, this process's own (`fallback` "local") or a refusal ("refuse")."""
    shared: ReplayGuard
    if redis_url:
        shared = RedisReplayGuard.from_url(redis_url, clock)
    else:
        shared = DatabaseReplayGuard(engine, clock)
    return FallbackReplayGuard(shared, clock, mode=fallback)


# -- while the shared seen-set is away -------------------------------------------------
# Replay protection that outlives an outage of its shared seen-set.
#
# The shared guard (Redis, or the store's database) sees every worker and replica; while it
# cannot be reached, hook calls would all be refused. `FallbackReplayGuard` keeps them
# going with a seen-set of this process instead (``LIPCDS_REPLAY_FALLBACK=local``, the
# default), or refuses them as before (``refuse``).
#
# What the fallback costs, and how it is bounded:
# - during the outage a token is refused a second time only by the process that saw it
#   first; a replay to another worker or replica is not caught then. Tokens live a few
#   minutes (their ``exp``), so the window is the outage plus that lifetime;
# - after the outage, the jtis this process accepted meanwhile are written to the shared
#   guard, so a replay from then on is caught everywhere, and a jti another process had
#   accepted too is logged as a replay detected late;
# - one call in `retry_seconds` probes the shared guard; the others do not wait on it;
# - every call answered by the fallback is counted (`stats`), and the fallback is logged
#   when it starts, once a minute while it lasts, and when it ends.

FALLBACK_MODES = ("local", "refuse")


@dataclass
class FallbackStats:
    outages: int = 0  # times the shared guard was found unreachable after working
    local_claims: int = 0  # tokens checked by this process alone
    refused: int = 0  # calls refused because the shared guard was away (mode refuse)
    late_replays: int = 0  # jtis found, after an outage, accepted by another process too


class LocalReplayGuard:
    """The seen-set of one process, each entry kept until its token expires."""

    def __init__(self, clock: Callable[[], datetime], max_entries: int = 200_000):
        self._clock = clock
        self._max = max_entries
        self._lock = threading.Lock()
        self._seen: dict[tuple[str, str], float] = {}

    def __len__(self) -> int:
        return len(self._seen)

    def seen(self, issuer: str, jti: str) -> bool:
        now = self._clock().timestamp()
        with self._lock:
            expires = self._seen.get((issuer, jti))
            return expires is not None and expires >= now

    def claim(self, issuer: str, jti: str, expires_at: datetime) -> bool:
        now = self._clock().timestamp()
        with self._lock:
            expires = self._seen.get((issuer, jti))
            if expires is not None and expires >= now:
                return False
            if len(self._seen) >= self._max:
                self._purge(now)
                if len(self._seen) >= self._max:
                    # Forgetting an entry would let its token be replayed: refuse.
                    raise ReplayGuardUnavailable("per-process replay guard full")
            self._seen[(issuer, jti)] = expires_at.timestamp()
            return True

    def take_all(self) -> list[tuple[str, str, float]]:
        """The unexpired entries; they stay, so this process still refuses them."""
        now = self._clock().timestamp()
        with self._lock:
            self._purge(now)
            return [(iss, jti, exp) for (iss, jti), exp in self._seen.items()]

    def _purge(self, now: float) -> None:
        for key in [k for k, exp in self._seen.items() if exp < now]:
            del self._seen[key]


class FallbackReplayGuard:
    """`shared` while it answers; this process's own seen-set while it does not."""

    def __init__(
        self,
        shared: ReplayGuard,
        clock: Callable[[], datetime],
        *,
        mode: str = "local",
        retry_seconds: float = 5.0,
        on_event: Callable[[str, int], None] | None = None,
    ):
        if mode not in FALLBACK_MODES:
            raise ValueError(f"mode must be one of {FALLBACK_MODES}, not {mode!r}")
        self.shared = shared
        self.mode = mode
        self.retry_seconds = retry_seconds
        self.local = LocalReplayGuard(clock)
        self.stats = FallbackStats()
        self.on_event = on_event  # told (name of a FallbackStats counter, increment)
        self._clock = clock
        self._lock = threading.Lock()
        self._down_until = 0.0
        self._outage_since: float | None = None
        self._next_log = 0.0
        self._probing = False
        self._unsynced = False  # the local set holds jtis the shared guard has not seen

    def __getattr__(self, name: str) -> Any:
        # The shared guard's own parts (`engine` of the database one, `_client` of Redis).
        if name == "shared":
            raise AttributeError(name)
        return getattr(self.shared, name)

    @property
    def in_fallback(self) -> bool:
        return self._outage_since is not None

    def check(self) -> None:
        """Raise ReplayGuardUnavailable unless the shared guard answers (readiness)."""
        check = getattr(self.shared, "check", None)
        if check is not None:
            check()

    def claim(self, issuer: str, jti: str, expires_at: datetime) -> bool:
        if self.local.seen(issuer, jti):
            return False  # accepted by this process during an outage
        if not self._may_try_shared():
            return self._claim_locally(issuer, jti, expires_at, "still unreachable")
        try:
            first_use = self.shared.claim(issuer, jti, expires_at)
        except ReplayGuardUnavailable as exc:
            self._went_down(str(exc))
            return self._claim_locally(issuer, jti, expires_at, str(exc))
        finally:
            with self._lock:
                self._probing = False
        self._came_back()
        return first_use

    # -- internals --------------------------------------------------------------------

    def _count(self, name: str, increment: int) -> None:
        setattr(self.stats, name, getattr(self.stats, name) + increment)
        if self.on_event is not None and increment:
            try:
                self.on_event(name, increment)
            except Exception:  # a metric never fails a call
                log.debug("replay guard metric %s not counted", name)

    def _may_try_shared(self) -> bool:
        """True for the caller that may try the shared guard now (one at a time while it is
        thought away, so calls do not queue behind a frozen server)."""
        with self._lock:
            if self._outage_since is None:
                return True
            if time.monotonic() < self._down_until or self._probing:
                return False
            self._probing = True
            return True

    def _claim_locally(self, issuer: str, jti: str, expires_at: datetime, reason: str) -> bool:
        if self.mode == "refuse":
            with self._lock:
                self._count("refused", 1)
            raise ReplayGuardUnavailable(f"{reason}; LIPCDS_REPLAY_FALLBACK=refuse")
        first_use = self.local.claim(issuer, jti, expires_at)
        with self._lock:
            self._count("local_claims", 1)
            self._unsynced = True
            now = time.monotonic()
            if now >= self._next_log:
                self._next_log = now + 60
                log.warning(
                    "replay guard: shared seen-set unreachable (%s) for %.0f s; jti checked "
                    "per process (LIPCDS_REPLAY_FALLBACK=local), %d calls so far",
                    reason,
                    now - (self._outage_since or now),
                    self.stats.local_claims,
                )
        return first_use

    def _went_down(self, reason: str) -> None:
        with self._lock:
            self._down_until = time.monotonic() + self.retry_seconds
            if self._outage_since is None:
                self._outage_since = time.monotonic()
                self._next_log = 0.0
                self._count("outages", 1)
                log.error("replay guard: shared seen-set unreachable: %s", reason)

    def _came_back(self) -> None:
        with self._lock:
            if self._outage_since is None and not self._unsynced:
                return
            since, self._outage_since = self._outage_since, None
            unsynced, self._unsynced = self._unsynced, False
        if since is not None:
            log.warning("replay guard: shared seen-set back after %.0f s", time.monotonic() - since)
        if unsynced:
            threading.Thread(target=self._sync, name="lipcds-replay-sync", daemon=True).start()

    def _sync(self) -> None:
        """Tell the shared guard the jtis accepted during the outage."""
        entries = self.local.take_all()
        late = 0
        for issuer, jti, expires in entries:
            when = datetime.fromtimestamp(expires, tz=self._clock().tzinfo)
            try:
                if not self.shared.claim(issuer, jti, when):
                    late += 1
            except ReplayGuardUnavailable:
                with self._lock:
                    self._unsynced = True  # tried again on the next successful call
                return
        if late:
            with self._lock:
                self._count("late_replays", late)
            log.error(
                "replay guard: %d jti(s) accepted here during the outage were already in the "
                "shared seen-set: used by another process too (a replay not caught at the "
                "time), or recorded just before the outage",
                late,
            )
        log.info(
            "replay guard: %d jti(s) from the outage written to the shared seen-set", len(entries)
        )
