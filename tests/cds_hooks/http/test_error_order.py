"""An unknown service id is answered 404 whatever the body: the id is checked first."""

from tests.builders import make_app


def test_unknown_service_is_404_even_with_a_bad_body(tmp_path):
    client = make_app(tmp_path).test_client()
    response = client.post("/cds-services/no-such-service", data="x", content_type="text/plain")
    assert response.status_code == 404
    body = response.get_json()
    assert body["resourceType"] == "OperationOutcome"
    assert "no-such-service" in body["issue"][0]["diagnostics"]
