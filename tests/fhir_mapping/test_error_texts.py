"""Errors about resources name where and what, never the values: they end in the log."""

from __future__ import annotations

import pytest

from fhir_mapping.cards import CardError, create_service_request
from knowledge.kb import Coding, Order

SECRET = "Jane  Doe 1234"  # two spaces: not a valid FHIR code


def test_an_invalid_service_request_is_described_without_its_values():
    order = Order(
        key="k1", category="lab", text="Potassium", coding=Coding("http://loinc.org", SECRET)
    )
    with pytest.raises(CardError) as raised:
        create_service_request(order, "p1", ())
    message = str(raised.value)
    assert "code.coding.0.code" in message  # where
    assert SECRET not in message and "Jane" not in message  # never what it held
