"""/openapi.json: a valid OpenAPI 3.1 document naming every route of the app."""

from __future__ import annotations

from openapi_spec_validator import validate

from cds_hooks.ops.openapi import openapi_path, routes
from cds_hooks.runtime import runtime


def test_the_document_validates_and_covers_every_route(app):
    answer = app.test_client().get("/openapi.json")
    assert answer.status_code == 200
    document = answer.get_json()
    assert document["openapi"].startswith("3.1")
    validate(document)  # raises on any schema violation
    app_routes = routes(app)
    assert len(app_routes) >= 7
    for path, method, endpoint in app_routes:
        assert method in document["paths"].get(path, {}), f"{method.upper()} {path} ({endpoint})"
    # Every route of the URL map, counted independently of `routes()`.
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        path = openapi_path(rule.rule)
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            assert method.lower() in document["paths"][path], f"{method} {rule.rule}"


def test_the_hook_call_is_described_from_the_wire_schemas(app):
    document = app.test_client().get("/openapi.json").get_json()
    schemas = document["components"]["schemas"]
    request = schemas["HookRequest"]
    assert set(request["required"]) == {"hook", "hookInstance", "context"}
    assert request["properties"]["fhirAuthorization"]["$ref"].endswith("/FhirAuthorization")
    assert "patientId" in schemas["PatientViewContext"]["properties"]
    assert "selections" in schemas["OrderSelectContext"]["required"]
    assert schemas["FeedbackItem"]["properties"]["outcome"]["enum"] == ["accepted", "overridden"]
    assert schemas["FeedbackItem"]["properties"]["outcomeTimestamp"]["format"] == "date-time"
    call = document["paths"]["/cds-services/{service_id}"]["post"]
    assert {"200", "400", "401", "404", "412"} <= set(call["responses"])
    parameter = document["paths"]["/cds-services/{service_id}"]["parameters"][0]
    assert set(parameter["schema"]["enum"]) == set(runtime(app).kb.services)
    card = schemas["Card"]
    assert card["properties"]["indicator"]["enum"] == ["info", "warning", "critical"]
    assert card["properties"]["summary"]["maxLength"] == 139


def test_converters_become_openapi_parameters():
    assert openapi_path("/a/<int:b>/<c>") == "/a/{b}/{c}"
    assert openapi_path("/rules/<path:rule_id>") == "/rules/{rule_id}"
