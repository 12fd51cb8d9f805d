"""When the EHR's prefetch and our own fetch both fail, the 412 names both causes."""

import pytest

from cds_hooks.hooks.prefetch import resolve_data
from cds_hooks.http.errors import PrefetchUnavailable
from fhir_mapping.records import KeyData
from knowledge.kb import ServiceDefinition
from knowledge.model import DataState

SERVICE = ServiceDefinition(
    id="svc",
    hook="patient-view",
    title="t",
    description="d",
    prefetch={"conditions": "Condition?patient={{context.patientId}}"},
    required_prefetch=("conditions",),
)


def test_both_failures_are_reported():
    outcome = {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": "timeout", "diagnostics": "EHR store timed out"}],
    }
    request = {"prefetch": {"conditions": outcome}}

    def failing_fetcher(service, request, queries):
        assert queries == {"conditions": "Condition?patient=p1"}
        return {"conditions": KeyData.unavailable("conditions", "server answered 503")}

    with pytest.raises(PrefetchUnavailable) as raised:
        resolve_data(SERVICE, request, {"patientId": "p1"}, failing_fetcher)
    message = raised.value.message
    assert "EHR store timed out" in message
    assert "server answered 503" in message
    assert raised.value.expression == ["prefetch.conditions"]


def test_a_successful_fetch_replaces_the_failed_prefetch():
    request = {"prefetch": {"conditions": {"resourceType": "OperationOutcome", "issue": []}}}

    def fetcher(service, request, queries):
        return {"conditions": KeyData("conditions", DataState.EMPTY)}

    data = resolve_data(SERVICE, request, {"patientId": "p1"}, fetcher)
    assert data["conditions"].state is DataState.EMPTY
