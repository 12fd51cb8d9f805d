"""Fetch-on-miss through `resolve_data`: allow-list, https, token forwarding, 412."""

from __future__ import annotations

import logging

import pytest
import responses
from responses import matchers

from cds_hooks.config import load_settings
from cds_hooks.hooks.fetching import ServerPolicy, make_fetcher, shown
from cds_hooks.hooks.prefetch import resolve_data
from cds_hooks.http.errors import PrefetchUnavailable
from knowledge.kb import ServiceDefinition
from knowledge.model import DataState

BASE = "https://ehr.example.org/fhir/r4"
DEV_BASE = "http://127.0.0.1:8090/fhir"
TOKEN = "opaque-access-token-xyz"

SERVICE = ServiceDefinition(
    id="lip-twitch-patient-view",
    hook="patient-view",
    title="t",
    description="d",
    prefetch={
        "patient": "Patient/{{context.patientId}}",
        "conditions": "Condition?patient={{context.patientId}}",
        "labs": "Observation?patient={{context.patientId}}&category=laboratory"
        "&_sort=-date&_count=200",
    },
    required_prefetch=("conditions",),
)
CONTEXT = {"patientId": "p1", "userId": "Practitioner/u1"}


def settings(env: str = "test", **overrides):
    values = {
        "env": env,
        "fhir_allowed_servers": [BASE + "/", DEV_BASE],
        "fhir_insecure_servers": [DEV_BASE],
        "auth_mode": "jwt",
        "public_base_url": "https://cds.example.org",
    }
    values.update(overrides)
    return load_settings(values, environ={})


def request(server: str | None = BASE, prefetch: dict | None = None, token: str | None = TOKEN):
    """A validated (snake_case) hook request, as `parse_request` hands it over."""
    body: dict = {"hook": "patient-view", "hook_instance": "h-1", "context": CONTEXT}
    if server is not None:
        body["fhir_server"] = server
    if token is not None:
        body["fhir_authorization"] = {
            "access_token": token,
            "token_type": "Bearer",
            "expires_in": 300,
            "scope": "patient/*.read",
            "subject": "lipcds",
        }
    if prefetch is not None:
        body["prefetch"] = prefetch
    return body


def searchset(*resources, next_url=None):
    bundle = {
        "resourceType": "Bundle",
        "type": "searchset",
        "entry": [{"resource": r} for r in resources],
    }
    if next_url:
        bundle["link"] = [{"relation": "next", "url": next_url}]
    return bundle


CONDITION = {"resourceType": "Condition", "id": "c1"}
OBSERVATION = {"resourceType": "Observation", "id": "o1"}
PATIENT = {"resourceType": "Patient", "id": "p1"}


@pytest.fixture
def fhir_server():
    with responses.RequestsMock(assert_all_requests_are_fired=True) as mock:
        yield mock


def test_missing_keys_are_fetched_with_the_token(fhir_server):
    auth = matchers.header_matcher({"Authorization": f"Bearer {TOKEN}"})
    fhir_server.get(f"{BASE}/Patient/p1", json=PATIENT, match=[auth])
    fhir_server.get(
        f"{BASE}/Condition",
        json=searchset(CONDITION),
        match=[auth, matchers.query_param_matcher({"patient": "p1"})],
    )
    fhir_server.get(
        f"{BASE}/Observation",
        json=searchset(),
        match=[
            auth,
            matchers.query_param_matcher(
                {"patient": "p1", "category": "laboratory", "_sort": "-date", "_count": "200"}
            ),
        ],
    )
    data = resolve_data(SERVICE, request(), CONTEXT, make_fetcher(settings()))
    assert data["patient"].state is DataState.PRESENT
    assert data["conditions"].resources == (CONDITION,)
    assert data["labs"].state is DataState.EMPTY


def test_prefetched_keys_are_not_fetched_again(fhir_server):
    fhir_server.get(f"{BASE}/Patient/p1", json=PATIENT)
    prefetch = {"conditions": searchset(CONDITION), "labs": None}
    data = resolve_data(SERVICE, request(prefetch=prefetch), CONTEXT, make_fetcher(settings()))
    assert len(fhir_server.calls) == 1
    assert data["labs"].state is DataState.EMPTY  # null: the EHR says there is none


def test_operation_outcome_in_the_prefetch_is_fetched_again(fhir_server):
    failed = {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": "timeout", "diagnostics": "lab system down"}],
    }
    fhir_server.get(f"{BASE}/Observation", json=searchset(OBSERVATION))
    prefetch = {"patient": PATIENT, "conditions": searchset(CONDITION), "labs": failed}
    data = resolve_data(SERVICE, request(prefetch=prefetch), CONTEXT, make_fetcher(settings()))
    assert data["labs"].state is DataState.PRESENT
    assert data["labs"].resources == (OBSERVATION,)


def test_operation_outcome_in_the_prefetch_stays_unavailable_when_the_fetch_fails(fhir_server):
    failed = {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": "timeout", "diagnostics": "lab system down"}],
    }
    fhir_server.get(f"{BASE}/Observation", status=503, headers={"Retry-After": "60"})
    prefetch = {"patient": PATIENT, "conditions": searchset(CONDITION), "labs": failed}
    data = resolve_data(SERVICE, request(prefetch=prefetch), CONTEXT, make_fetcher(settings()))
    assert data["labs"].state is DataState.UNAVAILABLE  # unavailable, not empty
    assert data["conditions"].state is DataState.PRESENT


def test_paged_prefetch_is_continued_from_its_next_link(fhir_server):
    second = {"resourceType": "Observation", "id": "o2"}
    fhir_server.get(
        f"{BASE}/Observation",
        json=searchset(second),
        match=[
            matchers.query_param_matcher({"_getpages": "abc", "_page": "2"}),
            matchers.header_matcher({"Authorization": f"Bearer {TOKEN}"}),
        ],
    )
    prefetch = {
        "patient": PATIENT,
        "conditions": searchset(CONDITION),
        "labs": searchset(OBSERVATION, next_url=f"{BASE}/Observation?_getpages=abc&_page=2"),
    }
    data = resolve_data(SERVICE, request(prefetch=prefetch), CONTEXT, make_fetcher(settings()))
    assert [r["id"] for r in data["labs"].resources] == ["o1", "o2"]
    assert data["labs"].next_link is None


def test_paged_prefetch_without_server_keeps_its_page_and_says_so():
    prefetch = {
        "patient": PATIENT,
        "conditions": searchset(CONDITION),
        "labs": searchset(OBSERVATION, next_url=f"{BASE}/Observation?page=2"),
    }
    data = resolve_data(
        SERVICE,
        request(server=None, token=None, prefetch=prefetch),
        CONTEXT,
        make_fetcher(settings()),
    )
    assert data["labs"].resources == (OBSERVATION,)
    assert data["labs"].next_link is None
    assert "incomplete" in data["labs"].issues[-1]


def test_required_data_unavailable_is_412_naming_the_key(fhir_server):
    fhir_server.get(f"{BASE}/Patient/p1", json=PATIENT)
    fhir_server.get(f"{BASE}/Condition", status=403)
    fhir_server.get(f"{BASE}/Observation", json=searchset())
    with pytest.raises(PrefetchUnavailable) as raised:
        resolve_data(SERVICE, request(), CONTEXT, make_fetcher(settings()))
    error = raised.value
    assert error.status_code == 412
    body = error.to_dict()
    assert body["resourceType"] == "OperationOutcome"
    assert body["issue"][0]["expression"] == ["prefetch.conditions"]
    assert "HTTP 403" in body["issue"][0]["diagnostics"]
    assert TOKEN not in str(body)


def test_optional_data_unavailable_is_not_empty(fhir_server):
    fhir_server.get(f"{BASE}/Patient/p1", json=PATIENT)
    fhir_server.get(f"{BASE}/Condition", json=searchset(CONDITION))
    fhir_server.get(f"{BASE}/Observation", status=401)
    data = resolve_data(SERVICE, request(), CONTEXT, make_fetcher(settings()))
    assert data["labs"].state is DataState.UNAVAILABLE
    assert "HTTP 401" in data["labs"].problem


def test_no_fhir_server_means_no_fetch_and_412_for_required_data():
    with pytest.raises(PrefetchUnavailable) as raised:
        resolve_data(SERVICE, request(server=None, token=None), CONTEXT, make_fetcher(settings()))
    assert "names no fhirServer" in raised.value.message


def test_server_not_on_the_allow_list_is_refused_and_logged_without_token(caplog):
    caplog.set_level(logging.INFO, logger="lipcds")
    other = "https://user:pw@evil.example.com/fhir?x=1"
    with responses.RequestsMock() as mock:  # any call would fail: nothing is registered
        with pytest.raises(PrefetchUnavailable) as raised:
            resolve_data(SERVICE, request(server=other), CONTEXT, make_fetcher(settings()))
        assert len(mock.calls) == 0
    assert "was refused" in raised.value.message
    assert "https://evil.example.com/fhir" in caplog.text
    assert TOKEN not in caplog.text and "pw" not in caplog.text.replace("https", "")


def test_plain_http_needs_to_be_a_development_server(fhir_server):
    fhir_server.get(f"{DEV_BASE}/Patient/p1", json=PATIENT)
    fhir_server.get(f"{DEV_BASE}/Condition", json=searchset(CONDITION))
    fhir_server.get(f"{DEV_BASE}/Observation", json=searchset())
    data = resolve_data(
        SERVICE, request(server=DEV_BASE + "/"), CONTEXT, make_fetcher(settings("development"))
    )
    assert data["conditions"].state is DataState.PRESENT


@pytest.mark.parametrize(
    ("env", "base", "allowed", "insecure", "refused"),
    [
        ("development", "http://127.0.0.1:8090/fhir", [DEV_BASE], [DEV_BASE], False),
        ("development", "http://127.0.0.1:8090/fhir", [DEV_BASE], [], True),  # listed, not insecure
        ("production", "http://127.0.0.1:8090/fhir", [DEV_BASE], [DEV_BASE], True),
        ("production", BASE, [BASE], [], False),
        ("production", "https://ehr.example.org/fhir", [BASE], [], True),  # a prefix is not a base
        ("test", "ftp://ehr.example.org/fhir", ["ftp://ehr.example.org/fhir"], [], True),
    ],
)
def test_server_policy(env, base, allowed, insecure, refused):
    policy = ServerPolicy(
        settings(env, fhir_allowed_servers=allowed, fhir_insecure_servers=insecure)
    )
    assert (policy.refusal(base) is not None) is refused


def test_shown_drops_credentials_and_query():
    assert shown("https://a:b@h.example:8443/fhir?token=x#f") == "https://h.example:8443/fhir"


def test_shown_tolerates_a_bad_port():
    assert shown("http://h.example:99999/fhir") == "http://h.example:99999/fhir"
