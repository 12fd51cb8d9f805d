"""The data of one prefetch key, in one of three states, however it reached us.

A prefetch value, or a FHIR search made on a miss, ends up as a `KeyData`: the resources
it holds (raw JSON dicts, not yet validated), or why there are none. `EMPTY` and
`UNAVAILABLE` are kept apart all the way to the rules (DESIGN.md, Decisions).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from fhir_mapping import raw
from knowledge.model import DataState


@dataclass(frozen=True)
class KeyData:
    key: str
    state: DataState
    resources: tuple[dict, ...] = ()
    problem: str | None = None  # why UNAVAILABLE, or what was dropped; never holds a token
    issues: tuple[str, ...] = field(default_factory=tuple)  # entries skipped, said in the cards
    next_link: str | None = None  # the EHR paged its prefetch: more data behind this URL

    @classmethod
    def unavailable(cls, key: str, problem: str) -> KeyData:
        return cls(key, DataState.UNAVAILABLE, problem=problem)


# Resource types a search may legitimately bring along with its own (``_include``d
# Medications, the server's OperationOutcome with search.mode = outcome).
_COMPANIONS = {"MedicationRequest": {"Medication"}, "MedicationStatement": {"Medication"}}


def template_resource_type(template: str) -> tuple[str, bool]:
    """`("Patient", True)` for a read template, `("Condition", False)` for a search."""
    path = template.split("?", 1)[0].strip("/")
    resource_type = path.split("/", 1)[0]
    return resource_type, "?" not in template and "/" in path


def interpret_prefetch(key: str, template: str, value: object) -> KeyData:
    """Read one prefetch value the way CDS Hooks 2.0 defines it.

    `null` means the template has no data (EMPTY). An OperationOutcome means the EHR
    tried and failed (UNAVAILABLE). A resource answers a read, a Bundle a search.
    Anything else is malformed and treated as unavailable, never as empty.
    """
    expected, is_read = template_resource_type(template)
    if value is None:
        return KeyData(key, DataState.EMPTY)
    if not isinstance(value, dict) or not isinstance(value.get("resourceType"), str):
        return KeyData.unavailable(key, f"prefetch {key!r} is not a FHIR resource")
    resource_type = value["resourceType"]
    if resource_type == "OperationOutcome":
        reason = raw.outcome_text(value)
        return KeyData.unavailable(key, f"the EHR could not prefetch {key!r}: {reason}")
    if is_read:
        if resource_type != expected:
            return KeyData.unavailable(
                key, f"prefetch {key!r} holds a {resource_type}, expected a {expected}"
            )
        return KeyData(key, DataState.PRESENT, (value,))
    if resource_type != "Bundle":
        return KeyData.unavailable(
            key, f"prefetch {key!r} holds a {resource_type}, expected a Bundle of {expected}"
        )
    return bundle_data(key, expected, value)


def bundle_data(key: str, expected: str, bundle: dict) -> KeyData:
    """The resources of a searchset Bundle, with what was skipped and why."""
    entries = bundle.get("entry", [])
    if not isinstance(entries, list):
        return KeyData.unavailable(key, f"{key!r}: Bundle.entry is not a list")
    allowed = {expected} | _COMPANIONS.get(expected, set())
    resources: list[dict] = []
    issues: list[str] = []
    other_types: set[str] = set()
    for index, entry in enumerate(entries):
        resource = entry.get("resource") if isinstance(entry, dict) else None
        if not isinstance(resource, dict) or not isinstance(resource.get("resourceType"), str):
            issues.append(f"{key}: entry {index} holds no resource")
            continue
        rtype = resource["resourceType"]
        if rtype == "OperationOutcome":
            issues.append(f"{key}: the server reported: {raw.outcome_text(resource)}")
        elif rtype in allowed:
            resources.append(resource)
        else:
            other_types.add(rtype)
    if other_types and not any(r["resourceType"] == expected for r in resources):
        return KeyData.unavailable(
            key,
            f"prefetch {key!r} holds {', '.join(sorted(other_types))} resources, "
            f"expected {expected}",
        )
    if other_types:
        issues.append(f"{key}: ignored {', '.join(sorted(other_types))} entries")
    state = DataState.PRESENT if resources else DataState.EMPTY
    return KeyData(key, state, tuple(resources), issues=tuple(issues), next_link=_next_link(bundle))


def _next_link(bundle: dict) -> str | None:
    links = bundle.get("link")
    for link in links if isinstance(links, list) else []:
        if isinstance(link, dict) and link.get("relation") == "next" and link.get("url"):
            return str(link["url"])
    return None
