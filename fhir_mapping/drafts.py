"""`context.draftOrders` → the drugs and labs in the order basket.

Drafts are read from their raw JSON without R4 validation: an EHR sends them while the
clinician is still typing (the CDS Hooks sandbox's first order-select call has no
`intent` and no medication). What can be read is used; what cannot is skipped quietly,
because an unfinished draft is normal, not a data problem worth a line on every card.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from fhir_mapping import raw
from fhir_mapping.medications import MedicationMatcher
from knowledge.codes import LOINC
from knowledge.kb import KnowledgeBase
from knowledge.model import DraftMedication

log = logging.getLogger("lipcds.drafts")

# Drafts that are on their way out of the basket are not judged.
_GONE = {"cancelled", "entered-in-error", "revoked", "completed", "stopped"}


def _gone(resource: dict[str, Any]) -> bool:
    """A draft withdrawn by its status; a status that is not a code withdraws nothing."""
    status = resource.get("status")
    return isinstance(status, str) and status in _GONE


_LAB_DRAFTS = ("ServiceRequest",)


@dataclass(frozen=True)
class DraftOrders:
    """What the basket holds that the rules care about."""

    medications: tuple[DraftMedication, ...] = ()  # the drafts to judge
    lab_analytes: frozenset[str] = frozenset()  # analytes a draft lab already measures


def draft_resources(bundle: Any) -> list[dict[str, Any]]:
    """The resources of the draftOrders Bundle; anything that is not an object is dropped."""
    if not isinstance(bundle, Mapping):
        return []
    entries = bundle.get("entry")
    if not isinstance(entries, list):
        return []
    return [
        e["resource"]
        for e in entries
        if isinstance(e, dict) and isinstance(e.get("resource"), dict)
    ]


def read_draft_orders(
    bundle: Any,
    kb: KnowledgeBase,
    *,
    selections: Iterable[str] | None = None,
    matcher: MedicationMatcher | None = None,
    panels: Mapping[str, Iterable[str]] | None = None,
) -> DraftOrders:
    """Drugs of interest among the drafts (only the selected ones when `selections` is
    given: order-select), and the analytes that draft labs in the whole basket cover."""
    matcher = matcher or MedicationMatcher(kb)
    chosen = set(selections) if selections is not None else None
    resources = draft_resources(bundle)
    medications: list[DraftMedication] = []
    for resource in resources:
        if resource.get("resourceType") != "MedicationRequest":
            continue
        reference = raw.reference_of(resource)
        if reference is None or (chosen is not None and reference not in chosen):
            continue
        if _gone(resource):
            continue
        medications.extend(_draft_medications(resource, reference, kb, matcher))
    analytes: set[str] = set()
    for resource in resources:
        if resource.get("resourceType") in _LAB_DRAFTS and not _gone(resource):
            analytes |= lab_analytes(resource.get("code"), kb, panels or {})
    return DraftOrders(tuple(medications), frozenset(analytes))


def _draft_medications(
    resource: dict[str, Any], reference: str, kb: KnowledgeBase, matcher: MedicationMatcher
) -> list[DraftMedication]:
    concept, extra_texts, ingredient_codings = _medication_of(resource)
    if concept is None and not extra_texts and not ingredient_codings:
        return []  # no medication chosen yet
    found = matcher.match_concept(concept, extra_texts, _route_texts(resource))
    if not found and ingredient_codings:
        found = matcher.match_codings(ingredient_codings)
    text = (raw.texts(concept) or extra_texts or ["(no name)"])[0]
    out: list[DraftMedication] = []
    classes: set[str] = set()
    for match in found:
        ingredient = kb.ingredients[match.slug]
        if ingredient.drug_class in classes:
            continue  # one card per draft and class (Adderall: two amphetamines, one card)
        classes.add(ingredient.drug_class)
        drug_class = kb.drug_classes[ingredient.drug_class]
        out.append(
            DraftMedication(
                reference=reference,
                slug=match.slug,
                ingredient=ingredient.name,
                drug_class=drug_class.key,
                group=drug_class.group,
                text=text,
                matched_by=match.matched_by,
            )
        )
    return out


def _medication_of(resource: dict[str, Any]) -> tuple[dict | None, list[str], list[dict]]:
    """The drug concept; for a contained Medication its code, form words and ingredients.

    A reference to a Medication outside the draft cannot be read without a fetch; a draft
    is not worth one, so it is skipped.
    """
    concept = resource.get("medicationCodeableConcept")
    if isinstance(concept, dict):
        return concept, [], []
    reference = resource.get("medicationReference")
    target = reference.get("reference") if isinstance(reference, dict) else None
    display = reference.get("display") if isinstance(reference, dict) else None
    extra = [display] if isinstance(display, str) and display.strip() else []
    if not isinstance(target, str) or not target.startswith("#"):
        return None, extra, []
    contained = resource.get("contained")
    medication = next(
        (
            c
            for c in (contained if isinstance(contained, list) else [])
            if isinstance(c, dict) and c.get("id") == target[1:]
        ),
        None,
    )
    if medication is None:
        return None, extra, []
    ingredients = medication.get("ingredient")
    codings = [
        coding
        for ing in (ingredients if isinstance(ingredients, list) else [])
        if isinstance(ing, dict) and isinstance(ing.get("itemCodeableConcept"), dict)
        for coding in ing["itemCodeableConcept"].get("coding") or []
        if isinstance(coding, dict)
    ]
    code = medication.get("code") if isinstance(medication.get("code"), dict) else None
    return code, [*raw.texts(medication.get("form")), *extra], codings


def _route_texts(resource: dict[str, Any]) -> list[str]:
    texts: list[str] = []
    dosages = resource.get("dosageInstruction")
    for dosage in dosages if isinstance(dosages, list) else []:
        if isinstance(dosage, dict):
            texts.extend(raw.texts(dosage.get("route")))
            if isinstance(dosage.get("text"), str):
                texts.append(dosage["text"])
    return texts


def lab_analytes(
    concept: Any, kb: KnowledgeBase, panels: Mapping[str, Iterable[str]] | None = None
) -> set[str]:
    """Analytes a lab order's code measures: a known LOINC, a panel, else its name."""
    loincs = [code for system, code, _ in raw.codings(concept) if system == LOINC]
    found = {kb.loinc_index[c] for c in loincs if c in kb.loinc_index}
    for code in loincs:
        found.update((panels or {}).get(code, ()))
    if found or loincs:
        return found
    texts = raw.texts(concept)
    if kb.terms is not None and texts:
        for analyte in kb.analytes.values():
            key = f"analyte:{analyte.key}"
            if key in kb.terms.keys and kb.terms.mentions(key, texts):
                found.add(analyte.key)
    return found
