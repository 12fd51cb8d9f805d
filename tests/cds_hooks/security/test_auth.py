"""The EHR's JWT: the verifier on its own, its key cache, its configuration."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
from datetime import datetime
from typing import Any

import pytest
import responses
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from cds_hooks.app import create_app
from cds_hooks.config import ConfigError
from cds_hooks.http.errors import ServiceUnavailable, Unauthorized
from cds_hooks.runtime import runtime
from cds_hooks.security.auth import (
    JwksCache,
    TokenVerifier,
    bearer_token,
    check_algorithms,
    parse_trusted_issuers,
)
from cds_hooks.security.replay import ReplayGuardUnavailable
from cds_hooks.store import Store
from tests.cds_hooks.security.jwt_helpers import (
    BASE,
    ISS,
    JKU_PREFIX,
    JWKS_URL,
    NOW,
    REDIS_URL,
    SERVICE_AUD,
    SERVICE_PATH,
    FakeEhr,
    app_config,
    bearer,
    close_app,
    fixed_clock,
    hook_body,
    require_server,
    trusted_issuer_config,
)

AUD = f"{BASE}/cds-services/lip-twitch-patient-view"
T0 = int(NOW.timestamp())


@pytest.fixture(autouse=True)
def _keep_log_level():
    # create_app sets the "lipcds" logger's level; later tests expect it untouched.
    logger = logging.getLogger("lipcds")
    level = logger.level
    yield
    logger.setLevel(level)


class MemoryReplayGuard:
    def __init__(self) -> None:
        self.seen: dict[tuple[str, str], datetime] = {}

    def claim(self, issuer: str, jti: str, expires_at: datetime) -> bool:
        if (issuer, jti) in self.seen:
            return False
        self.seen[(issuer, jti)] = expires_at
        return True


class Ticker:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def ehr() -> FakeEhr:
    return FakeEhr()


@pytest.fixture
def jwks(ehr: FakeEhr):
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.get(JWKS_URL, json=ehr.jwks())
        mock.get(JKU_PREFIX + "current.json", json=ehr.jwks())
        yield mock


@pytest.fixture
def guard() -> MemoryReplayGuard:
    return MemoryReplayGuard()


def make_verifier(guard: Any = None, ticker: Ticker | None = None, **issuer: Any) -> TokenVerifier:
    issuers = parse_trusted_issuers(
        trusted_issuer_config(**issuer), ["ES384", "RS384"], production=True
    )
    cache = JwksCache(3600, 30, monotonic=ticker or Ticker())
    return TokenVerifier(issuers, cache, guard, clock_skew_seconds=60, clock=fixed_clock)


@pytest.fixture
def verifier(jwks, guard) -> TokenVerifier:
    return make_verifier(guard)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def hand_made(header: dict[str, Any], claims: dict[str, Any], sign=lambda _: b"") -> str:
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
    return f"{signing_input}.{b64(sign(signing_input.encode()))}"


# -- what passes ---------------------------------------------------------------------------


@pytest.mark.parametrize("alg", ["ES384", "RS384"])
def test_a_valid_token_passes(verifier, ehr, alg):
    client = verifier.verify(ehr.token(AUD, alg=alg, tenant="clinic-1", sub="ehr-client"), AUD)
    assert client.iss == ISS
    assert client.tenant == "clinic-1"
    assert client.sub == "ehr-client"
    assert client.jti and not client.anonymous


def test_keys_from_an_allow_listed_jku(verifier, ehr, jwks):
    token = ehr.token(AUD, headers={"jku": JKU_PREFIX + "current.json"})
    assert verifier.verify(token, AUD).iss == ISS
    assert [c.request.url for c in jwks.calls] == [JKU_PREFIX + "current.json"]


def test_aud_may_be_a_list_containing_the_endpoint(verifier, ehr):
    assert verifier.verify(ehr.token(AUD, aud=["https://other.example", AUD]), AUD)


def test_clock_skew_is_tolerated(verifier, ehr):
    # Epic-like: nbf before iat, and clocks a little apart in both directions.
    token = ehr.token(AUD, iat=T0 + 50, nbf=T0 - 300, exp=T0 - 50)
    assert verifier.verify(token, AUD).iss == ISS


def test_extra_claims_and_headers_are_tolerated(verifier, ehr):
    token = ehr.token(AUD, headers={"x-vendor": 1}, client_id="abc", sub="epic-client")
    assert verifier.verify(token, AUD).sub == "epic-client"


# -- what is refused -----------------------------------------------------------------------


def alg_none(ehr: FakeEhr) -> str:
    return hand_made({"alg": "none", "typ": "JWT", "kid": ehr.ec_kid}, ehr.claims(AUD))


def hs256_with_public_key(ehr: FakeEhr) -> str:
    # The classic algorithm confusion: HMAC keyed with the public key everyone can fetch.
    secret = ehr.rsa_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hand_made(
        {"alg": "HS256", "typ": "JWT", "kid": ehr.rsa_kid},
        ehr.claims(AUD),
        lambda data: hmac.new(secret, data, hashlib.sha256).digest(),
    )


def forged_signature(ehr: FakeEhr) -> str:
    return ehr.token(AUD, key=ec.generate_private_key(ec.SECP384R1()))


def tampered_payload(ehr: FakeEhr) -> str:
    header, _, signature = ehr.token(AUD).split(".")
    payload = b64(json.dumps(ehr.claims(AUD, tenant="someone-else")).encode())
    return f"{header}.{payload}.{signature}"


REFUSED = {
    "malformed": lambda ehr: "not-a-jwt",
    "three garbage segments": lambda ehr: "abc.def.ghi",
    "payload not JSON": lambda ehr: b64(b'{"alg":"ES384"}') + "." + b64(b"[1") + ".x",
    "alg none": alg_none,
    "HS256 keyed with the public key": hs256_with_public_key,
    "ES256 (not configured)": lambda ehr: hand_made(
        {"alg": "ES256", "kid": ehr.ec_kid}, ehr.claims(AUD), lambda _: b"x" * 64
    ),
    "typ not JWT": lambda ehr: ehr.token(AUD, headers={"typ": "at+jwt"}),
    "no kid": lambda ehr: hand_made({"alg": "ES384", "typ": "JWT"}, ehr.claims(AUD)),
    "unknown issuer": lambda ehr: ehr.token(AUD, iss="https://evil.example"),
    "no issuer": lambda ehr: ehr.token(AUD, iss=None),
    "jku not on the allow-list": lambda ehr: ehr.token(
        AUD, headers={"jku": "https://evil.example/jwks.json"}
    ),
    "jku sharing only a string prefix": lambda ehr: ehr.token(
        AUD, headers={"jku": "https://ehr.example.org/keys/../../evil.json"}
    ),
    "jku with credentials": lambda ehr: ehr.token(
        AUD, headers={"jku": "https://ehr.example.org/keys/@evil.example/x"}
    ),
    "unknown kid": lambda ehr: ehr.token(AUD, kid="no-such-key"),
    "RSA kid under ES384": lambda ehr: ehr.token(AUD, kid=ehr.rsa_kid),
    "bad signature": forged_signature,
    "tampered payload": tampered_payload,
    "wrong aud": lambda ehr: ehr.token(AUD, aud=f"{BASE}/cds-services/another-service"),
    "aud of discovery": lambda ehr: ehr.token(AUD, aud=f"{BASE}/cds-services"),
    "no aud": lambda ehr: ehr.token(AUD, aud=None),
    "expired": lambda ehr: ehr.token(AUD, iat=T0 - 600, exp=T0 - 61),
    "no exp": lambda ehr: ehr.token(AUD, exp=None),
    "iat in the future": lambda ehr: ehr.token(AUD, iat=T0 + 61, exp=T0 + 300),
    "no iat": lambda ehr: ehr.token(AUD, iat=None),
    "nbf in the future": lambda ehr: ehr.token(AUD, nbf=T0 + 120),
    "exp as a string": lambda ehr: ehr.token(AUD, exp=str(T0 + 300)),
    "no jti": lambda ehr: ehr.token(AUD, jti=None),
    "lifetime over an hour": lambda ehr: ehr.token(AUD, exp=T0 + 7200),
}


# Why each is refused (the logged reason), so that none passes for the wrong cause.
REASONS = {
    "malformed": "malformed",
    "three garbage segments": "malformed",
    "payload not JSON": "malformed",
    "alg none": "algorithm 'none' not allowed",
    "HS256 keyed with the public key": "algorithm 'HS256' not allowed",
    "ES256 (not configured)": "algorithm 'ES256' not allowed",
    "typ not JWT": "typ",
    "no kid": "no kid",
    "unknown issuer": "not trusted",
    "no issuer": "not trusted",
    "jku not on the allow-list": "allow-list",
    "jku sharing only a string prefix": "allow-list",
    "jku with credentials": "allow-list",
    "unknown kid": "no usable key 'no-such-key'",
    "RSA kid under ES384": "no usable key 'rsa-key-1'",
    "bad signature": "signature refused",
    "tampered payload": "signature refused",
    "wrong aud": "aud",
    "aud of discovery": "aud",
    "no aud": "aud None",
    "expired": "expired",
    "no exp": "required",
    "iat in the future": "in the future",
    "no iat": "required",
    "nbf in the future": "nbf",
    "exp as a string": "required",
    "no jti": "jti missing",
    "lifetime over an hour": "lifetime",
}


@pytest.mark.parametrize("name", REFUSED)
def test_refused(verifier, ehr, guard, name):
    with pytest.raises(Unauthorized) as refused:
        verifier.verify(REFUSED[name](ehr), AUD)
    # The client learns nothing; the reason is for the log.
    assert refused.value.message == "Authentication required"
    assert REASONS[name] in refused.value.reason
    assert not guard.seen  # a refused token never takes a place in the seen-set


def test_a_replayed_jti_is_refused(verifier, ehr, guard):
    token = ehr.token(AUD)
    verifier.verify(token, AUD)
    with pytest.raises(Unauthorized, match="Authentication required") as refused:
        verifier.verify(token, AUD)
    assert "replay" in refused.value.reason
    # The same jti from another issuer is a different token.
    assert len(guard.seen) == 1


def test_the_replay_record_outlives_the_token_by_the_skew(verifier, ehr, guard):
    verifier.verify(ehr.token(AUD, exp=T0 + 300), AUD)
    (expires_at,) = guard.seen.values()
    assert expires_at.timestamp() == T0 + 300 + 60


def test_the_tenant_allow_list(jwks, ehr, guard):
    verifier = make_verifier(guard, tenants=["clinic-1"])
    assert verifier.verify(ehr.token(AUD, tenant="clinic-1"), AUD).tenant == "clinic-1"
    for tenant in ("clinic-2", None):
        with pytest.raises(Unauthorized):
            verifier.verify(ehr.token(AUD, tenant=tenant), AUD)


@pytest.mark.parametrize("tenant", ["t" * 256, "", "clinic\x00", "clinic\ud800"])
def test_a_tenant_the_store_cannot_hold_is_refused(jwks, ehr, guard, tenant):
    verifier = make_verifier(guard)
    assert verifier.verify(ehr.token(AUD, tenant="t" * 255), AUD).tenant == "t" * 255
    with pytest.raises(Unauthorized):
        verifier.verify(ehr.token(AUD, tenant=tenant), AUD)


def test_per_issuer_algorithms(jwks, ehr, guard):
    verifier = make_verifier(guard, algorithms=["RS384"])
    assert verifier.verify(ehr.token(AUD, alg="RS384"), AUD)
    with pytest.raises(Unauthorized):
        verifier.verify(ehr.token(AUD, alg="ES384"), AUD)


def test_an_unreachable_replay_store_fails_closed(jwks, ehr):
    class Down:
        def claim(self, issuer: str, jti: str, expires_at: datetime) -> bool:
            raise ReplayGuardUnavailable("database: OperationalError")

    with pytest.raises(ServiceUnavailable):
        make_verifier(Down()).verify(ehr.token(AUD), AUD)


# -- the Authorization header --------------------------------------------------------------


@pytest.mark.parametrize(
    "header", [None, "", "Bearer", "Bearer ", "Basic dXNlcjpwYXNz", "Bearer a b", "token"]
)
def test_bearer_header_refused(header):
    with pytest.raises(Unauthorized):
        bearer_token(header)


@pytest.mark.parametrize(
    "header", ["Bearer abc.def.ghi", "bearer abc.def.ghi", " Bearer  abc.def.ghi"]
)
def test_bearer_header_accepted(header):
    assert bearer_token(header) == "abc.def.ghi"


# -- the key cache -------------------------------------------------------------------------


def test_keys_are_cached(ehr):
    with responses.RequestsMock() as mock:
        mock.get(JWKS_URL, json=ehr.jwks())
        verifier = make_verifier(MemoryReplayGuard())
        for _ in range(3):
            verifier.verify(ehr.token(AUD), AUD)
            verifier.verify(ehr.token(AUD, alg="RS384"), AUD)
        assert len(mock.calls) == 1


def test_an_unknown_kid_refetches_at_most_once_per_interval(ehr):
    ticker = Ticker()
    rotated = FakeEhr(ec_kid="ec-key-2")
    with responses.RequestsMock() as mock:
        first = mock.get(JWKS_URL, json=ehr.jwks())
        verifier = make_verifier(MemoryReplayGuard(), ticker)
        verifier.verify(ehr.token(AUD), AUD)
        assert first.call_count == 1

        # Made-up kids within the interval cost no fetch.
        for n in range(5):
            with pytest.raises(Unauthorized):
                verifier.verify(ehr.token(AUD, kid=f"made-up-{n}"), AUD)
        assert len(mock.calls) == 1

        # The EHR rotates its key; once the interval has passed the new kid is fetched.
        mock.replace(responses.GET, JWKS_URL, json=rotated.jwks())
        with pytest.raises(Unauthorized):
            verifier.verify(rotated.token(AUD), AUD)  # still inside the interval
        ticker.now += 31
        assert verifier.verify(rotated.token(AUD), AUD).iss == ISS
        assert len(mock.calls) == 2


def test_keys_expire_after_their_ttl(ehr):
    ticker = Ticker()
    with responses.RequestsMock() as mock:
        mock.get(JWKS_URL, json=ehr.jwks())
        verifier = make_verifier(MemoryReplayGuard(), ticker)
        verifier.verify(ehr.token(AUD), AUD)
        ticker.now += 3601
        verifier.verify(ehr.token(AUD), AUD)
        assert len(mock.calls) == 2


def test_stale_keys_serve_while_the_jwks_is_down(ehr):
    ticker = Ticker()
    with responses.RequestsMock() as mock:
        mock.get(JWKS_URL, json=ehr.jwks())
        verifier = make_verifier(MemoryReplayGuard(), ticker)
        verifier.verify(ehr.token(AUD), AUD)
        mock.replace(responses.GET, JWKS_URL, status=503)
        ticker.now += 3601
        assert verifier.verify(ehr.token(AUD), AUD).iss == ISS


def test_redirects_are_not_followed(ehr):
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.get(JWKS_URL, status=302, headers={"Location": "http://169.254.169.254/"})
        with pytest.raises(Unauthorized):
            make_verifier(MemoryReplayGuard()).verify(ehr.token(AUD), AUD)
        assert [c.request.url for c in mock.calls] == [JWKS_URL]


def with_extra_key(jwks: dict[str, Any], **key: Any) -> dict[str, Any]:
    return {"keys": [key, *jwks["keys"]]}


@pytest.mark.parametrize(
    "document",
    [
        {"keys": [{"kty": "oct", "kid": "ec-key-1", "k": "c2VjcmV0"}]},
        "not a JWK Set",
        {"keys": "nope"},
    ],
    ids=["symmetric key", "not an object", "keys not a list"],
)
def test_a_jwks_without_asymmetric_keys_is_refused(ehr, document):
    with responses.RequestsMock() as mock:
        mock.get(JWKS_URL, json=document)
        with pytest.raises(Unauthorized):
            make_verifier(MemoryReplayGuard()).verify(ehr.token(AUD), AUD)


def test_private_and_symmetric_keys_in_a_jwks_are_skipped(ehr):
    private = ehr.jwks()
    private["keys"][0]["d"] = "AAAA"  # an EHR publishing its private key by mistake
    with responses.RequestsMock() as mock:
        mock.get(JWKS_URL, json=with_extra_key(private, kty="oct", kid="hmac", k="c2VjcmV0"))
        verifier = make_verifier(MemoryReplayGuard())
        with pytest.raises(Unauthorized):
            verifier.verify(ehr.token(AUD), AUD)  # the EC key (with "d") is skipped
        assert verifier.verify(ehr.token(AUD, alg="RS384"), AUD).iss == ISS


def test_the_jwks_is_never_fetched_for_an_untrusted_jku(ehr):
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        evil = mock.get("https://evil.example/jwks.json", json=ehr.jwks())
        with pytest.raises(Unauthorized):
            make_verifier(MemoryReplayGuard()).verify(
                ehr.token(AUD, headers={"jku": "https://evil.example/jwks.json"}), AUD
            )
        assert evil.call_count == 0


# -- configuration -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        ([{"jwks_url": JWKS_URL}], r"\[0\]: iss: required"),
        (["https://ehr.example.org"], r"\[0\]: must be an object"),
        ([{"iss": ISS}], "needs 'jwks_url' or 'jku_allow'"),
        ([{"iss": ISS, "jwks_url": "ftp://x/jwks"}], "not a plain http"),
        ([{"iss": ISS, "jwks_url": "http://ehr.example.org/jwks"}], "https in production"),
        ([{"iss": ISS, "jwks_url": JWKS_URL, "algorithms": ["HS256"]}], "HS256"),
        ([{"iss": ISS, "jwks_url": JWKS_URL, "tenants": "clinic"}], "tenants: must be a list"),
        ([{"iss": ISS, "jwks_url": JWKS_URL, "jwks": {}}], "jwks: unknown key"),
        ([{"iss": ISS, "jwks_url": JWKS_URL}, {"iss": ISS, "jwks_url": JWKS_URL}], r"\[1\]"),
    ],
)
def test_bad_trusted_issuers_stop_start_up(entries, message):
    with pytest.raises(ConfigError, match=message):
        parse_trusted_issuers(entries, ["ES384", "RS384"], production=True)


@pytest.mark.parametrize("algorithms", [["HS256"], ["none"], ["ES384", "HS512"], []])
def test_only_asymmetric_algorithms_may_be_allowed(algorithms):
    with pytest.raises(ConfigError, match="LIPCDS_ALLOWED_ALGORITHMS"):
        check_algorithms(algorithms)


def test_http_key_urls_are_allowed_outside_production():
    issuers = parse_trusted_issuers(
        [{"iss": "http://localhost:3000", "jwks_url": "http://localhost:3000/jwks"}],
        ["ES384"],
        production=False,
    )
    assert issuers["http://localhost:3000"].algorithms == {"ES384"}


# -- through the app -----------------------------------------------------------------------


@pytest.fixture
def db_url(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'lipcds.db'}"


@pytest.fixture
def make_app(jwks):
    made = []

    def make(database_url: str, **overrides: Any):
        app = create_app(app_config(database_url, **overrides))
        made.append(app)
        return app

    yield make
    for app in made:
        close_app(app)


@pytest.fixture
def app(make_app, db_url):
    return make_app(db_url)


@pytest.fixture
def client(app):
    return app.test_client()


def post_hook(client, token: str | None = None, **kwargs: Any):
    headers = bearer(token) if token is not None else {}
    return client.post(SERVICE_PATH, json=hook_body(), headers=headers, **kwargs)


def test_a_valid_token_gets_cards_and_names_the_caller(app, client, ehr):
    seen: list[tuple[str | None, str | None]] = []
    runtime(app).listeners.append(
        lambda call, result: seen.append((call.issuer, call.tenant))
    )
    response = post_hook(client, ehr.token(SERVICE_AUD, tenant="clinic-1"))
    assert response.status_code == 200, response.get_json()
    assert "cards" in response.get_json()
    assert seen == [(ISS, "clinic-1")]


APP_REFUSED = {
    "no token": lambda ehr: None,
    "malformed token": lambda ehr: "definitely-not-a-jwt",
    "alg none": lambda ehr: hand_made(
        {"alg": "none", "typ": "JWT", "kid": ehr.ec_kid}, ehr.claims(SERVICE_AUD)
    ),
    "HS256 with the public key as secret": lambda ehr: hand_made(
        {"alg": "HS256", "typ": "JWT", "kid": ehr.rsa_kid},
        ehr.claims(SERVICE_AUD),
        lambda data: hmac.new(
            ehr.rsa_key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            ),
            data,
            hashlib.sha256,
        ).digest(),
    ),
    "unknown issuer": lambda ehr: ehr.token(SERVICE_AUD, iss="https://evil.example"),
    "jku not on the allow-list": lambda ehr: ehr.token(
        SERVICE_AUD, headers={"jku": "https://evil.example/jwks.json"}
    ),
    "unknown kid": lambda ehr: ehr.token(SERVICE_AUD, kid="rotated-away"),
    "bad signature": lambda ehr: ehr.token(
        SERVICE_AUD, key=ec.generate_private_key(ec.SECP384R1())
    ),
    "wrong aud": lambda ehr: ehr.token(f"{BASE}/cds-services/some-other-service"),
    "expired": lambda ehr: ehr.token(SERVICE_AUD, iat=T0 - 900, exp=T0 - 300),
    "iat in the future": lambda ehr: ehr.token(SERVICE_AUD, iat=T0 + 600, exp=T0 + 900),
}


@pytest.mark.parametrize("name", APP_REFUSED)
def test_refused_through_the_app(client, ehr, name, caplog):
    token = APP_REFUSED[name](ehr)
    with caplog.at_level(logging.DEBUG):
        response = post_hook(client, token)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="cds-services"'
    # One body for every failure: nothing tells an attacker which check failed.
    assert response.get_json() == {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": "login", "diagnostics": "Authentication required"}],
    }
    assert any("request refused (401)" in r.getMessage() for r in caplog.records)


def test_a_replayed_token_is_refused(client, ehr):
    token = ehr.token(SERVICE_AUD)
    assert post_hook(client, token).status_code == 200
    assert post_hook(client, token).status_code == 401


@pytest.mark.parametrize(
    "database", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def test_replay_is_refused_across_two_app_instances(make_app, ehr, tmp_path, database, request):
    # Two workers or replicas: separate processes in production, separate apps here.
    if database == "postgres":
        url = request.getfixturevalue("postgres_database")
        store = Store(url)
        store.upgrade()  # as `lipcds db upgrade` does before a deployment
        store.dispose()
    else:
        url = f"sqlite:///{tmp_path / 'shared.db'}"
    first = make_app(url, trusted_issuers=trusted_issuer_config())
    second = make_app(url)
    token = ehr.token(SERVICE_AUD)
    assert post_hook(first.test_client(), token).status_code == 200
    assert post_hook(second.test_client(), token).status_code == 401


@pytest.mark.redis
def test_replay_is_refused_across_two_app_instances_sharing_redis(make_app, ehr, db_url, tmp_path):
    require_server("Redis", 6379)
    first = make_app(db_url, redis_url=REDIS_URL)
    second = make_app(f"sqlite:///{tmp_path / 'other.db'}", redis_url=REDIS_URL)
    token = ehr.token(SERVICE_AUD)
    assert post_hook(first.test_client(), token).status_code == 200
    assert post_hook(second.test_client(), token).status_code == 401


def test_authentication_comes_before_the_body_is_read(client):
    # No token: 401, not 400 or 415, so an unauthenticated caller learns nothing.
    assert (
        client.post(SERVICE_PATH, data="{oops", content_type="application/json").status_code == 401
    )
    assert client.post(SERVICE_PATH, data="x", content_type="text/plain").status_code == 401
    assert client.post("/cds-services/no-such-service", json={}).status_code == 401


def test_feedback_needs_a_token(client, ehr):
    path = f"{SERVICE_PATH}/feedback"
    assert client.post(path, json={"feedback": []}).status_code == 401
    token = ehr.token(BASE + path)
    assert client.post(path, json={"feedback": []}, headers=bearer(token)).status_code != 401


def test_the_audience_follows_the_host_without_a_public_base_url(make_app, db_url, ehr):
    client = make_app(db_url, public_base_url=None).test_client()
    assert post_hook(client, ehr.token(SERVICE_AUD)).status_code == 401
    assert post_hook(client, ehr.token("http://localhost" + SERVICE_PATH)).status_code == 200


def test_a_public_base_url_with_a_path_prefix(make_app, db_url, ehr):
    # Behind a proxy that serves us at https://gw.example.org/lipcds/ and strips the prefix.
    client = make_app(db_url, public_base_url="https://gw.example.org/lipcds/").test_client()
    aud = "https://gw.example.org/lipcds" + SERVICE_PATH
    assert post_hook(client, ehr.token(aud)).status_code == 200


def test_discovery_is_public_by_default(client):
    assert client.get("/cds-services").status_code == 200


def test_discovery_can_require_a_token(make_app, db_url, ehr):
    client = make_app(db_url, discovery_requires_auth=True).test_client()
    assert client.get("/cds-services").status_code == 401
    token = ehr.token(f"{BASE}/cds-services")
    assert client.get("/cds-services", headers=bearer(token)).status_code == 200


def test_other_paths_need_no_token(client):
    assert client.get("/no-such-page").status_code == 404


def test_an_unreachable_replay_store_answers_503(app, client, ehr):
    class Down:
        def claim(self, issuer: str, jti: str, expires_at: datetime) -> bool:
            raise ReplayGuardUnavailable("redis: ConnectionError")

    runtime(app).verifier._replay = Down()
    response = post_hook(client, ehr.token(SERVICE_AUD))
    assert response.status_code == 503
    assert response.headers["Retry-After"]


# -- start-up ------------------------------------------------------------------------------


def test_disabled_mode_is_loud_and_lets_anyone_in(make_app, db_url, caplog):
    with caplog.at_level(logging.WARNING, logger="lipcds"):
        app = make_app(db_url, auth_mode="disabled", trusted_issuers=[])
    assert any("AUTHENTICATION DISABLED" in r.getMessage() for r in caplog.records)
    assert post_hook(app.test_client()).status_code == 200


def test_disabled_mode_is_refused_in_production(make_app, db_url):
    with pytest.raises(ConfigError, match="LIPCDS_AUTH_MODE"):
        make_app(db_url, auth_mode="disabled", env="production")


def test_no_trusted_issuers_starts_but_refuses_every_call(make_app, db_url, caplog, ehr):
    with caplog.at_level(logging.WARNING, logger="lipcds"):
        app = make_app(db_url, trusted_issuers=[])
    assert any("will be refused" in r.getMessage() for r in caplog.records)
    assert post_hook(app.test_client(), ehr.token(SERVICE_AUD)).status_code == 401


def test_a_bad_issuer_entry_stops_start_up(make_app, db_url):
    with pytest.raises(ConfigError, match=r"LIPCDS_TRUSTED_ISSUERS\[0\]"):
        make_app(db_url, trusted_issuers=[{"jwks_url": JWKS_URL}])


def test_trusted_issuers_from_the_environment(monkeypatch, db_url):
    monkeypatch.setenv("LIPCDS_TRUSTED_ISSUERS", json.dumps(trusted_issuer_config()))
    app = create_app({"env": "test", "database_url": db_url})
    assert runtime(app).verifier._issuers[ISS].jwks_url == JWKS_URL
    close_app(app)
