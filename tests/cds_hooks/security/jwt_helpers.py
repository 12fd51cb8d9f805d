"""A fake EHR for the auth tests: its own keys, its JWKS, and tokens it signs."""

from __future__ import annotations

import os
import socket
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

ISS = "https://ehr.example.org"
JWKS_URL = "https://ehr.example.org/.well-known/jwks.json"
JKU_PREFIX = "https://ehr.example.org/keys/"
NOW = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)  # the fixed clock of the tests
BASE = "https://cds.example.org"


def fixed_clock() -> datetime:
    return NOW


@dataclass
class FakeEhr:
    """An EHR holding an EC P-384 and an RSA key; signs tokens like the CDS Hooks sandbox."""

    iss: str = ISS
    ec_key: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP384R1())
    )
    rsa_key: rsa.RSAPrivateKey = field(
        default_factory=lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048)
    )
    ec_kid: str = "ec-key-1"
    rsa_kid: str = "rsa-key-1"

    def jwks(self) -> dict[str, Any]:
        ec_jwk = ECAlgorithm.to_jwk(self.ec_key.public_key(), as_dict=True)
        rsa_jwk = RSAAlgorithm.to_jwk(self.rsa_key.public_key(), as_dict=True)
        ec_jwk.update(kid=self.ec_kid, use="sig", alg="ES384")
        rsa_jwk.update(kid=self.rsa_kid, use="sig")
        return {"keys": [ec_jwk, rsa_jwk]}

    def claims(self, aud: str, /, **overrides: Any) -> dict[str, Any]:
        now = int(NOW.timestamp())
        claims = {
            "iss": self.iss,
            "aud": aud,
            "iat": now,
            "exp": now + 300,
            "jti": str(uuid.uuid4()),
        }
        claims.update(overrides)
        return {k: v for k, v in claims.items() if v is not None}

    def token(
        self,
        aud: str,
        /,
        *,
        alg: str = "ES384",
        kid: str | None = None,
        headers: dict[str, Any] | None = None,
        key: Any = None,
        **claims: Any,
    ) -> str:
        if key is None:
            key = self.rsa_key if alg.startswith(("RS", "PS")) else self.ec_key
        if kid is None:
            kid = self.rsa_kid if alg.startswith(("RS", "PS")) else self.ec_kid
        header = {"kid": kid, "typ": "JWT", **(headers or {})}
        return jwt.encode(self.claims(aud, **claims), key, algorithm=alg, headers=header)


def trusted_issuer_config(**extra: Any) -> list[dict[str, Any]]:
    entry = {"iss": ISS, "jwks_url": JWKS_URL, "jku_allow": [JKU_PREFIX]}
    entry.update(extra)
    return [entry]


SERVICE = "lip-twitch-patient-view"
SERVICE_PATH = f"/cds-services/{SERVICE}"
SERVICE_AUD = BASE + SERVICE_PATH


def app_config(database_url: str, **overrides: Any) -> dict[str, Any]:
    """Settings of an app that trusts the fake EHR, with a fixed clock."""
    config = {
        "env": "test",
        "trusted_issuers": trusted_issuer_config(),
        "public_base_url": BASE,
        "database_url": database_url,
        "clock": fixed_clock,
    }
    config.update(overrides)
    return config


def hook_body(access_token: str | None = None) -> dict[str, Any]:
    """A patient-view request with an empty (but complete) prefetch."""
    prefetch: dict[str, Any] = {
        key: {"resourceType": "Bundle", "type": "searchset", "entry": []}
        for key in ("conditions", "labs", "medRequests", "medStatements", "findings")
    }
    prefetch["patient"] = {"resourceType": "Patient", "id": "p1", "birthDate": "1980-01-01"}
    body: dict[str, Any] = {
        "hook": "patient-view",
        "hookInstance": str(uuid.uuid4()),
        "context": {"userId": "Practitioner/1", "patientId": "p1"},
        "prefetch": prefetch,
    }
    if access_token is not None:
        body["fhirServer"] = "https://ehr.example.org/fhir"
        body["fhirAuthorization"] = {
            "access_token": access_token,
            "token_type": "Bearer",
            "expires_in": 300,
            "scope": "patient/*.read",
            "subject": "lipcds",
        }
    return body


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def close_app(app: Any) -> None:
    """Release the app's database connections (psycopg warns about unclosed ones)."""
    rt = app.extensions["lipcds"]
    if rt.store is not None:
        rt.store.dispose()
    guard = rt.replay_guard
    if guard is not None and hasattr(guard, "engine"):
        guard.engine.dispose()
    elif guard is not None:
        guard._client.close()


REDIS_URL = "redis://127.0.0.1:6379/0"


def require_server(what: str, port: int) -> None:
    """Skip when the server is down, except under CI, where it must be up."""
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{what} is not reachable at 127.0.0.1:{port} (CI=true: no skipping)")
        pytest.skip(f"{what} is not running at 127.0.0.1:{port}")
