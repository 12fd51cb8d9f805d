"""A fake EHR for the auth tests: its own keys, its JWKS, and tokens it signs."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import jwt
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
