"""CDS Hooks 2.0 response rules, checked on plain dicts: what a card must and must not hold.

https://cds-hooks.hl7.org/2.0/#cds-service-response and the formal invariants cds-resp-1
to cds-resp-7 (HL7/cds-hooks `input/fsh/invariants/`), plus what Inferno's CRD server
tests check (`source.topic` a Coding, create/update resources that parse as FHIR). Each
problem is one line naming where it is (`cards[0].suggestions[1].actions[0].type`).

Pure functions, no Flask: the tests run them on every emitted card, and the pipeline
logs what they find at run time without failing the request.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from fhir.resources.R4B import get_fhir_model_class
from pydantic import ValidationError

__all__ = [
    "card_problems",
    "discovery_problems",
    "empty_value_problems",
    "prefetch_token_problems",
    "response_problems",
]

SUMMARY_LIMIT = 140  # summary SHALL be under 140 characters
INDICATORS = ("info", "warning", "critical")
SELECTION_BEHAVIORS = ("at-most-one", "any")
ACTION_SELECTION_BEHAVIORS = ("all", "any", "at-most-one")  # cds-resp-7 (3.0 ballot)
ACTION_TYPES = ("create", "update", "delete")
LINK_TYPES = ("absolute", "smart")
_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_RELATIVE_REFERENCE = re.compile(r"^[A-Z][A-Za-z]+/[A-Za-z0-9\-.]{1,64}$")
_ABSOLUTE_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*://\S+$")

# Prefetch tokens a CDS Hooks 2.0 template may use, per hook (fields marked "Prefetch
# Token: Yes" in the hook definitions), plus the user tokens of 2.0.
USER_TOKENS = frozenset(
    {"userPractitionerId", "userPractitionerRoleId", "userPatientId", "userRelatedPersonId"}
)
CONTEXT_TOKENS = {
    "patient-view": frozenset({"userId", "patientId", "encounterId"}),
    "order-select": frozenset({"userId", "patientId", "encounterId"}),
    "order-sign": frozenset({"userId", "patientId", "encounterId"}),
    "encounter-start": frozenset({"userId", "patientId", "encounterId"}),
    "encounter-discharge": frozenset({"userId", "patientId", "encounterId"}),
    "appointment-book": frozenset({"userId", "patientId", "encounterId"}),
}
_TOKEN = re.compile(r"\{\{\s*([^{}]*?)\s*\}\}")


def response_problems(body: Any) -> list[str]:
    """Every rule a CDS Hooks response body breaks; `{"cards": []}` is fine."""
    if not isinstance(body, Mapping):
        return ["response: must be a JSON object"]
    problems: list[str] = []
    cards = body.get("cards")
    if "cards" not in body:
        problems.append("cards: required")
    elif not isinstance(cards, list):
        problems.append("cards: must be an array")
    else:  # an empty list is the one documented empty value
        for index, card in enumerate(cards):
            problems.extend(card_problems(card, f"cards[{index}]"))
    if "systemActions" in body:
        actions = body["systemActions"]
        if not isinstance(actions, list) or not actions:
            problems.append("systemActions: must be a non-empty array when present")
        else:
            for index, action in enumerate(actions):
                problems.extend(_action_problems(action, f"systemActions[{index}]"))
    problems.extend(_extension_problems(body, "response"))
    for key, value in body.items():
        if key != "cards":
            problems.extend(_empty_values(value, key))
    return problems


def card_problems(card: Any, where: str = "card") -> list[str]:
    """Every rule one card breaks."""
    if not isinstance(card, Mapping):
        return [f"{where}: must be a JSON object"]
    problems = _empty_values(card, where)
    _required_string(card, "summary", where, problems)
    summary = card.get("summary")
    if isinstance(summary, str) and len(summary) >= SUMMARY_LIMIT:
        problems.append(f"{where}.summary: {len(summary)} characters, must be under 140")
    indicator = card.get("indicator")
    if indicator is None:
        problems.append(f"{where}.indicator: required")
    elif indicator not in INDICATORS:
        problems.append(f"{where}.indicator: {indicator!r} is not one of {', '.join(INDICATORS)}")
    if "uuid" in card:
        _uuid(card["uuid"], f"{where}.uuid", problems)
    if "detail" in card and not isinstance(card["detail"], str):
        problems.append(f"{where}.detail: must be a string")
    problems.extend(_source_problems(card.get("source"), f"{where}.source"))

    suggestions = card.get("suggestions")
    if "suggestions" in card:
        if not isinstance(suggestions, list):
            problems.append(f"{where}.suggestions: must be an array")
            suggestions = None
        elif "selectionBehavior" not in card:  # cds-resp-6
            problems.append(f"{where}.selectionBehavior: required when suggestions are present")
    behavior = card.get("selectionBehavior")
    if "selectionBehavior" in card and behavior not in SELECTION_BEHAVIORS:
        problems.append(
            f"{where}.selectionBehavior: {behavior!r} is not one of "
            f"{', '.join(SELECTION_BEHAVIORS)}"
        )
    if suggestions:
        recommended = 0
        for index, suggestion in enumerate(suggestions):
            path = f"{where}.suggestions[{index}]"
            problems.extend(_suggestion_problems(suggestion, path))
            if isinstance(suggestion, Mapping) and suggestion.get("isRecommended") is True:
                recommended += 1
        if behavior == "at-most-one" and recommended > 1:  # cds-resp-1
            problems.append(
                f"{where}.suggestions: {recommended} are recommended, at most one may be "
                "with selectionBehavior at-most-one"
            )

    if "overrideReasons" in card:
        reasons = card["overrideReasons"]
        if not isinstance(reasons, list):
            problems.append(f"{where}.overrideReasons: must be an array")
        else:
            for index, reason in enumerate(reasons):  # cds-resp-4
                problems.extend(
                    _coding_problems(reason, f"{where}.overrideReasons[{index}]", display=True)
                )
    if "links" in card:
        links = card["links"]
        if not isinstance(links, list):
            problems.append(f"{where}.links: must be an array")
        else:
            for index, link in enumerate(links):
                problems.extend(_link_problems(link, f"{where}.links[{index}]"))
    problems.extend(_extension_problems(card, where))
    return problems


# --------------------------------------------------------------------------- discovery


def discovery_problems(body: Any) -> list[str]:
    """Every rule a discovery document breaks (https://cds-hooks.hl7.org/2.0/#response).

    `{"services": []}` is fine; no other value may be null or empty.
    """
    if not isinstance(body, Mapping):
        return ["response: must be a JSON object"]
    services = body.get("services")
    if "services" not in body:
        return ["services: required"]
    if not isinstance(services, list):
        return ["services: must be an array"]
    problems: list[str] = []
    seen: set[tuple[str, str]] = set()
    for index, service in enumerate(services):
        where = f"services[{index}]"
        if not isinstance(service, Mapping):
            problems.append(f"{where}: must be an object")
            continue
        for key in ("hook", "description", "id"):
            if key not in service:
                problems.append(f"{where}.{key}: required")
            elif not isinstance(service[key], str) or not service[key]:
                problems.append(f"{where}.{key}: must be a non-empty string")
        for key in ("title", "usageRequirements"):
            if key in service and (not isinstance(service[key], str) or not service[key]):
                problems.append(f"{where}.{key}: must be a non-empty string when present")
        if "prefetch" in service:
            prefetch = service["prefetch"]
            if not isinstance(prefetch, Mapping) or not prefetch:
                problems.append(f"{where}.prefetch: must be a non-empty object when present")
            else:
                for key, template in prefetch.items():
                    if not isinstance(template, str) or not template:
                        problems.append(f"{where}.prefetch.{key}: must be a template string")
        pair = (str(service.get("id")), str(service.get("hook")))
        if pair in seen:
            problems.append(f"{where}: id {pair[0]!r} is listed twice for hook {pair[1]!r}")
        seen.add(pair)
    if services:  # `{"services": []}` is the one documented empty value
        problems.extend(_empty_values(services, "services"))
    for key, value in body.items():
        if key != "services":
            problems.extend(_empty_values(value, key))
    return problems


def prefetch_token_problems(hook: str, prefetch: Mapping[str, Any]) -> list[str]:
    """Tokens of the templates that CDS Hooks 2.0 does not allow for `hook`."""
    allowed = CONTEXT_TOKENS.get(hook)
    problems = []
    for key, template in prefetch.items():
        if not isinstance(template, str):
            continue
        for token in _TOKEN.findall(template):
            if token in USER_TOKENS:
                continue
            name = token.removeprefix("context.")
            if not token.startswith("context.") or "." in name or not name:
                problems.append(f"prefetch.{key}: token {{{{{token}}}}} is not allowed")
            elif allowed is not None and name not in allowed:
                problems.append(f"prefetch.{key}: context.{name} is not a prefetch token of {hook}")
    return problems


# --------------------------------------------------------------------------- parts


def _required_string(obj: Mapping[str, Any], key: str, where: str, problems: list[str]) -> None:
    if key not in obj:
        problems.append(f"{where}.{key}: required")
    elif not isinstance(obj[key], str):
        problems.append(f"{where}.{key}: must be a string")


def _uuid(value: Any, where: str, problems: list[str]) -> None:
    if not isinstance(value, str) or not _UUID.match(value):
        problems.append(f"{where}: must be a UUID string")


def _source_problems(source: Any, where: str) -> list[str]:
    if source is None:
        return [f"{where}: required"]
    if not isinstance(source, Mapping):
        return [f"{where}: must be an object"]
    problems: list[str] = []
    _required_string(source, "label", where, problems)
    for key in ("url", "icon"):
        if key in source and not (
            isinstance(source[key], str) and _ABSOLUTE_URL.match(source[key])
        ):
            problems.append(f"{where}.{key}: must be an absolute URL")
    if "topic" in source:
        problems.extend(_coding_problems(source["topic"], f"{where}.topic"))
    return problems


def _coding_problems(coding: Any, where: str, *, display: bool = False) -> list[str]:
    """A CDS Hooks Coding: system and code required; display too when `display`."""
    if not isinstance(coding, Mapping):
        return [f"{where}: must be a Coding object"]
    problems: list[str] = []
    keys = ("system", "code", "display") if display else ("system", "code")
    for key in keys:
        _required_string(coding, key, where, problems)
    if not display and "display" in coding and not isinstance(coding["display"], str):
        problems.append(f"{where}.display: must be a string")
    return problems


def _suggestion_problems(suggestion: Any, where: str) -> list[str]:
    if not isinstance(suggestion, Mapping):
        return [f"{where}: must be an object"]
    problems: list[str] = []
    _required_string(suggestion, "label", where, problems)
    if "uuid" in suggestion:
        _uuid(suggestion["uuid"], f"{where}.uuid", problems)
    if "isRecommended" in suggestion and not isinstance(suggestion["isRecommended"], bool):
        problems.append(f"{where}.isRecommended: must be a boolean")
    if "actionSelectionBehavior" in suggestion:  # cds-resp-7
        value = suggestion["actionSelectionBehavior"]
        if value not in ACTION_SELECTION_BEHAVIORS:
            problems.append(
                f"{where}.actionSelectionBehavior: {value!r} is not one of "
                f"{', '.join(ACTION_SELECTION_BEHAVIORS)}"
            )
    if "actions" in suggestion:
        actions = suggestion["actions"]
        if not isinstance(actions, list):
            problems.append(f"{where}.actions: must be an array")
        else:
            for index, action in enumerate(actions):
                problems.extend(_action_problems(action, f"{where}.actions[{index}]"))
    return problems


def _action_problems(action: Any, where: str) -> list[str]:
    if not isinstance(action, Mapping):
        return [f"{where}: must be an object"]
    problems: list[str] = []
    action_type = action.get("type")
    if "type" not in action:
        problems.append(f"{where}.type: required")
    elif action_type not in ACTION_TYPES:
        problems.append(f"{where}.type: {action_type!r} is not one of {', '.join(ACTION_TYPES)}")
    _required_string(action, "description", where, problems)  # cds-resp-5
    if action_type == "delete":  # cds-resp-2
        resource_id = action.get("resourceId")
        if resource_id is None:
            problems.append(f"{where}.resourceId: required for a delete action")
        elif not isinstance(resource_id, str) or not _RELATIVE_REFERENCE.match(resource_id):
            problems.append(f"{where}.resourceId: must be a relative reference such as Type/id")
        if "resource" in action:
            problems.append(f"{where}.resource: a delete action carries resourceId, not resource")
    elif action_type in ("create", "update"):
        if "resource" not in action:
            problems.append(f"{where}.resource: required for a {action_type} action")
        else:
            problems.extend(_resource_problems(action["resource"], f"{where}.resource"))
    return problems


def _resource_problems(resource: Any, where: str) -> list[str]:
    """The resource must parse as FHIR R4 (the R4B models; DESIGN.md, Decisions)."""
    if not isinstance(resource, Mapping) or not isinstance(resource.get("resourceType"), str):
        return [f"{where}: must be a FHIR resource with a resourceType"]
    resource_type = resource["resourceType"]
    try:
        model = get_fhir_model_class(resource_type)
    except (KeyError, ValueError):
        return [f"{where}: {resource_type!r} is not a FHIR R4 resource type"]
    try:
        model.model_validate(dict(resource))
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(part) for part in first.get("loc", ())) or "resource"
        return [f"{where}: not a valid FHIR R4 {resource_type}: {loc}: {first['msg']}"]
    except (TypeError, ValueError) as exc:
        return [f"{where}: not a valid FHIR R4 {resource_type}: {type(exc).__name__}"]
    return []


def _link_problems(link: Any, where: str) -> list[str]:
    if not isinstance(link, Mapping):
        return [f"{where}: must be an object"]
    problems: list[str] = []
    _required_string(link, "label", where, problems)
    _required_string(link, "url", where, problems)
    url = link.get("url")
    if isinstance(url, str) and not _ABSOLUTE_URL.match(url):
        problems.append(f"{where}.url: must be an absolute URL")
    link_type = link.get("type")
    if "type" not in link:
        problems.append(f"{where}.type: required")
    elif link_type not in LINK_TYPES:
        problems.append(f"{where}.type: {link_type!r} is not one of {', '.join(LINK_TYPES)}")
    if "appContext" in link:
        if link_type != "smart":  # cds-resp-3
            problems.append(f"{where}.appContext: allowed only on a smart link")
        if not isinstance(link["appContext"], str):
            problems.append(f"{where}.appContext: must be a string")
    if "autolaunchable" in link and not isinstance(link["autolaunchable"], bool):
        problems.append(f"{where}.autolaunchable: must be a boolean")
    return problems


def _extension_problems(obj: Mapping[str, Any], where: str) -> list[str]:
    """`extension` is an object whose every value is itself a JSON object."""
    if "extension" not in obj:
        return []
    extension = obj["extension"]
    if not isinstance(extension, Mapping):
        return [f"{where}.extension: must be an object"]
    return [
        f"{where}.extension.{key}: an extension's value must be a JSON object"
        for key, value in extension.items()
        if not isinstance(value, Mapping)
    ]


def empty_value_problems(value: Any, where: str) -> list[str]:
    """Every null or empty JSON element in `value` (`where` names it in the messages)."""
    return _empty_values(value, where)


def _empty_values(value: Any, where: str) -> list[str]:
    """JSON elements SHALL NOT be null or empty ("", [], {}): omit them instead (FHIR agrees)."""
    problems: list[str] = []
    if value is None:
        return [f"{where}: null is not allowed; omit the element"]
    if isinstance(value, str):
        return [f"{where}: empty string is not allowed; omit the element"] if not value else []
    if isinstance(value, list):
        if not value:
            return [f"{where}: empty array is not allowed; omit the element"]
        for index, item in enumerate(value):
            problems.extend(_empty_values(item, f"{where}[{index}]"))
        return problems
    if isinstance(value, Mapping):
        if not value:
            return [f"{where}: empty object is not allowed; omit the element"]
        for key, item in value.items():
            problems.extend(_empty_values(item, f"{where}.{key}"))
    return problems
