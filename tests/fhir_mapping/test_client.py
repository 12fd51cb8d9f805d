"""The FHIR client: every way a server can answer ends in the right `KeyData` state."""

from __future__ import annotations

import json
import logging
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
import requests
import responses
from responses import matchers

from fhir_mapping.client import FhirClient, Query, fetch_all, queries_for, retry_delay
from fhir_mapping.records import KeyData
from knowledge.model import DataState

BASE = "https://fhir.example.org/r4"
TOKEN = "secret-access-token-123"
LABS_QUERY = "Observation?patient=p1&category=laboratory&_sort=-date&_count=200"
LABS_PARAMS = {"patient": "p1", "category": "laboratory", "_sort": "-date", "_count": "200"}


def observation(oid: str, code: str = "2823-3") -> dict:
    return {
        "resourceType": "Observation",
        "id": oid,
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": code}]},
    }


def searchset(*resources: dict, next_url: str | None = None) -> dict:
    bundle: dict = {
        "resourceType": "Bundle",
        "type": "searchset",
        "entry": [{"resource": r} for r in resources],
    }
    if next_url:
        bundle["link"] = [{"relation": "next", "url": next_url}]
    return bundle


def outcome(text: str) -> dict:
    return {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": "processing", "diagnostics": text}],
    }


class FakeTime:
    """A monotonic clock that only moves when someone sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


@pytest.fixture
def fake_time() -> FakeTime:
    return FakeTime()


@pytest.fixture
def client(fake_time: FakeTime) -> FhirClient:
    return FhirClient(
        BASE,
        TOKEN,
        connect_timeout=1.0,
        read_timeout=2.0,
        deadline=fake_time.now + 4.0,
        max_pages=3,
        clock=fake_time.clock,
        sleep=fake_time.sleep,
    )


@pytest.fixture
def fhir_server():
    with responses.RequestsMock(assert_all_requests_are_fired=True) as mock:
        yield mock


def test_search_forwards_token_and_query(fhir_server, client):
    fhir_server.get(
        f"{BASE}/Observation",
        json=searchset(observation("o1"), observation("o2", "19123-9")),
        match=[
            matchers.header_matcher(
                {"Authorization": f"Bearer {TOKEN}", "Accept": "application/fhir+json"}
            ),
            matchers.query_param_matcher(LABS_PARAMS),
        ],
    )
    data = client.search("labs", "Observation", LABS_QUERY)
    assert data.state is DataState.PRESENT
    assert [r["id"] for r in data.resources] == ["o1", "o2"]
    assert data.problem is None and data.next_link is None


def test_read_returns_the_resource(fhir_server, client):
    fhir_server.get(f"{BASE}/Patient/p1", json={"resourceType": "Patient", "id": "p1"})
    data = client.fetch(Query.from_template("patient", "Patient/p1"))
    assert data.state is DataState.PRESENT
    assert data.resources == ({"resourceType": "Patient", "id": "p1"},)


def test_no_token_sends_no_authorization_header(fhir_server, fake_time):
    open_client = FhirClient(
        BASE + "/",
        None,
        connect_timeout=1,
        read_timeout=1,
        deadline=fake_time.now + 4,
        max_pages=1,
        clock=fake_time.clock,
    )
    fhir_server.get(f"{BASE}/Condition", json=searchset())
    data = open_client.search("conditions", "Condition", "Condition?patient=p1")
    assert "Authorization" not in fhir_server.calls[0].request.headers
    assert data.state is DataState.EMPTY  # the server answered: the patient has none


def test_follows_next_links_and_merges_pages(fhir_server, client):
    fhir_server.get(
        f"{BASE}/Observation",
        json=searchset(observation("o1"), next_url=f"{BASE}/Observation?page=2"),
        match=[matchers.query_param_matcher(LABS_PARAMS)],
    )
    fhir_server.get(
        f"{BASE}/Observation",
        json=searchset(observation("o2"), next_url=f"{BASE}/Observation?page=3"),
        match=[
            matchers.query_param_matcher({"page": "2"}),
            matchers.header_matcher({"Authorization": f"Bearer {TOKEN}"}),
        ],
    )
    fhir_server.get(
        f"{BASE}/Observation",
        json=searchset(observation("o3")),
        match=[matchers.query_param_matcher({"page": "3"})],
    )
    data = client.search("labs", "Observation", LABS_QUERY)
    assert [r["id"] for r in data.resources] == ["o1", "o2", "o3"]
    assert data.issues == () and data.next_link is None


def test_paging_stops_at_max_pages_and_says_so(fhir_server, client):
    for page in range(1, 4):
        fhir_server.get(
            f"{BASE}/Observation",
            json=searchset(observation(f"o{page}"), next_url=f"{BASE}/Observation?page={page + 1}"),
            match=[matchers.query_param_matcher(LABS_PARAMS if page == 1 else {"page": str(page)})],
        )
    data = client.search("labs", "Observation", LABS_QUERY)
    assert data.state is DataState.PRESENT
    assert len(data.resources) == 3
    assert data.issues == ("labs: only the first 3 pages were read",)


def test_next_link_to_another_server_is_not_followed(fhir_server, client):
    fhir_server.get(
        f"{BASE}/Observation",
        json=searchset(
            observation("o1"), next_url="https://elsewhere.example.com/r4/Observation?p=2"
        ),
    )
    data = client.search("labs", "Observation", LABS_QUERY)
    assert len(fhir_server.calls) == 1
    assert [r["id"] for r in data.resources] == ["o1"]
    assert "outside the FHIR server's base" in data.issues[0]


def test_next_link_sharing_the_base_prefix_is_not_followed(client):
    assert client.is_under_base(f"{BASE}/Observation?page=2")
    assert client.is_under_base("Observation?page=2")
    assert not client.is_under_base(f"{BASE}-evil/Observation")
    assert not client.is_under_base("/other/Observation")


def test_failed_later_page_keeps_the_first_with_an_issue(fhir_server, client):
    fhir_server.get(
        f"{BASE}/Observation",
        json=searchset(observation("o1"), next_url=f"{BASE}/Observation?page=2"),
        match=[matchers.query_param_matcher(LABS_PARAMS)],
    )
    fhir_server.get(
        f"{BASE}/Observation", status=500, match=[matchers.query_param_matcher({"page": "2"})]
    )
    data = client.search("labs", "Observation", LABS_QUERY)
    assert data.state is DataState.PRESENT
    assert "incomplete, page 2 failed" in data.issues[0]


def test_continues_a_paged_prefetch(fhir_server, client):
    prior = KeyData(
        "labs", DataState.PRESENT, (observation("o1"),), next_link=f"{BASE}/Observation?page=2"
    )
    fhir_server.get(
        f"{BASE}/Observation",
        json=searchset(observation("o2")),
        match=[
            matchers.query_param_matcher({"page": "2"}),
            matchers.header_matcher({"Authorization": f"Bearer {TOKEN}"}),
        ],
    )
    [query] = queries_for({"labs": LABS_QUERY}, {"labs": prior})
    data = client.fetch(query)
    assert [r["id"] for r in data.resources] == ["o1", "o2"]
    assert data.next_link is None


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (requests.ReadTimeout("read timed out"), "did not answer in time"),
        (requests.ConnectTimeout("connect timed out"), "did not answer in time"),
        (requests.ConnectionError("refused"), "could not connect"),
    ],
)
def test_timeouts_and_connection_errors_are_unavailable(fhir_server, client, error, expected):
    fhir_server.get(f"{BASE}/Observation", body=error)
    data = client.search("labs", "Observation", LABS_QUERY)
    assert data.state is DataState.UNAVAILABLE
    assert expected in data.problem


def test_each_call_carries_connect_and_read_timeouts(fhir_server, client):
    fhir_server.get(f"{BASE}/Observation", json=searchset())
    client.search("labs", "Observation", LABS_QUERY)
    assert fhir_server.calls[0].request.req_kwargs["timeout"] == (1.0, 2.0)


def test_timeouts_shrink_to_fit_the_deadline(fhir_server, client, fake_time):
    fake_time.now = client.deadline - 0.5
    fhir_server.get(f"{BASE}/Observation", json=searchset())
    client.search("labs", "Observation", LABS_QUERY)
    assert fhir_server.calls[0].request.req_kwargs["timeout"] == (0.5, 0.5)


def test_deadline_passed_sends_nothing(client, fake_time):
    fake_time.now = client.deadline + 1
    data = client.search("labs", "Observation", LABS_QUERY)  # no mock registered: no call
    assert data.state is DataState.UNAVAILABLE
    assert "deadline passed" in data.problem


@pytest.mark.parametrize("status", [500, 502, 504])
def test_server_errors_are_unavailable_and_not_retried(fhir_server, client, status):
    fhir_server.get(f"{BASE}/Observation", status=status, json=outcome("database down"))
    data = client.search("labs", "Observation", LABS_QUERY)
    assert data.state is DataState.UNAVAILABLE
    assert f"HTTP {status}" in data.problem and "database down" in data.problem
    assert len(fhir_server.calls) == 1


@pytest.mark.parametrize("status", [429, 503])
def test_busy_server_is_retried_once_after_retry_after(fhir_server, client, fake_time, status):
    fhir_server.get(f"{BASE}/Observation", status=status, headers={"Retry-After": "1"})
    fhir_server.get(f"{BASE}/Observation", json=searchset(observation("o1")))
    data = client.search("labs", "Observation", LABS_QUERY)
    assert data.state is DataState.PRESENT
    assert fake_time.slept == [1.0]
    assert len(fhir_server.calls) == 2


def test_busy_twice_is_unavailable(fhir_server, client, fake_time):
    fhir_server.get(f"{BASE}/Observation", status=429)
    fhir_server.get(f"{BASE}/Observation", status=429)
    data = client.search("labs", "Observation", LABS_QUERY)
    assert data.state is DataState.UNAVAILABLE
    assert "busy (429)" in data.problem
    assert fake_time.slept == [0.25]  # no Retry-After: one short pause


def test_retry_after_beyond_the_deadline_is_not_waited_for(fhir_server, client, fake_time):
    fhir_server.get(f"{BASE}/Observation", status=503, headers={"Retry-After": "30"})
    data = client.search("labs", "Observation", LABS_QUERY)
    assert data.state is DataState.UNAVAILABLE
    assert fake_time.slept == []
    assert len(fhir_server.calls) == 1


def test_retry_after_http_date(fhir_server, client, fake_time):
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=2), usegmt=True)
    fhir_server.get(f"{BASE}/Observation", status=429, headers={"Retry-After": when})
    fhir_server.get(f"{BASE}/Observation", json=searchset())
    data = client.search("labs", "Observation", LABS_QUERY)
    assert data.state is DataState.EMPTY
    assert 0.5 < fake_time.slept[0] <= 2.0


def test_retry_delay_forms():
    now = datetime(2025, 6, 1, 12, 0, 0, tzinfo=UTC)
    assert retry_delay("3") == 3.0
    assert retry_delay(None) == 0.25
    assert retry_delay("Sun, 01 Jun 2025 12:00:05 GMT", now=now) == 5.0
    assert retry_delay("Sun, 01 Jun 2025 11:00:00 GMT", now=now) == 0.0  # already past
    assert retry_delay("soon") is None


@pytest.mark.parametrize("status", [401, 403, 404, 410])
def test_refusals_are_unavailable(fhir_server, client, status):
    fhir_server.get(f"{BASE}/Patient/p1", status=status, json=outcome("no access"))
    data = client.read("patient", "Patient", "Patient/p1")
    assert data.state is DataState.UNAVAILABLE
    assert f"HTTP {status}" in data.problem


def test_token_echoed_by_the_server_is_scrubbed(fhir_server, client):
    fhir_server.get(f"{BASE}/Patient/p1", status=401, json=outcome(f"bad token {TOKEN}"))
    data = client.read("patient", "Patient", "Patient/p1")
    assert TOKEN not in data.problem
    assert "[token]" in data.problem


def test_redirects_are_not_followed(fhir_server, client):
    fhir_server.get(
        f"{BASE}/Observation", status=302, headers={"Location": "https://evil.example.com/x"}
    )
    data = client.search("labs", "Observation", LABS_QUERY)
    assert data.state is DataState.UNAVAILABLE
    assert "redirected (HTTP 302)" in data.problem
    assert len(fhir_server.calls) == 1


def test_malformed_json_is_unavailable(fhir_server, client):
    fhir_server.get(
        f"{BASE}/Observation",
        body='{"resourceType": "Bundle", "entry": [',
        content_type="application/fhir+json",
    )
    data = client.search("labs", "Observation", LABS_QUERY)
    assert data.state is DataState.UNAVAILABLE
    assert "not valid JSON" in data.problem


@pytest.mark.parametrize("body", [[1, 2], {"results": []}, "plain"])
def test_json_that_is_not_fhir_is_unavailable(fhir_server, client, body):
    fhir_server.get(f"{BASE}/Observation", json=body)
    data = client.search("labs", "Observation", LABS_QUERY)
    assert data.state is DataState.UNAVAILABLE
    assert "not a FHIR resource" in data.problem


def test_bundle_of_the_wrong_type_is_unavailable(fhir_server, client):
    fhir_server.get(
        f"{BASE}/Observation",
        json=searchset({"resourceType": "Condition", "id": "c1"}),
    )
    data = client.search("labs", "Observation", LABS_QUERY)
    assert data.state is DataState.UNAVAILABLE
    assert "Condition" in data.problem


def test_resource_instead_of_bundle_is_unavailable(fhir_server, client):
    fhir_server.get(f"{BASE}/Observation", json=observation("o1"))
    data = client.search("labs", "Observation", LABS_QUERY)
    assert data.state is DataState.UNAVAILABLE
    assert "expected a Bundle of Observation" in data.problem


def test_read_of_the_wrong_type_is_unavailable(fhir_server, client):
    fhir_server.get(f"{BASE}/Patient/p1", json={"resourceType": "Practitioner", "id": "p1"})
    data = client.read("patient", "Patient", "Patient/p1")
    assert data.state is DataState.UNAVAILABLE


def test_operation_outcome_answer_is_unavailable(fhir_server, client):
    fhir_server.get(f"{BASE}/Observation", json=outcome("search not supported"))
    data = client.search("labs", "Observation", LABS_QUERY)
    assert data.state is DataState.UNAVAILABLE
    assert "search not supported" in data.problem


def test_search_outcome_entry_is_kept_as_an_issue(fhir_server, client):
    bundle = searchset(observation("o1"))
    bundle["entry"].append(
        {"resource": outcome("unknown parameter bogus ignored"), "search": {"mode": "outcome"}}
    )
    fhir_server.get(f"{BASE}/Observation", json=bundle)
    data = client.search("labs", "Observation", LABS_QUERY)
    assert data.state is DataState.PRESENT
    assert "unknown parameter bogus ignored" in data.issues[0]


def test_token_is_never_logged(fhir_server, client, caplog):
    caplog.set_level(logging.DEBUG, logger="lipcds")  # create_app may have raised it
    fhir_server.get(f"{BASE}/Observation", status=401, json=outcome(f"token {TOKEN} expired"))
    client.search("labs", "Observation", LABS_QUERY)
    assert caplog.records  # the call was logged ...
    assert TOKEN not in caplog.text  # ... without the token
    assert TOKEN not in repr(client)


# -- fetch_all: concurrency and the overall deadline -------------------------------------


def _slow(seconds: float, body: dict):
    def callback(request):
        time.sleep(seconds)
        return 200, {"Content-Type": "application/fhir+json"}, json.dumps(body)

    return callback


def test_fetch_all_runs_queries_concurrently():
    queries = [
        Query.from_template("conditions", "Condition?patient=p1"),
        Query.from_template("labs", LABS_QUERY),
        Query.from_template("medRequests", "MedicationRequest?patient=p1&_count=200"),
        Query.from_template("patient", "Patient/p1"),
    ]
    with responses.RequestsMock() as mock:
        for resource in ("Condition", "Observation", "MedicationRequest"):
            mock.add_callback("GET", f"{BASE}/{resource}", callback=_slow(0.3, searchset()))
        mock.add_callback(
            "GET",
            f"{BASE}/Patient/p1",
            callback=_slow(0.3, {"resourceType": "Patient", "id": "p1"}),
        )
        started = time.monotonic()
        results = fetch_all(
            BASE,
            TOKEN,
            queries,
            connect_timeout=1,
            read_timeout=2,
            deadline_seconds=5,
            max_pages=2,
        )
        elapsed = time.monotonic() - started
    assert set(results) == {"conditions", "labs", "medRequests", "patient"}
    assert results["patient"].state is DataState.PRESENT
    assert results["labs"].state is DataState.EMPTY
    assert elapsed < 0.9  # serial would take 1.2 s


def test_fetch_all_marks_late_keys_unavailable():
    queries = [
        Query.from_template("conditions", "Condition?patient=p1"),
        Query.from_template("labs", LABS_QUERY),
    ]
    with responses.RequestsMock() as mock:
        mock.add_callback("GET", f"{BASE}/Condition", callback=_slow(0.0, searchset()))
        mock.add_callback("GET", f"{BASE}/Observation", callback=_slow(1.0, searchset()))
        started = time.monotonic()
        results = fetch_all(
            BASE,
            TOKEN,
            queries,
            connect_timeout=1,
            read_timeout=2,
            deadline_seconds=0.3,
            max_pages=2,
        )
        elapsed = time.monotonic() - started
        time.sleep(0.8)  # let the straggler finish inside the mock
    assert elapsed < 0.7
    assert results["conditions"].state is DataState.EMPTY
    assert results["labs"].state is DataState.UNAVAILABLE
    assert "deadline passed" in results["labs"].problem


def test_fetch_all_late_continuation_keeps_the_prefetched_page():
    prior = KeyData(
        "labs", DataState.PRESENT, (observation("o1"),), next_link=f"{BASE}/Observation?page=2"
    )
    with responses.RequestsMock() as mock:
        mock.add_callback("GET", f"{BASE}/Observation", callback=_slow(1.0, searchset()))
        results = fetch_all(
            BASE,
            TOKEN,
            queries_for({"labs": LABS_QUERY}, {"labs": prior}),
            connect_timeout=1,
            read_timeout=2,
            deadline_seconds=0.2,
            max_pages=2,
        )
        time.sleep(1.0)
    assert results["labs"].state is DataState.PRESENT
    assert results["labs"].next_link is None
    assert "incomplete" in results["labs"].issues[-1]


def test_fetch_all_with_nothing_to_fetch():
    assert (
        fetch_all(
            BASE, TOKEN, [], connect_timeout=1, read_timeout=1, deadline_seconds=1, max_pages=1
        )
        == {}
    )
