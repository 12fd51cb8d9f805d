"""The order-select and order-sign services: drug checks while the clinician orders.

Both read `context.draftOrders`; order-select judges only the drafts named in
`selections`, order-sign all of them. A card already shown at order-select in the same
encounter is not shown again at order-sign. Choices are explained in docs/ORDER_SERVICES.md.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import replace
from typing import Any

from cds_hooks.hooks.call import HookCall, HookResult
from fhir_mapping.basket import covered_analytes, filter_cards
from fhir_mapping.cards import build_cards
from fhir_mapping.drafts import read_draft_orders
from fhir_mapping.facts import extract_facts
from knowledge.engine import evaluate_orders
from knowledge.engine.core import ORDER_CHECK
from knowledge.kb import KnowledgeBase
from knowledge.model import Evaluation

log = logging.getLogger("lipcds.orders")


def order_select(call: HookCall) -> HookResult:
    """Check the drafts the clinician has just selected."""
    return check_orders(call, selections=call.context.get("selections") or [])


def order_sign(call: HookCall) -> HookResult:
    """Check every draft about to be signed, without repeating order-select's cards."""
    return check_orders(call, selections=None)


def check_orders(call: HookCall, *, selections: Iterable[str] | None) -> HookResult:
    """Facts with the drafts → findings → cards, minus what the basket already orders."""
    kb = call.kb
    params = _order_params(kb)
    patient_id = call.context["patient_id"]
    facts = extract_facts(call.data, kb, now=call.now, patient_id=patient_id)
    basket = read_draft_orders(
        call.context.get("draft_orders"), kb, selections=selections, panels=params["panels"]
    )
    facts = replace(facts, draft_medications=basket.medications)
    evaluation = evaluate_orders(facts, kb, call.policy, disabled_rules=call.disabled_rules)
    if call.service.hook == "order-sign":
        evaluation = _without_repeats(call, evaluation)
    cards = build_cards(
        evaluation,
        kb,
        patient_id=patient_id,
        hook_instance=call.hook_instance,
    )
    cards = filter_cards(
        cards,
        kb,
        covered=covered_analytes(basket.lab_analytes, params["basket_covers"]),
        drop_when_satisfied=params["drop_when_satisfied"],
        panels=params["panels"],
    )
    return HookResult(cards=cards, evaluation=evaluation)


def _order_params(kb: KnowledgeBase) -> dict[str, Any]:
    """The basket settings of the order-check rules, merged (there is one today)."""
    merged: dict[str, Any] = {"panels": {}, "basket_covers": {}, "drop_when_satisfied": set()}
    for rule in kb.rules:
        if rule.role == ORDER_CHECK and rule.enabled:
            merged["panels"].update(rule.params.get("panels", {}))
            merged["basket_covers"].update(rule.params.get("basket_covers", {}))
            merged["drop_when_satisfied"].update(rule.params.get("drop_when_satisfied", ()))
    return merged


def _without_repeats(call: HookCall, evaluation: Evaluation) -> Evaluation:
    """Drop findings order-select already showed in this encounter (alert fatigue).

    Without an encounter, or without a store, nothing is dropped; when the store cannot
    answer, the cards go out again: a repeated warning is safer than a lost one.
    """
    encounter_id = call.context.get("encounter_id")
    store = call.shown_cards
    if not encounter_id or store is None or not evaluation.findings:
        return evaluation
    try:
        shown = store.shown_at_order_select(
            encounter_id=encounter_id, issuer=call.issuer, tenant=call.tenant
        )
    except Exception as exc:  # any store failure: show the cards
        log.warning(
            "order-sign %s: could not check the cards already shown at order-select (%s); "
            "showing them again",
            call.hook_instance,
            type(exc).__name__,
        )
        return evaluation
    kept = tuple(f for f in evaluation.findings if (f.concerns, f.kind) not in shown)
    if len(kept) != len(evaluation.findings):
        log.info(
            "order-sign %s: %d card(s) already shown at order-select in this encounter",
            call.hook_instance,
            len(evaluation.findings) - len(kept),
        )
    return replace(evaluation, findings=kept)
