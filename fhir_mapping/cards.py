"""Findings → CDS Hooks 2.0 cards whose suggestions carry FHIR R4 ServiceRequests.

Card and suggestion uuids are derived from the hook instance and the card kind, so the
same call always gives the same uuids and feedback joins back to the rule that fired.
Every resource that leaves is validated with the R4B models first.
"""

from __future__ import annotations

import uuid
from typing import Any

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
    """The response cards for an evaluation, most urgent first.

    A child (under the policy's `adult_age_years`, judged by the engine) gets the pediatric
    wording of an order where the catalogue has one.
    """
    pediatric = evaluation.pediatric
    return [
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
    ]  # "remove this draft order"
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
        "label": suggestion.label,
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
    try:
        ServiceRequest.model_validate(resource)
    except ValidationError as exc:
        raise CardError(f"ServiceRequest for {order.key} is not valid R4: {exc}") from None
    return resource


def render_detail(finding: Finding, kb: KnowledgeBase, version: str) -> str:
    """The card's markdown: the advice, then the evidence, then the sources."""
    parts = [finding.detail]
    if finding.evidence:
        parts.append("**Evidence**\n\n" + "\n".join(_evidence_line(e) for e in finding.evidence))
    if finding.citations:
        lines = []
        for citation in finding.citations:
            source = kb.sources.get(citation.source)
            title = source.title if source else citation.source
            lines.append(f"- {title}: “{citation.quote}”")
        parts.append("**Sources**\n\n" + "\n".join(lines))
    parts.append(f"_Rule {finding.rule_id} · knowledge base {version}_")
    return "\n\n".join(p.strip() for p in parts if p.strip())


def _evidence_line(evidence: Evidence) -> str:
    line = f"- **{evidence.label}**: {evidence.value}"
    if evidence.date:
        line += f" on {evidence.date}"
    if evidence.note:
        line += f" ({evidence.note})"
    if evidence.reference:
        line += f" — {evidence.reference}"
    return line


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
    return ext
