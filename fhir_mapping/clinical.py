"""The complaint, red flags, known conditions and hypoparathyroidism in what the record says.

§4 P1 (complaint), P7 (red flags, known conditions) and §7b T1 (text), over `Statement`s
from any source: Conditions, the visit's reason, chief complaints, exam findings. A code a
rule lists counts by its code whatever the words say; otherwise the words are read by the
T1 matcher, so a negated, uncertain or historical mention does not count. A Q/Z-chapter
coding bars the words from the complaint and red-flag routes (§7b T1.6).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from fhir_mapping.statements import Statement
from knowledge.codes import matches
from knowledge.kb import CodeMatcher, ConditionConcept, KnowledgeBase
from knowledge.model import ConditionFact, DataIssue, Indicator, PerioralSensation, RedFlag
from knowledge.textmatch import Hit, TermMatcher

COMPLAINT_LABEL = "Lip or facial twitching"
_COMPUTED_FLAGS = {"spreading", "persistent"}  # found by rule, not by a code or a term list


@dataclass
class ClinicalFacts:
    complaints: list[ConditionFact] = field(default_factory=list)
    red_flags: list[RedFlag] = field(default_factory=list)  # one per (flag, statement)
    known: list[ConditionFact] = field(default_factory=list)
    hypoparathyroidism: list[ConditionFact] = field(default_factory=list)
    perioral: list[PerioralSensation] = field(default_factory=list)


def codes_match(matchers: Iterable[CodeMatcher], codings: Iterable[tuple[str, str, str]]) -> bool:
    codings = tuple(codings)
    return any(matches(m, system, code) for m in matchers for system, code, _ in codings)


class StatementReader:
    """Reads statements against the knowledge base's codes and term lists.

    `validate(statement)` returns why the statement's resource cannot be used, or None; it
    is asked only for statements that matched something (select before you validate).
    """

    def __init__(
        self,
        kb: KnowledgeBase,
        terms: TermMatcher,
        issues: list[DataIssue],
        validate: Callable[[Statement], str | None] = lambda statement: None,
    ) -> None:
        self.kb = kb
        self.terms = terms
        self.issues = issues
        self.validate = validate
        spreading = kb.complaint.spreading_flag
        self._flags = [c for c in kb.red_flags if c.key not in {*_COMPUTED_FLAGS, spreading}]
        self._spreading = next((c for c in kb.red_flags if c.key == spreading), None)

    def read(
        self, statements: Iterable[Statement], body_sites: dict[str, str] | None = None
    ) -> ClinicalFacts:
        """`body_sites`: a Condition's first bodySite text, by reference (P1 "another site")."""
        out = ClinicalFacts()
        sites = body_sites or {}
        for statement in statements:
            found = self._read_one(statement)
            if found is None:
                continue
            complaint, flags, known, hypopara, perioral = found
            problem = self.validate(statement)
            if problem:
                ref = statement.reference
                area = "conditions" if statement.source == "condition" else "findings"
                what = ref or ("a Condition" if area == "conditions" else "a record")
                self.issues.append(DataIssue(area, f"{what}: {problem}", ref))
                continue
            text, ref, onset = statement.label, statement.reference, statement.onset
            if complaint:
                out.complaints.append(
                    ConditionFact(
                        "complaint", COMPLAINT_LABEL, text, ref, onset,
                        sites.get(ref or "") if statement.source == "condition" else None,
                    )
                )
            out.red_flags.extend(flags)
            out.known.extend(ConditionFact(c.key, c.label, text, ref, onset) for c in known)
            if hypopara:
                label = self.kb.hypoparathyroidism.label
                out.hypoparathyroidism.append(
                    ConditionFact("hypoparathyroidism", label, text, ref, onset)
                )
            out.perioral.extend(perioral)
        self._second_site(out)
        return out

    def _read_one(self, st: Statement) -> tuple | None:
        hits: dict[str, list[Hit]] = {}
        for text in st.texts:
            for key, found in self.terms.find_all(text).items():
                hits.setdefault(key, []).extend(found)

        def affirmed(key: str, allowed: bool = True) -> Hit | None:
            if not allowed:
                return None
            return next((h for h in hits.get(key, ()) if h.affirmed), None)

        words = not st.text_barred
        complaint = st.complaint and self._is_complaint(st, affirmed, words)
        flags: list[RedFlag] = []
        perioral: list[PerioralSensation] = []
        if st.red_flags:
            for concept in self._flags:
                flag = self._flag(concept, st, hits, words, perioral)
                if flag is not None:
                    flags.append(flag)
            # "spread*" in a clause that names the twitch (terms.yaml `spreading`)
            if self._spreading is not None:
                hit = affirmed("spreading", words)
                if hit is not None:
                    flags.append(self._red_flag(self._spreading, st, self._quote(st, hit), "text"))
        known: list[ConditionConcept] = []
        hypopara = False
        if st.known:
            known = [
                c for c in self.kb.known_conditions
                if codes_match(c.codes, st.codings) or affirmed(f"known:{c.key}")
            ]
            hypopara = codes_match(self.kb.hypoparathyroidism.codes, st.codings) or bool(
                affirmed("hypoparathyroidism")
            )
        if not (complaint or flags or known or hypopara or perioral):
            return None
        return complaint, flags, known, hypopara, perioral

    def _is_complaint(self, st: Statement, affirmed: Callable, words: bool) -> bool:
        definition = self.kb.complaint
        if codes_match(definition.codes, st.codings):
            return True
        if codes_match(definition.codes_needing_text, st.codings) and affirmed(
            "complaint-site", words
        ):
            return True
        return bool(affirmed("complaint", words))

    def _flag(
        self,
        concept: ConditionConcept,
        st: Statement,
        hits: dict[str, list[Hit]],
        words: bool,
        perioral: list[PerioralSensation],
    ) -> RedFlag | None:
        if codes_match(concept.codes, st.codings):
            return self._red_flag(concept, st, st.label if st.texts else concept.label, "code")
        if not words:
            return None
        for hit in hits.get(f"red-flag:{concept.key}", ()):
            if not hit.affirmed:
                continue
            if hit.perioral:
                perioral.append(PerioralSensation(hit.clause, st.reference, st.onset))
                continue
            return self._red_flag(concept, st, self._quote(st, hit), "text")
        return None

    @staticmethod
    def _quote(st: Statement, hit: Hit) -> str:
        """The record's text that holds the hit (the card quotes the record's own words)."""
        return next((t for t in st.texts if hit.clause in t), hit.clause)

    @staticmethod
    def _red_flag(concept: ConditionConcept, st: Statement, evidence: str, how: str) -> RedFlag:
        return RedFlag(
            concept.key,
            concept.label,
            Indicator.parse(concept.severity or "warning"),
            evidence,
            st.reference,
            how,
            onset=st.onset,
            source=st.source,
        )

    def _second_site(self, out: ClinicalFacts) -> None:
        """P1/R9: complaints recorded at more than one body site mean the twitch spreads."""
        sites = {c.body_site.lower() for c in out.complaints if c.body_site}
        spreading = self._spreading
        if len(sites) > 1 and spreading is not None:
            if not any(f.flag == spreading.key for f in out.red_flags):
                out.red_flags.append(
                    RedFlag(
                        spreading.key,
                        spreading.label,
                        Indicator.parse(spreading.severity or "warning"),
                        "twitching recorded at " + " and ".join(sorted(sites)),
                        None,
                        "rule",
                    )
                )
