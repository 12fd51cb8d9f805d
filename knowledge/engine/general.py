"""General evaluators: lifestyle advice (R1) and data that could not be retrieved (D1)."""

from __future__ import annotations

from marshmallow import fields, validate

from knowledge.engine.core import complaint_evidence, evaluator, make_finding
from knowledge.engine.fields import Params, Template
from knowledge.engine.labs import Context, perioral_evidence
from knowledge.engine.text import join_words, md, without_ids
from knowledge.kb import Rule
from knowledge.model import DataState, Finding, Indicator


class LifestyleParams(Params):
    # said when the record names numbness or tingling of the lips or mouth only
    perioral_note = Template(load_default="Perioral tingling: check calcium.")


@evaluator("lifestyle", params=LifestyleParams, indicators=("info",))
def lifestyle(ctx: Context, rule: Rule) -> list[Finding]:
    """R1; suppression by R9, R10 and critical cards is applied afterwards (`suppressed_by`)."""
    if not (ctx.labs_available and ctx.meds_available):
        return []  # §5.1: R1 needs labs and medications to say nothing serious was seen
    complaint = ctx.facts.complaints[0]
    perioral = perioral_evidence(ctx)
    # §7b T1: perioral tingling goes to the calcium card when there is one, else here
    note = rule.params["perioral_note"] if perioral else ""
    return (
        [
            make_finding(
                ctx,
                rule,
                Indicator.INFO,
                {},
                evidence=[*(complaint_evidence(c) for c in ctx.facts.complaints), *perioral],
                reasons=[r for c in ctx.facts.complaints for r in (c.reference,) if r],
                extra_detail=note,
            )
        ]
        if complaint
        else []
    )



AREAS = ("conditions", "labs", "medications", "patient", "encounter", "findings")


class DataUnavailableParams(Params):
    # data area -> how a card names it
    areas = fields.Dict(
        keys=fields.String(validate=validate.OneOf(AREAS)),
        values=fields.String(validate=validate.Length(min=1)),
        required=True,
        validate=validate.Length(min=1),
    )


@evaluator(
    "data_unavailable",
    params=DataUnavailableParams,
    fills=("areas", "problems"),
    indicators=("info",),
)
def data_unavailable(ctx: Context, rule: Rule) -> list[Finding]:
    """D1: say plainly which data could not be retrieved (never read as absent)."""
    labels: dict[str, str] = rule.params["areas"]
    missing = [a for a in labels if ctx.facts.state(a) is DataState.UNAVAILABLE]
    if not missing:
        return []
    problems = [f"- {md(without_ids(i.message))}" for i in ctx.facts.issues if i.area in missing]
    values = {"areas": join_words([labels[a] for a in missing]), "problems": "\n".join(problems)}
    return [make_finding(ctx, rule, Indicator.INFO, values)]

