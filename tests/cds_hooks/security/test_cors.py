"""CORS for browser-based EHRs and the CDS Hooks sandbox: preflight, origins, wildcard."""

from __future__ import annotations

import logging
from typing import Any

import pytest
import responses

from cds_hooks.app import create_app
from cds_hooks.config import ConfigError
from tests.cds_hooks.security.jwt_helpers import (
    JWKS_URL,
    SERVICE_AUD,
    SERVICE_PATH,
    FakeEhr,
    app_config,
    bearer,
    close_app,
    hook_body,
)

SANDBOX = "https://sandbox.cds-hooks.org"


@pytest.fixture(autouse=True)
def _keep_log_level():
    # create_app sets the "lipcds" logger's level; later tests expect it untouched.
    logger = logging.getLogger("lipcds")
    level = logger.level
    yield
    logger.setLevel(level)


@pytest.fixture
def ehr_jwks():
    ehr = FakeEhr()
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.get(JWKS_URL, json=ehr.jwks())
        yield ehr


@pytest.fixture
def make_client(tmp_path):
    made = []

    def make(**overrides: Any):
        app = create_app(app_config(f"sqlite:///{tmp_path / 'lipcds.db'}", **overrides))
        made.append(app)
        return app.test_client()

    yield make
    for app in made:
        close_app(app)


def preflight(client, origin: str, path: str = SERVICE_PATH):
    return client.options(
        path,
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type",
        },
    )


def test_preflight_from_an_allowed_origin(make_client):
    response = preflight(make_client(cors_origins=[SANDBOX]), SANDBOX)
    assert response.status_code == 200  # no token: browsers send none with a preflight
    assert response.headers["Access-Control-Allow-Origin"] == SANDBOX
    allowed = response.headers["Access-Control-Allow-Headers"].lower()
    assert "authorization" in allowed and "content-type" in allowed
    assert "POST" in response.headers["Access-Control-Allow-Methods"]
    assert response.headers["Access-Control-Max-Age"] == "600"
    assert "Access-Control-Allow-Credentials" not in response.headers


def test_the_answer_varies_by_origin_when_several_are_allowed(make_client):
    client = make_client(cors_origins=[SANDBOX, "https://ehr.example.org"])
    response = preflight(client, "https://ehr.example.org")
    assert response.headers["Access-Control-Allow-Origin"] == "https://ehr.example.org"
    assert "Origin" in response.headers["Vary"]


def test_preflight_of_discovery_and_feedback(make_client):
    client = make_client(cors_origins=[SANDBOX])
    for path in ("/cds-services", f"{SERVICE_PATH}/feedback"):
        assert preflight(client, SANDBOX, path).headers["Access-Control-Allow-Origin"] == SANDBOX


def test_another_origin_gets_no_cors_headers(make_client):
    client = make_client(cors_origins=[SANDBOX])
    response = preflight(client, "https://evil.example")
    assert "Access-Control-Allow-Origin" not in response.headers
    response = client.get("/cds-services", headers={"Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in response.headers


def test_a_refusal_is_readable_by_the_browser(make_client):
    # Without CORS headers on the 401 the sandbox would only see a network error.
    client = make_client(cors_origins=[SANDBOX])
    response = client.post(SERVICE_PATH, json=hook_body(), headers={"Origin": SANDBOX})
    assert response.status_code == 401
    assert response.headers["Access-Control-Allow-Origin"] == SANDBOX


def test_a_cross_origin_hook_call(make_client, ehr_jwks):
    client = make_client(cors_origins=[SANDBOX])
    headers = {"Origin": SANDBOX, **bearer(ehr_jwks.token(SERVICE_AUD))}
    response = client.post(SERVICE_PATH, json=hook_body(), headers=headers)
    assert response.status_code == 200
    assert response.headers["Access-Control-Allow-Origin"] == SANDBOX


def test_no_origins_configured_means_no_cors(make_client):
    response = preflight(make_client(), SANDBOX)
    assert "Access-Control-Allow-Origin" not in response.headers


def test_wildcard_outside_production(make_client):
    response = preflight(make_client(cors_origins=["*"]), "http://localhost:8080")
    assert response.headers["Access-Control-Allow-Origin"] == "*"


def test_wildcard_is_refused_in_production(tmp_path):
    with pytest.raises(ConfigError, match="LIPCDS_CORS_ORIGINS"):
        create_app(app_config(f"sqlite:///{tmp_path}/x.db", env="production", cors_origins=["*"]))


@pytest.mark.parametrize(
    "origin", ["https://ehr.example.org/", "ehr.example.org", "https://*.example.org", "null"]
)
def test_an_origin_must_be_scheme_host_and_port(tmp_path, origin):
    with pytest.raises(ConfigError, match="LIPCDS_CORS_ORIGINS"):
        create_app(app_config(f"sqlite:///{tmp_path / 'x.db'}", cors_origins=[origin]))
