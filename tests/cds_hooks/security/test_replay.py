"""The jti seen-set on SQLite, PostgreSQL and Redis: first use wins, everywhere, once."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from cds_hooks.security.replay import (
    DatabaseReplayGuard,
    RedisReplayGuard,
    ReplayGuardUnavailable,
    jwt_replay,
    replay_key,
)
from cds_hooks.store import Store
from cds_hooks.store.store import make_engine
from tests.cds_hooks.security.jwt_helpers import REDIS_URL, require_server

ISS = "https://ehr.example.org"


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def database_url(kind: str, request, tmp_path) -> str:
    if kind == "postgres":
        return request.getfixturevalue("postgres_database")
    return f"sqlite:///{tmp_path / 'lipcds.db'}"


def migrated_engine(url: str):
    """The store's engine on a database migrated to head (the replay table is one of its)."""
    store = Store(url)
    store.upgrade()
    return store.engine


def make_guard(
    kind: str, request, tmp_path, clock: Clock
) -> DatabaseReplayGuard | RedisReplayGuard:
    if kind == "redis":
        require_server("Redis", 6379)
        return RedisReplayGuard.from_url(REDIS_URL, clock)
    guard = DatabaseReplayGuard(migrated_engine(database_url(kind, request, tmp_path)), clock)
    with guard.engine.begin() as conn:
        conn.execute(jwt_replay.delete())  # the session's PostgreSQL database is shared
    return guard


def close(guard: DatabaseReplayGuard | RedisReplayGuard) -> None:
    if isinstance(guard, DatabaseReplayGuard):
        guard.engine.dispose()
    else:
        guard._client.close()


POSTGRES = pytest.param("postgres", marks=pytest.mark.postgres)
REDIS = pytest.param("redis", marks=pytest.mark.redis)


@pytest.fixture(params=["sqlite", POSTGRES])
def database_guard(request, tmp_path, clock) -> Iterator[DatabaseReplayGuard]:
    guard = make_guard(request.param, request, tmp_path, clock)
    yield guard
    close(guard)


@pytest.fixture(params=["sqlite", POSTGRES, REDIS])
def guard(request, tmp_path, clock) -> Iterator[DatabaseReplayGuard | RedisReplayGuard]:
    guard = make_guard(request.param, request, tmp_path, clock)
    yield guard
    close(guard)


@pytest.fixture
def redis_guard(request, tmp_path, clock) -> Iterator[RedisReplayGuard]:
    guard = make_guard("redis", request, tmp_path, clock)
    yield guard
    close(guard)


def jti() -> str:
    return str(uuid.uuid4())


def test_first_use_wins(guard, clock):
    token_id = jti()
    expires = clock.now + timedelta(minutes=5)
    assert guard.claim(ISS, token_id, expires) is True
    assert guard.claim(ISS, token_id, expires) is False
    # The same jti from another issuer is another token.
    assert guard.claim("https://other.example", token_id, expires) is True


def test_concurrent_claims_admit_exactly_one(guard, clock):
    token_id = jti()
    expires = clock.now + timedelta(minutes=5)
    start = threading.Barrier(8)

    def claim(_: int) -> bool:
        start.wait()
        return guard.claim(ISS, token_id, expires)

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(claim, range(8)))
    assert results.count(True) == 1


def test_two_guards_on_one_database_share_the_seen_set(database_guard, clock):
    # Two workers (or replicas) each with their own engine on the same database.
    url = database_guard.engine.url.render_as_string(hide_password=False)
    other = DatabaseReplayGuard(make_engine(url), clock)
    try:
        token_id = jti()
        expires = clock.now + timedelta(minutes=5)
        assert database_guard.claim(ISS, token_id, expires) is True
        assert other.claim(ISS, token_id, expires) is False
    finally:
        other.engine.dispose()


def test_a_record_that_outlived_its_token_no_longer_counts(database_guard, clock):
    token_id = jti()
    assert database_guard.claim(ISS, token_id, clock.now + timedelta(minutes=5))
    clock.now += timedelta(minutes=6)
    assert database_guard.claim(ISS, token_id, clock.now + timedelta(minutes=5)) is True


def test_expired_records_are_purged(database_guard, clock):
    token_id = jti()
    database_guard.claim(ISS, token_id, clock.now + timedelta(minutes=5))
    clock.now += timedelta(hours=2)  # past the expiry and the purge interval
    database_guard.claim(ISS, jti(), clock.now + timedelta(minutes=5))
    with database_guard.engine.connect() as conn:
        left = conn.execute(
            select(func.count())
            .select_from(jwt_replay)
            .where(jwt_replay.c.key_hash == replay_key(ISS, token_id))
        ).scalar_one()
    assert left == 0


def test_only_a_hash_is_stored(database_guard, clock):
    token_id = jti()
    database_guard.claim(ISS, token_id, clock.now + timedelta(minutes=5))
    with database_guard.engine.connect() as conn:
        keys = conn.execute(select(jwt_replay.c.key_hash)).scalars().all()
    assert replay_key(ISS, token_id) in keys
    assert not any(token_id in key for key in keys)


@pytest.mark.redis
def test_redis_keys_expire_with_the_token(redis_guard, clock):
    token_id = jti()
    redis_guard.claim(ISS, token_id, clock.now + timedelta(seconds=360))
    ttl = redis_guard._client.ttl(RedisReplayGuard.prefix + replay_key(ISS, token_id))
    assert 350 <= ttl <= 360


def test_an_unreachable_database_fails_closed(tmp_path, clock):
    guard = DatabaseReplayGuard(migrated_engine(f"sqlite:///{tmp_path / 'replay.db'}"), clock)
    with guard.engine.begin() as conn:
        jwt_replay.drop(conn)  # the table vanishes: every query now fails
    with pytest.raises(ReplayGuardUnavailable):
        guard.claim(ISS, jti(), clock.now + timedelta(minutes=5))
    guard.engine.dispose()


def test_an_unreachable_redis_fails_closed(clock):
    guard = RedisReplayGuard.from_url("redis://127.0.0.1:1/0", clock)  # nothing listens
    with pytest.raises(ReplayGuardUnavailable):
        guard.claim(ISS, jti(), clock.now + timedelta(minutes=5))
