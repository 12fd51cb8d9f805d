"""Engine bounds: a slow, frozen or refused database costs a call a bounded time, and the
store serves again when the database is back."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import exc as sa_exc
from sqlalchemy import text
from sqlalchemy.engine import make_url

from cds_hooks.store import Store, StoreUnavailable
from cds_hooks.store.engine import WATCHDOG, EngineLimits, postgres_connect_args
from tests.cds_hooks.conftest import POSTGRES
from tests.support.tcp_proxy import TcpProxy

# A frozen database may cost a call the operation timeout (2 s) plus scheduling noise on a
# loaded two-core machine; without the bounds these calls hang for minutes.
BOUND = 4.0


@pytest.fixture
def proxy():
    with TcpProxy(("127.0.0.1", 5432)) as proxy:
        yield proxy


@pytest.fixture
def proxied(store, proxy):
    if store.dialect != "postgresql":
        pytest.skip("the proxy stands in front of PostgreSQL")
    url = make_url(store.engine.url.render_as_string(hide_password=False)).set(port=proxy.port)
    proxied = Store(url.render_as_string(hide_password=False), cooldown_seconds=0.2)
    yield proxied
    proxied.dispose()


def timed(fn):
    start = time.monotonic()
    try:
        fn()
    except Exception as exc:
        return time.monotonic() - start, exc
    return time.monotonic() - start, None


@pytest.mark.parametrize("database_url", [POSTGRES], indirect=True)
def test_postgres_sessions_carry_the_server_side_bounds(store):
    with store.engine.connect() as connection:
        assert connection.execute(text("SHOW statement_timeout")).scalar() == "1500ms"
        assert connection.execute(text("SHOW idle_in_transaction_session_timeout")).scalar() in (
            "10s",
            "10000ms",
        )
        assert connection.execute(text("SHOW application_name")).scalar() == "lipcds"


def test_postgres_connections_use_keepalives_and_a_connect_timeout():
    args = postgres_connect_args(
        EngineLimits(connect_timeout=3, keepalive_idle=7, keepalive_interval=2, keepalive_count=4)
    )
    assert args["connect_timeout"] == 3
    assert (args["keepalives"], args["keepalives_idle"]) == (1, 7)
    assert (args["keepalives_interval"], args["keepalives_count"]) == (2, 4)
    assert args["tcp_user_timeout"] == (7 + 2 * 4) * 1000


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_sqlite_runs_in_wal_mode_with_a_busy_timeout(store):
    with store.engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert connection.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL
        assert connection.exec_driver_sql("PRAGMA busy_timeout").scalar() == 2000


def test_database_errors_do_not_carry_the_values(store):
    with pytest.raises(sa_exc.IntegrityError) as caught:
        with store.engine.begin() as connection:
            connection.execute(
                text(
                    "INSERT INTO feedback (card_id, outcome, user_comment, outcome_timestamp,"
                    " received_at) VALUES (:card, 'overridden', :comment, :at, :at)"
                ),
                {"card": 999999, "comment": "private words of a clinician", "at": "2026-01-01"},
            )
    assert "private words" not in str(caught.value)


@pytest.mark.parametrize("database_url", [POSTGRES], indirect=True)
def test_a_slow_statement_is_cancelled_by_the_server(store):
    def slow():
        with store._transaction() as connection:
            connection.execute(text("SELECT pg_sleep(10)"))

    elapsed, error = timed(slow)
    assert isinstance(error, StoreUnavailable)
    assert elapsed < BOUND


@pytest.mark.parametrize("database_url", [POSTGRES], indirect=True)
def test_a_frozen_database_costs_a_bounded_time_and_the_store_recovers(proxied, proxy):
    proxied.ping()  # one pooled connection, now frozen in place
    proxy.freeze()
    cuts = WATCHDOG.expired
    elapsed, error = timed(proxied.ping)
    assert isinstance(error, StoreUnavailable), error
    assert elapsed < BOUND
    assert WATCHDOG.expired > cuts
    time.sleep(proxied.cooldown_seconds)
    elapsed, error = timed(proxied.ping)  # a new connection into the frozen server
    assert isinstance(error, StoreUnavailable), error
    assert elapsed < BOUND
    proxy.pass_()
    time.sleep(proxied.cooldown_seconds)
    proxied.ping()
    assert proxied.available


@pytest.mark.parametrize("database_url", [POSTGRES], indirect=True)
def test_a_refused_database_fails_fast_and_the_store_recovers(proxied, proxy):
    proxied.ping()
    proxy.refuse()
    elapsed, error = timed(proxied.ping)
    assert isinstance(error, StoreUnavailable), error
    assert elapsed < 1.0
    assert not proxied.available  # fails fast for the cooldown
    proxy.pass_()
    time.sleep(proxied.cooldown_seconds)
    proxied.ping()
