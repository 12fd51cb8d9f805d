"""Which drug ingredients of interest a medication record names (clinical reference §3.3).

Per coding, in order: RxNorm ingredient code, then RxNorm product (SCD/SBD) code; only
when no coding hits, the names in `coding.display`, `text` and a referenced Medication,
matched on word boundaries with the longest name first ("Sudafed PE" before "Sudafed").
Systemic-only classes drop records whose words say inhaled, nasal, topical or ophthalmic.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from knowledge.codes import RXNORM, normalise_system
from knowledge.kb import KnowledgeBase


@dataclass(frozen=True)
class DrugMatch:
    slug: str
    matched_by: str  # "ingredient-code" | "product-code" | "text"


class MedicationMatcher:
    """Built once per knowledge base; matching a record is a few dictionary and regex hits."""

    def __init__(self, kb: KnowledgeBase):
        self.kb = kb
        self._ingredient_codes = {
            ing.rxnorm: ing.slug for ing in kb.ingredients.values() if ing.rxnorm
        }
        self._product_codes = {p.rxnorm: p.ingredients for p in kb.products if p.rxnorm}
        names: dict[str, tuple[str, ...]] = {}
        for ingredient in kb.ingredients.values():
            for name in (ingredient.name, *ingredient.names):
                names.setdefault(name.lower(), (ingredient.slug,))
        for product in kb.products:
            if product.rxnorm is None:  # combination brands: name -> several ingredients
                names[product.name.lower()] = product.ingredients
        self._names = names
        alternatives = sorted(names, key=len, reverse=True)
        self._name_pattern = re.compile(
            r"(?<![\w-])(" + "|".join(re.escape(n) for n in alternatives) + r")(?![\w-])",
            re.IGNORECASE,
        )

    def match_concept(
        self, concept: dict | None, extra_texts: Iterable[str] = (), route_texts: Iterable[str] = ()
    ) -> list[DrugMatch]:
        """Ingredients named by a CodeableConcept (plus a referenced Medication's words)."""
        concept = concept if isinstance(concept, dict) else {}
        coding_list = concept.get("coding")
        codings = (
            [c for c in coding_list if isinstance(c, dict)] if isinstance(coding_list, list) else []
        )
        matches = self._match_codes(codings)
        texts = [c.get("display") for c in codings] + [concept.get("text"), *extra_texts]
        texts = [t for t in texts if isinstance(t, str) and t]
        if not matches:
            matches = self._match_text(texts)
        return self._drop_non_systemic(matches, [*texts, *route_texts])

    def match_codings(self, codings: Iterable[dict]) -> list[DrugMatch]:
        return self._match_codes([c for c in codings if isinstance(c, dict)])

    def _match_codes(self, codings: list[dict]) -> list[DrugMatch]:
        found: dict[str, DrugMatch] = {}
        for coding in codings:
            system = coding.get("system")
            if not isinstance(system, str) or normalise_system(system) != RXNORM:
                continue
            code = str(coding.get("code", "")).strip()
            if code in self._ingredient_codes:
                slug = self._ingredient_codes[code]
                found.setdefault(slug, DrugMatch(slug, "ingredient-code"))
            elif code in self._product_codes:
                for slug in self._product_codes[code]:
                    found.setdefault(slug, DrugMatch(slug, "product-code"))
        return list(found.values())

    def _match_text(self, texts: list[str]) -> list[DrugMatch]:
        found: dict[str, DrugMatch] = {}
        for text in texts:
            for name in self._name_pattern.findall(text):
                for slug in self._names[name.lower()]:
                    found.setdefault(slug, DrugMatch(slug, "text"))
            if found:
                break  # the first text that names a drug decides, as for codes
        return list(found.values())

    def _drop_non_systemic(self, matches: list[DrugMatch], texts: list[str]) -> list[DrugMatch]:
        if not matches:
            return matches
        local_route = any(self.kb.route_exclusions.search(t) for t in texts)
        if not local_route:
            return matches
        kept = []
        for match in matches:
            drug_class = self.kb.drug_classes[self.kb.ingredients[match.slug].drug_class]
            if not drug_class.systemic_only:
                kept.append(match)
        return kept


_MATCHERS: dict[int, tuple[KnowledgeBase, MedicationMatcher]] = {}


def matcher_for(kb: KnowledgeBase) -> MedicationMatcher:
    """The matcher of a knowledge base, built once (its name regex is not rebuilt per call)."""
    cached = _MATCHERS.get(id(kb))
    if cached is None or cached[0] is not kb:  # the id of a collected kb may be reused
        if len(_MATCHERS) >= 4:  # a process serves one knowledge base; tests build many
            _MATCHERS.clear()
        cached = (kb, MedicationMatcher(kb))
        _MATCHERS[id(kb)] = cached
    return cached[1]
