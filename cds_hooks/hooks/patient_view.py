"""The patient-view service: the lip-twitch work-up when the chart opens."""

from __future__ import annotations

from cds_hooks.hooks.call import HookCall, HookResult
from fhir_mapping.cards import build_cards
from fhir_mapping.facts import extract_facts
from knowledge.engine import evaluate


def patient_view(call: HookCall) -> HookResult:
    """Facts of the chart → findings → cards."""
    facts = extract_facts(
        call.data,
        call.kb,
        now=call.now,
        patient_id=call.context["patient_id"],
        finding_window=call.policy.days("finding_window_days"),
    )
    evaluation = evaluate(facts, call.kb, call.policy, disabled_rules=call.disabled_rules)
    cards = build_cards(
        evaluation,
        call.kb,
        patient_id=call.context["patient_id"],
        hook_instance=call.hook_instance,
    )
    return HookResult(cards=cards, evaluation=evaluation)
