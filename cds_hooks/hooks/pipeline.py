"""One hook call, end to end: envelope → data → facts → findings → cards.

Each step hands the next a plain value (DESIGN.md, "One request, end to end"). The HTTP
endpoint and `lipcds invoke` both come through `run_hook`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from marshmallow import ValidationError

from cds_hooks.conformance import response_problems
from cds_hooks.hooks.prefetch import resolve_data
from cds_hooks.http.errors import InvalidRequest, UnknownService
from cds_hooks.http.schemas import CONTEXT_SCHEMAS, HookRequestSchema, flatten_messages
from fhir_mapping.cards import build_cards
from fhir_mapping.facts import extract_facts
from fhir_mapping.records import KeyData
from knowledge.engine import evaluate
from knowledge.kb import KnowledgeBase, ServiceDefinition
from knowledge.model import Evaluation
from knowledge.policy import Policy

if TYPE_CHECKING:
    from cds_hooks.app import Runtime

log = logging.getLogger("lipcds.pipeline")

_REQUEST_SCHEMA = HookRequestSchema()
_CONTEXT_SCHEMAS = {hook: schema() for hook, schema in CONTEXT_SCHEMAS.items()}


@dataclass
class HookCall:
    """A validated hook request with its resolved data, handed to the hook's handler."""

    service: ServiceDefinition
    hook_instance: str
    context: dict[str, Any]  # validated, snake_case keys (patient_id, draft_orders, ...)
    data: dict[str, KeyData]
    now: datetime
    kb: KnowledgeBase
    policy: Policy
    fhir_server: str | None = None
    tenant: str | None = None
    issuer: str | None = None
    extras: Mapping[str, Any] = field(default_factory=dict)  # issue #4: the runtime's store
    disabled_rules: frozenset[str] = frozenset()  # the calling site's switched-off rules


@dataclass
class HookResult:
    """What a handler returns: the cards, and the evaluation behind them for the record."""

    cards: list[dict[str, Any]]
    evaluation: Evaluation | None = None
    extras: dict[str, Any] = field(default_factory=dict)

    def response(self) -> dict[str, Any]:
        return {"cards": self.cards}


Handler = Callable[[HookCall], HookResult]
HANDLERS: dict[str, Handler] = {}


def handles(hook: str) -> Callable[[Handler], Handler]:
    """Register the handler of a hook (one per hook; services choose theirs by `hook`)."""

    def register(handler: Handler) -> Handler:
        HANDLERS[hook] = handler
        return handler

    return register


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
) -> dict[str, Any]:
    """Answer one hook request: the CDS Hooks response body."""
    service = rt.kb.services.get(service_id)
    if service is None:
        raise UnknownService(f"no CDS service with id {service_id!r}")
    request, context = parse_request(service, body)
    fetcher = rt.extras.get("fetcher")
    data = resolve_data(service, request, request["context"], fetcher)
    call = HookCall(
        service=service,
        hook_instance=request["hook_instance"],
        context=context,
        data=data,
        now=rt.settings.clock(),
        kb=rt.kb,
        policy=rt.policy_for(issuer, tenant),
        fhir_server=request.get("fhir_server"),
        tenant=tenant,
        issuer=issuer,
        extras=rt.extras,
        disabled_rules=_site_disabled_rules(rt, issuer, tenant),
    )
    result = HANDLERS[service.hook](call)
    for problem in response_problems(result.response()):
        # A card that breaks CDS Hooks 2.0 is our bug: log it, still answer (issue #2).
        log.warning("%s: response does not conform to CDS Hooks 2.0: %s", service.id, problem)
    for listener in rt.extras.get("on_result", ()):
        listener(call, result)
    # Shadow mode (issue #6): the listeners recorded the cards; the site sees none yet.
    shadow = rt.extras.get("shadow")
    if shadow is not None and shadow(issuer, tenant):
        return {"cards": []}
    return result.response()


def _site_disabled_rules(rt: Runtime, issuer: str | None, tenant: str | None) -> frozenset[str]:
    site_rules = rt.extras.get("site_rules")
    return frozenset(site_rules(issuer, tenant)) if site_rules else frozenset()


@handles("patient-view")
def patient_view(call: HookCall) -> HookResult:
    """Lip-twitch work-up when the chart opens."""
    facts = extract_facts(call.data, call.kb, now=call.now, patient_id=call.context["patient_id"])
    evaluation = evaluate(facts, call.kb, call.policy, disabled_rules=call.disabled_rules)
    cards = build_cards(
        evaluation,
        call.kb,
        patient_id=call.context["patient_id"],
        hook_instance=call.hook_instance,
        age_years=facts.age_years,
    )
    return HookResult(cards=cards, evaluation=evaluation)


def key_data(data: Mapping[str, KeyData], *keys: str) -> list[KeyData]:
    return [data[k] for k in keys if k in data]


# -- issue #4: the order-select and order-sign handlers register themselves on import --
from cds_hooks.hooks import orders as _orders  # noqa: E402,F401
# -- end issue #4 --
