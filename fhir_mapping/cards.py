"""Findings → CDS Hooks 2.0 cards whose suggestions carry FHIR R4 ServiceRequests.

Card and suggestion uuids are derived from the hook instance and the card kind, so the
same call always gives the same uuids and feedback joins back to the rule that fired.
Every resource that leaves is valid FHIR R4 by the R4B models: a ServiceRequest is the
template of its order filled with ids, and each template is validated once, at start-up
(`check_order_templates`), or on its first use.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import date
from typing import Any
from urllib.parse import quote

from fhir.resources.R4B.servicerequest import ServiceRequest
from pydantic import ValidationError

from knowledge.codes import SNOMED
from knowledge.kb import KnowledgeBase, Order
from knowledge.model import Evaluation, Evidence, Finding, Suggestion

# Fixed namespace for uuid5: card uuid = uuid5(NS, "<hookInstance>|<card kind>").
UUID_NAMESPACE = uuid.UUID("5b0f5c0e-6f5a-4f5e-9d55-6c1a2b7d0a11")
EVIDENCE_EXTENSION = "org.lipcds.evidence"

# ServiceRequest.category (example binding in R4: SNOMED CT procedure categories).
_CATEGORIES = {
    "lab": {"system": SNOMED, "code": "108252007", "display": "Laboratory procedure"},
    "imaging": {"system": SNOMED, "code": "363679005", "display": "Imaging"},
}
_REASON_TYPES = ("Condition/", "Observation/", "DiagnosticReport/", "DocumentReference/")
# Templates validated so far: (order, pediatric wording, with reasons). What a request adds
# to a template is only ids in string elements, which cannot make a valid template invalid.
_VALID_TEMPLATES: set[tuple[Order, bool, bool]] = set()


class CardError(RuntimeError):
    """A card or resource we built is invalid: a bug, never shown to the EHR half-made."""


def card_uuid(hook_instance: str, kind: str) -> str:
    return str(uuid.uuid5(UUID_NAMESPACE, f"{hook_instance}|{kind}"))


def suggestion_uuid(hook_instance: str, kind: str, key: str) -> str:
    return str(uuid.uuid5(UUID_NAMESPACE, f"{hook_instance}|{kind}|{key}"))


def card_identity(finding: Finding) -> str:
    """What the uuids derive from: the kind, and the draft order when the card is about one
    (two drafts of one drug in a basket are two cards)."""
    return f"{finding.kind}|{finding.concerns}" if finding.concerns else finding.kind


def build_cards(
    evaluation: Evaluation,
    kb: KnowledgeBase,
    *,
    patient_id: str,
    hook_instance: str,
) -> list[dict[str, Any]]:
    """The response cards for an evaluation, in the order a clinician needs them.

    A child (under the policy's `adult_age_years`, judged by the engine) gets the pediatric
    wording of an order where the catalogue has one.
    """
    pediatric = evaluation.pediatric
    cards = [
        build_card(
            f,
            kb,
            patient_id=patient_id,
            hook_instance=hook_instance,
            version=evaluation.knowledge_version,
            pediatric=pediatric,
        )
        for f in evaluation.findings
    ]
    return order_cards(cards, kb)


def build_card(
    finding: Finding,
    kb: KnowledgeBase,
    *,
    patient_id: str,
    hook_instance: str,
    version: str,
    pediatric: bool = False,
) -> dict[str, Any]:
    card: dict[str, Any] = {
        "uuid": card_uuid(hook_instance, card_identity(finding)),
        "summary": finding.summary,
        "indicator": finding.indicator.wire,
        "detail": render_detail(finding, kb, version),
        "source": {
            "label": kb.label,
            "topic": {
                "system": kb.topic_system,
                "code": finding.kind,
                "display": finding.kind_display,
            },
        },
    }
    suggestions = [
        build_suggestion(
            s, finding, kb, patient_id=patient_id, hook_instance=hook_instance, pediatric=pediatric
        )
        for s in finding.suggestions
    ]
    if suggestions:
        card["suggestions"] = suggestions
        card["selectionBehavior"] = "any"  # orders are independent: take any, all or none
    if kb.override_reasons:
        card["overrideReasons"] = [
            {"system": c.system, "code": c.code, "display": c.display} for c in kb.override_reasons
        ]
    card["extension"] = {EVIDENCE_EXTENSION: evidence_extension(finding, version)}
    return card


def build_suggestion(
    suggestion: Suggestion,
    finding: Finding,
    kb: KnowledgeBase,
    *,
    patient_id: str,
    hook_instance: str,
    pediatric: bool,
) -> dict[str, Any]:
    actions: list[dict[str, Any]] = [
        # CDS Hooks 2.0 §action, cds-resp-2: a delete names its target by resourceId only.
        {"type": "delete", "description": f"{suggestion.label}: {ref}", "resourceId": ref}
        for ref in suggestion.removes
    ]
    for key in suggestion.orders:
        order = kb.orders[key]
        description = order.pediatric_text if pediatric and order.pediatric_text else order.text
        actions.append(
            {
                "type": "create",
                "description": f"Order: {description}" if order.category == "lab" else description,
                "resource": create_service_request(order, patient_id, finding.reasons, pediatric),
            }
        )
    return {
        "label": _label(suggestion, kb),
        "uuid": suggestion_uuid(hook_instance, card_identity(finding), suggestion.key),
        "isRecommended": suggestion.recommended,
        "actions": actions,
    }


def create_service_request(
    order: Order, patient_id: str, reasons: tuple[str, ...], pediatric: bool = False
) -> dict[str, Any]:
    """A draft, proposed ServiceRequest for one orderable, valid FHIR R4 (R4B models)."""
    text = order.pediatric_text if pediatric and order.pediatric_text else order.text
    code: dict[str, Any] = {"text": text}
    if order.coding is not None:
        coding = {"system": order.coding.system, "code": order.coding.code}
        if order.coding.display:
            coding["display"] = order.coding.display
        code = {"coding": [coding], "text": text}
    resource: dict[str, Any] = {
        "resourceType": "ServiceRequest",
        "status": "draft",
        "intent": "proposal",
    }
    if order.category in _CATEGORIES:
        resource["category"] = [{"coding": [dict(_CATEGORIES[order.category])]}]
    resource["code"] = code
    resource["subject"] = {"reference": f"Patient/{patient_id}"}
    reason_refs = [r for r in reasons if r.startswith(_REASON_TYPES)]
    if reason_refs:
        resource["reasonReference"] = [{"reference": r} for r in reason_refs]
    template = (order, pediatric and bool(order.pediatric_text), bool(reason_refs))
    if template not in _VALID_TEMPLATES:
        try:
            ServiceRequest.model_validate(resource)
        except ValidationError as exc:
            # Where and what only: the message of a pydantic error quotes the input, which
            # may hold the patient's data, and it ends in the log.
            where = "; ".join(
                f"{'.'.join(str(p) for p in e['loc'])}: {e['type']}"
                for e in exc.errors(include_input=False, include_url=False)
            )
            raise CardError(f"ServiceRequest for {order.key} is not valid R4: {where}") from None
        _VALID_TEMPLATES.add(template)
    return resource


def check_order_templates(kb: KnowledgeBase) -> None:
    """Validate every ServiceRequest the knowledge base can suggest, once; CardError if not."""
    for order in kb.orders.values():
        for pediatric in (False, True):
            for reasons in ((), ("Observation/template",)):
                create_service_request(order, "template", reasons, pediatric)


def render_detail(finding: Finding, kb: KnowledgeBase, version: str = "") -> str:
    """The card's markdown: the advice, then what the record shows, then the sources.

    Prose only: resource ids, the rule id and the knowledge-base version go to the
    evidence extension (`evidence_extension`), never into the text a clinician reads.
    """
    parts = [finding.detail]
    if finding.evidence:
        parts.append(
            "**In the record**\n\n" + "\n".join(evidence_line(e) for e in finding.evidence)
        )
    if finding.closing:
        parts.append(finding.closing)
    sources = sources_line(finding, kb)
    if sources:
        parts.append(sources)
    return "\n\n".join(p.strip() for p in parts if p.strip())


_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_DATE_WORDS = {"onset": "since", "started": "started", "start": "started"}


def clinical_date(iso: str) -> str:
    """"2026-11-15" as a clinician writes it: "15 Nov 2026" (other text is kept)."""
    try:
        day = date.fromisoformat(iso[:10])
    except ValueError:
        return iso
    return f"{day.day} {_MONTHS[day.month - 1]} {day.year}"


def evidence_line(evidence: Evidence) -> str:
    """One line a clinician reads: "Magnesium 1.4 mg/dL (low; lab range 1.7–2.2 mg/dL),
    15 Nov 2026"; a record's words after a colon: "Complaint: Lower lip twitching, since
    19 Nov 2026"."""
    value = evidence.value.strip()
    measured = bool(value) and (value[0].isdigit() or value[0] in "<>")
    line = f"- {evidence.label} {value}" if measured else f"- {evidence.label}: {value}"
    note = (evidence.note or "").strip()
    when = _DATE_WORDS.get(note.lower()) if note else None
    if note and when is None:
        line += f" ({note})"
    if evidence.date:
        line += f", {when} {clinical_date(evidence.date)}" if when else (
            f", {clinical_date(evidence.date)}"
        )
    return line


def sources_line(finding: Finding, kb: KnowledgeBase) -> str:
    """"Sources: a; b", each source once, named for a reader."""
    names: list[str] = []
    for citation in finding.citations:
        source = kb.sources.get(citation.source)
        name = (source.reader or source.title) if source else citation.source
        if name not in names:
            names.append(name)
    return "Sources: " + "; ".join(names) + "." if names else ""


def order_name(text: str) -> str:
    """How a label names an orderable: "Serum potassium" -> "potassium", "TSH" -> "TSH"."""
    name = text.strip().removeprefix("Serum ").split(",")[0].strip()
    if len(name) > 1 and name[0].isupper() and not name[1].isupper():
        name = name[0].lower() + name[1:]
    return name


def orders_label(verb: str, names: list[str]) -> str:
    """"Order calcium and albumin": the verb and every name, in order, once."""
    names = list(dict.fromkeys(names))
    if not names:
        return verb
    listed = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
    return f"{verb} {listed}"


def _label(suggestion: Suggestion, kb: KnowledgeBase) -> str:
    """The label, with `{orders}` filled by the names of what the suggestion creates."""
    if "{orders}" not in suggestion.label:
        return suggestion.label
    names = orders_label("", [order_name(kb.orders[k].text) for k in suggestion.orders]).strip()
    return suggestion.label.replace("{orders}", names)


def relabel(suggestion: dict[str, Any]) -> dict[str, Any]:
    """A suggestion some of whose orders were taken away: its label names what remains."""
    names = [
        order_name(str(((a.get("resource") or {}).get("code") or {}).get("text", "")))
        for a in suggestion.get("actions", [])
        if a.get("type") == "create"
    ]
    return {**suggestion, "label": orders_label("Order", [n for n in names if n])}


def card_rank(card: Mapping[str, Any], kb: KnowledgeBase) -> tuple[int, int, int]:
    """Sort key of C1: critical, warning, info; with suggestions first; lifestyle last."""
    rule_id = ((card.get("extension") or {}).get(EVIDENCE_EXTENSION) or {}).get("ruleId")
    evaluator = next((r.evaluator for r in kb.rules if r.id == rule_id), "")
    urgency = {"critical": 0, "warning": 1, "info": 2}.get(str(card.get("indicator")), 3)
    return (1 if evaluator == "lifestyle" else 0, urgency, 0 if card.get("suggestions") else 1)


def order_cards(cards: list[dict[str, Any]], kb: KnowledgeBase) -> list[dict[str, Any]]:
    """The cards in the order a clinician needs them (a stable sort)."""
    return sorted(cards, key=lambda card: card_rank(card, kb))


WHY_LABEL = "Why this card?"


def with_rule_links(
    cards: list[dict[str, Any]], base_url: str, site: str | None = None
) -> list[dict[str, Any]]:
    """Each card with a "Why this card?" link to the service's page of its rule."""
    base = base_url.rstrip("/")
    out = []
    for card in cards:
        rule_id = ((card.get("extension") or {}).get(EVIDENCE_EXTENSION) or {}).get("ruleId")
        if not rule_id:
            out.append(card)
            continue
        url = f"{base}/rules/{quote(str(rule_id), safe='')}" + (f"?site={site}" if site else "")
        links = [link for link in card.get("links", []) if link.get("label") != WHY_LABEL]
        links.append({"label": WHY_LABEL, "url": url, "type": "absolute"})
        out.append(_with_links(card, links))
    return out


def _with_links(card: dict[str, Any], links: list[dict[str, Any]]) -> dict[str, Any]:
    """Put links where CDS Hooks lists them: after suggestions, before the extension."""
    out: dict[str, Any] = {}
    for key, value in card.items():
        if key == "links":
            continue
        if key == "extension" and "links" not in out:
            out["links"] = links
        out[key] = value
    out.setdefault("links", links)
    return out


def evidence_extension(finding: Finding, version: str) -> dict[str, Any]:
    """Machine-readable trace: rule, knowledge-base version, the data it rested on."""
    ext: dict[str, Any] = {"ruleId": finding.rule_id, "knowledgeBaseVersion": version}
    items = []
    for e in finding.evidence:
        item = {"label": e.label, "value": e.value}
        item.update(
            {k: v for k, v in (("date", e.date), ("reference", e.reference), ("note", e.note)) if v}
        )
        items.append(item)
    if items:
        ext["evidence"] = items
    if finding.reasons:
        ext["reasons"] = list(finding.reasons)
    if finding.concerns:
        ext["concerns"] = finding.concerns
    if finding.not_used:
        ext["notUsed"] = list(finding.not_used)  # the records the data notes speak of
    return ext
