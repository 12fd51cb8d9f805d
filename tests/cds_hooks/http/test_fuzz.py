"""Fuzzing the wire: hook calls, prefetch and feedback shaped almost right, and wrong.

Hypothesis builds requests the way a broken or hostile EHR would: the right envelope
with wrong types, ids with newlines, strings with NUL and lone surrogates, numbers that
overflow a float or that Python will not convert, FHIR resources with every field the
rules read set to anything. Whatever comes in, the answer is never a 5xx and its body
is always JSON.

Hook calls run on SQLite, feedback on PostgreSQL (whose columns and text type are the
strict ones; under CI=true it must be there). The budget is fixed (derandomized,
`max_examples` per test, no example database) so the run is the same on every machine
and takes about 25 s in all.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cds_hooks.runtime import runtime
from tests import builders as b

EXAMPLES = 150  # per test; ten tests, 1 500 requests in all
FUZZ = settings(
    max_examples=EXAMPLES,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
SERVICES = {
    "patient-view": "lip-twitch-patient-view",
    "order-select": "lip-twitch-order-select",
    "order-sign": "lip-twitch-order-sign",
}


class Raw:
    """JSON text put into the body as it is (a number Python's json would not write)."""

    def __init__(self, text: str):
        self.text = text


def to_json(value: Any) -> str:
    if isinstance(value, Raw):
        return value.text
    if isinstance(value, dict):
        return "{" + ",".join(f"{json.dumps(str(k))}:{to_json(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(to_json(v) for v in value) + "]"
    return json.dumps(value)  # ensure_ascii: a lone surrogate travels as its \u escape


def body_bytes(value: Any) -> bytes:
    return to_json(value).encode("utf-8")


# -- building blocks ---------------------------------------------------------------------------

NASTY_CHARS = "\x00\ud800\udfff\n\r\t\u2028\ufeff\\\"'<>%{}"
ids = st.one_of(
    st.from_regex(r"[A-Za-z0-9\-.]{1,64}", fullmatch=True),
    st.sampled_from(["p1\n", "p1\r\n", "e" * 64 + "\n", "", " ", "a" * 65, "../p1", "p1%00"]),
)
texts = st.one_of(
    st.text(max_size=24),
    st.text(st.characters(exclude_categories=()), max_size=12),  # surrogates included
    st.text(alphabet=NASTY_CHARS, min_size=1, max_size=6),
    st.sampled_from(["", "\ud800", "\x00", "x" * 300, "y" * 5_000, "Practitioner/dr-1\n"]),
)
numbers = st.one_of(
    st.integers(min_value=-(10**6), max_value=10**6),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([10**400, -(10**400), 10**308 * 10, 1e308, 5e-324, 0, -0.0]),
    st.builds(lambda n: Raw("9" * n), st.sampled_from([4301, 5000])),
    st.builds(lambda e: Raw(f"1e{e}"), st.sampled_from([309, 400, 100000, -400])),
)
scalars = st.one_of(st.none(), st.booleans(), numbers, texts)
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(texts, inner, max_size=3)),
    max_leaves=8,
)


def maybe(strategy: st.SearchStrategy) -> st.SearchStrategy:
    """Usually the well-shaped value, sometimes any JSON at all in its place."""
    return st.one_of(strategy, strategy, strategy, json_values)


hostile = st.one_of(numbers, texts, json_values)


def paths(value: Any, prefix: tuple = ()) -> list[tuple]:
    """Every place in a JSON document: dict keys and list indexes, outermost first."""
    found = [prefix]
    if isinstance(value, dict):
        for key, child in value.items():
            found.extend(paths(child, (*prefix, key)))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            found.extend(paths(child, (*prefix, index)))
    return found


def replaced(document: Any, path: tuple, value: Any) -> Any:
    if not path:
        return value
    head, rest = path[0], path[1:]
    if isinstance(document, dict):
        return {k: (replaced(v, rest, value) if k == head else v) for k, v in document.items()}
    if isinstance(document, list):
        return [replaced(v, rest, value) if i == head else v for i, v in enumerate(document)]
    return document  # an earlier mutation already replaced what held this place


def mutants(document: Any) -> st.SearchStrategy:
    """`document` with one to three places replaced by hostile values (deep ones likelier:
    a well-formed request reaches the rules, and the rules read the leaves)."""
    places = [p for p in paths(document) if p]
    deep = sorted(places, key=len, reverse=True)[: max(1, len(places) // 2)]

    @st.composite
    def build(draw: st.DrawFn) -> Any:
        out = document
        for _ in range(draw(st.integers(min_value=1, max_value=3))):
            path = draw(st.one_of(st.sampled_from(deep), st.sampled_from(places)))
            out = replaced(out, path, draw(hostile))
        return out

    return build()


codings = st.fixed_dictionaries(
    {},
    optional={
        "system": maybe(st.sampled_from([b.LOINC, b.SNOMED, b.RXNORM, b.ICD10, "urn:oid:1.2"])),
        "code": maybe(st.sampled_from(["2823-3", "19123-9", "17861-6", "82470000", "36437"])),
        "display": texts,
    },
)
concepts = st.fixed_dictionaries(
    {}, optional={"coding": maybe(st.lists(maybe(codings), max_size=2)), "text": texts}
)
quantities = st.fixed_dictionaries(
    {},
    optional={
        "value": numbers,
        "unit": maybe(st.sampled_from(["mmol/L", "mg/dL", "mEq/L", "g/dL", "%"])),
        "code": maybe(st.sampled_from(["mmol/L", "mg/dL", "meq/L"])),
        "system": st.just(b.UCUM),
    },
)
dates = maybe(
    st.one_of(
        st.sampled_from(["2031-07-01", "2031-07-01T10:00:00Z", "2031", "0000-00-00", "9999-12-31"]),
        texts,
    )
)


def resource(resource_type: str) -> st.SearchStrategy:
    return st.fixed_dictionaries(
        {"resourceType": st.just(resource_type)},
        optional={
            "id": maybe(ids),
            "status": maybe(st.sampled_from(["final", "active", "draft", "entered-in-error"])),
            "code": maybe(concepts),
            "category": maybe(st.lists(maybe(concepts), max_size=2)),
            "clinicalStatus": maybe(concepts),
            "subject": maybe(st.fixed_dictionaries({"reference": maybe(st.just("Patient/p1"))})),
            "effectiveDateTime": dates,
            "onsetDateTime": dates,
            "authoredOn": dates,
            "birthDate": dates,
            "valueQuantity": maybe(quantities),
            "referenceRange": maybe(
                st.lists(
                    st.fixed_dictionaries(
                        {}, optional={"low": maybe(quantities), "high": maybe(quantities)}
                    ),
                    max_size=2,
                )
            ),
            "medicationCodeableConcept": maybe(concepts),
            "note": maybe(st.lists(st.fixed_dictionaries({"text": texts}), max_size=2)),
            "intent": maybe(st.just("order")),
        },
    )


RESOURCE_TYPES = [
    "Patient",
    "Condition",
    "Observation",
    "MedicationRequest",
    "MedicationStatement",
    "ServiceRequest",
    "Medication",
]
resources = st.one_of(*(resource(t) for t in RESOURCE_TYPES))


def bundles(entries: st.SearchStrategy) -> st.SearchStrategy:
    return st.fixed_dictionaries(
        {"resourceType": maybe(st.just("Bundle"))},
        optional={
            "type": maybe(st.sampled_from(["searchset", "collection"])),
            "entry": maybe(
                st.lists(maybe(st.fixed_dictionaries({"resource": entries})), max_size=4)
            ),
            "link": maybe(
                st.lists(
                    st.fixed_dictionaries(
                        {"relation": st.just("next"), "url": maybe(st.just("Observation?p=2"))}
                    ),
                    max_size=1,
                )
            ),
            "total": numbers,
        },
    )


prefetch = st.fixed_dictionaries(
    {},
    optional={
        "patient": maybe(resource("Patient")),
        "conditions": maybe(bundles(resource("Condition"))),
        "labs": maybe(bundles(resource("Observation"))),
        "medRequests": maybe(
            bundles(st.one_of(resource("MedicationRequest"), resource("Medication")))
        ),
        "medStatements": maybe(bundles(resource("MedicationStatement"))),
    },
)


def contexts(hook: str) -> st.SearchStrategy:
    optional: dict[str, st.SearchStrategy] = {"encounterId": maybe(ids)}
    required: dict[str, st.SearchStrategy] = {
        "userId": maybe(st.one_of(st.just("Practitioner/dr-1"), ids.map("Practitioner/{}".format))),
        "patientId": maybe(st.one_of(st.just("p1"), ids)),
    }
    if hook != "patient-view":
        required["draftOrders"] = maybe(bundles(resources))
    if hook == "order-select":
        required["selections"] = maybe(
            st.lists(maybe(st.sampled_from(["MedicationRequest/draft-1", "MedicationRequest/x"])))
        )
    return st.fixed_dictionaries(required, optional=optional)


def hook_requests(hook: str) -> st.SearchStrategy:
    return st.fixed_dictionaries(
        {
            "hook": maybe(st.just(hook)),
            "hookInstance": maybe(st.one_of(st.uuids().map(str), texts)),
            "context": maybe(contexts(hook)),
        },
        optional={
            "prefetch": maybe(prefetch),
            "extension": json_values,
            "fhirServer": maybe(st.sampled_from(["https://fhir.example.org/r4", "ftp://x", ""])),
        },
    )


# -- the app -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    """The service on SQLite, for the hook calls."""
    app = b.make_app(tmp_path_factory.mktemp("fuzz"), patient_id_key="k" * 32, log_level="ERROR")
    yield app.test_client()
    runtime(app).store.dispose()


@pytest.fixture(scope="module")
def pg_client(request):
    """The service on PostgreSQL, for feedback: its columns and text type are the strict ones."""
    from cds_hooks.store import Store

    database_url = request.getfixturevalue("postgres_database")
    store = Store(database_url)
    store.upgrade()
    store.dispose()
    app = b.make_app(None, database_url=database_url, patient_id_key="k" * 32)
    yield app.test_client()
    runtime(app).store.dispose()


@pytest.fixture(scope="module")
def issued(pg_client) -> dict[str, Any]:
    """A card the fuzzed feedback can name: its uuid and its suggestions' uuids."""
    labs = b.normal_labs(skip=("potassium",)) + [b.observation("potassium", 3.1)]
    response = pg_client.post(f"/cds-services/{b.SERVICE}", json=b.hook_request(labs=labs))
    assert response.status_code == 200
    card = next(c for c in response.get_json()["cards"] if c.get("suggestions"))
    return {"card": card["uuid"], "suggestions": [s["uuid"] for s in card["suggestions"]]}


def answer_is_sound(response) -> None:
    detail = response.get_data()[:500]
    assert response.status_code < 500, (response.status_code, detail)
    body = response.get_json(silent=True)
    assert body is not None, (response.status_code, response.mimetype, detail)
    if response.status_code >= 400:
        assert body.get("resourceType") == "OperationOutcome", body


def post(client, url: str, value: Any, content_type: str = "application/json"):
    return client.post(url, data=body_bytes(value), content_type=content_type)


@pytest.mark.parametrize("hook", list(SERVICES))
def test_fuzzed_hook_calls_never_fail(client, hook):
    @FUZZ
    @given(request=hook_requests(hook))
    def run(request):
        response = post(client, f"/cds-services/{SERVICES[hook]}", request)
        answer_is_sound(response)
        if response.status_code == 200:
            assert isinstance(response.get_json().get("cards"), list)

    run()


def test_fuzzed_prefetch_of_a_well_formed_call_never_fails(client):
    @FUZZ
    @given(data=prefetch)
    def run(data):
        request = b.hook_request()
        request["prefetch"] = data
        answer_is_sound(post(client, f"/cds-services/{b.SERVICE}", request))

    run()


def test_fuzzed_feedback_never_fails(pg_client, issued):
    suggestions = st.fixed_dictionaries(
        {"id": maybe(st.one_of(st.sampled_from(issued["suggestions"]), texts))}
    )
    reasons = st.fixed_dictionaries(
        {},
        optional={
            "reason": maybe(codings),
            "userComment": maybe(texts),
        },
    )
    items = st.fixed_dictionaries(
        {
            "card": maybe(st.one_of(st.just(issued["card"]), texts)),
            "outcome": maybe(st.sampled_from(["accepted", "overridden"])),
            "outcomeTimestamp": maybe(
                st.one_of(
                    st.sampled_from(["2031-07-04T15:00:00Z", "2031-07-04T15:00:00.1234567+02:00"]),
                    texts,
                )
            ),
        },
        optional={
            "acceptedSuggestions": maybe(st.lists(maybe(suggestions), max_size=2)),
            "overrideReason": maybe(reasons),
        },
    )
    bodies = maybe(st.fixed_dictionaries({"feedback": maybe(st.lists(maybe(items), max_size=3))}))

    @FUZZ
    @given(body=bodies)
    def run(body):
        answer_is_sound(post(pg_client, f"/cds-services/{b.SERVICE}/feedback", body))

    run()


def test_fuzzed_raw_bodies_never_fail(client):
    raw = st.one_of(
        st.binary(max_size=64),
        st.text(max_size=64).map(lambda t: t.encode("utf-8", "surrogatepass")),
        st.sampled_from(
            [
                b"[" * 20_000,
                b'{"a":' * 4_000,
                b"\xef\xbb\xbf{}",
                b'{"hook": "patient-view", "hookInstance": ' + b"9" * 5000 + b"}",
                b'{"hook": NaN}',
                b'"\\ud800"',
                b"\x00",
            ]
        ),
    )
    urls = st.sampled_from([f"/cds-services/{b.SERVICE}", f"/cds-services/{b.SERVICE}/feedback"])
    content_types = st.sampled_from(
        [
            "application/json",
            "application/fhir+json",
            "text/plain",
            "application/json; charset=latin-1",
        ]
    )

    @FUZZ
    @given(data=raw, url=urls, content_type=content_types)
    def run(data, url, content_type):
        answer_is_sound(client.post(url, data=data, content_type=content_type))

    run()


# -- mutations of well-formed requests: they pass the envelope and reach the rules ----------


def _rich_patient_view() -> dict[str, Any]:
    labs = [
        b.observation("potassium", 3.1, ref_low=3.5, ref_high=5.1),
        b.observation("magnesium", 1.5, "mg/dL", ref_low=1.7, ref_high=2.2),
        b.observation("calcium", 8.1, "mg/dL", ref_low=8.6, ref_high=10.3),
        b.observation("albumin", 3.0, "g/dL"),
    ]
    meds = [b.med_request("36437", "sertraline 50 mg tablet")]
    return b.hook_request(labs=labs, med_requests=meds)


def _order_request(hook: str) -> dict[str, Any]:
    from tests.cds_hooks.hooks.orders import conftest as orders

    record = [orders.patient(), orders.twitching(), orders.lab("potassium", 3.1)]
    drafts = [
        orders.med_draft("draft-1", code="36437", text="sertraline 50 mg tablet"),
        orders.lab_draft("draft-2", loinc="2823-3"),
    ]
    return orders.order_request(hook, record, drafts)


BASES = {
    "patient-view": _rich_patient_view,
    "order-select": lambda: _order_request("order-select"),
    "order-sign": lambda: _order_request("order-sign"),
}


@pytest.mark.parametrize("hook", list(BASES))
def test_mutated_hook_calls_never_fail(client, hook):
    base = BASES[hook]()
    url = f"/cds-services/{SERVICES[hook]}"
    assert client.post(url, json=base).status_code == 200  # the base itself is sound

    @FUZZ
    @given(request=mutants(base))
    def run(request):
        answer_is_sound(post(client, url, request))

    run()


def test_mutated_feedback_never_fails(pg_client, issued):
    base = {
        "feedback": [
            {
                "card": issued["card"],
                "outcome": "overridden",
                "overrideReason": {
                    "reason": {"system": "http://example.org/reasons", "code": "c", "display": "d"},
                    "userComment": "seen",
                },
                "outcomeTimestamp": "2031-07-04T15:00:00Z",
            },
            {
                "card": issued["card"],
                "outcome": "accepted",
                "acceptedSuggestions": [{"id": issued["suggestions"][0]}],
                "outcomeTimestamp": "2031-07-04T15:01:00Z",
            },
        ]
    }

    @FUZZ
    @given(body=mutants(base))
    def run(body):
        answer_is_sound(post(pg_client, f"/cds-services/{b.SERVICE}/feedback", body))

    run()
