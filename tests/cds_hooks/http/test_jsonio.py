"""Request bodies and answers through orjson: every malformed body is a 400 that says why."""

from __future__ import annotations

import json

import pytest

from tests import builders as b
from tests.builders import SERVICE, hook_request

URL = f"/cds-services/{SERVICE}"


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    return b.make_app(tmp_path_factory.mktemp("jsonio")).test_client()


def diagnostics(response) -> str:
    assert response.status_code == 400, response.get_data(as_text=True)
    body = response.get_json()
    assert body["resourceType"] == "OperationOutcome"
    assert "Traceback" not in response.get_data(as_text=True)
    return body["issue"][0]["diagnostics"]


@pytest.mark.parametrize(
    ("body", "said"),
    [
        (b'{"hook": ', "not valid JSON"),
        (b'{"hook": Infinity}', "Infinity is not a JSON number"),
        (b'{"hook": -Infinity}', "Infinity is not a JSON number"),
        (b'{"hook": NaN}', "NaN is not a JSON number"),
        (b'{"hook": 1e999}', "not valid JSON"),
        (b"\xff\xfe{}", "UTF-8"),
        (b'\xef\xbb\xbf{"hook": "patient-view"}', "not valid JSON"),
        (b'"\\ud800"', "unpaired surrogate"),  # read_json_body names the character
        (b"[" * 5000 + b"]" * 5000, "nested too deeply"),
        (b'{"hook": "patient-view"} trailing', "not valid JSON"),
        (b"", "not valid JSON"),
    ],
)
def test_a_malformed_body_is_a_400_naming_the_problem(client, body, said):
    response = client.post(URL, data=body, content_type="application/json")
    assert said in diagnostics(response)


def test_where_the_json_breaks_is_said():
    from cds_hooks.http.errors import InvalidRequest
    from cds_hooks.http.jsonio import parse_json_body

    with pytest.raises(InvalidRequest, match="line 2 column 7"):
        parse_json_body(b'{"a": 1,\n "b": }')


def test_answers_are_json(client):
    request = hook_request()
    response = client.post(URL, data=json.dumps(request), content_type="application/json")
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    assert list(json.loads(response.get_data())) == ["cards"]
    discovery = client.get("/cds-services").get_data(as_text=True)
    assert json.loads(discovery)["services"][0]["hook"]
