"""Cards checked against the order basket: no suggestion to order what is already there.

Applied to every card of an order-select or order-sign response. A lab whose
draft is in `draftOrders` is not proposed again, and a lab one card already proposes is
not proposed again by a later card of the same response.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from fhir_mapping.cards import EVIDENCE_EXTENSION, order_cards, relabel
from fhir_mapping.drafts import lab_analytes
from knowledge.kb import KnowledgeBase


def covered_analytes(
    basket: Iterable[str], covers: Mapping[str, Iterable[str]] | None = None
) -> frozenset[str]:
    """The analytes the basket's lab drafts answer for (an ionized calcium covers total)."""
    out = set(basket)
    for analyte in list(out):
        out.update((covers or {}).get(analyte, ()))
    return frozenset(out)


def filter_cards(
    cards: list[dict[str, Any]],
    kb: KnowledgeBase,
    *,
    covered: frozenset[str],
    drop_when_satisfied: Iterable[str] = (),
    panels: Mapping[str, Iterable[str]] | None = None,
) -> list[dict[str, Any]]:
    """The cards without create actions the basket (or an earlier card) already makes.

    A suggestion left with no action goes; a card left with no suggestion keeps its
    advice, unless its rule is in `drop_when_satisfied` (a card that only orders labs).
    """
    offered: set[tuple[str, ...]] = set()
    kept_cards = []
    droppable = set(drop_when_satisfied)
    for card in cards:
        suggestions = card.get("suggestions")
        if not suggestions:
            kept_cards.append(card)
            continue
        kept_suggestions = []
        changed = False
        for suggestion in suggestions:
            before = suggestion.get("actions", [])
            actions = [a for a in before if _wanted(a, kb, covered, offered, panels)]
            changed = changed or len(actions) != len(before)
            if actions:
                kept = {**suggestion, "actions": actions}
                # Its label names what it creates: after a cut, only what remains.
                kept_suggestions.append(relabel(kept) if len(actions) != len(before) else kept)
        if not changed:
            kept_cards.append(card)
            continue
        rule_id = (card.get("extension") or {}).get(EVIDENCE_EXTENSION, {}).get("ruleId")
        if not kept_suggestions and rule_id in droppable:
            continue
        card = {k: v for k, v in card.items() if k not in ("suggestions", "selectionBehavior")}
        if kept_suggestions:
            card = _with_suggestions(card, kept_suggestions)
        kept_cards.append(card)
    return order_cards(kept_cards, kb)


def _with_suggestions(card: dict[str, Any], suggestions: list[dict[str, Any]]) -> dict[str, Any]:
    """Put suggestions back where build_card put them: before overrideReasons."""
    out: dict[str, Any] = {}
    for key, value in card.items():
        if key in ("overrideReasons", "extension") and "suggestions" not in out:
            out["suggestions"] = suggestions
            out["selectionBehavior"] = "any"
        out[key] = value
    if "suggestions" not in out:
        out["suggestions"] = suggestions
        out["selectionBehavior"] = "any"
    return out


def _wanted(
    action: dict[str, Any],
    kb: KnowledgeBase,
    covered: frozenset[str],
    offered: set[tuple[str, ...]],
    panels: Mapping[str, Iterable[str]] | None,
) -> bool:
    resource = action.get("resource")
    if action.get("type") != "create" or not isinstance(resource, dict):
        return True
    if resource.get("resourceType") != "ServiceRequest":
        return True
    analytes = lab_analytes(resource.get("code"), kb, panels)
    if analytes and analytes <= covered:
        return False  # the basket already orders it
    key = _order_key(resource)
    if key in offered:
        return False  # an earlier card of this response already proposes it
    offered.add(key)
    return True


def _order_key(resource: Mapping[str, Any]) -> tuple[str, ...]:
    code = resource.get("code") or {}
    codings = code.get("coding") or []
    if codings:
        return tuple(sorted(f"{c.get('system')}|{c.get('code')}" for c in codings))
    return (str(code.get("text", "")).strip().lower(),)
