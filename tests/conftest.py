"""Fixtures every test package may use.

PostgreSQL is at 127.0.0.1:5432 on development and CI machines. Each test session (each
xdist worker) creates its own database `lipcds_test_<random>` and drops it at the end.
Without a server the PostgreSQL cases are skipped, except under CI=true, where they fail.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator

import pytest
from sqlalchemy import create_engine, text

PG_SERVER = "postgresql+psycopg://postgres@127.0.0.1:5432"
IN_CI = os.environ.get("CI", "").lower() == "true"


def _admin_engine():
    return create_engine(
        f"{PG_SERVER}/postgres",
        isolation_level="AUTOCOMMIT",
        connect_args={"connect_timeout": 3},
    )


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[str]:
    """A fresh PostgreSQL database for this session, dropped afterwards."""
    admin = _admin_engine()
    try:
        with admin.connect() as connection:
            connection.execute(text("SELECT 1"))
    except Exception as exc:
        admin.dispose()
        reason = f"PostgreSQL is not reachable at 127.0.0.1:5432: {exc.__class__.__name__}"
        if IN_CI:
            pytest.fail(reason + " (CI=true: no skipping)", pytrace=False)
        pytest.skip(reason)
    name = f"lipcds_test_{secrets.token_hex(6)}"
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield f"{PG_SERVER}/{name}"
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(autouse=True)
def _write_waiting_card_records():
    """After each test, the card records its apps issued are written, so they cannot reach
    the next test's tables; the connections that took them are closed."""
    yield
    from cds_hooks.store.writer import drain_all

    for writer in drain_all(timeout=5, release_connections=True):
        writer.close(timeout=0)  # its database is away for good: leave the rest in its spool
