"""The FHIR client against a real, misbehaving HTTP server on 127.0.0.1.

Every bad answer ends UNAVAILABLE with its reason, `fetch_all` answers by its deadline
plus a small margin, and the work behind it stops: the fake server sees the client's
socket closed, and no fetch thread is left reading.
"""

from __future__ import annotations

import gzip
import threading
import time

import pytest
import responses

from fhir_mapping.client import FhirClient, Query, fetch_all, new_session
from knowledge.model import DataState
from tests import fakefhir

DEADLINE = 1.0
MARGIN = 0.5  # answer by DEADLINE + MARGIN; the server sees the socket closed by then too
LABS = "Observation?patient=p1&category=laboratory&_count=200"
LIMIT = 1 * fakefhir.MB


@pytest.fixture(scope="module")
def fake():
    with fakefhir.running() as server:
        yield server


def fetch(base: str, *templates: str, **limits: int) -> tuple[dict, float]:
    started = time.monotonic()
    results = fetch_all(
        base,
        "token-1",
        [Query.from_template(f"k{i}", t) for i, t in enumerate(templates)],
        connect_timeout=1.0,
        read_timeout=2.0,  # longer than the deadline: only the deadline can end a drip
        deadline_seconds=DEADLINE,
        max_pages=2,
        max_response_bytes=limits.get("max_response_bytes", LIMIT),
        max_fetch_bytes=limits.get("max_fetch_bytes", 4 * LIMIT),
    )
    return results, time.monotonic() - started


def fetch_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("lipcds-fhir")]


def no_fetch_threads_within(seconds: float) -> bool:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if not fetch_threads():
            return True
        time.sleep(0.02)
    return not fetch_threads()


def test_a_good_server_still_answers(fake):
    results, _ = fetch(fake.base("ok"), LABS, "Patient/p1")
    assert results["k0"].state is DataState.PRESENT
    assert results["k1"].resources[0]["id"] == "p1"


@pytest.mark.parametrize(
    ("fault", "problem"),
    [
        ("huge", "larger than 1 MB"),
        ("huge-chunked", "larger than 1 MB"),
        ("gzip-bomb", "larger than 1 MB"),
        ("endless", "larger than 1 MB"),
    ],
)
def test_an_oversized_answer_is_cut_at_the_limit(fake, fault, problem):
    results, elapsed = fetch(fake.base(fault), LABS)
    assert results["k0"].state is DataState.UNAVAILABLE
    assert problem in results["k0"].problem
    assert elapsed < DEADLINE  # stopped by size, not by the clock
    [exchange] = fake.wait_closed(fault, MARGIN)
    assert exchange.closed is not None, "the client kept the oversized answer open"
    if fault != "gzip-bomb":  # the bomb is small on the wire; its inflation is the point
        assert exchange.sent < 8 * LIMIT  # what the socket buffers held, not the whole body


@pytest.mark.parametrize("fault", ["drip", "drip-headers", "frozen"])
def test_a_slow_or_frozen_server_is_cut_at_the_deadline(fake, fault):
    results, elapsed = fetch(fake.base(fault), LABS, "Patient/p1")
    for key in ("k0", "k1"):
        assert results[key].state is DataState.UNAVAILABLE
        assert "deadline passed" in results[key].problem
    assert DEADLINE - 0.05 < elapsed < DEADLINE + MARGIN
    exchanges = fake.wait_closed(fault, MARGIN)
    assert len(exchanges) == 2
    for exchange in exchanges:
        assert exchange.closed is not None, "a cancelled call kept its socket open"
        assert exchange.closed - exchange.started < DEADLINE + MARGIN
    assert no_fetch_threads_within(MARGIN), "a fetch thread is still reading"


def test_a_server_that_is_away_is_unavailable_at_once():
    base = f"http://127.0.0.1:{fakefhir.free_port()}/r4"
    results, elapsed = fetch(base, LABS)
    assert results["k0"].state is DataState.UNAVAILABLE
    assert "could not connect" in results["k0"].problem
    assert elapsed < DEADLINE


def test_the_total_of_one_call_is_bounded(fake):
    # Five answers of 0.6 MB fit one by one under 1 MB, not together under 2 MB.
    results, _ = fetch(fake.base("ok"), LABS, max_response_bytes=LIMIT, max_fetch_bytes=2 * LIMIT)
    assert results["k0"].state is DataState.PRESENT  # small answers pass the total
    client = FhirClient(
        fake.base("huge-chunked"),
        None,
        connect_timeout=1,
        read_timeout=2,
        deadline=time.monotonic() + 5,
        max_pages=1,
        max_response_bytes=64 * fakefhir.MB,
        max_fetch_bytes=LIMIT,
        session=new_session(),
    )
    data = client.fetch(Query.from_template("labs", LABS))
    assert data.state is DataState.UNAVAILABLE
    assert "exceed 1 MB in total" in data.problem
    assert LIMIT < client.fetched_bytes <= LIMIT + 256 * 1024


def test_an_integer_longer_than_python_converts_is_not_json(fake):
    results, _ = fetch(fake.base("number-bomb"), LABS)
    assert results["k0"].state is DataState.UNAVAILABLE
    assert "not valid JSON" in results["k0"].problem


# -- decompression, without a server ------------------------------------------------------

BASE = "https://fhir.example.org/r4"


def _client(limit: int) -> FhirClient:
    return FhirClient(
        BASE,
        None,
        connect_timeout=1,
        read_timeout=1,
        deadline=time.monotonic() + 5,
        max_pages=1,
        max_response_bytes=limit,
    )


def _bundle_bytes(count: int) -> bytes:
    import json

    return json.dumps(fakefhir.searchset(*(fakefhir.observation(f"o{i}") for i in range(count))))


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
def test_a_compressed_answer_is_read(encoding):
    import zlib

    raw = _bundle_bytes(50).encode()
    body = gzip.compress(raw) if encoding == "gzip" else zlib.compress(raw)
    with responses.RequestsMock() as mock:
        mock.get(f"{BASE}/Observation", body=body, headers={"Content-Encoding": encoding})
        data = _client(len(raw)).search("labs", "Observation", LABS)
        sent = mock.calls[0].request.headers["Accept-Encoding"]
    assert data.state is DataState.PRESENT and len(data.resources) == 50
    assert sent == "gzip, deflate"


def test_several_gzip_members_are_one_answer():
    raw = _bundle_bytes(3).encode()
    body = gzip.compress(raw[:100]) + gzip.compress(raw[100:])
    with responses.RequestsMock() as mock:
        mock.get(f"{BASE}/Observation", body=body, headers={"Content-Encoding": "gzip"})
        data = _client(len(raw)).search("labs", "Observation", LABS)
    assert len(data.resources) == 3


def test_decompressed_size_counts_against_the_limit():
    raw = _bundle_bytes(50).encode()
    with responses.RequestsMock() as mock:
        mock.get(
            f"{BASE}/Observation", body=gzip.compress(raw), headers={"Content-Encoding": "gzip"}
        )
        data = _client(len(raw) - 1).search("labs", "Observation", LABS)
    assert data.state is DataState.UNAVAILABLE
    assert "larger than" in data.problem


@pytest.mark.parametrize(
    ("body", "headers", "problem"),
    [
        (gzip.compress(b'{"resourceType": "Bundle"}')[:-12], {"Content-Encoding": "gzip"}, "trunc"),
        (b"not gzip at all", {"Content-Encoding": "gzip"}, "could not be read"),
        (b"{}", {"Content-Encoding": "br"}, "unsupported Content-Encoding"),
    ],
)
def test_broken_compression_is_unavailable(body, headers, problem):
    with responses.RequestsMock() as mock:
        mock.get(f"{BASE}/Observation", body=body, headers=headers)
        data = _client(LIMIT).search("labs", "Observation", LABS)
    assert data.state is DataState.UNAVAILABLE
    assert problem in data.problem


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_non_json_constants_make_the_answer_unusable(constant):
    with responses.RequestsMock() as mock:
        mock.get(
            f"{BASE}/Observation",
            body='{"resourceType": "Bundle", "type": "searchset", "total": ' + constant + "}",
        )
        data = _client(LIMIT).search("labs", "Observation", LABS)
    assert data.state is DataState.UNAVAILABLE
    assert "not valid JSON" in data.problem


def test_an_error_answer_is_read_only_for_its_explanation():
    with responses.RequestsMock() as mock:
        mock.get(f"{BASE}/Observation", status=500, body=b"x" * (LIMIT * 2))
        data = _client(LIMIT * 4).search("labs", "Observation", LABS)
    assert data.state is DataState.UNAVAILABLE
    assert data.problem == "'labs': the FHIR server failed (HTTP 500)"


def test_one_session_serves_many_calls_and_keeps_its_pool_size(fake):
    session = new_session(pool_maxsize=3)
    assert session.get_adapter("http://x").poolmanager.connection_pool_kw["maxsize"] == 3
    for _ in range(3):
        results = fetch_all(
            fake.base("ok"),
            None,
            [Query.from_template("labs", LABS), Query.from_template("patient", "Patient/p1")],
            connect_timeout=1,
            read_timeout=2,
            deadline_seconds=DEADLINE,
            max_pages=1,
            session=session,
        )
        assert results["labs"].state is DataState.PRESENT
        assert results["patient"].state is DataState.PRESENT
    session.close()


def test_a_shared_session_survives_a_cancelled_call(fake):
    session = new_session()
    fetch_all(
        fake.base("drip"),
        None,
        [Query.from_template("labs", LABS)],
        connect_timeout=1,
        read_timeout=2,
        deadline_seconds=0.3,
        max_pages=1,
        session=session,
    )
    results = fetch_all(
        fake.base("ok"),
        None,
        [Query.from_template("labs", LABS)],
        connect_timeout=1,
        read_timeout=2,
        deadline_seconds=DEADLINE,
        max_pages=1,
        session=session,
    )
    assert results["labs"].state is DataState.PRESENT
    session.close()


@pytest.mark.parametrize("escape", ["\\u0000", "\\ud800", "\\udfff"])
def test_an_answer_holding_nul_or_a_lone_surrogate_is_unusable(escape):
    body = '{"resourceType": "Patient", "id": "p1", "name": [{"text": "a' + escape + 'b"}]}'
    with responses.RequestsMock() as mock:
        mock.get(f"{BASE}/Patient/p1", body=body)
        data = _client(LIMIT).read("patient", "Patient", "Patient/p1")
    assert data.state is DataState.UNAVAILABLE
    assert "NUL or unpaired surrogate" in data.problem


def test_a_surrogate_pair_is_an_ordinary_character():
    body = '{"resourceType": "Patient", "id": "p1", "name": [{"text": "a\\ud83d\\ude00b"}]}'
    with responses.RequestsMock() as mock:
        mock.get(f"{BASE}/Patient/p1", body=body)
        data = _client(LIMIT).read("patient", "Patient", "Patient/p1")
    assert data.state is DataState.PRESENT
    assert data.resources[0]["name"][0]["text"] == "a\U0001f600b"
