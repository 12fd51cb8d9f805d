"""Findings → cards: the referral wording follows the engine's (policy's) adult age."""

from __future__ import annotations

import pytest

from fhir_mapping.cards import build_cards
from knowledge import load_knowledge_base
from knowledge.model import Evaluation, Finding, Indicator, Suggestion


@pytest.fixture(scope="module")
def packaged_kb():
    return load_knowledge_base()


def _referral_card(kb, *, pediatric: bool) -> dict:
    finding = Finding(
        rule_id="R9", kind="neurology-referral-red-flag", kind_display="Red flags",
        indicator=Indicator.WARNING, summary="Refer", detail="Refer to neurology.",
        suggestions=(Suggestion("neurology-referral", "Refer to neurology",
                                ("referral-neurology",)),),
    )
    evaluation = Evaluation((finding,), kb.version, in_scope=True, pediatric=pediatric)
    (card,) = build_cards(evaluation, kb, patient_id="p1", hook_instance="h1")
    return card


@pytest.mark.parametrize("pediatric", [True, False])
def test_referral_text_follows_the_evaluation(packaged_kb, pediatric):
    order = packaged_kb.orders["referral-neurology"]
    (action,) = _referral_card(packaged_kb, pediatric=pediatric)["suggestions"][0]["actions"]
    expected = order.pediatric_text if pediatric else order.text
    assert action["description"] == expected
    assert action["resource"]["code"]["text"] == expected
    assert order.pediatric_text != order.text
