"""The replay guard while its shared seen-set (PostgreSQL, Redis) is away: a per-process
fallback that is counted, logged and bounded, or a refusal when so configured."""

from __future__ import annotations

import logging
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.engine import make_url

from cds_hooks.security.replay import (
    DatabaseReplayGuard,
    FallbackReplayGuard,
    LocalReplayGuard,
    RedisReplayGuard,
    ReplayGuardUnavailable,
)
from cds_hooks.store import Store
from tests.cds_hooks.security.jwt_helpers import require_server
from tests.support.tcp_proxy import TcpProxy

ISS = "https://ehr.example.org"
NOW = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
EXPIRES = NOW + timedelta(minutes=5)


def clock() -> datetime:
    return NOW


@pytest.fixture(params=["postgres", "redis"])
def shared(request):
    """A shared guard reached through a proxy the test controls: (guard, proxy)."""
    if request.param == "redis":
        require_server("Redis", 6379)
        with TcpProxy(("127.0.0.1", 6379)) as proxy:
            guard = RedisReplayGuard.from_url(f"redis://127.0.0.1:{proxy.port}/0", clock)
            yield guard, proxy
            guard._client.close()
        return
    url = request.getfixturevalue("postgres_database")
    direct = Store(url)
    direct.upgrade()
    direct.dispose()
    with TcpProxy(("127.0.0.1", 5432)) as proxy:
        proxied = make_url(url).set(port=proxy.port).render_as_string(hide_password=False)
        store = Store(proxied)
        yield DatabaseReplayGuard(store.engine, clock), proxy
        store.dispose()


def jti() -> str:
    return str(uuid.uuid4())


def test_while_the_shared_guard_answers_it_decides(shared):
    guard, _proxy = shared
    fallback = FallbackReplayGuard(guard, clock)
    token = jti()
    assert fallback.claim(ISS, token, EXPIRES)
    assert not fallback.claim(ISS, token, EXPIRES)
    assert not guard.claim(ISS, token, EXPIRES)  # it is in the shared seen-set
    assert fallback.stats.local_claims == 0


@pytest.mark.parametrize("fault", ["refuse", "freeze"])
def test_during_an_outage_this_process_checks_jti_itself(shared, fault, caplog):
    guard, proxy = shared
    fallback = FallbackReplayGuard(guard, clock, retry_seconds=60)
    assert fallback.claim(ISS, jti(), EXPIRES)  # connected before the fault
    getattr(proxy, fault)()
    during = [jti() for _ in range(5)]
    with caplog.at_level(logging.WARNING, logger="lipcds.auth.replay"):
        started = time.monotonic()
        assert all(fallback.claim(ISS, token, EXPIRES) for token in during)
        assert not fallback.claim(ISS, during[0], EXPIRES)  # a replay to this process
        elapsed = time.monotonic() - started
    # One call waits for the shared guard (bounded); the others do not wait at all.
    assert elapsed < 4.0
    assert fallback.in_fallback
    assert fallback.stats.outages == 1
    assert fallback.stats.local_claims == 5
    messages = " ".join(r.getMessage() for r in caplog.records)
    assert "unreachable" in messages and "LIPCDS_REPLAY_FALLBACK=local" in messages


def test_after_the_outage_the_jtis_seen_meanwhile_reach_the_shared_guard(shared, caplog):
    guard, proxy = shared
    fallback = FallbackReplayGuard(guard, clock, retry_seconds=0.1)
    proxy.refuse()
    during = [jti() for _ in range(3)]
    assert all(fallback.claim(ISS, token, EXPIRES) for token in during)
    proxy.pass_()
    time.sleep(0.2)
    with caplog.at_level(logging.INFO, logger="lipcds.auth.replay"):
        assert fallback.claim(ISS, jti(), EXPIRES)  # the shared guard again
        assert not fallback.in_fallback
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not any(
            "written to the shared" in r.getMessage() for r in caplog.records
        ):
            time.sleep(0.05)
    # Another worker now refuses the tokens this one accepted during the outage.
    other = FallbackReplayGuard(guard, clock)
    assert not any(other.claim(ISS, token, EXPIRES) for token in during)
    assert any("back after" in r.getMessage() for r in caplog.records)


def test_a_jti_two_processes_accepted_during_the_outage_is_reported(shared, caplog):
    guard, proxy = shared
    first = FallbackReplayGuard(guard, clock, retry_seconds=0.1)
    second = FallbackReplayGuard(guard, clock, retry_seconds=0.1)
    proxy.refuse()
    token = jti()
    assert first.claim(ISS, token, EXPIRES)
    assert second.claim(ISS, token, EXPIRES)  # not caught during the outage: documented
    proxy.pass_()
    time.sleep(0.2)
    with caplog.at_level(logging.ERROR, logger="lipcds.auth.replay"):
        assert first.claim(ISS, jti(), EXPIRES)
        assert second.claim(ISS, jti(), EXPIRES)
        _wait_for(lambda: first.stats.late_replays + second.stats.late_replays == 1)
    # Whichever wrote it second finds it there already.
    assert first.stats.late_replays + second.stats.late_replays == 1
    assert any("already in the shared seen-set" in r.getMessage() for r in caplog.records)


def test_refuse_mode_refuses_while_the_shared_guard_is_away(shared):
    guard, proxy = shared
    fallback = FallbackReplayGuard(guard, clock, mode="refuse", retry_seconds=60)
    proxy.refuse()
    with pytest.raises(ReplayGuardUnavailable, match="LIPCDS_REPLAY_FALLBACK=refuse"):
        fallback.claim(ISS, jti(), EXPIRES)
    started = time.monotonic()
    with pytest.raises(ReplayGuardUnavailable):
        fallback.claim(ISS, jti(), EXPIRES)
    assert time.monotonic() - started < 0.5  # fails fast, does not wait on the server
    assert fallback.stats.refused == 2


def test_the_local_guard_refuses_rather_than_forget():
    local = LocalReplayGuard(clock, max_entries=2)
    assert local.claim(ISS, "a", EXPIRES) and local.claim(ISS, "b", EXPIRES)
    with pytest.raises(ReplayGuardUnavailable):
        local.claim(ISS, "c", EXPIRES)
    expired = LocalReplayGuard(clock, max_entries=1)
    assert expired.claim(ISS, "a", NOW - timedelta(seconds=1))
    assert expired.claim(ISS, "b", EXPIRES)  # the expired entry made room


def _wait_for(condition, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not condition():
        time.sleep(0.05)
