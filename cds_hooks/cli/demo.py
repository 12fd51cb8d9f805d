"""Synthetic demo patients: FHIR R4 Bundles that stay fresh whenever they are loaded.

Each file in `cds_hooks/cli/demo_data/` is a `collection` Bundle whose `timestamp` is its anchor;
every clinical date in it is written relative to that anchor. `load_demo` moves all of
them by the same whole number of days so the anchor lands on (just before) "now": a lab
drawn 5 days before the anchor is 5 days old today, next year too.
"""

from __future__ import annotations

import copy
import json
import uuid
from collections.abc import Iterator, Mapping
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from fhir_mapping.records import template_resource_type

__all__ = [
    "DemoError",
    "as_transaction",
    "bundle_resources",
    "hook_request",
    "list_demos",
    "list_order_demos",
    "load_demo",
    "order_demo_request",
    "shift_dates",
]

# Prefetch templates of `lip-twitch-patient-view` (knowledge/data/services.yaml); a test
# keeps the two in step. Callers holding the knowledge base pass the service's own.
PATIENT_VIEW_TEMPLATES: dict[str, str] = {
    "patient": "Patient/{{context.patientId}}",
    "conditions": "Condition?patient={{context.patientId}}",
    "labs": "Observation?patient={{context.patientId}}&category=laboratory&_sort=-date&_count=200",
    "medRequests": "MedicationRequest?patient={{context.patientId}}&_count=200",
    "medStatements": "MedicationStatement?patient={{context.patientId}}&_count=200",
    "encounter": "Encounter/{{context.encounterId}}",
    "findings": "Observation?patient={{context.patientId}}&category=exam,survey&_sort=-date"
    "&_count=100",
}

DEMO_USER = "Practitioner/demo-clinician"
DEMO_FHIR_BASE = "https://lipcds.example.org/fhir"  # the base the demo files' fullUrls use

# Fields holding a date or dateTime that moves with the demo's clock.
_DATE_FIELDS = frozenset(
    {
        "effectiveDateTime",
        "issued",
        "authoredOn",
        "onsetDateTime",
        "abatementDateTime",
        "recordedDate",
        "dateAsserted",
        "birthDate",
    }
)
_PERIOD_FIELDS = frozenset({"effectivePeriod", "onsetPeriod", "abatementPeriod", "period"})


class DemoError(ValueError):
    """No such demo patient, or a demo file that cannot be read."""


def _demo_dir() -> Path:
    return Path(__file__).with_name("demo_data")  # shipped as package data (pyproject.toml)


def list_demos() -> list[str]:
    """Names of the bundled demo patients, sorted."""
    return sorted(path.stem for path in _demo_dir().glob("*.json"))


def load_demo(name: str, now: datetime | None = None) -> dict[str, Any]:
    """The demo patient `name` as a Bundle, its dates moved so the anchor falls on `now`."""
    if name not in list_demos():
        raise DemoError(f"no demo patient {name!r} (known: {', '.join(list_demos())})")
    text = (_demo_dir() / f"{name}.json").read_text(encoding="utf-8")
    bundle = json.loads(text)
    anchor = _parse_instant(bundle.get("timestamp"))
    if anchor is None:
        raise DemoError(f"demo {name!r} has no Bundle.timestamp to anchor its dates")
    now = _aware(now or datetime.now(UTC))
    # Whole days, rounded down, so that nothing dated on or before the anchor ends up in
    # the future: the shifted anchor is at most one day before `now`.
    days = (now - anchor) // timedelta(days=1)
    return shift_dates(bundle, days)


def shift_dates(bundle: Mapping[str, Any], days: int) -> dict[str, Any]:
    """A copy of `bundle` with every clinical date and `Bundle.timestamp` moved by `days`."""
    shifted = copy.deepcopy(dict(bundle))
    delta = timedelta(days=days)
    if isinstance(shifted.get("timestamp"), str):
        shifted["timestamp"] = _shift_value(shifted["timestamp"], delta)
    for entry in shifted.get("entry", []):
        if isinstance(entry, dict) and isinstance(entry.get("resource"), dict):
            _shift_in(entry["resource"], delta)
    return shifted


def _shift_in(node: Any, delta: timedelta) -> None:
    if isinstance(node, list):
        for item in node:
            _shift_in(item, delta)
        return
    if not isinstance(node, dict):
        return
    for key, value in node.items():
        if key in _DATE_FIELDS and isinstance(value, str):
            node[key] = _shift_value(value, delta)
        elif key in _PERIOD_FIELDS and isinstance(value, dict):
            for end in ("start", "end"):
                if isinstance(value.get(end), str):
                    value[end] = _shift_value(value[end], delta)
        else:
            _shift_in(value, delta)


def _shift_value(value: str, delta: timedelta) -> str:
    """Move a FHIR date or dateTime, keeping its precision, time of day and offset."""
    if len(value) == 10:  # YYYY-MM-DD
        return (date.fromisoformat(value) + delta).isoformat()
    if len(value) < 10:  # YYYY or YYYY-MM: too coarse to move by days
        return value
    moved = datetime.fromisoformat(value.replace("Z", "+00:00")) + delta
    text = moved.isoformat()
    return text.removesuffix("+00:00") + "Z" if value.endswith("Z") else text


def _parse_instant(value: Any) -> datetime | None:
    if not isinstance(value, str) or len(value) <= 10:
        return None
    try:
        return _aware(datetime.fromisoformat(value.replace("Z", "+00:00")))
    except ValueError:
        return None


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def bundle_resources(bundle: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """The resources of any Bundle (collection, searchset, transaction), in entry order."""
    for entry in bundle.get("entry", []) or []:
        if isinstance(entry, dict) and isinstance(entry.get("resource"), dict):
            yield entry["resource"]


def as_transaction(bundle: Mapping[str, Any]) -> dict[str, Any]:
    """The same resources as a transaction Bundle of PUTs, for loading into a FHIR server.

    PUT keeps the demo ids, so loading twice updates instead of duplicating.
    """
    entries = []
    for resource in bundle_resources(bundle):
        url = f"{resource['resourceType']}/{resource['id']}"
        entries.append({"resource": resource, "request": {"method": "PUT", "url": url}})
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries}


def patient_id_of(bundle: Mapping[str, Any]) -> str:
    """The id of the bundle's Patient, else of the patient its resources refer to."""
    for resource in bundle_resources(bundle):
        if resource.get("resourceType") == "Patient" and resource.get("id"):
            return str(resource["id"])
    for resource in bundle_resources(bundle):
        reference = (resource.get("subject") or resource.get("patient") or {}).get("reference")
        if isinstance(reference, str) and reference.startswith("Patient/"):
            return reference.removeprefix("Patient/")
    raise DemoError("the bundle has no Patient and no resource refers to one")


def hook_request(
    bundle: Mapping[str, Any],
    service_id: str = "lip-twitch-patient-view",
    hook_instance: str | None = None,
    *,
    templates: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """A CDS Hooks 2.0 patient-view request for the bundle's patient, fully prefetched.

    Each prefetch key answers its template the way an EHR would: a read gets the resource
    (or null), a search gets a searchset Bundle of that resource type, narrowed by the
    `category` parameter when the template has one (labs: category=laboratory only).
    `service_id` is not sent on the wire; it names whose templates apply.
    """
    if templates is None:
        if service_id != "lip-twitch-patient-view":
            raise DemoError(f"no built-in prefetch templates for {service_id!r}; pass templates")
        templates = PATIENT_VIEW_TEMPLATES
    patient_id = patient_id_of(bundle)
    all_resources = list(bundle_resources(bundle))
    prefetch: dict[str, Any] = {}
    for key, template in templates.items():
        resource_type, is_read = template_resource_type(template)
        matching = [
            r
            for r in all_resources
            if r.get("resourceType") == resource_type and _about_patient(r, patient_id)
        ]
        if is_read:
            prefetch[key] = matching[0] if matching else None
            continue
        query = parse_qs(template.split("?", 1)[1]) if "?" in template else {}
        for category in query.get("category", []):
            # a comma is OR in a FHIR search: category=exam,survey
            wanted = category.split(",")
            matching = [r for r in matching if any(_has_category(r, c) for c in wanted)]
        prefetch[key] = _searchset(matching)
    context = {"userId": DEMO_USER, "patientId": patient_id}
    encounter = next(
        (r for r in all_resources
         if r.get("resourceType") == "Encounter" and _about_patient(r, patient_id)),
        None,
    )
    if encounter is not None:
        context["encounterId"] = encounter["id"]
    elif any("{{context.encounterId}}" in t for t in templates.values()):
        # no encounter: the EHR leaves the key out (CDS Hooks: a template it cannot fill)
        prefetch = {k: v for k, v in prefetch.items()
                    if "{{context.encounterId}}" not in templates[k]}
    return {
        "hookInstance": hook_instance or str(uuid.uuid4()),
        "hook": "patient-view",
        "context": context,
        "prefetch": prefetch,
    }


def _about_patient(resource: Mapping[str, Any], patient_id: str) -> bool:
    if resource.get("resourceType") == "Patient":
        return resource.get("id") == patient_id
    reference = (resource.get("subject") or resource.get("patient") or {}).get("reference")
    return reference == f"Patient/{patient_id}"


def _has_category(resource: Mapping[str, Any], code: str) -> bool:
    # A search token without a system matches the code in any system.
    return any(
        coding.get("code") == code
        for concept in resource.get("category", []) or []
        for coding in concept.get("coding", []) or []
    )


def _searchset(found: list[dict[str, Any]]) -> dict[str, Any]:
    bundle: dict[str, Any] = {"resourceType": "Bundle", "type": "searchset", "total": len(found)}
    if found:
        bundle["entry"] = [
            {
                "fullUrl": f"{DEMO_FHIR_BASE}/{r['resourceType']}/{r['id']}",
                "resource": r,
                "search": {"mode": "match"},
            }
            for r in found
        ]
    return bundle


# -- order-select and order-sign demo requests -------------------------------------------
# Each file in `cds_hooks/cli/demo_data/orders/` names a demo patient, a hook and the draft orders;
# the request is built when it is loaded, so the patient's dates stay fresh.

ORDER_PREFETCH_KEYS = ("patient", "conditions", "labs")  # the order services' templates


def _order_demo_dir() -> Path:
    return _demo_dir() / "orders"


def list_order_demos() -> list[str]:
    """Names of the bundled order-select / order-sign demo requests, sorted."""
    return sorted(path.stem for path in _order_demo_dir().glob("*.json"))


def order_demo_request(name: str, now: datetime | None = None) -> dict[str, Any]:
    """The order demo `name` as a complete CDS Hooks request, dated as of `now`."""
    if name not in list_order_demos():
        raise DemoError(f"no order demo {name!r} (known: {', '.join(list_order_demos())})")
    spec = json.loads((_order_demo_dir() / f"{name}.json").read_text(encoding="utf-8"))
    bundle = load_demo(spec["patient"], now=now)
    templates = {k: PATIENT_VIEW_TEMPLATES[k] for k in ORDER_PREFETCH_KEYS}
    request = hook_request(bundle, f"lip-twitch-{spec['hook']}", templates=templates)
    patient = {"reference": f"Patient/{request['context']['patientId']}"}
    drafts = [{**draft, "subject": patient} for draft in spec["draftOrders"]]
    request["hook"] = spec["hook"]
    request["context"]["draftOrders"] = {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [{"resource": draft} for draft in drafts],
    }
    if spec.get("encounterId"):
        request["context"]["encounterId"] = spec["encounterId"]
    if spec["hook"] == "order-select":
        request["context"]["selections"] = list(spec.get("selections", []))
    return request

