"""Load the knowledge files, validate them and build a `KnowledgeBase`."""

from __future__ import annotations

import os
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

import yaml
from marshmallow import ValidationError

from knowledge.codes import SYSTEM_NAMES, normalise_code
from knowledge.engine.contract import check_rules
from knowledge.kb import (
    Analyte,
    CalciumCorrection,
    CodeMatcher,
    Coding,
    ComplaintDefinition,
    ConditionConcept,
    DrugClass,
    Ingredient,
    KnowledgeBase,
    Order,
    Product,
    Rule,
    ServiceDefinition,
    Source,
    SuggestionTemplate,
    Threshold,
    UnitInference,
)
from knowledge.schemas import FILE_SCHEMAS, Problem, check_consistency
from knowledge.textmatch import TermMatcher, TermsError, compile_terms
from knowledge.validation import error_pairs


class KnowledgeError(Exception):
    """A knowledge file is missing, unreadable or invalid; start-up must stop.

    `problems` holds one "<file>: <field path>: <message>" line per fault.
    """

    def __init__(self, problems: list[str]) -> None:
        self.problems = tuple(problems)
        super().__init__("\n".join(self.problems))


# The C parser is several times faster; start-up time matters for every worker.
_SafeLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _UniqueKeyLoader(_SafeLoader):  # type: ignore[misc, valid-type]
    """Safe loader that refuses duplicate mapping keys (PyYAML silently keeps the last)."""


def _construct_mapping(loader: Any, node: yaml.MappingNode) -> dict:
    loader.flatten_mapping(node)
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark)
        seen.add(key)
    return loader.construct_mapping(node)


_UniqueKeyLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def load_knowledge_base(path: str | os.PathLike[str] | None = None) -> KnowledgeBase:
    """Load and validate the knowledge base in `path` (default: the packaged `knowledge/data`).

    Raises `KnowledgeError` naming the file and field for a missing file, a YAML syntax
    error, a schema violation or an inconsistency between files.
    """
    folder: Traversable = resources.files("knowledge") / "data" if path is None else Path(path)
    raw = {name: _read_yaml(folder, name) for name in FILE_SCHEMAS}

    docs: dict[str, dict[str, Any]] = {}
    problems: list[str] = []
    for name, schema in FILE_SCHEMAS.items():
        try:
            docs[name] = schema().load(raw[name])
        except ValidationError as exc:
            problems.extend(_format(name, p, m) for p, m in error_pairs(exc.messages))
    if problems:
        raise KnowledgeError(problems)

    inconsistencies: list[Problem] = check_consistency(docs)
    if inconsistencies:
        raise KnowledgeError([_format(*problem) for problem in inconsistencies])
    # every rule against the evaluator it names (its params, placeholders, summaries)
    broken, params = check_rules(docs)
    if broken:
        raise KnowledgeError([_format(*problem) for problem in broken])
    for index, rule in enumerate(docs["rules.yaml"]["rules"]):
        rule["params"] = params[index]
    return _build(docs, _load_terms(folder, docs))


def _read_yaml(folder: Traversable, name: str) -> dict[str, Any]:
    file = folder / name
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise KnowledgeError([f"{name}: file not found in {folder}"]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise KnowledgeError([f"{name}: cannot be read ({exc})"]) from exc
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise KnowledgeError([f"{name}: {where}YAML error: {problem}"]) from None
    if not isinstance(data, dict):
        raise KnowledgeError([f"{name}: the file must hold a mapping at the top level"])
    return data


def _format(file: str, path: str, message: str) -> str:
    message = message.rstrip(".")
    message = message[:1].lower() + message[1:]
    return f"{file}: {path}: {message}" if path else f"{file}: {message}"


# --- building the dataclasses ----------------------------------------------------------


def _matcher(code: dict) -> CodeMatcher:
    system = SYSTEM_NAMES[code["system"]]
    return CodeMatcher(system=system, code=normalise_code(system, code["code"]),
                       prefix=code["prefix"], display=code["display"])


def _citations(items: list[dict]) -> tuple[tuple[str, str], ...]:
    return tuple((item["source"], item["quote"]) for item in items)


def _concept(
    data: dict, key: str, terms: TermMatcher, term_key: str, severity: str | None = None
) -> ConditionConcept:
    return ConditionConcept(
        key=key,
        label=data["label"],
        codes=tuple(_matcher(code) for code in data["codes"]),
        text=_listed(terms, term_key),
        severity=severity,
        citations=_citations(data["citations"]),
    )


def _listed(terms: TermMatcher, key: str, *fields: str) -> tuple[str, ...]:
    """The terms of a category for people to read (all its matching fields, or `fields`)."""
    listed = terms.listed(key)
    wanted = fields or tuple(f for f in listed if f in ("phrases", "exact_case")
                             or f.startswith("pair"))
    return tuple(t for f in wanted for t in listed.get(f, ()))


def _load_terms(folder: Traversable, docs: dict[str, dict[str, Any]]) -> TermMatcher:
    """terms.yaml compiled (§7b T1), and its ids checked against conditions and analytes."""
    try:
        terms = compile_terms(_read_yaml(folder, "terms.yaml"))
    except TermsError as exc:
        raise KnowledgeError(list(exc.problems)) from None
    conditions = docs["conditions.yaml"]
    known_ids = {
        "red-flag:": {f["id"] for f in conditions["red_flags"]},
        "known:": {c["id"] for c in conditions["known_conditions"]},
        "analyte:": set(docs["analytes.yaml"]["analytes"]),
    }
    sections = {"red-flag:": "red_flags", "known:": "known_conditions", "analyte:": "analytes"}
    files = {"red-flag:": "conditions.yaml", "known:": "conditions.yaml",
             "analyte:": "analytes.yaml"}
    problems = []
    for key in sorted(terms.keys):
        for prefix, ids in known_ids.items():
            if key.startswith(prefix) and key.removeprefix(prefix) not in ids:
                problems.append(
                    f"terms.yaml: {sections[prefix]}.{key.removeprefix(prefix)}: "
                    f"no such id in {files[prefix]}"
                )
    # "persistent" is computed from the onset; every other flag must be matchable
    for i, flag in enumerate(conditions["red_flags"]):
        if flag["id"] != "persistent" and not flag["codes"] \
                and _flag_terms(flag["id"]) not in terms.keys:
            problems.append(
                f"conditions.yaml: red_flags[{i}]: a red flag needs codes or terms "
                f"(terms.yaml red_flags.{flag['id']})"
            )
    if problems:
        raise KnowledgeError(problems)
    return terms


def _build(docs: dict[str, dict[str, Any]], terms: TermMatcher) -> KnowledgeBase:
    kb_file = docs["kb.yaml"]
    analytes_file = docs["analytes.yaml"]
    conditions = docs["conditions.yaml"]
    medications = docs["medications.yaml"]
    rules_file = docs["rules.yaml"]

    analytes = {
        key: Analyte(
            key=key,
            display=a["display"],
            canonical_unit=a["canonical_unit"],
            loinc=dict(a["loinc"]),
            units=dict(a["units"]),
            name_pattern=_listed(terms, f"analyte:{key}") or None,
            name_exclude=_listed(terms, f"analyte:{key}", "not_with"),
            inference=tuple(
                UnitInference(loinc=tuple(row["loinc"]), unit=row["unit"],
                              low=row["low"], high=row["high"])
                for row in a["inference"]
            ),
        )
        for key, a in analytes_file["analytes"].items()
    }
    loinc_index = {code: key for key, analyte in analytes.items() for code in analyte.loinc}

    thresholds = {
        name: Threshold(name=name, default=t["default"], minimum=t["minimum"],
                        maximum=t["maximum"], unit=t["unit"], policy=t["policy"],
                        source=t["source"])
        for name, t in docs["thresholds.yaml"]["thresholds"].items()
    }

    complaint = conditions["complaint"]
    drug_classes = {
        key: DrugClass(key=key, label=c["label"], group=c["group"],
                       depletes=tuple(c["depletes"]), systemic_only=c["systemic_only"],
                       citations=_citations(c["citations"]))
        for key, c in medications["classes"].items()
    }
    ingredients = {
        i["slug"]: Ingredient(slug=i["slug"], name=i["name"], drug_class=i["drug_class"],
                              rxnorm=i["rxnorm"], atc=i["atc"], names=tuple(i["names"]))
        for i in medications["ingredients"]
    }
    products = tuple(
        Product(rxnorm=p["rxnorm"], name=p["name"], ingredients=tuple(p["ingredients"]))
        for p in medications["products"]
    )
    rxnorm_index: dict[str, tuple[str, ...]] = {
        i.rxnorm: (i.slug,) for i in ingredients.values() if i.rxnorm is not None
    }
    rxnorm_index.update({p.rxnorm: p.ingredients for p in products if p.rxnorm is not None})

    orders = {}
    for key, o in docs["orders.yaml"]["orders"].items():
        coding = None
        if o["coding"]:
            system = SYSTEM_NAMES[o["coding"]["system"]]
            coding = Coding(system=system, code=normalise_code(system, o["coding"]["code"]),
                            display=o["coding"]["display"])
        orders[key] = Order(key=key, category=o["category"], text=o["text"], coding=coding,
                            pediatric_text=o["pediatric_text"])

    reasons = rules_file["override_reasons"]
    rules = tuple(
        Rule(
            id=r["id"], kind=r["kind"], title=r["title"], evaluator=r["evaluator"],
            params=dict(r["params"]), summary=dict(r["summary"]), detail=r["detail"],
            citations=_citations(r["citations"]),
            suggestions=tuple(
                SuggestionTemplate(key=s["key"], label=s["label"], orders=tuple(s["orders"]),
                                   recommended=s["recommended"])
                for s in r["suggestions"]
            ),
            suppressed_by=tuple(r["suppressed_by"]),
            enabled=r["enabled"],
            role=r["role"],
            about=r["about"].strip(),
        )
        for r in rules_file["rules"]
    )

    return KnowledgeBase(
        version=kb_file["version"],
        label=kb_file["label"],
        topic_system=kb_file["topic_system"],
        override_reasons=tuple(
            Coding(system=reasons["system"], code=c["code"], display=c["display"])
            for c in reasons["codes"]
        ),
        analytes=analytes,
        unit_aliases=dict(analytes_file["unit_aliases"]),
        thresholds=thresholds,
        complaint=ComplaintDefinition(
            codes=tuple(_matcher(code) for code in complaint["codes"]),
            codes_needing_text=tuple(_matcher(code) for code in complaint["codes_needing_text"]),
            movement=_listed(terms, "complaint", "pair0.first"),
            site=_listed(terms, "complaint", "pair0.second"),
            phrases=_listed(terms, "complaint", "phrases"),
            spreading_flag=complaint["spreading"]["flag"],
        ),
        red_flags=tuple(
            _concept(f, f["id"], terms, _flag_terms(f["id"]), f["severity"])
            for f in conditions["red_flags"]
        ),
        known_conditions=tuple(
            _concept(c, c["id"], terms, f"known:{c['id']}") for c in conditions["known_conditions"]
        ),
        hypoparathyroidism=_concept(
            conditions["hypoparathyroidism"], "hypoparathyroidism", terms, "hypoparathyroidism"
        ),
        drug_classes=drug_classes,
        ingredients=ingredients,
        products=products,
        route_exclusions=medications["route_exclusions"],
        orders=orders,
        rules=rules,
        texts=dict(rules_file["texts"]),
        calcium_correction=CalciumCorrection(**rules_file["calcium_correction"]),
        sources={
            sid: Source(id=sid, title=s["title"], kind=s["kind"], note=s["note"],
                        reader=s["reader"])
            for sid, s in docs["sources.yaml"]["sources"].items()
        },
        services={
            s["id"]: ServiceDefinition(
                id=s["id"], hook=s["hook"], title=s["title"], description=s["description"],
                prefetch=dict(s["prefetch"]), required_prefetch=tuple(s["required_prefetch"]),
                usage_requirements=s["usage_requirements"],
            )
            for s in docs["services.yaml"]["services"]
        },
        loinc_index=loinc_index,
        rxnorm_index=rxnorm_index,
        terms=terms,
    )


def _flag_terms(flag_id: str) -> str:
    return "spreading" if flag_id == "spreading" else f"red-flag:{flag_id}"
