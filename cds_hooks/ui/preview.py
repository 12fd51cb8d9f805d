"""The card preview: build a hook request from a demo patient, a pasted FHIR Bundle or a
pasted hook request, run it through the chosen service, and show the answer as an EHR
would. A refused or failed call is an error on the page, never "no cards".
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from markupsafe import Markup

from cds_hooks.ui.markdown import render_markdown
from knowledge.kb import KnowledgeBase

log = logging.getLogger("lipcds.ui")

# Cards run from the preview are recorded as issued to this pseudo-site, so governance
# can tell them from cards shown to clinicians (and filter them out).
PREVIEW_ISSUER = "lipcds-preview"
MAX_PASTE_CHARS = 2_000_000
SOURCES = ("demo", "bundle", "request")


class PreviewProblem(Exception):
    """The preview could not make or run the request: shown as an error with its status."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class DemoChoice:
    value: str  # "patient:<name>" or "order:<name>"
    label: str


@dataclass(frozen=True)
class ActionView:
    type: str
    description: str
    creates: str  # what the action makes or removes, in words: "ServiceRequest: ..."


@dataclass(frozen=True)
class SuggestionView:
    uuid: str
    label: str
    recommended: bool
    actions: tuple[ActionView, ...]


@dataclass(frozen=True)
class LinkView:
    label: str
    url: str
    type: str


@dataclass(frozen=True)
class ReasonView:
    code: str
    display: str


@dataclass(frozen=True)
class CardView:
    uuid: str
    indicator: str
    summary: str
    detail_html: Markup
    source_label: str
    kind: str
    suggestions: tuple[SuggestionView, ...]
    links: tuple[LinkView, ...]
    override_reasons: tuple[ReasonView, ...]
    selection_behavior: str | None


@dataclass
class PreviewResult:
    service_id: str
    request: Any = None
    response: Any = None
    error: PreviewProblem | None = None
    cards: list[CardView] = field(default_factory=list)

    @property
    def request_json(self) -> str:
        return json.dumps(self.request, indent=2, ensure_ascii=False)

    @property
    def response_json(self) -> str:
        return json.dumps(self.response, indent=2, ensure_ascii=False)


def demo_choices(patients: Sequence[str], orders: Sequence[str]) -> list[DemoChoice]:
    return [DemoChoice(f"patient:{n}", f"Patient: {n}") for n in patients] + [
        DemoChoice(f"order:{n}", f"Order request: {n}") for n in orders
    ]


def parse_json(text: str, what: str) -> Any:
    """Pasted text as JSON; PreviewProblem(400) naming where it breaks."""
    if not text.strip():
        raise PreviewProblem(400, f"the {what} is empty: paste JSON")
    if len(text) > MAX_PASTE_CHARS:
        raise PreviewProblem(413, f"the {what} is larger than {MAX_PASTE_CHARS} characters")

    def reject(name: str) -> Any:
        raise json.JSONDecodeError(f"{name} is not valid JSON", name, 0)

    try:
        return json.loads(text, parse_constant=reject)
    except json.JSONDecodeError as exc:
        raise PreviewProblem(
            400, f"the {what} is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    except RecursionError:
        raise PreviewProblem(400, f"the {what} is nested too deeply") from None


def build_request(
    kb: KnowledgeBase,
    service_id: str,
    source: str,
    *,
    demo: str = "",
    payload: str = "",
    demos: Any,
) -> tuple[str, Any]:
    """(service id, hook request body) for the form's choice; PreviewProblem if it cannot.

    `demos` is the demo module (load_demo, hook_request, order_demo_request, ...).
    An order demo is a complete request of its own hook: it runs through the service of
    that hook, whichever service the form named.
    """
    service = kb.services.get(service_id)
    if service is None:
        raise PreviewProblem(404, f"no CDS service with id {service_id!r}")
    if source not in SOURCES:
        raise PreviewProblem(400, f"choose a demo patient, a FHIR Bundle or a hook request, "
                                  f"not {source!r}")
    if source == "request":
        return service_id, parse_json(payload, "hook request")
    try:
        if source == "bundle":
            bundle = parse_json(payload, "FHIR Bundle")
            if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
                raise PreviewProblem(400, "the pasted JSON is not a FHIR Bundle "
                                          "(resourceType must be \"Bundle\")")
            return service_id, demos.hook_request(
                bundle, service_id, templates=dict(service.prefetch)
            )
        kind, _, name = demo.partition(":")
        if kind == "order":
            body = demos.order_demo_request(name)
            for other in kb.services.values():
                if other.hook == body.get("hook"):
                    return other.id, body
            raise PreviewProblem(404, f"no service answers the {body.get('hook')!r} hook")
        if kind == "patient":
            bundle = demos.load_demo(name)
            return service_id, demos.hook_request(
                bundle, service_id, templates=dict(service.prefetch)
            )
        raise PreviewProblem(400, "choose a demo patient")
    except demos.DemoError as exc:
        raise PreviewProblem(400, str(exc)) from None


def run_preview(
    run: Callable[[str, Any], Mapping[str, Any]],
    service_id: str,
    body: Any,
    *,
    refusal: type[Exception],
) -> PreviewResult:
    """Run `body` through the service; a refusal (an exception of type `refusal`, with
    `status_code` and `message`) or a failure becomes the result's error."""
    result = PreviewResult(service_id=service_id, request=body)
    try:
        response = run(service_id, body)
    except refusal as exc:
        status = int(getattr(exc, "status_code", 400))
        result.error = PreviewProblem(status, str(getattr(exc, "message", exc)))
        to_dict = getattr(exc, "to_dict", None)
        result.response = to_dict() if callable(to_dict) else None
        return result
    except Exception:
        log.exception("card preview: the service failed on a request")
        result.error = PreviewProblem(500, "the service failed on this request "
                                           "(internal error; the service log has the details)")
        return result
    result.response = response
    cards = response.get("cards") if isinstance(response, Mapping) else None
    if not isinstance(cards, list):
        result.error = PreviewProblem(500, "the service answered without a cards array")
        return result
    result.cards = [card_view(card) for card in cards if isinstance(card, Mapping)]
    return result


def card_view(card: Mapping[str, Any]) -> CardView:
    """One card as the page shows it: markdown rendered, actions put into words."""
    source = card.get("source") or {}
    topic = source.get("topic") or {}
    return CardView(
        uuid=str(card.get("uuid") or ""),
        indicator=str(card.get("indicator") or "info"),
        summary=str(card.get("summary") or ""),
        detail_html=render_markdown(card.get("detail")),
        source_label=str(source.get("label") or ""),
        kind=str(topic.get("code") or ""),
        suggestions=tuple(_suggestion_view(s) for s in card.get("suggestions") or ()),
        links=tuple(
            LinkView(str(link.get("label", "")), str(link.get("url", "")),
                     str(link.get("type", "")))
            for link in card.get("links") or ()
        ),
        override_reasons=tuple(
            ReasonView(str(r.get("code", "")), str(r.get("display") or r.get("code", "")))
            for r in card.get("overrideReasons") or ()
        ),
        selection_behavior=card.get("selectionBehavior"),
    )


def _suggestion_view(suggestion: Mapping[str, Any]) -> SuggestionView:
    return SuggestionView(
        uuid=str(suggestion.get("uuid") or ""),
        label=str(suggestion.get("label") or ""),
        recommended=bool(suggestion.get("isRecommended")),
        actions=tuple(_action_view(a) for a in suggestion.get("actions") or ()),
    )


def _action_view(action: Mapping[str, Any]) -> ActionView:
    kind = str(action.get("type") or "")
    resource = action.get("resource") or {}
    if kind == "delete":
        creates = f"removes {action.get('resourceId') or 'a resource'}"
    elif isinstance(resource, Mapping) and resource:
        code = resource.get("code") or {}
        codings = code.get("coding") or []
        what = code.get("text") or (codings[0].get("display") if codings else "") or ""
        coded = ", ".join(
            f"{c.get('code')}" for c in codings if isinstance(c, Mapping) and c.get("code")
        )
        creates = f"{'creates' if kind == 'create' else kind} a {resource.get('status', '')} " \
                  f"{resource.get('resourceType', 'resource')}: {what}".replace("  ", " ")
        if coded:
            creates += f" (code {coded})"
    else:
        creates = kind
    return ActionView(kind, str(action.get("description") or ""), creates)


def new_hook_instance() -> str:
    return str(uuid.uuid4())
