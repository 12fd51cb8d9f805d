"""Every ServiceRequest a card can carry is validated once, not on every hook call."""

from __future__ import annotations

import dataclasses

import pytest
from fhir.resources.R4B.servicerequest import ServiceRequest

from fhir_mapping import cards
from fhir_mapping.cards import CardError, check_order_templates, create_service_request
from knowledge import load_knowledge_base
from knowledge.kb import Coding


@pytest.fixture
def kb():
    return load_knowledge_base()


@pytest.fixture
def validations(monkeypatch):
    """Count the R4B validations of ServiceRequests, from an empty memory of templates."""
    monkeypatch.setattr(cards, "_VALID_TEMPLATES", set())
    calls = []
    real = ServiceRequest.model_validate

    def counting(resource, *args, **kwargs):
        calls.append(resource)
        return real(resource, *args, **kwargs)

    monkeypatch.setattr(ServiceRequest, "model_validate", counting)
    return calls


def test_start_up_validates_every_template_then_calls_validate_none(kb, validations):
    check_order_templates(kb)
    assert len(validations) >= len(kb.orders)
    after_start_up = len(validations)
    for order in kb.orders.values():
        resource = create_service_request(order, "patient-7", ("Observation/mg-1",), True)
        assert resource["subject"] == {"reference": "Patient/patient-7"}
    assert len(validations) == after_start_up


def test_a_template_first_used_without_start_up_is_validated_then(kb, validations):
    order = next(iter(kb.orders.values()))
    create_service_request(order, "p1", ())
    create_service_request(order, "p2", ())
    assert len(validations) == 1


def test_an_order_that_makes_an_invalid_service_request_stops_start_up(kb, validations):
    order = next(iter(kb.orders.values()))
    broken = dataclasses.replace(order, coding=Coding(system="http://loinc.org", code="a  b"))
    bad_kb = dataclasses.replace(kb, orders={**kb.orders, order.key: broken})
    with pytest.raises(CardError, match=order.key):
        check_order_templates(bad_kb)
