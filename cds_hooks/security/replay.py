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
from collections.abc import Callable
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import Engine, delete, insert
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
        self._purge_now_and_then(now)
        try:
            if self._insert(key, expires):
                return True
            # Seen before; a row that has outlived its token no longer counts.
            with self._engine.begin() as conn:
                removed = conn.execute(
                    delete(jwt_replay).where(
                        jwt_replay.c.key_hash == key, jwt_replay.c.expires_at < now
                    )
                ).rowcount
            return bool(removed) and self._insert(key, expires)
        except Exception as exc:  # OperationalError and driver errors: fail closed
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
    redis_url: str | None, engine: Engine, clock: Callable[[], datetime]
) -> ReplayGuard:
    """Redis when configured, else the store's database (`engine`)."""
    if redis_url:
        return RedisReplayGuard.from_url(redis_url, clock)
    return DatabaseReplayGuard(engine, clock)
