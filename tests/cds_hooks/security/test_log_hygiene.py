"""Neither the EHR's JWT nor the FHIR access token ever reaches a log record or a response."""

from __future__ import annotations

import logging
import re
import secrets
from typing import Any

import pytest
import responses
from cryptography.hazmat.primitives.asymmetric import ec

from cds_hooks.app import create_app
from cds_hooks.hooks.registry import HANDLERS, ServiceRegistry
from cds_hooks.runtime import runtime
from cds_hooks.security.logsafe import REDACTED, install_log_redaction, redact
from tests.cds_hooks.security.jwt_helpers import (
    BASE,
    JWKS_URL,
    SERVICE,
    SERVICE_AUD,
    SERVICE_PATH,
    FakeEhr,
    app_config,
    bearer,
    close_app,
    hook_body,
)

FHIR = "https://ehr.example.org/fhir"
# Opaque, as many EHRs issue them: no shape the redacting filter could recognise, so it
# only stays out of the log if no code path ever writes it.
ACCESS_TOKEN = "opaque-" + secrets.token_urlsafe(24)


@pytest.fixture(autouse=True)
def _keep_log_level():
    logger = logging.getLogger("lipcds")
    level = logger.level
    yield
    logger.setLevel(level)


@pytest.fixture(scope="module")
def ehr() -> FakeEhr:
    return FakeEhr()


@pytest.fixture
def app(ehr, tmp_path):
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.get(JWKS_URL, json=ehr.jwks())
        # The FHIR server refuses the token and, carelessly, quotes it back.
        mock.get(
            re.compile(re.escape(FHIR) + r"/.*"),
            status=401,
            json={
                "resourceType": "OperationOutcome",
                "issue": [
                    {
                        "severity": "error",
                        "code": "login",
                        "diagnostics": f"token {ACCESS_TOKEN} expired",
                    }
                ],
            },
        )
        app = create_app(
            app_config(
                f"sqlite:///{tmp_path / 'lipcds.db'}",
                fhir_allowed_servers=[FHIR],
                log_level="DEBUG",
            )
        )
        yield app
        close_app(app)


def without_prefetch(body: dict[str, Any]) -> dict[str, Any]:
    body.pop("prefetch")
    return body


def calls(ehr: FakeEhr) -> list[tuple[str, str, dict[str, Any], int]]:
    """(name, JWT, body, expected status): valid and invalid, with the access token."""
    valid = ehr.token(SERVICE_AUD)
    bad_body = hook_body(ACCESS_TOKEN)
    bad_body["fhirAuthorization"]["token_type"] = f"Bearer {ACCESS_TOKEN}"  # 400
    bad_body["context"]["patientId"] = ACCESS_TOKEN + "/x"
    return [
        ("valid", valid, hook_body(ACCESS_TOKEN), 200),
        ("replayed", valid, hook_body(ACCESS_TOKEN), 401),
        ("invalid body", ehr.token(SERVICE_AUD), bad_body, 400),
        (
            "fetch with the token",
            ehr.token(SERVICE_AUD),
            without_prefetch(hook_body(ACCESS_TOKEN)),
            0,
        ),
        (
            "bad signature",
            ehr.token(SERVICE_AUD, key=ec.generate_private_key(ec.SECP384R1())),
            hook_body(ACCESS_TOKEN),
            401,
        ),
        ("expired", ehr.token(SERVICE_AUD, exp=1), hook_body(ACCESS_TOKEN), 401),
        ("wrong aud", ehr.token(BASE + "/cds-services/other"), hook_body(ACCESS_TOKEN), 401),
    ]


def test_no_token_in_any_log_record_or_response(app, ehr, caplog):
    client = app.test_client()
    jwts: set[str] = set()
    bodies: list[str] = []
    with caplog.at_level(logging.DEBUG):
        for name, token, body, status in calls(ehr):
            jwts.add(token)
            response = client.post(SERVICE_PATH, json=body, headers=bearer(token))
            if status:
                assert response.status_code == status, (name, response.get_json())
            bodies.append(response.get_data(as_text=True))
        # Not a Bearer header, and a feedback call: the token still stays out.
        token = ehr.token(SERVICE_AUD)
        jwts.add(token)
        response = client.post(SERVICE_PATH, json={}, headers={"Authorization": f"JWT {token}"})
        bodies.append(response.get_data(as_text=True))
        token = ehr.token(f"{SERVICE_AUD}/feedback")
        jwts.add(token)
        response = client.post(
            f"{SERVICE_PATH}/feedback", json={"feedback": [{"card": token}]}, headers=bearer(token)
        )
        bodies.append(response.get_data(as_text=True))

    assert caplog.records, "the requests were logged"
    everything = [caplog.text, *bodies]
    for record in caplog.records:
        everything += [
            record.getMessage(),
            str(record.msg),
            repr(record.args),
            record.exc_text or "",
        ]
    for secret in [*jwts, ACCESS_TOKEN]:
        for text in everything:
            assert secret not in text
            assert secret.split(".")[-1] not in text  # not even a signature


def test_an_unexpected_error_carrying_a_token_is_redacted(app, ehr, caplog, monkeypatch):
    token = ehr.token(SERVICE_AUD)

    def explode(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError(f"upstream said: Authorization: Bearer {token}")

    rt = runtime(app)
    monkeypatch.setattr(
        rt, "services", ServiceRegistry.build(rt.kb, {**HANDLERS, SERVICE: explode})
    )
    with caplog.at_level(logging.DEBUG):
        response = app.test_client().post(SERVICE_PATH, json=hook_body(), headers=bearer(token))
    assert response.status_code == 500
    assert token not in response.get_data(as_text=True)
    assert "Traceback" in caplog.text
    assert token not in caplog.text


@pytest.mark.parametrize(
    ("text", "kept"),
    [
        ("Authorization: Bearer abc123-opaque", "Authorization: Bearer "),
        ("header was 'bearer%20xyz'", "header was 'bearer "),
        ('{"access_token": "s3cr3t", "scope": "x"}', '"scope": "x"'),
        ("?access_token=s3cr3t&x=1", "&x=1"),
        ("{'id_token': 's3cr3t'}", "{'id_token': '"),
    ],
)
def test_redact_bearer_and_named_tokens(text, kept):
    cleaned = redact(text)
    assert "s3cr3t" not in cleaned and "abc123-opaque" not in cleaned and "xyz" not in cleaned
    assert kept in cleaned and REDACTED in cleaned


def test_redact_a_bare_jwt(ehr):
    token = ehr.token(SERVICE_AUD)
    assert redact(f"got {token} from EHR") == f"got {REDACTED} from EHR"


@pytest.mark.parametrize(
    "text",
    [
        "lipcds ready: knowledge base 2026.11.0, 1 services",
        "cds_hooks.auth.TokenVerifier refused",
        "https://cds.example.org/cds-services/lip-twitch-patient-view",
        "store: sqlite:////tmp/lipcds.db",
        "requests.exceptions.ConnectionError: refused",
        "urllib3.exceptions.NewConnectionError.args",
        "requests.exceptions.ReadTimeout.with_traceback",
        "sqlalchemy.exc.OperationalError: (psycopg.errors.QueryCanceled)",
    ],
)
def test_ordinary_messages_are_left_alone(text):
    assert redact(text) == text


def test_library_loggers_are_covered_too(ehr, caplog):
    install_log_redaction()
    token = ehr.token(SERVICE_AUD)
    with caplog.at_level(logging.DEBUG):
        logging.getLogger("urllib3.connectionpool").debug("GET /x?t=%s", token)
        logging.getLogger("lipcds.deep.child").info("token %s", token)
    assert token not in caplog.text
    assert caplog.text.count(REDACTED) == 2
