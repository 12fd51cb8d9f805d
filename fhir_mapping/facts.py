"""FHIR resources → facts, by the pre-processing rules P1-P8 of the clinical reference (§4).

Select before you validate: each resource is first matched on its raw JSON (codes, text),
and only the ones a rule needs are checked against the R4 structure (`fhir_mapping.shape`).
A resource that fails the check is skipped and named in a `DataIssue`, which the cards quote.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from fhir_mapping import raw, shape
from fhir_mapping.clinical import ClinicalFacts, StatementReader
from fhir_mapping.dates import age_in_years, parse_fhir_datetime
from fhir_mapping.medications import MedicationMatcher, matcher_for
from fhir_mapping.records import KeyData
from fhir_mapping.statements import (
    Statement,
    condition_statement,
    observation_statement,
    visit_reasons,
)
from knowledge.codes import LOINC
from knowledge.kb import Analyte, KnowledgeBase
from knowledge.labvalue import COMPARATORS, number_text, parse_value_string
from knowledge.model import (
    DataIssue,
    DataState,
    LabResult,
    MedicationUse,
    PatientFacts,
    UnusableLab,
)
from knowledge.units import infer_unit, normalise_unit, to_canonical

_ACTIVE_CLINICAL = {"active", "recurrence", "relapse"}
_EXCLUDED_VERIFICATION = {"entered-in-error", "refuted"}
_USABLE_LAB_STATUS = {"final", "amended", "corrected", "preliminary"}
_READ_IN_FULL = {"albumin"}  # paired by date with calcium, not just the newest
_UNDATED = datetime.min.replace(tzinfo=UTC)  # sorts last; such a result is unusable anyway
_ACTIVE_REQUEST = {"active", "on-hold"}
_ACTIVE_STATEMENT = {"active", "intended"}

# Data areas and the prefetch keys that feed them.
FINDING_KEYS = ("findings",)
AREAS = {
    "patient": ("patient",),
    "conditions": ("conditions",),
    "labs": ("labs",),
    "medications": ("medRequests", "medStatements"),
    "encounter": ("encounter",),
    "findings": FINDING_KEYS,
}
# areas a service need not ask for: absent from its prefetch, they are not "unavailable"
_OPTIONAL_AREAS = {"encounter", "findings"}


def extract_facts(
    data: Mapping[str, KeyData],
    kb: KnowledgeBase,
    *,
    now: datetime,
    patient_id: str | None = None,
    matcher: MedicationMatcher | None = None,
    finding_window: int | None = None,
) -> PatientFacts:
    """The facts the rules need, from the resolved prefetch keys of one hook call."""
    issues: list[DataIssue] = []
    availability = {
        area: _area_state(data, keys)
        for area, keys in AREAS.items()
        if area not in _OPTIONAL_AREAS or any(k in data for k in keys)
    }
    for area, keys in AREAS.items():
        for key in keys:
            if key in data:
                issues.extend(DataIssue(area, text) for text in data[key].issues)
                if data[key].state is DataState.UNAVAILABLE and data[key].problem:
                    issues.append(DataIssue(area, data[key].problem))

    conditions = _resources(data, ("conditions",), "Condition")
    window = int(kb.thresholds["finding_window_days"].default) if finding_window is None else (
        finding_window
    )
    others = other_statements(data, now, window, issues)
    condition_facts = ConditionReader(kb, issues).read(conditions, others)
    labs, unusable = LabReader(kb, issues).read(_resources(data, ("labs",), "Observation"))
    matcher = matcher or matcher_for(kb)
    medications = MedicationReader(kb, matcher, issues).read(
        _resources(data, ("medRequests",), "MedicationRequest"),
        _resources(data, ("medStatements",), "MedicationStatement"),
        _resources(data, ("medRequests", "medStatements", *_medication_keys(data)), "Medication"),
    )
    age = _age(_resources(data, ("patient",), "Patient"), now, issues)
    return PatientFacts(
        evaluated_at=now,
        patient_id=patient_id,
        age_years=age,
        complaints=tuple(condition_facts.complaints),
        red_flags=tuple(condition_facts.red_flags),
        known_conditions=tuple(condition_facts.known),
        hypoparathyroidism=tuple(condition_facts.hypoparathyroidism),
        perioral=tuple(condition_facts.perioral),
        labs=tuple(labs),
        unusable_labs=tuple(unusable),
        medications=tuple(medications),
        issues=tuple(issues),
        availability=availability,
    )


def _medication_keys(data: Mapping[str, KeyData]) -> list[str]:
    """Keys of Medications read by their reference (§7b P12 fetch-on-miss)."""
    return [k for k in data if k.startswith("medication:")]


def _area_state(data: Mapping[str, KeyData], keys: Iterable[str]) -> DataState:
    states = [data[k].state for k in keys if k in data]
    if not states or DataState.UNAVAILABLE in states:
        return DataState.UNAVAILABLE
    return DataState.PRESENT if DataState.PRESENT in states else DataState.EMPTY


def _resources(data: Mapping[str, KeyData], keys: Iterable[str], rtype: str) -> list[dict]:
    return [
        r for k in keys if k in data for r in data[k].resources if r.get("resourceType") == rtype
    ]


def validation_problem(resource_type: str, resource: dict) -> str | None:
    """None when the resource has the shape of an R4 `resource_type`; else where it has not."""
    return shape.problem(resource, resource_type)


class ConditionReader:
    """P1 (complaint), P7 (red flags, known conditions) and P8 (onset) over the record.

    Conditions count by their status (P1); visit reasons (P9) and findings recorded as
    Observations (P10) arrive as statements already filtered. Every source is then read
    alike (`fhir_mapping.clinical`): codes first, the words by the T1 term lists.
    """

    def __init__(self, kb: KnowledgeBase, issues: list[DataIssue]):
        self.kb = kb
        self.issues = issues
        if kb.terms is None:
            raise ValueError("the knowledge base has no compiled term lists (terms.yaml)")
        self._reader = StatementReader(kb, kb.terms, issues, self._problem)
        self._resources: dict[int, dict] = {}

    def read(self, conditions: list[dict], others: Iterable[Statement] = ()) -> ClinicalFacts:
        statements: list[Statement] = []
        sites: dict[str, str] = {}
        for resource in conditions:
            if not self._counts(resource):
                continue
            statement = condition_statement(resource, _onset(resource))
            self._resources[id(statement)] = resource
            statements.append(statement)
            site = _body_site(resource)
            if site and statement.reference:
                sites[statement.reference] = site
        statements.extend(others)
        return self._reader.read(statements, sites)

    def _problem(self, statement: Statement) -> str | None:
        resource = self._resources.get(id(statement))
        return validation_problem("Condition", resource) if resource is not None else None

    def _counts(self, resource: dict) -> bool:
        """P1/P7 status filter: active (or no status and no abatement), not refuted."""
        verification = raw.status_code(resource.get("verificationStatus"))
        if verification in _EXCLUDED_VERIFICATION:
            return False
        clinical = raw.status_code(resource.get("clinicalStatus"))
        if clinical is None:
            return not any(k.startswith("abatement") for k in resource)
        return clinical in _ACTIVE_CLINICAL


def other_statements(
    data: Mapping[str, KeyData], now: datetime, window_days: int, issues: list[DataIssue]
) -> list[Statement]:
    """P9 visit reasons and P10 chief complaints and exam findings, as statements."""
    out: list[Statement] = []
    for encounter in _resources(data, ("encounter",), "Encounter"):
        problem = validation_problem("Encounter", encounter)
        if problem:
            ref = raw.reference_of(encounter)
            issues.append(DataIssue("encounter", f"{ref or 'the Encounter'}: {problem}", ref))
            continue
        out.extend(visit_reasons(encounter))
    for observation in _resources(data, FINDING_KEYS, "Observation"):
        statement = observation_statement(observation, now, window_days)
        if statement is None:
            continue
        problem = validation_problem("Observation", observation)
        if problem:
            ref = statement.reference
            issues.append(DataIssue("findings", f"{ref or 'an Observation'}: {problem}", ref))
            continue
        out.append(statement)
    return out


def _onset(resource: Mapping[str, Any]) -> datetime | None:
    """P8: onsetDateTime, else onsetPeriod.start, else recordedDate."""
    period = resource.get("onsetPeriod")
    return (
        parse_fhir_datetime(resource.get("onsetDateTime"))
        or (parse_fhir_datetime(period.get("start")) if isinstance(period, dict) else None)
        or parse_fhir_datetime(resource.get("recordedDate"))
    )


def _body_site(resource: Mapping[str, Any]) -> str | None:
    for site in raw.as_list(resource.get("bodySite")):
        texts = raw.texts(site)
        if texts:
            return texts[0]
    return None


class LabReader:
    """P2 (usable), P3 (identity) and the unit rules of §1.2, per Observation."""

    def __init__(self, kb: KnowledgeBase, issues: list[DataIssue]):
        self.kb = kb
        self.issues = issues
        terms = kb.terms
        self._terms = terms
        named = terms.keys if terms is not None else frozenset()
        self._by_name = [a for a in kb.analytes.values() if f"analyte:{a.key}" in named]

    def read(self, observations: list[dict]) -> tuple[list[LabResult], list[UnusableLab]]:
        """The results the rules can use, newest first per analyte.

        P5 uses only the newest usable result of an analyte (if it is stale, no fresh one
        exists), so candidates are validated newest first and the walk stops after the
        first usable one and any with the same timestamp (amended beats final there).
        Older results are never judged, so they are not parsed: on a long lab history
        this is most of the cost of a request. Albumin is read in full, because calcium
        correction pairs the albumin nearest to the calcium's date.
        """
        candidates: dict[str, list[tuple[datetime, dict, Analyte, str | None, bool]]] = {}
        self._parents: dict[int, dict] = {}
        self._panel_members(observations)
        for resource in self._with_components(observations):
            identity = self._identify(resource)
            if identity is None:
                continue
            analyte, loinc, by_name = identity
            status = resource.get("status")
            if not isinstance(status, str) or status not in _USABLE_LAB_STATUS:
                continue  # entered-in-error, cancelled, registered, unknown: not a result
            when = _effective(resource) or _UNDATED
            candidates.setdefault(analyte.key, []).append((when, resource, analyte, loinc, by_name))
        usable: list[LabResult] = []
        unusable: list[UnusableLab] = []
        for key, entries in candidates.items():
            entries.sort(key=lambda entry: entry[0], reverse=True)
            newest: datetime | None = None
            for when, resource, analyte, loinc, by_name in entries:
                if newest is not None and when != newest and key not in _READ_IN_FULL:
                    break
                result = self._read_one(resource, analyte, loinc, by_name)
                if isinstance(result, LabResult):
                    usable.append(result)
                    newest = newest or when
                else:
                    unusable.append(result)
        return usable, unusable

    def _identify(self, resource: dict) -> tuple[Analyte, str | None, bool] | None:
        codings = raw.codings(resource.get("code"))
        loincs = [code for system, code, _ in codings if system == LOINC]
        for code in loincs:
            key = self.kb.loinc_index.get(code)
            if key is not None:
                return self.kb.analytes[key], code, False
        if loincs:
            return None  # a LOINC test that is not one of ours
        if id(resource) in self._parents:
            return None  # a panel component counts only by its LOINC code
        texts = raw.texts(resource.get("code"))
        for analyte in self._by_name:
            if self._terms is not None and self._terms.mentions(f"analyte:{analyte.key}", texts):
                return analyte, None, True
        return None

    def _with_components(self, observations: list[dict]) -> list[dict]:
        """§7b P11: each `component[]` with a LOINC analyte code and a value is a result of
        its own, with the panel's status, subject, effective time and reference."""
        out: list[dict] = []
        for resource in observations:
            out.append(resource)
            for component in raw.as_list(resource.get("component")):
                if not isinstance(component, dict):
                    continue
                codings = raw.codings(component.get("code"))
                if not any(s == LOINC and c in self.kb.loinc_index for s, c, _ in codings):
                    continue
                result = {k: v for k, v in resource.items()
                          if k not in ("component", "hasMember", "referenceRange",
                                       "interpretation", "code", "dataAbsentReason", "note")
                          and not k.startswith("value")}
                result.update({k: v for k, v in component.items()
                               if k in ("code", "referenceRange", "interpretation",
                                        "dataAbsentReason") or k.startswith("value")})
                self._parents[id(result)] = resource
                out.append(result)
        return out

    def _panel_members(self, observations: list[dict]) -> None:
        """§7b P11: `hasMember` resolves within the same prefetch; a member that is not
        there is said, never fetched."""
        present = {raw.reference_of(r) for r in observations}
        for resource in observations:
            for member in raw.as_list(resource.get("hasMember")):
                ref = raw.as_object(member).get("reference")
                if isinstance(ref, str) and ref.startswith("Observation/") and ref not in present:
                    panel = raw.reference_of(resource) or "a panel"
                    self.issues.append(
                        DataIssue("labs", f"{panel}: member {ref} is not in the lab results", ref)
                    )

    def _read_one(
        self, resource: dict, analyte: Analyte, loinc: str | None, by_name: bool
    ) -> LabResult | UnusableLab:
        ref = raw.reference_of(resource)
        effective = _effective(resource)
        display = (raw.texts(resource.get("code")) or [analyte.display])[0]

        def unusable(reason: str) -> UnusableLab:
            return UnusableLab(analyte.key, reason, ref, effective, display)

        problem = validation_problem("Observation", self._parents.get(id(resource), resource))
        if problem:
            self.issues.append(DataIssue("labs", f"{ref or 'an Observation'}: {problem}", ref))
            return unusable(problem)
        if "dataAbsentReason" in resource:
            reason = (raw.texts(resource["dataAbsentReason"]) or ["no reason given"])[0]
            return unusable(f"no value ({reason})")
        reported = self._reported(resource, analyte)
        if isinstance(reported, str):
            return unusable(reported)
        quantity, value, comparator, shown, from_text = reported
        if effective is None:
            return unusable("no date")
        raw_unit = quantity.get("code") or quantity.get("unit")
        unit = normalise_unit(raw_unit, self.kb)
        if unit is None and raw_unit:
            unit = normalise_unit(quantity.get("unit"), self.kb)  # a local code, a UCUM unit text
        inferred = False
        if unit is None and not raw_unit:  # §1.2: infer a *missing* unit, never replace one
            unit = self._range_unit(resource) or infer_unit(analyte, loinc, value)
            inferred = unit is not None
        if unit is None:
            what = f"unit {raw_unit!r} is not known" if raw_unit else "no unit"
            return unusable(f"{what}, and it cannot be inferred")
        canonical = to_canonical(analyte, value, unit)
        if canonical is None:
            return unusable(f"unit {unit} cannot be converted to {analyte.canonical_unit}")
        low, high = self._reference_range(resource, analyte, unit)
        return LabResult(
            analyte=analyte.key,
            value=canonical,
            unit=analyte.canonical_unit,
            reported_value=value,
            reported_unit=_unit_text(quantity) if not inferred else unit,
            effective=effective,
            status=resource["status"],
            reference=ref,
            loinc=loinc,
            reference_low=low,
            reference_high=high,
            matched_by_name=by_name,
            unit_inferred=inferred,
            display=display,
            comparator=comparator,
            reported_text=f"{comparator or ''}{shown}",
            from_text=from_text,
        )

    def _reported(
        self, resource: dict, analyte: Analyte
    ) -> tuple[dict, float, str | None, str, bool] | str:
        """(quantity, number, comparator, number as reported, from text), or why not usable.

        §7b P11: a valueQuantity may carry a comparator; a valueString counts only when it
        is exactly a number, an optional comparator and a unit this analyte knows.
        """
        quantity = resource.get("valueQuantity")
        if isinstance(quantity, dict):
            value = quantity.get("value")
            if raw.finite_number(value) is None:  # not a number, or past a float's range
                return "no numeric value"
            comparator = quantity.get("comparator")
            if comparator is not None and comparator not in COMPARATORS:
                return f"comparator {comparator!r} cannot be judged"
            return quantity, float(value), comparator, number_text(value), False
        text = resource.get("valueString")
        if isinstance(text, str):

            def known(unit: str) -> bool:
                code = normalise_unit(unit, self.kb)
                return code is not None and to_canonical(analyte, 1.0, code) is not None

            parsed = parse_value_string(text, known)
            if parsed is None:
                return f"value given as text ({text.strip()[:60]!r})"
            unit = {"unit": parsed.unit} if parsed.unit else {}
            return unit, parsed.number, parsed.comparator, parsed.text, True
        return "no numeric value"

    def _range_unit(self, resource: dict) -> str | None:
        for rng in raw.as_list(resource.get("referenceRange")):
            for bound in ("low", "high"):
                quantity = rng.get(bound) if isinstance(rng, dict) else None
                if isinstance(quantity, dict):
                    unit = normalise_unit(quantity.get("code") or quantity.get("unit"), self.kb)
                    if unit:
                        return unit
        return None

    def _reference_range(
        self, resource: dict, analyte: Analyte, result_unit: str
    ) -> tuple[float | None, float | None]:
        """The lab's own normal range in canonical units; a range we cannot convert is dropped."""
        for rng in raw.as_list(resource.get("referenceRange")):
            if not isinstance(rng, dict):
                continue
            range_type = raw.status_code(rng.get("type"))
            if range_type not in (None, "normal"):
                continue
            bounds = []
            for bound in ("low", "high"):
                quantity = rng.get(bound)
                value = raw.finite_number(
                    quantity.get("value") if isinstance(quantity, dict) else None
                )
                if value is None:
                    bounds.append(None)
                    continue
                unit = normalise_unit(quantity.get("code") or quantity.get("unit"), self.kb)
                bounds.append(to_canonical(analyte, value, unit or result_unit))
            if any(b is not None for b in bounds):
                return bounds[0], bounds[1]
        return None, None


def _unit_text(quantity: Mapping[str, Any]) -> str:
    """The unit as the lab wrote it for people (`unit`), else its code: "mEq/L", not "meq/L"."""
    for key in ("unit", "code"):
        if isinstance(quantity.get(key), str) and quantity[key].strip():
            return quantity[key].strip()
    return ""


def _effective(resource: Mapping[str, Any]) -> datetime | None:
    """P4: effectiveDateTime, else effectivePeriod.end, else issued."""
    period = resource.get("effectivePeriod")
    return (
        parse_fhir_datetime(resource.get("effectiveDateTime"))
        or (parse_fhir_datetime(period.get("end")) if isinstance(period, dict) else None)
        or parse_fhir_datetime(resource.get("issued"))
    )


class MedicationReader:
    """Active MedicationRequests and MedicationStatements → one `MedicationUse` per slug."""

    def __init__(self, kb: KnowledgeBase, matcher: MedicationMatcher, issues: list[DataIssue]):
        self.kb = kb
        self.matcher = matcher
        self.issues = issues

    def read(
        self, requests: list[dict], statements: list[dict], medications: list[dict]
    ) -> list[MedicationUse]:
        by_id = {r["id"]: r for r in medications if isinstance(r.get("id"), str)}
        uses: dict[str, MedicationUse] = {}
        records = [(r, _ACTIVE_REQUEST, "MedicationRequest") for r in requests] + [
            (s, _ACTIVE_STATEMENT, "MedicationStatement") for s in statements
        ]
        for resource, active, rtype in records:
            status = resource.get("status")
            if not isinstance(status, str) or status not in active:
                continue
            concept, extra_texts, codings = self._medication(resource, by_id)
            route_texts = self._route_texts(resource)
            found = self.matcher.match_concept(concept, extra_texts, route_texts)
            if codings:
                # §7b P12: a combination product matches each ingredient a class lists
                named = {m.slug for m in found}
                found = [*found, *(m for m in self.matcher.match_codings(codings)
                                   if m.slug not in named)]
            if not found:
                continue
            problem = validation_problem(rtype, resource)
            ref = raw.reference_of(resource)
            if problem:
                self.issues.append(
                    DataIssue("medications", f"{ref or 'a medication record'}: {problem}", ref)
                )
                continue
            text = (raw.texts(concept) or extra_texts or ["(no name)"])[0]
            start = _start(resource)
            for match in found:
                uses[match.slug] = _merge(uses.get(match.slug), self._use(match, text, start, ref))
        return list(uses.values())

    def _medication(
        self, resource: dict, by_id: Mapping[str, dict]
    ) -> tuple[dict | None, list[str], list[dict]]:
        """The drug concept, with a referenced Medication's code and ingredient codes."""
        concept = resource.get("medicationCodeableConcept")
        if isinstance(concept, dict):
            return concept, [], []
        reference = raw.as_object(resource.get("medicationReference")).get("reference")
        if not isinstance(reference, str):
            return None, [], []
        medication = None
        if reference.startswith("#"):
            medication = next(
                (
                    c
                    for c in raw.as_list(resource.get("contained"))
                    if isinstance(c, dict) and c.get("id") == reference[1:]
                ),
                None,
            )
        elif reference.startswith("Medication/"):
            medication = by_id.get(reference.removeprefix("Medication/"))
        if not isinstance(medication, dict):
            ref = raw.reference_of(resource)
            self.issues.append(
                DataIssue(
                    "medications", f"{ref}: medication {reference} could not be resolved", ref
                )
            )
            return None, [], []
        if validation_problem("Medication", medication):
            self.issues.append(DataIssue("medications", f"{reference}: not a valid Medication"))
            return None, [], []
        ingredient_codings = [
            coding
            for ing in raw.as_list(medication.get("ingredient"))
            if isinstance(ing, dict)
            for coding in raw.as_list(raw.as_object(ing.get("itemCodeableConcept")).get("coding"))
        ]
        form_texts = raw.texts(medication.get("form"))
        return medication.get("code"), form_texts, ingredient_codings

    @staticmethod
    def _route_texts(resource: dict) -> list[str]:
        texts = []
        dosages = raw.as_list(resource.get("dosageInstruction")) or raw.as_list(
            resource.get("dosage")
        )
        for dosage in dosages:
            if isinstance(dosage, dict):
                texts.extend(raw.texts(dosage.get("route")))
                if isinstance(dosage.get("text"), str):
                    texts.append(dosage["text"])
        return texts

    def _use(self, match: Any, text: str, start: datetime | None, ref: str | None) -> MedicationUse:
        ingredient = self.kb.ingredients[match.slug]
        drug_class = self.kb.drug_classes[ingredient.drug_class]
        return MedicationUse(
            slug=match.slug,
            ingredient=ingredient.name,
            drug_class=drug_class.key,
            group=drug_class.group,
            text=text,
            start=start,
            references=(ref,) if ref else (),
            matched_by=match.matched_by,
        )


def _merge(existing: MedicationUse | None, new: MedicationUse) -> MedicationUse:
    """One drug counted once across requests and statements: earliest start, all references."""
    if existing is None:
        return new
    starts = [s for s in (existing.start, new.start) if s is not None]
    rank = {"ingredient-code": 0, "product-code": 1, "text": 2}
    return MedicationUse(
        slug=existing.slug,
        ingredient=existing.ingredient,
        drug_class=existing.drug_class,
        group=existing.group,
        text=existing.text,
        start=min(starts) if starts else None,
        references=tuple(dict.fromkeys(existing.references + new.references)),
        matched_by=min(existing.matched_by, new.matched_by, key=rank.__getitem__),
    )


def _start(resource: Mapping[str, Any]) -> datetime | None:
    """authoredOn; effectivePeriod.start, else effectiveDateTime, else dateAsserted."""
    if resource.get("resourceType") == "MedicationRequest":
        return parse_fhir_datetime(resource.get("authoredOn"))
    period = resource.get("effectivePeriod")
    return (
        (parse_fhir_datetime(period.get("start")) if isinstance(period, dict) else None)
        or parse_fhir_datetime(resource.get("effectiveDateTime"))
        or parse_fhir_datetime(resource.get("dateAsserted"))
    )


def _age(patients: list[dict], now: datetime, issues: list[DataIssue]) -> int | None:
    """P6: completed years at the evaluation time."""
    if not patients:
        return None
    patient = patients[0]
    problem = validation_problem("Patient", patient)
    if problem:
        where = raw.reference_of(patient) or "Patient"
        issues.append(DataIssue("patient", f"{where}: {problem}"))
        return None
    birth = parse_fhir_datetime(patient.get("birthDate"))
    if birth is None:
        return None
    return age_in_years(birth.date(), now.date())
