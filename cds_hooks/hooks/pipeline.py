"""One hook call, end to end: envelope → data → the service's handler → cards.

Each step hands the next a plain value (docs/ARCHITECTURE.md, "One request, end to end").
The HTTP endpoint and `lipcds invoke` both come through `run_hook`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from marshmallow import ValidationError

from cds_hooks.hooks.call import HookCall
from cds_hooks.hooks.prefetch import fetch_referenced_medications, resolve_data
from cds_hooks.http.errors import InvalidRequest, UnknownService
from cds_hooks.http.schemas import CONTEXT_SCHEMAS, HookRequestSchema
from cds_hooks.sites import site_key
from cds_hooks.validation import flatten_messages
from fhir_mapping.cards import with_rule_links
from knowledge.kb import KnowledgeBase, ServiceDefinition

if TYPE_CHECKING:
    from cds_hooks.runtime import Runtime

_REQUEST_SCHEMA = HookRequestSchema()
_CONTEXT_SCHEMAS = {hook: schema() for hook, schema in CONTEXT_SCHEMAS.items()}


def discovery_document(kb: KnowledgeBase) -> dict[str, Any]:
    """https://cds-hooks.hl7.org/2.0/#response — no null or empty members."""
    services = []
    for service in kb.services.values():
        entry: dict[str, Any] = {
            "hook": service.hook,
            "title": service.title,
            "description": service.description,
            "id": service.id,
        }
        if service.prefetch:
            entry["prefetch"] = dict(service.prefetch)
        if service.usage_requirements:
            entry["usageRequirements"] = service.usage_requirements
        services.append(entry)
    return {"services": services}


def parse_request(service: ServiceDefinition, body: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """Validate the envelope and the hook's context; 400 naming every problem."""
    if not isinstance(body, dict):
        raise InvalidRequest("request body must be a JSON object")
    try:
        request = _REQUEST_SCHEMA.load(body)
    except ValidationError as exc:
        problems = flatten_messages(exc.messages)
        raise InvalidRequest("invalid hook request: " + "; ".join(problems)) from None
    if request["hook"] != service.hook:
        raise InvalidRequest(
            f"service {service.id!r} answers the {service.hook!r} hook, not {request['hook']!r}",
            expression=["hook"],
        )
    schema = _CONTEXT_SCHEMAS.get(service.hook)
    try:
        context = schema.load(request["context"]) if schema else dict(request["context"])
    except ValidationError as exc:
        problems = flatten_messages(exc.messages, "context")
        raise InvalidRequest("invalid hook context: " + "; ".join(problems)) from None
    return request, context


def run_hook(
    rt: Runtime,
    service_id: str,
    body: Any,
    *,
    issuer: str | None = None,
    tenant: str | None = None,
    rule_pages: str | None = None,
) -> dict[str, Any]:
    """Answer one hook request: the CDS Hooks response body.

    `rule_pages`: the base URL of this service's public pages; every card then links to
    the page of its rule ("Why this card?").
    """
    service = rt.services.get(service_id)
    if service is None:
        raise UnknownService(f"no CDS service with id {service_id!r}")
    definition = service.definition
    request, context = parse_request(definition, body)
    data = resolve_data(definition, request, request["context"], rt.fetcher)
    data.update(fetch_referenced_medications(definition, request, data, rt.fetcher))
    site = rt.sites.for_call(issuer, tenant)
    call = HookCall(
        service=definition,
        hook_instance=request["hook_instance"],
        context=context,
        data=data,
        now=rt.settings.clock(),
        kb=rt.kb,
        site=site,
        fhir_server=request.get("fhir_server"),
        tenant=tenant,
        issuer=issuer,
        shown_cards=rt.shown_cards(),
    )
    result = service.handler(call)
    if rule_pages:
        configured = site is not rt.sites.default
        key = site_key(site.issuer, site.tenant) if configured else None
        result.cards = with_rule_links(result.cards, rule_pages, key)
    for listener in rt.listeners:
        listener(call, result)
    # Shadow mode: the listeners recorded the cards; the site sees none yet.
    if site.shadow:
        return {"cards": []}
    return result.response()
