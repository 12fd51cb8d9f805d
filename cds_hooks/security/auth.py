"""Authentication of the EHR: the JWT bearer token of CDS Hooks 2.0, and CORS.

https://cds-hooks.hl7.org/2.0/#trusting-cds-clients — every hook and feedback call carries
`Authorization: Bearer <JWT>` signed with the EHR's private key (ES384/RS384, never none or
HMAC). The public keys come from the issuer's configured JWKS URL or from an allow-listed
`jku`. Any failure answers 401 with a generic body; the reason is logged (without the
token). docs/SECURITY.md describes what is checked and why.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import jwt
import requests
from flask import Flask, g, request
from jwt.exceptions import InvalidTokenError, PyJWKError
from marshmallow import (
    RAISE,
    Schema,
    ValidationError,
    fields,
    post_load,
    validate,
    validates_schema,
)
from sqlalchemy import Engine

from cds_hooks.config import ConfigError, Settings
from cds_hooks.http.errors import ServiceUnavailable, Unauthorized
from cds_hooks.http.text import bad_character
from cds_hooks.ops.observe import note_issuer
from cds_hooks.security.logsafe import install_log_redaction
from cds_hooks.security.replay import ReplayGuard, ReplayGuardUnavailable, build_replay_guard
from cds_hooks.validation import NONBLANK, flatten_messages

if TYPE_CHECKING:
    from flask.typing import ResponseReturnValue

log = logging.getLogger("lipcds.auth")

# Asymmetric signature algorithms only: a service holds no secret shared with the EHR,
# and an HMAC "secret" would be the public key anyone can fetch (algorithm confusion).
ASYMMETRIC_ALGORITHMS = frozenset(
    {"ES256", "ES384", "ES512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "EdDSA"}
)
_KEY_TYPES = {"ES": "EC", "RS": "RSA", "PS": "RSA", "Ed": "OKP"}

MAX_TOKEN_BYTES = 16 * 1024
# cds-hooks best practices: "store the jti until the maximum JWT lifetime (≤ 1 hour)".
MAX_TOKEN_LIFETIME_SECONDS = 3600
MIN_RSA_BITS = 2048

_JWKS_MAX_BYTES = 256 * 1024
_JWKS_MAX_KEYS = 64
_JWKS_MAX_URLS = 64
_JWKS_TIMEOUT = (2.0, 3.0)  # connect, read (seconds)
_ORIGIN = re.compile(r"^https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?$")


def _shown(value: Any) -> str:
    """An attacker-chosen value made safe for a log line: repr (no newlines), truncated."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


# -- configuration -----------------------------------------------------------------------


@dataclass(frozen=True)
class TrustedIssuer:
    """One EHR we accept tokens from (an entry of LIPCDS_TRUSTED_ISSUERS)."""

    iss: str
    jwks_url: str | None = None
    jku_allow: tuple[str, ...] = ()  # exact URLs, or prefixes ending in "/"
    tenants: frozenset[str] | None = None  # None: any tenant (or none)
    algorithms: frozenset[str] = frozenset({"ES384", "RS384"})

    def allows_jku(self, jku: str) -> bool:
        if not _plain_url(jku):
            return False
        return any(
            jku == allowed or (allowed.endswith("/") and jku.startswith(allowed))
            for allowed in self.jku_allow
        )


def _plain_url(url: str) -> bool:
    """An http(s) URL with no credentials, fragment, dot segments or odd characters."""
    if any(c in url for c in "\\@#") or any(c.isspace() or ord(c) < 32 for c in url):
        return False
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        return False
    return ".." not in parts.path.split("/") and "%2e" not in parts.path.lower()


class _StringOrList(fields.List):
    """A list of strings, or one string standing for a list of one."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> list[Any]:
        return super()._deserialize([value] if isinstance(value, str) else value, attr, data)


class _TrustedIssuerSchema(Schema):
    """One entry of LIPCDS_TRUSTED_ISSUERS."""

    class Meta:
        unknown = RAISE

    error_messages = {
        "type": "must be an object with at least 'iss'",
        "unknown": "unknown key",
    }

    iss = fields.String(
        required=True,
        validate=validate.Regexp(r".*\S", error="must be a non-empty string"),
        error_messages={"required": "required (a non-empty string)"},
    )
    jwks_url = fields.String()
    jku_allow = _StringOrList(fields.String(), load_default=list)
    tenants = fields.List(
        fields.String(validate=NONBLANK),
        error_messages={"invalid": "must be a list of strings"},
    )
    algorithms = fields.List(
        fields.String(),
        validate=validate.Length(min=1, error="must be a non-empty list"),
        error_messages={"invalid": "must be a non-empty list"},
    )

    def __init__(self, allowed: frozenset[str], *, production: bool):
        super().__init__()
        self.allowed = allowed
        self.production = production

    @validates_schema
    def _urls_and_algorithms(self, data: dict[str, Any], **kwargs: Any) -> None:
        jwks_url = data.get("jwks_url")
        jku_allow = data.get("jku_allow", [])
        if jwks_url is None and not jku_allow:
            raise ValidationError("needs 'jwks_url' or 'jku_allow' (where its keys are)")
        named = (("jwks_url", [jwks_url] if jwks_url is not None else []), ("jku_allow", jku_allow))
        for name, urls in named:
            for url in urls:
                if not _plain_url(url):
                    raise ValidationError(f"{url!r} is not a plain http(s) URL", name)
                if self.production and not url.startswith("https://"):
                    raise ValidationError(f"{url!r} must use https in production", name)
                if name == "jku_allow" and not url.endswith("/") and _no_path(url):
                    raise ValidationError(f"entry {url!r} needs a path", name)
        outside = set(data.get("algorithms", ())) - self.allowed
        if outside:
            raise ValidationError(
                f"{sorted(outside)} are not in LIPCDS_ALLOWED_ALGORITHMS", "algorithms"
            )

    @post_load
    def _issuer(self, data: dict[str, Any], **kwargs: Any) -> TrustedIssuer:
        tenants = data.get("tenants")
        return TrustedIssuer(
            iss=data["iss"],
            jwks_url=data.get("jwks_url"),
            jku_allow=tuple(data["jku_allow"]),
            tenants=frozenset(tenants) if tenants is not None else None,
            algorithms=frozenset(data["algorithms"]) if "algorithms" in data else self.allowed,
        )


def parse_trusted_issuers(
    entries: Iterable[Any], allowed_algorithms: Iterable[str], *, production: bool
) -> dict[str, TrustedIssuer]:
    """Check LIPCDS_TRUSTED_ISSUERS; a bad entry stops start-up with the entry named."""
    schema = _TrustedIssuerSchema(check_algorithms(allowed_algorithms), production=production)
    issuers: dict[str, TrustedIssuer] = {}
    for index, entry in enumerate(entries):
        where = f"LIPCDS_TRUSTED_ISSUERS[{index}]"
        iss = entry.get("iss") if isinstance(entry, Mapping) else None
        if isinstance(iss, str) and iss.strip():
            where = f"{where} (iss={iss!r})"
        try:
            issuer = schema.load(entry)
        except ValidationError as exc:
            raise ConfigError(f"{where}: " + "; ".join(flatten_messages(exc.messages))) from None
        if issuer.iss in issuers:
            raise ConfigError(f"{where}: issuer listed twice")
        issuers[issuer.iss] = issuer
    return issuers


def _no_path(url: str) -> bool:
    return urlsplit(url).path in ("", "/")


def check_algorithms(algorithms: Iterable[str]) -> frozenset[str]:
    """LIPCDS_ALLOWED_ALGORITHMS: asymmetric signature algorithms only."""
    chosen = frozenset(algorithms)
    if not chosen:
        raise ConfigError("LIPCDS_ALLOWED_ALGORITHMS: must name at least one algorithm")
    refused = chosen - ASYMMETRIC_ALGORITHMS
    if refused:
        raise ConfigError(
            f"LIPCDS_ALLOWED_ALGORITHMS: {sorted(refused)} refused; only asymmetric "
            f"algorithms are allowed ({', '.join(sorted(ASYMMETRIC_ALGORITHMS))})"
        )
    return chosen


# -- keys --------------------------------------------------------------------------------


@dataclass
class _JwksEntry:
    lock: threading.Lock = field(default_factory=threading.Lock)
    keys: dict[str, dict[str, Any]] = field(default_factory=dict)
    fetched_at: float | None = None
    attempted_at: float | None = None
    parsed: dict[tuple[str, str], jwt.PyJWK] = field(default_factory=dict)


class JwksCache:
    """Public keys per JWKS URL: kept for `ttl` seconds, fetched again when an unknown
    `kid` appears, but at most once per `min_refresh_interval` seconds per URL, so
    tokens with made-up kids cannot turn the service into a request amplifier.
    """

    def __init__(
        self,
        ttl: float,
        min_refresh_interval: float,
        *,
        session: requests.Session | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ):
        self._ttl = ttl
        self._min_refresh = min_refresh_interval
        self._session = session or requests.Session()
        self._monotonic = monotonic
        self._entries: dict[str, _JwksEntry] = {}
        self._lock = threading.Lock()

    def get_key(self, url: str, kid: str, alg: str) -> jwt.PyJWK | None:
        """The key `kid` of the JWKS at `url`, ready to verify `alg`; None if there is none."""
        entry = self._entry(url)
        with entry.lock:  # one fetch per URL at a time; the others wait and reuse it
            now = self._monotonic()
            fresh = entry.fetched_at is not None and now - entry.fetched_at < self._ttl
            if not (fresh and kid in entry.keys):
                recently = entry.attempted_at is not None and (
                    now - entry.attempted_at < self._min_refresh
                )
                if not recently:
                    entry.attempted_at = now
                    keys = self._fetch(url)
                    if keys is not None:
                        entry.keys, entry.fetched_at, entry.parsed = keys, now, {}
            jwk = entry.keys.get(kid)
            if jwk is None:
                return None
            cached = entry.parsed.get((kid, alg))
            if cached is None:
                cached = entry.parsed[(kid, alg)] = _key_for(jwk, alg)
            return cached

    def _entry(self, url: str) -> _JwksEntry:
        with self._lock:
            entry = self._entries.get(url)
            if entry is None:
                if len(self._entries) >= _JWKS_MAX_URLS:
                    # Many jku URLs under one allowed prefix: forget the oldest.
                    self._entries.pop(next(iter(self._entries)))
                entry = self._entries[url] = _JwksEntry()
            return entry

    def _fetch(self, url: str) -> dict[str, dict[str, Any]] | None:
        try:
            # No redirects: only allow-listed URLs are ever fetched (SSRF).
            with self._session.get(
                url,
                timeout=_JWKS_TIMEOUT,
                allow_redirects=False,
                stream=True,
                headers={"Accept": "application/json, application/jwk-set+json"},
            ) as response:
                if response.status_code != 200:
                    log.warning("JWKS %s answered HTTP %d", url, response.status_code)
                    return None
                raw = response.raw.read(_JWKS_MAX_BYTES + 1, decode_content=True)
        except requests.RequestException as exc:
            log.warning("JWKS %s could not be fetched: %s", url, type(exc).__name__)
            return None
        if len(raw) > _JWKS_MAX_BYTES:
            log.warning("JWKS %s is larger than %d bytes; ignored", url, _JWKS_MAX_BYTES)
            return None
        try:
            return _parse_jwks(json.loads(raw))
        except (ValueError, UnicodeDecodeError) as exc:
            log.warning("JWKS %s refused: %s", url, exc)
            return None


def _parse_jwks(document: Any) -> dict[str, dict[str, Any]]:
    """The usable public signing keys of a JWK Set, by kid; ValueError if there are none."""
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise ValueError("not a JWK Set (no 'keys' list)")
    keys: dict[str, dict[str, Any]] = {}
    for jwk in document["keys"][:_JWKS_MAX_KEYS]:
        if not isinstance(jwk, dict):
            continue
        kid = jwk.get("kid")
        if not isinstance(kid, str) or not kid:
            continue  # the spec requires kid; a key without one can never be chosen
        if jwk.get("kty") not in ("EC", "RSA", "OKP"):
            log.warning("JWKS key %s skipped: key type %s is not asymmetric", kid, jwk.get("kty"))
            continue
        if any(private in jwk for private in ("d", "p", "q", "dp", "dq", "qi")):
            log.warning("JWKS key %s skipped: it contains private key material", kid)
            continue
        if jwk.get("use", "sig") != "sig":
            continue
        keys[kid] = jwk
    if not keys:
        raise ValueError("no usable asymmetric signing key")
    return keys


def _key_for(jwk: dict[str, Any], alg: str) -> jwt.PyJWK | None:
    """The JWK as a key for `alg`, or None if the two do not belong together."""
    if jwk.get("kty") != _KEY_TYPES.get(alg[:2]):
        return None
    if "alg" in jwk and jwk["alg"] != alg:
        return None
    try:
        key = jwt.PyJWK(jwk, algorithm=alg)
    except (PyJWKError, ValueError, TypeError):
        return None
    if jwk["kty"] == "RSA" and key.key.key_size < MIN_RSA_BITS:
        return None
    if jwk["kty"] == "EC" and {"ES256": "P-256", "ES384": "P-384", "ES512": "P-521"}.get(
        alg
    ) != jwk.get("crv"):
        return None
    return key


# -- verification ------------------------------------------------------------------------


@dataclass(frozen=True)
class VerifiedClient:
    """Who called: from a verified token, or anonymous when authentication is disabled."""

    iss: str | None
    tenant: str | None = None
    jti: str | None = None
    sub: str | None = None
    anonymous: bool = False


ANONYMOUS = VerifiedClient(iss=None, anonymous=True)


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


class TokenVerifier:
    """Checks the EHR's JWT; `verify` returns the caller or raises Unauthorized(reason)."""

    def __init__(
        self,
        issuers: Mapping[str, TrustedIssuer],
        keys: JwksCache,
        replay_guard: ReplayGuard | None,
        *,
        allowed_algorithms: Iterable[str] = ("ES384", "RS384"),
        clock_skew_seconds: int = 60,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ):
        self._issuers = dict(issuers)
        self._keys = keys
        self._replay = replay_guard
        self._algorithms = check_algorithms(allowed_algorithms)
        self._skew = clock_skew_seconds
        self._clock = clock

    def verify(self, token: str, audience: str) -> VerifiedClient:
        if len(token) > MAX_TOKEN_BYTES:
            raise Unauthorized("token too long")
        # 1. The header, not yet trusted: it only chooses what to check against.
        try:
            header = jwt.get_unverified_header(token)
            unverified = jwt.decode(token, options={"verify_signature": False})
        except InvalidTokenError as exc:
            raise Unauthorized(f"malformed token ({type(exc).__name__})") from None
        alg = header.get("alg")
        if alg not in self._algorithms:
            raise Unauthorized(f"algorithm {_shown(alg)} not allowed")
        typ = header.get("typ")
        if typ is not None and (not isinstance(typ, str) or typ.upper() != "JWT"):
            raise Unauthorized(f"header typ {_shown(typ)} is not JWT")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise Unauthorized("header has no kid")

        # 2. The issuer must be one we trust, and its keys come only from where we allow.
        iss = unverified.get("iss")
        issuer = self._issuers.get(iss) if isinstance(iss, str) else None
        if issuer is None:
            raise Unauthorized(f"issuer {_shown(iss)} is not trusted")
        if alg not in issuer.algorithms:
            raise Unauthorized(f"issuer {iss!r}: algorithm {alg} not allowed for it")
        jku = header.get("jku")
        if jku is not None:
            if not isinstance(jku, str) or not issuer.allows_jku(jku):
                raise Unauthorized(f"issuer {iss!r}: jku {_shown(jku)} is not on its allow-list")
            url = jku
        elif issuer.jwks_url:
            url = issuer.jwks_url
        else:
            raise Unauthorized(f"issuer {iss!r}: token has no jku and no jwks_url is configured")
        key = self._keys.get_key(url, kid, alg)
        if key is None:
            raise Unauthorized(f"issuer {iss!r}: no usable key {_shown(kid)} for {alg} at {url}")

        # 3. The signature; the claims are checked below against our (injectable) clock.
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[alg],
                options={
                    "verify_signature": True,
                    "verify_exp": False,
                    "verify_iat": False,
                    "verify_nbf": False,
                    "verify_aud": False,
                    "verify_iss": False,
                    "verify_sub": False,
                    "verify_jti": False,
                    "require": [],
                },
            )
        except InvalidTokenError as exc:
            reason = f"issuer {iss!r}: signature refused ({type(exc).__name__})"
            raise Unauthorized(reason) from None
        return self._check_claims(claims, issuer, audience)

    def _check_claims(
        self, claims: dict[str, Any], issuer: TrustedIssuer, audience: str
    ) -> VerifiedClient:
        iss = issuer.iss
        if claims.get("iss") != iss:
            raise Unauthorized(f"issuer {iss!r}: iss changed between reads")
        jti = claims.get("jti")
        if not isinstance(jti, str) or not jti or len(jti) > 256:
            raise Unauthorized(f"issuer {iss!r}: jti missing or invalid")
        who = f"issuer {iss!r} jti {_shown(jti)}"

        aud = claims.get("aud")
        audiences = [aud] if isinstance(aud, str) else aud
        if not isinstance(audiences, list) or audience not in audiences:
            raise Unauthorized(f"{who}: aud {_shown(aud)} is not {audience!r}")

        now = self._clock().timestamp()
        exp, iat, nbf = claims.get("exp"), claims.get("iat"), claims.get("nbf")
        if not _number(exp) or not _number(iat):
            raise Unauthorized(f"{who}: exp and iat are required numbers")
        if exp <= now - self._skew:
            raise Unauthorized(f"{who}: expired {now - exp:.0f} s ago")
        if iat > now + self._skew:
            raise Unauthorized(f"{who}: issued {iat - now:.0f} s in the future")
        if nbf is not None and (not _number(nbf) or nbf > now + self._skew):
            raise Unauthorized(f"{who}: not valid yet (nbf)")
        if exp - iat > MAX_TOKEN_LIFETIME_SECONDS or exp - now > MAX_TOKEN_LIFETIME_SECONDS:
            raise Unauthorized(f"{who}: lifetime longer than {MAX_TOKEN_LIFETIME_SECONDS} s")

        tenant = claims.get("tenant")
        if tenant is not None and not isinstance(tenant, str):
            raise Unauthorized(f"{who}: tenant is not a string")
        # Bounded by the store's column (255) and free of what no column or log can hold.
        if tenant is not None and (not tenant or len(tenant) > 255 or bad_character(tenant)):
            raise Unauthorized(f"{who}: tenant is empty, longer than 255 or not plain text")
        if issuer.tenants is not None and tenant not in issuer.tenants:
            raise Unauthorized(f"{who}: tenant {_shown(tenant)} not allowed")
        sub = claims.get("sub")

        # Last, so that only otherwise valid tokens take a place in the seen-set.
        if self._replay is not None:
            expires_at = datetime.fromtimestamp(exp + self._skew, UTC)
            try:
                first_use = self._replay.claim(iss, jti, expires_at)
            except ReplayGuardUnavailable as exc:
                log.error("%s: replay check unavailable (%s); request refused", who, exc)
                raise ServiceUnavailable("authentication is temporarily unavailable") from None
            if not first_use:
                raise Unauthorized(f"{who}: jti already used (replay)")
        return VerifiedClient(
            iss=iss, tenant=tenant, jti=jti, sub=sub if isinstance(sub, str) else None
        )


def bearer_token(header: str | None) -> str:
    """The token of an `Authorization: Bearer <token>` header; Unauthorized otherwise."""
    if not header:
        raise Unauthorized("no Authorization header")
    scheme, _, token = header.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or " " in token:
        raise Unauthorized("Authorization header is not a bearer token")
    return token


# -- wiring into the app -----------------------------------------------------------------


def endpoint_url(settings: Settings) -> str:
    """The URL the EHR called, as the `aud` it must have signed: exact, per the spec."""
    base = settings.public_base_url or request.root_url
    return base.rstrip("/") + request.path


def build_verifier(
    settings: Settings, store_engine: Engine
) -> tuple[TokenVerifier | None, ReplayGuard | None]:
    """The verifier of the EHR's token and its replay guard; (None, None) when disabled.

    Without Redis the replay guard keeps its seen-set in the store's database.
    """
    if settings.auth_mode == "disabled":
        log.warning(
            "AUTHENTICATION DISABLED (LIPCDS_AUTH_MODE=disabled, LIPCDS_ENV=%s): every caller "
            "is trusted without a token. For local development only.",
            settings.env,
        )
        return None, None
    issuers = parse_trusted_issuers(
        settings.trusted_issuers, settings.allowed_algorithms, production=settings.is_production
    )
    replay_guard = None
    if issuers:
        replay_guard = build_replay_guard(
            settings.redis_url, store_engine, settings.clock, settings.replay_fallback
        )
        log.info(
            "JWT authentication: %d trusted issuer(s) %s; jti replay store: %s",
            len(issuers),
            ", ".join(sorted(issuers)),
            "redis" if settings.redis_url else "database",
        )
    else:
        log.warning(
            "JWT authentication is on but LIPCDS_TRUSTED_ISSUERS is empty: every hook "
            "and feedback call will be refused with 401"
        )
    if settings.public_base_url is None and settings.is_production:
        log.warning(
            "LIPCDS_PUBLIC_BASE_URL is not set: the JWT audience is taken from the Host "
            "header; set it to the public URL of this service"
        )
    verifier = TokenVerifier(
        issuers,
        JwksCache(settings.jwks_cache_seconds, settings.jwks_refresh_min_interval_seconds),
        replay_guard,
        allowed_algorithms=settings.allowed_algorithms,
        clock_skew_seconds=settings.clock_skew_seconds,
        clock=settings.clock,
    )
    return verifier, replay_guard


def install_auth(app: Flask, settings: Settings, verifier: TokenVerifier | None) -> None:
    """Verify the EHR's token on every CDS Hooks call; CORS; token-free logs.

    `verifier` None means authentication is disabled: every caller is anonymous.
    """
    install_log_redaction()
    install_cors(app, settings)

    def authenticate() -> ResponseReturnValue | None:
        path = request.path
        if path != "/cds-services" and not path.startswith("/cds-services/"):
            return None  # health, metrics: not CDS Hooks endpoints
        if request.method == "OPTIONS":
            return None  # CORS preflight: browsers never send credentials with it
        if path == "/cds-services" and not settings.discovery_requires_auth:
            return None
        if verifier is None:
            g.cds_client = ANONYMOUS
            return None
        token = bearer_token(request.headers.get("Authorization"))
        client = g.cds_client = verifier.verify(token, endpoint_url(settings))
        note_issuer(client.iss)  # on every log line of this call
        log.debug("authenticated iss=%s tenant=%s jti=%s", client.iss, client.tenant, client.jti)
        return None

    app.before_request(authenticate)


def install_cors(app: Flask, settings: Settings) -> None:
    """CORS on /cds-services for browser-based EHRs and the CDS Hooks sandbox."""
    origins = list(settings.cors_origins)
    if not origins:
        return
    for origin in origins:
        if origin == "*":
            if settings.is_production:  # also refused by config; kept here for safety
                raise ConfigError("LIPCDS_CORS_ORIGINS: '*' is only allowed outside production")
        elif not isinstance(origin, str) or not _ORIGIN.match(origin):
            raise ConfigError(
                f"LIPCDS_CORS_ORIGINS: {origin!r} is not an origin such as https://ehr.example.org"
            )
    if "*" in origins:
        log.warning("CORS allows any origin (LIPCDS_CORS_ORIGINS=*); not for production")
    from flask_cors import CORS

    CORS(
        app,
        resources={re.compile(r"^/cds-services(/.*)?$"): {}},
        origins=["*"] if "*" in origins else origins,
        send_wildcard="*" in origins,  # answer "*", not an echo of whatever Origin came
        methods=["GET", "POST", "OPTIONS"],
        allow_headers=["Authorization", "Content-Type"],
        supports_credentials=False,  # the token travels in a header, never in cookies
        max_age=600,
        vary_header=True,
    )
