"""The line between knowledge and code, checked when the knowledge base loads.

Each evaluator declares the marshmallow schema of its `params` and the template fields
(`{placeholders}`) it fills in a rule's summary and detail. `check_rules` holds every rule
of rules.yaml against its evaluator: an unknown evaluator, a param of the wrong type, a
missing or unused param, a placeholder the evaluator does not fill, a summary missing for
an indicator it may raise, or a suggestion it names but the rule lacks — each is one
problem naming the file, the rule and the field. Nothing reaches a request half-checked.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from marshmallow import ValidationError

from knowledge.engine.core import EVALUATORS
from knowledge.engine.fields import names_known, unknown_placeholders

FILE = "rules.yaml"

def known_names(docs: Mapping[str, Mapping[str, Any]]) -> dict[str, frozenset[str]]:
    """The names a `Ref` may take, from the loaded files."""
    conditions = docs["conditions.yaml"]
    return {
        "thresholds": frozenset(docs["thresholds.yaml"]["thresholds"]),
        "orders": frozenset(docs["orders.yaml"]["orders"]),
        "analytes": frozenset(docs["analytes.yaml"]["analytes"]),
        "red flags": frozenset(f["id"] for f in conditions["red_flags"]),
        "known conditions": frozenset(c["id"] for c in conditions["known_conditions"]),
        "rules": frozenset(r["id"] for r in docs[FILE]["rules"]),
    }


Problem = tuple[str, str, str]  # (file, field path, message)


def check_rules(
    docs: Mapping[str, Mapping[str, Any]],
) -> tuple[list[Problem], dict[int, dict[str, Any]]]:
    """Every rule against its evaluator; the problems, and each good rule's loaded params."""
    problems: list[Problem] = []
    loaded: dict[int, dict[str, Any]] = {}
    with names_known(known_names(docs)):
        for index, rule in enumerate(docs[FILE]["rules"]):
            where = f"rules[{index}] ({rule['id']})"
            found = list(_check_rule(rule, loaded, index))
            problems.extend((FILE, f"{where}.{path}", message) for path, message in found)
    return problems, loaded


def _check_rule(
    rule: Mapping[str, Any], loaded: dict[int, dict[str, Any]], index: int
) -> Iterable[tuple[str, str]]:
    spec = EVALUATORS.get(rule["evaluator"])
    if spec is None:
        known = ", ".join(sorted(EVALUATORS))
        yield "evaluator", f"unknown evaluator '{rule['evaluator']}' (known: {known})"
        return
    try:
        loaded[index] = spec.params().load(rule["params"])
    except ValidationError as exc:
        for path, message in _flatten(exc.messages):
            yield f"params.{path}" if path else "params", message
    for indicator, template in rule["summary"].items():
        problem = unknown_placeholders(template, spec.fills)
        if problem:
            yield f"summary.{indicator}", problem
    problem = unknown_placeholders(rule["detail"], spec.fills)
    if problem:
        yield "detail", problem
    if "default" not in rule["summary"]:
        for indicator in spec.indicators:
            if indicator not in rule["summary"]:
                yield "summary", (
                    f"evaluator '{spec.name}' may raise a {indicator} card: "
                    f"a '{indicator}' or 'default' summary is required"
                )
    keys = {s["key"] for s in rule["suggestions"]}
    for key in spec.suggestions:
        if key not in keys:
            yield "suggestions", f"evaluator '{spec.name}' offers suggestion '{key}': it is missing"
    if spec.check is not None and index in loaded:
        yield from spec.check(rule, loaded[index])


def _flatten(messages: Any, path: tuple[str, ...] = ()) -> list[tuple[str, str]]:
    if isinstance(messages, dict):
        pairs: list[tuple[str, str]] = []
        for key, value in messages.items():
            if key == "_schema" or (key == "value" and path):
                # fields.Dict reports "<entry>.value": the entry names the field well enough
                pairs.extend(_flatten(value, path))
            elif isinstance(key, int) and path:
                pairs.extend(_flatten(value, (*path[:-1], f"{path[-1]}[{key}]")))
            else:
                pairs.extend(_flatten(value, (*path, str(key))))
        return pairs
    if isinstance(messages, list):
        out: list[tuple[str, str]] = []
        for item in messages:
            if isinstance(item, str):
                out.append((".".join(path), item))
            else:
                out.extend(_flatten(item, path))
        return out
    return [(".".join(path), str(messages))]
