"""The pages: public rule pages, the card preview and the governance page (server-rendered)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from flask import Blueprint, Response, render_template, request
from flask.typing import ResponseReturnValue

from cds_hooks.sites import site_key
from cds_hooks.ui import governance as gov
from cds_hooks.ui import preview as pv
from cds_hooks.ui.access import UiAccess, same_origin_post
from cds_hooks.ui.rulepage import rule_page
from knowledge.kb import KnowledgeBase
from knowledge.policy import Policy

log = logging.getLogger("lipcds.ui")

_CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)


@dataclass(frozen=True)
class SiteView:
    """A configured site as the pages need it."""

    issuer: str
    tenant: str | None
    name: str | None
    policy: Policy
    disabled_rules: frozenset[str]
    shadow: bool

    @property
    def key(self) -> str:
        return site_key(self.issuer, self.tenant) or ""

    @property
    def label(self) -> str:
        """For the governance page (behind its credential)."""
        if self.name:
            return self.name
        return self.issuer + (f" / {self.tenant}" if self.tenant else "")

    @property
    def public_label(self) -> str:
        """For the public rule pages: the site's name, never its issuer or tenant."""
        return self.name or "the calling site"


@dataclass
class UiContext:
    """What the pages read, handed over by the composition root."""

    kb: KnowledgeBase
    policy: Policy  # the deployment's
    run: Callable[[str, Any], Mapping[str, Any]]  # the preview's call of a service
    refusal: type[Exception]  # what `run` raises for a refused call (status_code, message)
    demos: Any  # the demo module: list_demos, load_demo, hook_request, ...
    clock: Callable[[], datetime]
    store: Any = None  # cds_hooks.store.Store, or None without one
    sites: Sequence[SiteView] = field(default_factory=tuple)
    feedback_item: Any = None  # cds_hooks.store.FeedbackItem
    store_errors: tuple[type[Exception], ...] = ()


def create_ui_blueprint(get_context: Callable[[], UiContext], access: UiAccess) -> Blueprint:
    """The blueprint of the pages. Rule pages are public; the preview and governance
    pages follow `access` (off: 404; with a credential: 401 until it is given)."""
    ui = Blueprint(
        "ui",
        __name__,
        template_folder="templates",
        static_folder="static",
        static_url_path="/ui/static",
    )

    @ui.before_request
    def _gate() -> ResponseReturnValue | None:
        endpoint = request.endpoint or ""
        if endpoint in ("ui.static", "ui.rule", "ui.rules"):
            return None
        if not access.enabled:
            return _page("error.html", 404, title="Not found",
                         message="This page is not turned on for this service.")
        if not access.allows(request):
            response = _page("error.html", 401, title="Sign-in needed",
                             message="This page needs the credential of the service's "
                                     "preview and governance pages.")
            response.headers["WWW-Authenticate"] = 'Basic realm="lipcds pages", charset="UTF-8"'
            return response
        if request.method == "POST" and not same_origin_post(request):
            return _page("error.html", 403, title="Refused",
                         message="A form of these pages can only be sent from these pages.")
        return None

    @ui.after_request
    def _headers(response: Response) -> Response:
        response.headers.setdefault("Content-Security-Policy", _CSP)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        if (request.endpoint or "") not in ("ui.static", "ui.rule", "ui.rules"):
            response.headers.setdefault("Cache-Control", "no-store")
        return response

    # -- public rule pages ---------------------------------------------------------------

    @ui.get("/rules/")
    def rules() -> ResponseReturnValue:
        """The rules of the knowledge base (public)."""
        ctx = get_context()
        return _page("rules.html", 200, title="Rules", kb=ctx.kb, rules=ctx.kb.rules)

    @ui.get("/rules/<rule_id>")
    def rule(rule_id: str) -> ResponseReturnValue:
        """The page behind "Why this card?" (public): the rule, its thresholds and sources."""
        ctx = get_context()
        if rule_id not in {r.id for r in ctx.kb.rules}:
            return _page("error.html", 404, title="No such rule",
                         message=f"The knowledge base {ctx.kb.version} has no rule "
                                 f"{rule_id!r}.", kb=ctx.kb)
        wanted = request.args.get("site", "")
        site = next((s for s in ctx.sites if s.key == wanted), None) if wanted else None
        page = rule_page(
            ctx.kb,
            rule_id,
            site.policy if site else ctx.policy,
            disabled_rules=site.disabled_rules if site else (),
            site_label=site.public_label if site else None,
        )
        unknown_site = bool(wanted) and site is None
        return _page("rule.html", 200, title=f"{page.rule_id}: {page.title}", page=page,
                     unknown_site=unknown_site, kb=ctx.kb)

    # -- card preview ----------------------------------------------------------------------

    @ui.get("/ui/")
    def preview() -> ResponseReturnValue:
        """The card preview: choose a demo patient or paste a Bundle or a hook request."""
        return _preview()

    @ui.post("/ui/")
    def preview_run() -> ResponseReturnValue:
        """Run the chosen input through the chosen service and show its cards."""
        return _preview()

    def _preview() -> ResponseReturnValue:
        ctx = get_context()
        demos = pv.demo_choices(ctx.demos.list_demos(), ctx.demos.list_order_demos())
        form = {
            "service": request.form.get("service") or next(iter(ctx.kb.services), ""),
            "source": request.form.get("source") or "demo",
            "demo": request.form.get("demo") or (demos[0].value if demos else ""),
            "payload": request.form.get("payload", ""),
        }
        result = None
        if request.method == "POST":
            try:
                service_id, body = pv.build_request(
                    ctx.kb,
                    form["service"],
                    form["source"],
                    demo=form["demo"],
                    payload=form["payload"],
                    demos=ctx.demos,
                )
            except pv.PreviewProblem as problem:
                result = pv.PreviewResult(service_id=form["service"], error=problem)
            else:
                result = pv.run_preview(ctx.run, service_id, body, refusal=ctx.refusal)
        return _page("preview.html", 200, title="Card preview", kb=ctx.kb, form=form,
                     demos=demos, services=list(ctx.kb.services.values()), result=result,
                     sources=pv.SOURCES)

    @ui.post("/ui/feedback")
    def feedback() -> ResponseReturnValue:
        """Record that a preview card was accepted or dismissed, as an EHR reports it."""
        ctx = get_context()
        service_id = request.form.get("service", "")
        card = request.form.get("card", "")
        outcome = request.form.get("outcome", "")
        suggestion = request.form.get("suggestion", "")
        reason_code = request.form.get("reason", "")
        problem = None
        if service_id not in ctx.kb.services:
            problem = f"no CDS service with id {service_id!r}"
        elif not card:
            problem = "no card named"
        elif outcome not in ("accepted", "overridden"):
            problem = "the outcome must be accepted or overridden"
        elif outcome == "accepted" and not suggestion:
            problem = "name the suggestion that was accepted"
        elif ctx.store is None or ctx.feedback_item is None:
            problem = "this service has no store to record feedback in"
        if problem:
            return _page("feedback.html", 400, title="Feedback not recorded", kb=ctx.kb,
                         problem=problem, outcome=outcome)
        reason = next((r for r in ctx.kb.override_reasons if r.code == reason_code), None)
        item = ctx.feedback_item(
            card=card,
            outcome=outcome,
            outcome_timestamp=ctx.clock(),
            accepted_suggestions=(suggestion,) if outcome == "accepted" else (),
            reason_system=reason.system if reason and outcome == "overridden" else None,
            reason_code=reason.code if reason and outcome == "overridden" else None,
            reason_display=reason.display if reason and outcome == "overridden" else None,
            user_comment=None if reason or outcome == "accepted" else "overridden in the preview",
        )
        try:
            counts = ctx.store.record_feedback(service_id, [item], site=(pv.PREVIEW_ISSUER, None))
        except ctx.store_errors as exc:
            log.warning("card preview: feedback not recorded: %s", exc)
            return _page("feedback.html", 503, title="Feedback not recorded", kb=ctx.kb,
                         problem=str(exc), outcome=outcome)
        return _page("feedback.html", 200, title="Feedback recorded", kb=ctx.kb, problem=None,
                     outcome=outcome, counts=counts, reason=reason, service_id=service_id,
                     preview_site=site_key(pv.PREVIEW_ISSUER, None))

    # -- governance ------------------------------------------------------------------------

    @ui.get("/ui/governance")
    def governance() -> ResponseReturnValue:
        """Per rule and card kind: cards issued and what clinicians did, per period and site."""
        ctx = get_context()
        preview_site = gov.SiteChoice(
            site_key(pv.PREVIEW_ISSUER, None) or "", "Card preview (not shown to clinicians)",
            pv.PREVIEW_ISSUER, None,
        )
        choices = [gov.SiteChoice("", "All sites")] + [
            gov.SiteChoice(s.key, s.label, s.issuer, s.tenant, s.shadow) for s in ctx.sites
        ] + [preview_site]
        wanted = request.args.get("site", "")
        site = next((c for c in choices if c.value == wanted), None)
        today = ctx.clock().date()
        status = 200
        try:
            first, last = gov.parse_period(request.args.get("since"),
                                           request.args.get("until"), today)
        except gov.PeriodError as exc:
            first, last = gov.parse_period(None, None, today)
            view = gov.GovernanceView(first, last, site or choices[0], choices, error=str(exc))
            # 200: the page answered; the form's mistake is on it (as a preview's refusal).
            return _page("governance.html", 200, title="Governance", kb=ctx.kb, view=view)
        view = gov.GovernanceView(first, last, site or choices[0], choices)
        if site is None and wanted:
            view.error = "no such site; showing all sites"
        if ctx.store is None:
            view.error = "this service has no store of issued cards"
            status = 503
        else:
            since, until = gov.bounds(first, last)
            try:
                report_rows = ctx.store.report(since, until, issuer=view.site.issuer,
                                               tenant=view.site.tenant)
            except ctx.store_errors as exc:
                log.warning("governance page: the store could not be read: %s", exc)
                view.error = "the store of issued cards is unavailable; try again later"
                status = 503
            else:
                view.rows = gov.rows_of(report_rows)
        return _page("governance.html", status, title="Governance", kb=ctx.kb, view=view)

    return ui


def _page(template: str, status: int, **values: Any) -> Response:
    response = Response(render_template(template, **values), status=status,
                        mimetype="text/html")
    return response
