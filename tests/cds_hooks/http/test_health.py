"""The probe endpoints: /healthz (liveness) and /readyz (readiness)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask

from cds_hooks import create_app
from cds_hooks.runtime import runtime
from cds_hooks.store import StoreUnavailable

PATIENT_KEY = "test-patient-key-0123456789abcdef"


def make_app(database_url: str, **settings: Any) -> Flask:
    config: dict[str, Any] = {
        "env": "test",
        "auth_mode": "jwt",  # no trusted issuers: every hook call is refused
        "database_url": database_url,
        "patient_id_key": PATIENT_KEY,
        "log_level": "ERROR",
    }
    config.update(settings)
    return create_app(config)


@pytest.fixture
def app(tmp_path) -> Iterator[Flask]:
    app = make_app(f"sqlite:///{tmp_path / 'health.db'}")
    yield app
    runtime(app).store.dispose()


class _DownStore:
    def ping(self) -> None:
        raise StoreUnavailable("database unavailable: connection refused by db.internal:5432")


def test_liveness_answers_ok_without_a_token(app):
    response = app.test_client().get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok"}
    assert response.headers["Cache-Control"] == "no-store"


def test_hook_calls_still_need_a_token(app):
    # The probes are open; the CDS Hooks endpoints are not (the auth guard is path-based).
    response = app.test_client().post("/cds-services/lip-twitch-patient-view", json={})
    assert response.status_code == 401


def test_readiness_with_a_reachable_store(app):
    response = app.test_client().get("/readyz")
    assert response.status_code == 200
    assert response.get_json() == {
        "status": "ready",
        "checks": {"knowledge_base": "ok", "store": "ok"},
    }


def test_readiness_fails_when_the_store_is_down_without_saying_where(app):
    rt = runtime(app)
    real_store = rt.store
    rt.store = _DownStore()
    try:
        response = app.test_client().get("/readyz")
    finally:
        rt.store = real_store
    assert response.status_code == 503
    body = response.get_json()
    assert body["status"] == "unavailable"
    assert body["checks"]["store"] == "unreachable"
    assert "db.internal" not in response.get_data(as_text=True)


def test_readiness_without_a_store_checks_the_knowledge_base_only(app):
    rt = runtime(app)
    real_store, rt.store = rt.store, None
    try:
        response = app.test_client().get("/readyz")
    finally:
        rt.store = real_store
    assert response.status_code == 200
    assert response.get_json()["checks"] == {"knowledge_base": "ok"}


def test_readiness_against_an_unreachable_postgresql():
    # Nothing listens on port 1: start-up logs and carries on, readiness says 503.
    app = make_app("postgresql+psycopg://lipcds@127.0.0.1:1/lipcds")
    try:
        response = app.test_client().get("/readyz")
    finally:
        runtime(app).store.dispose()
    assert response.status_code == 503
    assert response.get_json()["checks"]["store"] == "unreachable"


def test_probes_answer_head_and_refuse_post(app):
    client = app.test_client()
    assert client.head("/healthz").status_code == 200
    assert client.post("/healthz").status_code == 405


def test_readiness_fails_while_the_replay_guards_redis_is_away(tmp_path):
    from tests.cds_hooks.security.jwt_helpers import require_server, trusted_issuer_config
    from tests.support.tcp_proxy import TcpProxy

    require_server("Redis", 6379)
    with TcpProxy(("127.0.0.1", 6379)) as proxy:
        app = make_app(
            f"sqlite:///{tmp_path / 'health.db'}",
            redis_url=f"redis://127.0.0.1:{proxy.port}/0",
            trusted_issuers=trusted_issuer_config(),
        )
        client = app.test_client()
        try:
            assert client.get("/readyz").status_code == 200
            proxy.refuse()
            response = client.get("/readyz")
            assert response.status_code == 503
            assert response.get_json()["checks"] == {
                "knowledge_base": "ok",
                "store": "ok",
                "replay_guard": "unreachable",
            }
            assert str(proxy.port) not in response.get_data(as_text=True)
            proxy.pass_()
            assert client.get("/readyz").status_code == 200
        finally:
            runtime(app).store.dispose()
            runtime(app).replay_guard._client.close()


def test_readiness_asks_the_database_once_for_store_and_replay_guard(tmp_path):
    from tests.cds_hooks.security.jwt_helpers import trusted_issuer_config

    app = make_app(f"sqlite:///{tmp_path / 'health.db'}", trusted_issuers=trusted_issuer_config())
    try:
        response = app.test_client().get("/readyz")
    finally:
        runtime(app).store.dispose()
    assert response.status_code == 200
    assert response.get_json()["checks"]["replay_guard"] == "ok"
