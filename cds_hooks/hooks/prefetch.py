"""Resolve the data a service needs: what the EHR prefetched, else what we can fetch.

Each prefetch key ends in a `KeyData` with one of three states. A required key that stays
unavailable answers 412, as CDS Hooks 2.0 asks; optional keys degrade the answer instead.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from cds_hooks.http.errors import PrefetchUnavailable
from fhir_mapping.records import KeyData, interpret_prefetch
from knowledge.kb import ServiceDefinition
from knowledge.model import DataState

log = logging.getLogger("lipcds.prefetch")

# (service, request, {key: query}) -> {key: KeyData}; installed by the FHIR client.
Fetcher = Callable[[ServiceDefinition, Mapping[str, Any], Mapping[str, str]], dict[str, KeyData]]


def render_template(template: str, context: Mapping[str, Any]) -> str | None:
    """Fill `{{context.x}}` tokens from the hook context; None when a token has no value."""
    out = template
    while "{{" in out:
        start = out.index("{{")
        end = out.find("}}", start)
        if end < 0:
            return None
        token = out[start + 2 : end].strip()
        if not token.startswith("context."):
            return None
        value = context.get(token.removeprefix("context."))
        if not isinstance(value, str) or not value:
            return None
        out = out[:start] + value + out[end + 2 :]
    return out


def _names_absent_context(template: str, context: Mapping[str, Any]) -> bool:
    """True when the template asks for a context value this call does not carry."""
    for part in template.split("{{")[1:]:
        token = part.split("}}", 1)[0].strip()
        if token.startswith("context.") and not context.get(token.removeprefix("context.")):
            return True
    return False


def resolve_data(
    service: ServiceDefinition,
    request: Mapping[str, Any],
    context: Mapping[str, Any],
    fetcher: Fetcher | None = None,
) -> dict[str, KeyData]:
    """Every prefetch key of the service, from the request or the FHIR server."""
    prefetch = request.get("prefetch") or {}
    data: dict[str, KeyData] = {}
    to_fetch: dict[str, str] = {}
    for key, template in service.prefetch.items():
        if key in prefetch:
            data[key] = interpret_prefetch(key, template, prefetch[key])
            if data[key].state is not DataState.UNAVAILABLE and data[key].next_link is None:
                continue
        query = render_template(template, context)
        if query is not None:
            to_fetch[key] = query
        elif key not in data and _names_absent_context(template, context):
            # "Encounter/{{context.encounterId}}" without an encounter: nothing to read
            data[key] = KeyData(key, DataState.EMPTY)
            continue
        if key not in data:
            data[key] = KeyData.unavailable(key, f"{key!r} was not prefetched")
    if to_fetch and fetcher is not None:
        fetched = fetcher(service, request, to_fetch)
        for key, result in fetched.items():
            before = data[key]
            if result.state is not DataState.UNAVAILABLE:
                data[key] = result
            elif before.state is DataState.UNAVAILABLE:
                # Both routes failed: keep both reasons (the EHR's own, then the server's).
                problems = [p for p in (before.problem, result.problem) if p]
                data[key] = KeyData.unavailable(key, "; then ".join(dict.fromkeys(problems)))
    missing = [k for k in service.required_prefetch if data[k].state is DataState.UNAVAILABLE]
    if missing:
        reasons = "; ".join(data[k].problem or k for k in missing)
        raise PrefetchUnavailable(
            f"required data unavailable: {', '.join(missing)} ({reasons})",
            expression=[f"prefetch.{k}" for k in missing],
        )
    return data


MEDICATION_KEY = "medication:"  # data keys of Medications read by their reference
_MAX_MEDICATION_READS = 20
_ACTIVE_MEDICATION = {"active", "on-hold", "intended"}


def fetch_referenced_medications(
    service: ServiceDefinition,
    request: Mapping[str, Any],
    data: Mapping[str, KeyData],
    fetcher: Fetcher | None,
) -> dict[str, KeyData]:
    """§7b P12: a `medicationReference` that neither a contained resource nor a Medication
    of the same searchset resolves is read as `Medication/{id}` from the FHIR server.

    Only active records are looked up, at most twenty reads per call; a read that fails
    leaves the reference unresolved, which the cards say.
    """
    if fetcher is None:
        return {}
    present = {
        r.get("id")
        for key_data in data.values()
        for r in key_data.resources
        if r.get("resourceType") == "Medication" and isinstance(r.get("id"), str)
    }
    wanted: list[str] = []
    for key_data in data.values():
        for resource in key_data.resources:
            if resource.get("resourceType") not in ("MedicationRequest", "MedicationStatement"):
                continue
            status = resource.get("status")  # raw JSON: any type
            if not isinstance(status, str) or status not in _ACTIVE_MEDICATION:
                continue
            reference = resource.get("medicationReference")
            ref = reference.get("reference") if isinstance(reference, dict) else None
            if not isinstance(ref, str) or not ref.startswith("Medication/"):
                continue
            medication_id = ref.removeprefix("Medication/")
            if medication_id and "/" not in medication_id and medication_id not in present \
                    and medication_id not in wanted:
                wanted.append(medication_id)
    if not wanted:
        return {}
    to_fetch = {f"{MEDICATION_KEY}{m}": f"Medication/{m}" for m in wanted[:_MAX_MEDICATION_READS]}
    return fetcher(service, request, to_fetch)
