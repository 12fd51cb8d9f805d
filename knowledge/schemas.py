"""Marshmallow schemas for the knowledge files, and the checks that span several files.

Each file has one schema (`FILE_SCHEMAS`). Unknown keys are refused everywhere, so a
typo in curated data fails at start-up instead of being silently ignored. The schemas
check one object at a time; `check_consistency` then checks references between
objects and files (order keys, ingredient classes, citation sources, ...).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from marshmallow import RAISE, Schema, ValidationError, fields, validate, validates_schema

from knowledge.codes import SYSTEM_NAMES
from knowledge.engine.fields import Pattern
from knowledge.engine.text import CalciumCorrectionSchema, SharedTexts

# Keys other packages look up by name: they must exist (extra ones are allowed).
REQUIRED_ANALYTES = (
    "potassium", "magnesium", "calcium_total", "calcium_corrected", "calcium_ionized",
    "albumin", "pth", "tsh", "b12", "vitamin_d", "ck", "phosphate",
)
REQUIRED_THRESHOLDS = (
    "freshness_days", "recent_start_days", "persistence_days", "albumin_pairing_days",
    "optional_workup_lookback_days", "adult_age_years",
    "potassium_low", "potassium_critical_low", "magnesium_low", "magnesium_critical_low",
    "calcium_corrected_low", "calcium_corrected_critical_low",
    "calcium_ionized_low", "calcium_ionized_critical_low",
)
REQUIRED_RED_FLAGS = (
    "facial-weakness", "slurred-speech", "dysphagia", "spreading", "limb-weakness",
    "numbness", "vision-changes", "facial-pain", "chewing-trigger", "persistent",
)
REQUIRED_KNOWN_CONDITIONS = ("als", "parkinsons", "tourette", "bells-palsy", "hemifacial-spasm")

INDICATORS = ("info", "warning", "critical")
SUPPRESS_BY_CRITICAL = "indicator:critical"
HOOKS = (
    "patient-view", "order-select", "order-sign", "appointment-book",
    "encounter-start", "encounter-discharge",
)
ORDER_CATEGORIES = ("lab", "referral", "procedure", "imaging")
SOURCE_KINDS = ("seed", "clinical", "standard", "policy")
TIME_UNITS = ("days", "years")

KEBAB = r"^[a-z0-9]+(?:[-.][a-z0-9]+)*$"
SNAKE = r"^[a-z][a-z0-9_]*$"

# Code shapes per system: catches a digit dropped or a LOINC check digit forgotten.
_CODE_SHAPES = {
    "loinc": re.compile(r"^\d{1,7}-\d$"),
    "snomed": re.compile(r"^\d{6,18}$"),
    "icd10cm": re.compile(r"^[A-Z]\d[0-9A-Z](\.?[0-9A-Z]{1,4})?$", re.IGNORECASE),
    "rxnorm": re.compile(r"^\d{1,9}$"),
}

# An opening or closing HTML tag. Markdown autolinks (<https://...>) do not match
# because ":" cannot follow a tag name.
_HTML_TAG = re.compile(r"</?[A-Za-z][A-Za-z0-9-]*(?:\s[^<>]*)?/?>")


def _text(**kwargs: Any) -> fields.String:
    """A required, non-blank string."""
    return fields.String(required=True, validate=validate.Length(min=1), **kwargs)


def _named(pattern: str, error: str, **kwargs: Any) -> fields.String:
    """A required identifier that must match `pattern`."""
    return fields.String(required=True, validate=validate.Regexp(pattern, error=error), **kwargs)


class _Strict(Schema):
    class Meta:
        unknown = RAISE


class CitationSchema(_Strict):
    source = _text()
    quote = _text()


class CodeSchema(_Strict):
    """A code or code prefix in one of the systems named in `knowledge.codes.SYSTEM_NAMES`."""

    system = fields.String(required=True, validate=validate.OneOf(sorted(SYSTEM_NAMES)))
    code = _text()
    display = _text()
    prefix = fields.Boolean(load_default=False)

    @validates_schema
    def check_code_shape(self, data: dict, **kwargs: Any) -> None:
        shape = _CODE_SHAPES.get(data.get("system", ""))
        code = data.get("code", "")
        if shape is None or not code:
            return
        # a prefix may be shorter than a full code ("F95", "R20", "H53")
        if not shape.match(code) and not (data.get("prefix") and re.match(r"^[A-Z0-9.]+$", code)):
            raise ValidationError(f"not a valid {data['system']} code", "code")


# --- kb.yaml ---------------------------------------------------------------------------


class KbFileSchema(_Strict):
    version = fields.String(required=True, validate=validate.Regexp(r"^\d+(\.\d+){1,3}$"))
    label = _text()
    topic_system = fields.Url(required=True, schemes={"http", "https"})


# --- analytes.yaml ---------------------------------------------------------------------


class InferenceSchema(_Strict):
    loinc = fields.List(fields.String(validate=validate.Regexp(r"^\d{1,7}-\d$")),
                        required=True, validate=validate.Length(min=1))
    unit = _text()
    low = fields.Float(load_default=None, allow_none=True)
    high = fields.Float(load_default=None, allow_none=True)

    @validates_schema
    def check_bounds(self, data: dict, **kwargs: Any) -> None:
        low, high = data.get("low"), data.get("high")
        if low is not None and high is not None and low > high:
            raise ValidationError("must not be below low", "high")


class AnalyteSchema(_Strict):
    display = _text()
    canonical_unit = _text()
    loinc = fields.Dict(
        keys=fields.String(validate=validate.Regexp(r"^\d{1,7}-\d$", error="not a LOINC code")),
        values=fields.String(validate=validate.Length(min=1)),
        required=True,
        validate=validate.Length(min=1),
    )
    units = fields.Dict(
        keys=fields.String(validate=validate.Length(min=1)),
        values=fields.Float(required=True, validate=validate.Range(min=0, min_inclusive=False)),
        required=True,
        validate=validate.Length(min=1),
    )
    inference = fields.List(fields.Nested(InferenceSchema), load_default=list)

    @validates_schema
    def check_units(self, data: dict, **kwargs: Any) -> None:
        units = data.get("units") or {}
        canonical = data.get("canonical_unit")
        if canonical and units and units.get(canonical) != 1:
            raise ValidationError("must be listed under units with factor 1", "canonical_unit")


class AnalytesFileSchema(_Strict):
    unit_aliases = fields.Dict(
        keys=fields.String(validate=validate.Length(min=1)),
        values=fields.String(validate=validate.Length(min=1)),
        required=True,
    )
    analytes = fields.Dict(
        keys=fields.String(validate=validate.Regexp(SNAKE, error="not a snake_case key")),
        values=fields.Nested(AnalyteSchema),
        required=True,
    )


# --- thresholds.yaml -------------------------------------------------------------------


class ThresholdSchema(_Strict):
    default = fields.Float(required=True)
    minimum = fields.Float(required=True, data_key="min")
    maximum = fields.Float(required=True, data_key="max")
    unit = _text()
    policy = fields.Boolean(required=True)
    source = _text()

    @validates_schema
    def check_bounds(self, data: dict, **kwargs: Any) -> None:
        low, high, default = data.get("minimum"), data.get("maximum"), data.get("default")
        if low is None or high is None or default is None:
            return
        if low > high:
            raise ValidationError("must not be below min", "max")
        if not low <= default <= high:
            raise ValidationError(f"{default:g} is outside its bounds [{low:g}, {high:g}]",
                                  "default")


class ThresholdsFileSchema(_Strict):
    thresholds = fields.Dict(
        keys=fields.String(validate=validate.Regexp(SNAKE, error="not a snake_case name")),
        values=fields.Nested(ThresholdSchema),
        required=True,
    )


# --- conditions.yaml -------------------------------------------------------------------


class SpreadingSchema(_Strict):
    flag = _text()  # a red flag id; the words that say it are terms.yaml `spreading`


class ComplaintSchema(_Strict):
    codes = fields.List(fields.Nested(CodeSchema), required=True, validate=validate.Length(min=1))
    codes_needing_text = fields.List(fields.Nested(CodeSchema), load_default=list)
    spreading = fields.Nested(SpreadingSchema, required=True)


class ConceptSchema(_Strict):
    id = _named(KEBAB, "not a kebab-case id")
    label = _text()
    codes = fields.List(fields.Nested(CodeSchema), load_default=list)
    citations = fields.List(fields.Nested(CitationSchema), load_default=list)


class RedFlagSchema(ConceptSchema):
    severity = fields.String(required=True, validate=validate.OneOf(("warning", "critical")))


class HypoparathyroidismSchema(_Strict):
    label = _text()
    codes = fields.List(fields.Nested(CodeSchema), required=True, validate=validate.Length(min=1))
    citations = fields.List(fields.Nested(CitationSchema), load_default=list)


class ConditionsFileSchema(_Strict):
    complaint = fields.Nested(ComplaintSchema, required=True)
    red_flags = fields.List(fields.Nested(RedFlagSchema), required=True)
    known_conditions = fields.List(fields.Nested(ConceptSchema), required=True)
    hypoparathyroidism = fields.Nested(HypoparathyroidismSchema, required=True)


# --- medications.yaml ------------------------------------------------------------------


class DrugClassSchema(_Strict):
    label = _text()
    group = fields.String(required=True, validate=validate.OneOf(("seed", "depleting")))
    depletes = fields.List(fields.String(), load_default=list)
    systemic_only = fields.Boolean(load_default=False)
    citations = fields.List(fields.Nested(CitationSchema), required=True,
                            validate=validate.Length(min=1))

    @validates_schema
    def check_depletes(self, data: dict, **kwargs: Any) -> None:
        group, depletes = data.get("group"), data.get("depletes") or []
        if group == "depleting" and not depletes:
            raise ValidationError("a depleting class must name what it depletes", "depletes")
        if group == "seed" and depletes:
            raise ValidationError("only depleting classes deplete analytes", "depletes")


class IngredientSchema(_Strict):
    slug = _named(KEBAB, "not a kebab-case slug")
    name = _text()
    drug_class = fields.String(required=True, data_key="class")
    # required but nullable: a missing RxCUI must be a deliberate `null`
    rxnorm = fields.String(required=True, allow_none=True,
                           validate=validate.Regexp(r"^\d{1,9}$", error="not an RxCUI"))
    atc = fields.String(load_default=None, allow_none=True,
                        validate=validate.Regexp(r"^[A-Z]\d{2}[A-Z]{2}\d{2}$",
                                                 error="not an ATC code"))
    names = fields.List(fields.String(validate=validate.Length(min=1)), required=True,
                        validate=validate.Length(min=1))


class ProductSchema(_Strict):
    rxnorm = fields.String(required=True, allow_none=True,
                           validate=validate.Regexp(r"^\d{1,9}$", error="not an RxCUI"))
    name = _text()
    ingredients = fields.List(fields.String(), required=True, validate=validate.Length(min=1))


class MedicationsFileSchema(_Strict):
    route_exclusions = Pattern(required=True)
    classes = fields.Dict(
        keys=fields.String(validate=validate.Regexp(KEBAB, error="not a kebab-case key")),
        values=fields.Nested(DrugClassSchema),
        required=True,
    )
    ingredients = fields.List(fields.Nested(IngredientSchema), required=True)
    products = fields.List(fields.Nested(ProductSchema), load_default=list)


# --- orders.yaml -----------------------------------------------------------------------


class OrderSchema(_Strict):
    category = fields.String(required=True, validate=validate.OneOf(ORDER_CATEGORIES))
    text = _text()
    coding = fields.Nested(CodeSchema, load_default=None, allow_none=True)
    pediatric_text = fields.String(load_default=None, allow_none=True,
                                   validate=validate.Length(min=1))

    @validates_schema
    def check_coding(self, data: dict, **kwargs: Any) -> None:
        coding = data.get("coding")
        if coding and coding.get("prefix"):
            raise ValidationError("an order codes one concept, not a prefix", "coding")
        if data.get("category") == "lab" and (not coding or coding.get("system") != "loinc"):
            raise ValidationError("a lab order needs a LOINC coding", "coding")


class OrdersFileSchema(_Strict):
    orders = fields.Dict(
        keys=fields.String(validate=validate.Regexp(KEBAB, error="not a kebab-case key")),
        values=fields.Nested(OrderSchema),
        required=True,
    )


# --- sources.yaml ----------------------------------------------------------------------


class SourceSchema(_Strict):
    title = _text()
    reader = _text()  # how a card names it for a clinician, in one line
    kind = fields.String(required=True, validate=validate.OneOf(SOURCE_KINDS))
    note = fields.String(load_default="")


class SourcesFileSchema(_Strict):
    sources = fields.Dict(
        keys=fields.String(validate=validate.Regexp(KEBAB, error="not a kebab-case id")),
        values=fields.Nested(SourceSchema),
        required=True,
    )


# --- services.yaml ---------------------------------------------------------------------


class ServiceSchema(_Strict):
    id = _named(KEBAB, "not a kebab-case id")
    hook = fields.String(required=True, validate=validate.OneOf(HOOKS))
    title = _text()
    description = _text()
    prefetch = fields.Dict(keys=fields.String(validate=validate.Length(min=1)),
                           values=fields.String(validate=validate.Length(min=1)),
                           load_default=dict)
    required_prefetch = fields.List(fields.String(), load_default=list)
    usage_requirements = fields.String(load_default=None, allow_none=True)

    @validates_schema
    def check_required_prefetch(self, data: dict, **kwargs: Any) -> None:
        prefetch = data.get("prefetch") or {}
        for key in data.get("required_prefetch") or []:
            if key not in prefetch:
                raise ValidationError(f"'{key}' is not a prefetch key", "required_prefetch")


class ServicesFileSchema(_Strict):
    services = fields.List(fields.Nested(ServiceSchema), required=True,
                           validate=validate.Length(min=1))


# --- rules.yaml ------------------------------------------------------------------------


class OverrideCodeSchema(_Strict):
    code = _text()
    display = _text()


class OverrideReasonsSchema(_Strict):
    system = fields.Url(required=True, schemes={"http", "https"})
    codes = fields.List(fields.Nested(OverrideCodeSchema), required=True,
                        validate=validate.Length(min=1))


class SuggestionSchema(_Strict):
    key = _named(KEBAB, "not a kebab-case key")
    label = _text()
    orders = fields.List(fields.String(), required=True, validate=validate.Length(min=1))
    recommended = fields.Boolean(load_default=True)


def _no_html(text: str) -> None:
    """Card detail is GitHub-flavoured markdown; CDS clients need not render HTML."""
    found = _HTML_TAG.search(text)
    if found:
        raise ValidationError(f"raw HTML is not allowed in markdown ({found.group(0)!r})")


RULE_ROLES = ("finding", "order-check", "data-report")


class RuleSchema(_Strict):
    # R-rules are the clinical rules; D-rules report on the data itself (unavailable areas);
    # O-rules judge the draft orders of order-select and order-sign.
    id = _named(r"^[RDO]\d+$", "not a rule id like R3, D1 or O1")
    # finding: runs at patient-view (and at order time when an order check names it);
    # order-check: judges the draft orders; data-report: says which data could not be used
    role = fields.String(load_default="finding", validate=validate.OneOf(RULE_ROLES))
    kind = _named(KEBAB, "not a kebab-case kind")
    title = _text()
    about = fields.String(load_default="")  # the rule in plain words (its public page)
    evaluator = _named(SNAKE, "not an evaluator name")
    enabled = fields.Boolean(load_default=True)
    params = fields.Dict(keys=fields.String(), load_default=dict)
    suppressed_by = fields.List(fields.String(), load_default=list)
    summary = fields.Dict(
        keys=fields.String(validate=validate.OneOf((*INDICATORS, "default"))),
        # CDS Hooks 2.0: summary "<140 characters"
        values=fields.String(validate=validate.Length(
            min=1, max=139, error="must be 1 to 139 characters long (CDS Hooks: under 140)")),
        required=True,
        validate=validate.Length(min=1),
    )
    detail = fields.String(required=True, validate=[validate.Length(min=1), _no_html])
    suggestions = fields.List(fields.Nested(SuggestionSchema), load_default=list)
    citations = fields.List(fields.Nested(CitationSchema), required=True,
                            validate=validate.Length(min=1))


class RulesFileSchema(_Strict):
    override_reasons = fields.Nested(OverrideReasonsSchema, required=True)
    calcium_correction = fields.Nested(CalciumCorrectionSchema, required=True)
    texts = fields.Nested(SharedTexts, required=True)
    rules = fields.List(fields.Nested(RuleSchema), required=True, validate=validate.Length(min=1))


# File name -> schema, in load order.
FILE_SCHEMAS: dict[str, type[Schema]] = {
    "kb.yaml": KbFileSchema,
    "sources.yaml": SourcesFileSchema,
    "analytes.yaml": AnalytesFileSchema,
    "thresholds.yaml": ThresholdsFileSchema,
    "conditions.yaml": ConditionsFileSchema,
    "medications.yaml": MedicationsFileSchema,
    "orders.yaml": OrdersFileSchema,
    "services.yaml": ServicesFileSchema,
    "rules.yaml": RulesFileSchema,
}


# --- checks across objects and files ---------------------------------------------------

Problem = tuple[str, str, str]  # (file, field path, message)


def check_consistency(docs: dict[str, dict[str, Any]]) -> list[Problem]:
    """Check the references between loaded files; `docs` maps file name -> loaded data."""
    problems: list[Problem] = []
    for check in (_check_analytes, _check_thresholds, _check_conditions, _check_medications,
                  _check_orders, _check_services, _check_rules):
        problems.extend(check(docs))
    return problems


def _citations(file: str, path: str, citations: list[dict], sources: dict) -> Iterator[Problem]:
    for i, citation in enumerate(citations):
        if citation["source"] not in sources:
            yield (file, f"{path}.citations[{i}].source",
                   f"unknown source '{citation['source']}' (not in sources.yaml)")


def _duplicates(file: str, path: str, items: list[dict], key: str) -> Iterator[Problem]:
    seen: set[str] = set()
    for i, item in enumerate(items):
        if item[key] in seen:
            yield (file, f"{path}[{i}].{key}", f"duplicate {key} '{item[key]}'")
        seen.add(item[key])


def _missing(file: str, path: str, present: set[str],
             required: tuple[str, ...]) -> Iterator[Problem]:
    for name in required:
        if name not in present:
            yield (file, path, f"'{name}' is required")


def _check_analytes(docs: dict) -> Iterator[Problem]:
    file = "analytes.yaml"
    data = docs[file]
    aliases, analytes = data["unit_aliases"], data["analytes"]
    yield from _missing(file, "analytes", set(analytes), REQUIRED_ANALYTES)
    for alias in aliases:
        if alias != alias.lower():
            yield (file, f"unit_aliases.{alias}", "alias keys must be lower-case")
    known_units = {unit for analyte in analytes.values() for unit in analyte["units"]}
    for alias, unit in aliases.items():
        if unit not in known_units:
            yield (file, f"unit_aliases.{alias}", f"'{unit}' is not a unit of any analyte")
    owner: dict[str, str] = {}
    for key, analyte in analytes.items():
        for unit in analyte["units"]:
            # units.normalise_unit relies on this to match exact codes with one look-up
            if aliases.get(unit.lower()) != unit:
                yield (file, f"analytes.{key}.units.{unit}",
                       f"unit_aliases must map '{unit.lower()}' to '{unit}'")
        for code in analyte["loinc"]:
            if code in owner:
                yield (file, f"analytes.{key}.loinc.{code}", f"already used by '{owner[code]}'")
            owner[code] = key
        for i, row in enumerate(analyte["inference"]):
            for code in row["loinc"]:
                if code not in analyte["loinc"]:
                    yield (file, f"analytes.{key}.inference[{i}].loinc",
                           f"'{code}' is not a LOINC code of this analyte")
            if row["unit"] not in analyte["units"]:
                yield (file, f"analytes.{key}.inference[{i}].unit",
                       f"'{row['unit']}' is not a unit of this analyte")


def _check_thresholds(docs: dict) -> Iterator[Problem]:
    file = "thresholds.yaml"
    thresholds = docs[file]["thresholds"]
    sources = docs["sources.yaml"]["sources"]
    units = {u for a in docs["analytes.yaml"]["analytes"].values() for u in a["units"]}
    yield from _missing(file, "thresholds", set(thresholds), REQUIRED_THRESHOLDS)
    for name, threshold in thresholds.items():
        if threshold["source"] not in sources:
            yield (file, f"thresholds.{name}.source",
                   f"unknown source '{threshold['source']}' (not in sources.yaml)")
        if threshold["unit"] not in units and threshold["unit"] not in TIME_UNITS:
            yield (file, f"thresholds.{name}.unit", f"unknown unit '{threshold['unit']}'")
        # a critical cut must sit below the plain "low" cut it sharpens
        if name.endswith("_critical_low"):
            low = thresholds.get(name.replace("_critical_low", "_low"))
            if low and threshold["default"] >= low["default"]:
                yield (file, f"thresholds.{name}.default",
                       f"must be below {name.replace('_critical_low', '_low')}")


def _check_conditions(docs: dict) -> Iterator[Problem]:
    file = "conditions.yaml"
    data = docs[file]
    sources = docs["sources.yaml"]["sources"]
    for group, required in (("red_flags", REQUIRED_RED_FLAGS),
                            ("known_conditions", REQUIRED_KNOWN_CONDITIONS)):
        concepts = data[group]
        yield from _duplicates(file, group, concepts, "id")
        yield from _missing(file, group, {c["id"] for c in concepts}, required)
        for i, concept in enumerate(concepts):
            yield from _citations(file, f"{group}[{i}]", concept["citations"], sources)
            if group == "known_conditions" and not concept["codes"]:
                yield (file, f"{group}[{i}].codes", "a known condition needs codes")
    yield from _citations(file, "hypoparathyroidism", data["hypoparathyroidism"]["citations"],
                          sources)
    flag = data["complaint"]["spreading"]["flag"]
    if flag not in {c["id"] for c in data["red_flags"]}:
        yield (file, "complaint.spreading.flag", f"unknown red flag '{flag}'")


def _check_medications(docs: dict) -> Iterator[Problem]:
    file = "medications.yaml"
    data = docs[file]
    sources = docs["sources.yaml"]["sources"]
    analytes = docs["analytes.yaml"]["analytes"]
    classes, ingredients = data["classes"], data["ingredients"]
    for key, drug_class in classes.items():
        yield from _citations(file, f"classes.{key}", drug_class["citations"], sources)
        for i, analyte in enumerate(drug_class["depletes"]):
            if analyte not in analytes:
                yield (file, f"classes.{key}.depletes[{i}]", f"unknown analyte '{analyte}'")
    yield from _duplicates(file, "ingredients", ingredients, "slug")
    slugs = {ingredient["slug"] for ingredient in ingredients}
    codes: dict[str, str] = {}
    for i, ingredient in enumerate(ingredients):
        if ingredient["drug_class"] not in classes:
            yield (file, f"ingredients[{i}].class", f"unknown class '{ingredient['drug_class']}'")
        code = ingredient["rxnorm"]
        if code is not None:
            if code in codes:
                yield (file, f"ingredients[{i}].rxnorm",
                       f"RxCUI {code} already used by {codes[code]}")
            codes[code] = ingredient["slug"]
    for i, product in enumerate(data["products"]):
        for j, slug in enumerate(product["ingredients"]):
            if slug not in slugs:
                yield (file, f"products[{i}].ingredients[{j}]", f"unknown ingredient '{slug}'")
        code = product["rxnorm"]
        if code is not None:
            if code in codes:
                yield (file, f"products[{i}].rxnorm",
                       f"RxCUI {code} already used by {codes[code]}")
            codes[code] = product["name"]


def _check_orders(docs: dict) -> Iterator[Problem]:
    file = "orders.yaml"
    names = {code: name for a in docs["analytes.yaml"]["analytes"].values()
             for code, name in a["loinc"].items()}
    for key, order in docs[file]["orders"].items():
        coding = order["coding"]
        if coding and coding["system"] == "loinc" and coding["code"] in names \
                and coding["display"] != names[coding["code"]]:
            yield (file, f"orders.{key}.coding.display",
                   f"must be the LOINC long common name '{names[coding['code']]}'")


def _check_services(docs: dict) -> Iterator[Problem]:
    yield from _duplicates("services.yaml", "services", docs["services.yaml"]["services"], "id")


def _check_rules(docs: dict) -> Iterator[Problem]:
    file = "rules.yaml"
    rules = docs[file]["rules"]
    orders = docs["orders.yaml"]["orders"]
    sources = docs["sources.yaml"]["sources"]
    yield from _duplicates(file, "rules", rules, "id")
    kinds = {rule["kind"] for rule in rules}
    for i, rule in enumerate(rules):
        path = f"rules[{i}]"
        yield from _citations(file, path, rule["citations"], sources)
        for j, entry in enumerate(rule["suppressed_by"]):
            if entry != SUPPRESS_BY_CRITICAL and entry not in kinds:
                yield (file, f"{path}.suppressed_by[{j}]",
                       f"'{entry}' is neither a rule kind nor '{SUPPRESS_BY_CRITICAL}'")
        yield from _duplicates(file, f"{path}.suggestions", rule["suggestions"], "key")
        for j, suggestion in enumerate(rule["suggestions"]):
            for k, order in enumerate(suggestion["orders"]):
                if order not in orders:
                    yield (file, f"{path}.suggestions[{j}].orders[{k}]",
                           f"unknown order '{order}' (not in orders.yaml)")
