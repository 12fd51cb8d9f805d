"""Reading the record's free text: whole words, clauses, negation (clinical reference §7b T1).

The terms live in `knowledge/data/terms.yaml` as lists a clinical author can read and
extend; `compile_terms` turns the parsed file into a `TermMatcher` once, at load. A text is
normalised (NFKC, case-folded, accents stripped, whitespace collapsed), cut into clauses
and into words; every term of every list is then found in one pass over the words, through
an index keyed by a term's first word (or the first letters of a stem). Each category
(the complaint, a red flag, a known condition, a lab name) is judged from those
occurrences: phrases, pairs of parts close together in one clause, exclusions, and
NegEx-style negation with scope terminators and pseudo-negations.

Standard library only: this module knows nothing of FHIR or of the service.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

AFFIRMED = "affirmed"
NEGATED = "negated"
UNCERTAIN = "uncertain"
HISTORICAL = "historical"
FAMILY = "family"
CUE_KINDS = (NEGATED, UNCERTAIN, HISTORICAL, FAMILY)

GROUPS = {  # terms file section -> prefix of the category keys it defines
    "complaint": "complaint",
    "complaint_site": "complaint-site",
    "spreading": "spreading",
    "red_flags": "red-flag:",
    "known_conditions": "known:",
    "hypoparathyroidism": "hypoparathyroidism",
    "analytes": "analyte:",
}
_SINGLE = {"complaint", "complaint_site", "spreading", "hypoparathyroidism"}
_CATEGORY_FIELDS = {
    "phrases", "exact_case", "pairs", "needs", "exclude", "not_with", "negation",
    "history_negates", "whole_text", "perioral",
}
_TERMINATOR = ("terminator",)
_PSEUDO = ("pseudo",)

_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'", "`": "'", "\u00b4": "'"})
# a clause ends at ; | : a line break, or a full stop that is not a decimal point
_CLAUSE_END = re.compile(r"[;|:\n\r\v\f\x85\u2028\u2029]|(?<!\d)\.|\.(?!\d)")
_LETTER = r"(?:[^\W_]|[\u0300-\u036f])"
_WORD = re.compile(rf"{_LETTER}+(?:['\u2019\u2018\u02bc]{_LETTER}+)*")
_TERM_CHARS = re.compile(r"^[\w\s'\u2019\-/*]+$")
_MIN_STEM = 3
_MEMO_WORDS = 50_000  # distinct words remembered before the memo starts again


class TermsError(ValueError):
    """The terms file is malformed; `problems` names each fault as "path: message"."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = tuple(problems)
        super().__init__("\n".join(self.problems))


def strip_accents(text: str) -> str:
    decomposed = unicodedata.normalize("NFD", text)
    return unicodedata.normalize(
        "NFC", "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    )


def normalise(text: str) -> str:
    """NFKC, accents stripped, case-folded, whitespace collapsed (T1 step 1)."""
    return " ".join(strip_accents(unicodedata.normalize("NFKC", text)).casefold().split())


def split_clauses(text: str) -> list[tuple[str, str]]:
    """(clause, the character that ended it) per non-empty clause, whitespace collapsed."""
    text = unicodedata.normalize("NFKC", text)
    out: list[tuple[str, str]] = []
    start = 0
    for found in _CLAUSE_END.finditer(text):
        clause = " ".join(text[start : found.start()].split())
        if clause:
            out.append((clause, found.group()))
        start = found.end()
    clause = " ".join(text[start:].split())
    if clause:
        out.append((clause, ""))
    return out


def _fold(word: str) -> tuple[str, str]:
    """(as written without accents, case-folded) of one word."""
    plain = strip_accents(word).translate(_APOSTROPHES)
    return plain, plain.casefold()


@dataclass(frozen=True)
class Hit:
    """One place a category's terms matched, and whether the text affirms it."""

    category: str  # e.g. "red-flag:facial-weakness"
    status: str  # affirmed | negated | uncertain | historical | family
    words: str  # the matched words as the record wrote them
    clause: str  # the clause they stand in, as written
    cue: str | None = None  # the words that negate or qualify it
    perioral: bool = False  # numbness whose clause names only the lips/mouth

    @property
    def affirmed(self) -> bool:
        return self.status == AFFIRMED


@dataclass(frozen=True)
class _Term:
    words: tuple[str, ...]
    stems: tuple[bool, ...]
    exact_case: bool


@dataclass
class _Clause:
    text: str
    starts: list[int]
    ends: list[int]
    occurrences: dict[tuple[str, ...], list[tuple[int, int]]]
    ended_by: str = ""
    answer: tuple[str, str] | None = None  # (cue kind, the answer) from a "X: none" clause

    def words(self, span: tuple[int, int]) -> str:
        return self.text[self.starts[span[0]] : self.ends[span[1]]]


@dataclass(frozen=True)
class _Category:
    key: str
    phrases: tuple[str, ...] | None = None
    exact: tuple[str, ...] | None = None
    pairs: tuple[tuple[tuple[str, ...], tuple[str, ...]], ...] = ()
    needs: tuple[str, ...] | None = None
    exclude: tuple[str, ...] | None = None
    not_with: tuple[str, ...] | None = None
    negation: bool = True
    history_negates: bool = True
    whole_text: bool = False
    perioral: tuple[tuple[str, ...], tuple[str, ...]] | None = None
    listed: dict[str, tuple[str, ...]] = field(default_factory=dict)  # field -> terms as written


@dataclass
class _Builder:
    problems: list[str] = field(default_factory=list)
    terms: dict[_Term, int] = field(default_factory=dict)
    term_list: list[_Term] = field(default_factory=list)
    roles: list[set[tuple[str, ...]]] = field(default_factory=list)

    def add(self, where: str, raw: Any, role: tuple[str, ...], exact_case: bool = False) -> None:
        term = self.parse(where, raw, exact_case)
        if term is None:
            return
        index = self.terms.get(term)
        if index is None:
            index = self.terms[term] = len(self.term_list)
            self.term_list.append(term)
            self.roles.append(set())
        self.roles[index].add(role)

    def parse(self, where: str, raw: Any, exact_case: bool) -> _Term | None:
        if isinstance(raw, bool):
            self.problems.append(
                f"{where}: YAML read this term as {str(raw).lower()}; quote it (\"no\")"
            )
            return None
        if not isinstance(raw, str) or not raw.strip():
            self.problems.append(f"{where}: a term must be a non-empty string")
            return None
        if not _TERM_CHARS.match(raw):
            self.problems.append(f"{where}: {raw!r} holds characters a term cannot have")
            return None
        words: list[str] = []
        stems: list[bool] = []
        for chunk in raw.split():
            stem = chunk.endswith("*")
            body = chunk[:-1] if stem else chunk
            if "*" in body:
                self.problems.append(f"{where}: {raw!r}: '*' may only end a word")
                return None
            found = [m.group() for m in _WORD.finditer(unicodedata.normalize("NFKC", body))]
            if not found or "".join(found) != "".join(re.split(r"[-/]", body)):
                self.problems.append(f"{where}: {raw!r}: {chunk!r} is not a word")
                return None
            for position, word in enumerate(found):
                plain, folded = _fold(word)
                words.append(plain if exact_case else folded)
                stems.append(stem and position == len(found) - 1)
            if stem and len(words[-1]) < _MIN_STEM:
                self.problems.append(
                    f"{where}: {raw!r}: a stem needs at least {_MIN_STEM} letters"
                )
                return None
        return _Term(tuple(words), tuple(stems), exact_case)


class TermMatcher:
    """The compiled terms: finds every category's hits in a text."""

    def __init__(
        self,
        builder: _Builder,
        categories: dict[str, _Category],
        window: int,
        max_gap: int,
        answers: Mapping[tuple[str, ...], str],
    ) -> None:
        self._terms = builder.term_list
        self._roles = [frozenset(r) for r in builder.roles]
        self._categories = categories
        self.window = window
        self.max_gap = max_gap
        self._answers = dict(answers)  # folded words -> cue kind
        self._by_word: dict[str, list[int]] = {}
        self._by_stem: dict[str, list[int]] = {}
        self._by_exact: dict[str, list[int]] = {}
        for index, term in enumerate(self._terms):
            first = term.words[0]
            if term.exact_case:
                self._by_exact.setdefault(first, []).append(index)
            elif term.stems[0]:
                self._by_stem.setdefault(first, []).append(index)
            else:
                self._by_word.setdefault(first, []).append(index)
        self._stem_lengths = sorted({len(s) for s in self._by_stem})
        self._memo: dict[str, tuple[int, ...]] = {}
        # the roles whose occurrence may make a category match (clause-reading ones only)
        self._triggers: dict[tuple[str, ...], list[str]] = {}
        for key, category in categories.items():
            if category.whole_text:
                continue
            roles = [category.phrases, category.exact, *(first for first, _ in category.pairs)]
            for role in roles:
                if role is not None:
                    self._triggers.setdefault(role, []).append(key)
        self._analyse = functools.lru_cache(maxsize=4096)(self._analyse_text)

    @property
    def keys(self) -> frozenset[str]:
        return frozenset(self._categories)

    def listed(self, key: str) -> dict[str, tuple[str, ...]]:
        """The terms of category `key` as the file writes them, by field ("phrases",
        "pair0.first", ...), for people to read; empty for an unknown key."""
        category = self._categories.get(key)
        return dict(category.listed) if category is not None else {}

    def find(self, key: str, text: str) -> tuple[Hit, ...]:
        """Every hit of category `key` in `text`, affirmed or not, in reading order."""
        category = self._categories[key]
        if not isinstance(text, str) or not text.strip():
            return ()
        hits: list[Hit] = []
        for clause in self._analyse(text, category.whole_text):
            hits.extend(self._judge(category, clause))
        return tuple(hits)

    def find_all(self, text: str) -> dict[str, tuple[Hit, ...]]:
        """The hits of every clause-reading category in `text`, by category key.

        One reading of the text serves all categories; only the categories whose terms
        occur in a clause are judged there.
        """
        if not isinstance(text, str) or not text.strip():
            return {}
        found: dict[str, list[Hit]] = {}
        for clause in self._analyse(text, False):
            keys = {k for role in clause.occurrences for k in self._triggers.get(role, ())}
            for key in sorted(keys):
                hits = self._judge(self._categories[key], clause)
                if hits:
                    found.setdefault(key, []).extend(hits)
        return {key: tuple(hits) for key, hits in found.items()}

    def affirmed(self, key: str, texts: Iterable[str]) -> Hit | None:
        """The first affirmed hit of `key` in `texts`, or None."""
        for text in texts:
            for hit in self.find(key, text):
                if hit.affirmed:
                    return hit
        return None

    def mentions(self, key: str, texts: Iterable[str]) -> bool:
        """True when `key` matches anywhere in `texts`, negated or not (lab names)."""
        return any(self.find(key, text) for text in texts)

    # -- reading a text ---------------------------------------------------------------

    def _analyse_text(self, text: str, whole: bool) -> tuple[_Clause, ...]:
        if whole:
            collapsed = " ".join(unicodedata.normalize("NFKC", text).split())
            parts = [(collapsed, "")] if collapsed else []
        else:
            parts = split_clauses(text)
        clauses = [self._read_clause(clause, ended_by) for clause, ended_by in parts]
        for before, after in zip(clauses, clauses[1:], strict=False):
            if before.ended_by == ":":
                kind = self._answers.get(self._folded_words(after))
                if kind is not None:
                    before.answer = (kind, after.text)
        return tuple(clauses)

    def _folded_words(self, clause: _Clause) -> tuple[str, ...]:
        return tuple(
            _fold(clause.text[s:e])[1] for s, e in zip(clause.starts, clause.ends, strict=True)
        )

    def _read_clause(self, text: str, ended_by: str) -> _Clause:
        starts: list[int] = []
        ends: list[int] = []
        plain: list[str] = []
        folded: list[str] = []
        ascii_text = text.isascii()
        for found in _WORD.finditer(text):
            starts.append(found.start())
            ends.append(found.end())
            word = found.group()
            if ascii_text:
                plain.append(word)
                folded.append(word.lower())
            else:
                p, f = _fold(word)
                plain.append(p)
                folded.append(f)
        occurrences: dict[tuple[str, ...], list[tuple[int, int]]] = {}
        count = len(folded)
        for i in range(count):
            candidates = self._candidates(folded[i])
            exact = self._by_exact.get(plain[i])
            if exact:
                candidates = (*candidates, *exact)
            for index in candidates:
                term = self._terms[index]
                end = i + len(term.words) - 1
                if end >= count:
                    continue
                source = plain if term.exact_case else folded
                if all(
                    source[i + k].startswith(w) if stem else source[i + k] == w
                    for k, (w, stem) in enumerate(zip(term.words, term.stems, strict=True))
                ):
                    for role in self._roles[index]:
                        occurrences.setdefault(role, []).append((i, end))
        return _Clause(text, starts, ends, occurrences, ended_by)

    def _candidates(self, word: str) -> tuple[int, ...]:
        """The terms whose first word is `word` or a stem of it (memoised per word)."""
        found = self._memo.get(word)
        if found is None:
            ids = list(self._by_word.get(word, ()))
            for length in self._stem_lengths:
                if length > len(word):
                    break
                ids.extend(self._by_stem.get(word[:length], ()))
            found = tuple(ids)
            if len(self._memo) >= _MEMO_WORDS:
                self._memo.clear()
            self._memo[word] = found
        return found

    # -- judging one category in one clause -------------------------------------------

    def _judge(self, category: _Category, clause: _Clause) -> list[Hit]:
        occ = clause.occurrences
        spans: list[tuple[int, int]] = []
        if category.phrases and (category.needs is None or occ.get(category.needs)):
            spans.extend(occ.get(category.phrases, ()))
        if category.exact:
            spans.extend(occ.get(category.exact, ()))
        for first, second in category.pairs:
            for a in occ.get(first, ()):
                for b in occ.get(second, ()):
                    if a[1] < b[0]:
                        gap = b[0] - a[1] - 1
                    elif b[1] < a[0]:
                        gap = a[0] - b[1] - 1
                    else:
                        continue
                    if gap <= self.max_gap:
                        spans.append((min(a[0], b[0]), max(a[1], b[1])))
        if not spans:
            return []
        if category.not_with and occ.get(category.not_with):
            return []
        excluded = occ.get(category.exclude, ()) if category.exclude else ()
        spans = [
            s
            for s in sorted(set(spans))
            if not any(x[0] <= s[1] and s[0] <= x[1] for x in excluded)
        ]
        perioral = False
        if category.perioral is not None and spans:
            sites, others = category.perioral
            perioral = bool(occ.get(sites)) and not occ.get(others)
        hits = []
        for span in spans:
            status, cue = self._status(category, clause, span)
            hits.append(Hit(category.key, status, clause.words(span), clause.text, cue, perioral))
        return hits

    def _status(
        self, category: _Category, clause: _Clause, span: tuple[int, int]
    ) -> tuple[str, str | None]:
        if not category.negation:
            return AFFIRMED, None
        occ = clause.occurrences
        start, end = span
        terminators = occ.get(_TERMINATOR, ())
        pseudo = occ.get(_PSEUDO, ())
        best: tuple[int, str, tuple[int, int]] | None = None
        for kind in CUE_KINDS:
            if kind == HISTORICAL and not category.history_negates:
                continue
            for cue in occ.get(("before", kind), ()):
                inside = start < cue[0] and cue[1] < end
                if not inside and not (cue[1] < start and start - cue[1] <= self.window):
                    continue
                if any(p[0] <= cue[0] and cue[1] <= p[1] for p in pseudo):
                    continue
                if not inside and any(cue[1] < t[0] and t[1] < start for t in terminators):
                    continue
                distance = 0 if inside else start - cue[1]
                if best is None or distance < best[0]:
                    best = (distance, kind, cue)
            for cue in occ.get(("after", kind), ()):
                if not (cue[0] > end and cue[0] - end <= self.window):
                    continue
                if any(end < t[0] and t[1] < cue[0] for t in terminators):
                    continue
                distance = cue[0] - end
                if best is None or distance < best[0]:
                    best = (distance, kind, cue)
        if best is not None:
            return best[1], clause.words(best[2])
        if clause.answer is not None:
            kind, answer = clause.answer
            if kind != HISTORICAL or category.history_negates:
                return kind, answer
        return AFFIRMED, None


# -- compiling the terms file ---------------------------------------------------------


def compile_terms(doc: Mapping[str, Any], *, file: str = "terms.yaml") -> TermMatcher:
    """Check the parsed terms file and compile it; `TermsError` names every fault."""
    builder = _Builder()
    problems = builder.problems
    if not isinstance(doc, Mapping):
        raise TermsError([f"{file}: the file must hold a mapping at the top level"])
    known = {"matching", "lists", "negation", *GROUPS}
    for key in doc:
        if key not in known:
            problems.append(f"{file}: {key}: unknown section (known: {', '.join(sorted(known))})")

    matching = doc.get("matching") or {}
    window = _number(problems, f"{file}: matching.negation_window", matching, "negation_window",
                     5, 1, 10)
    max_gap = _number(problems, f"{file}: matching.pair_max_gap", matching, "pair_max_gap",
                      4, 0, 10)

    lists_doc = doc.get("lists") or {}
    lists: dict[str, list[Any]] = {}
    if not isinstance(lists_doc, Mapping):
        problems.append(f"{file}: lists: must be a mapping of list names to term lists")
    else:
        for name, terms in lists_doc.items():
            if not isinstance(terms, list) or not terms:
                problems.append(f"{file}: lists.{name}: must be a non-empty list of terms")
            else:
                lists[str(name)] = terms

    def terms_of(where: str, value: Any) -> list[Any]:
        if isinstance(value, str) and value in lists:
            return lists[value]
        if isinstance(value, list) and value:
            return value
        problems.append(f"{where}: must be a non-empty list of terms or the name of a list "
                        f"under `lists` (known: {', '.join(sorted(lists)) or 'none'})")
        return []

    def add_all(
        where: str, value: Any, role: tuple[str, ...], exact: bool = False
    ) -> tuple[str, ...]:
        seen: set[Any] = set()
        terms = terms_of(where, value)
        for i, raw in enumerate(terms):
            if isinstance(raw, str) and raw in seen:
                problems.append(f"{where}[{i}]: duplicate term {raw!r}")
            seen.add(raw)
            builder.add(f"{where}[{i}]", raw, role, exact)
        return tuple(str(t) for t in terms)

    answers = _compile_negation(doc.get("negation"), builder, add_all, terms_of, file)

    categories: dict[str, _Category] = {}
    for section, prefix in GROUPS.items():
        body = doc.get(section)
        if body is None:
            problems.append(f"{file}: {section}: section missing")
            continue
        if section in _SINGLE:
            entries = {prefix: (f"{file}: {section}", body)}
        elif isinstance(body, Mapping) and body:
            entries = {f"{prefix}{k}": (f"{file}: {section}.{k}", v) for k, v in body.items()}
        else:
            problems.append(f"{file}: {section}: must be a non-empty mapping")
            continue
        for key, (where, spec) in entries.items():
            category = _compile_category(key, where, spec, add_all, problems)
            if category is not None:
                categories[key] = category
    if problems:
        raise TermsError(problems)
    return TermMatcher(builder, categories, window, max_gap, answers)


def _number(problems: list[str], where: str, doc: Any, name: str, default: int,
            low: int, high: int) -> int:
    value = doc.get(name, default) if isinstance(doc, Mapping) else default
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        problems.append(f"{where}: must be a whole number from {low} to {high}")
        return default
    return value


def _compile_negation(doc: Any, builder: _Builder, add_all: Any, terms_of: Any,
                      file: str) -> dict[tuple[str, ...], str]:
    problems = builder.problems
    where = f"{file}: negation"
    if not isinstance(doc, Mapping):
        problems.append(f"{where}: section missing or not a mapping")
        return {}
    for key in doc:
        if key not in {"before", "after", "terminators", "pseudo", "answers"}:
            problems.append(f"{where}.{key}: unknown field")
    for position in ("before", "after"):
        kinds = doc.get(position)
        if not isinstance(kinds, Mapping) or not kinds:
            problems.append(f"{where}.{position}: must map cue kinds to term lists")
            continue
        for kind, terms in kinds.items():
            if kind not in CUE_KINDS:
                problems.append(f"{where}.{position}.{kind}: unknown cue kind "
                                f"(known: {', '.join(CUE_KINDS)})")
                continue
            add_all(f"{where}.{position}.{kind}", terms, (position, kind))
    add_all(f"{where}.terminators", doc.get("terminators"), _TERMINATOR)
    if doc.get("pseudo") is not None:
        add_all(f"{where}.pseudo", doc.get("pseudo"), _PSEUDO)
    answers: dict[tuple[str, ...], str] = {}
    for kind, terms in (doc.get("answers") or {}).items():
        if kind not in CUE_KINDS:
            problems.append(f"{where}.answers.{kind}: unknown cue kind")
            continue
        for i, raw in enumerate(terms_of(f"{where}.answers.{kind}", terms)):
            term = builder.parse(f"{where}.answers.{kind}[{i}]", raw, False)
            if term is not None:
                answers[term.words] = kind
    return answers


def _compile_category(key: str, where: str, spec: Any, add_all: Any,
                      problems: list[str]) -> _Category | None:
    if not isinstance(spec, Mapping):
        problems.append(f"{where}: must be a mapping")
        return None
    for name in spec:
        if name not in _CATEGORY_FIELDS:
            problems.append(f"{where}.{name}: unknown field "
                            f"(known: {', '.join(sorted(_CATEGORY_FIELDS))})")
    if not any(spec.get(name) for name in ("phrases", "exact_case", "pairs")):
        problems.append(f"{where}: needs at least one of phrases, exact_case, pairs")
    flags = {}
    for name, default in (("negation", True), ("history_negates", True), ("whole_text", False)):
        value = spec.get(name, default)
        if not isinstance(value, bool):
            problems.append(f"{where}.{name}: must be true or false")
            value = default
        flags[name] = value

    listed: dict[str, tuple[str, ...]] = {}

    def role(name: str, exact: bool = False) -> tuple[str, ...] | None:
        if spec.get(name) is None:
            return None
        r = (key, name)
        listed[name] = add_all(f"{where}.{name}", spec[name], r, exact)
        return r

    pairs = []
    raw_pairs = spec.get("pairs") or []
    if not isinstance(raw_pairs, list):
        problems.append(f"{where}.pairs: must be a list of {{first, second}}")
        raw_pairs = []
    for i, pair in enumerate(raw_pairs):
        if not isinstance(pair, Mapping) or set(pair) != {"first", "second"}:
            problems.append(f"{where}.pairs[{i}]: must have exactly `first` and `second`")
            continue
        first, second = (key, f"pair{i}.first"), (key, f"pair{i}.second")
        listed[f"pair{i}.first"] = add_all(f"{where}.pairs[{i}].first", pair["first"], first)
        listed[f"pair{i}.second"] = add_all(f"{where}.pairs[{i}].second", pair["second"], second)
        pairs.append((first, second))

    perioral = None
    if spec.get("perioral") is not None:
        p = spec["perioral"]
        if not isinstance(p, Mapping) or set(p) != {"sites", "other_sites"}:
            problems.append(f"{where}.perioral: must have exactly `sites` and `other_sites`")
        else:
            sites, others = (key, "perioral.sites"), (key, "perioral.other_sites")
            add_all(f"{where}.perioral.sites", p["sites"], sites)
            add_all(f"{where}.perioral.other_sites", p["other_sites"], others)
            perioral = (sites, others)

    return _Category(
        key=key,
        phrases=role("phrases"),
        exact=role("exact_case", exact=True),
        pairs=tuple(pairs),
        needs=role("needs"),
        exclude=role("exclude"),
        not_with=role("not_with"),
        negation=flags["negation"],
        history_negates=flags["history_negates"],
        whole_text=flags["whole_text"],
        perioral=perioral,
        listed=listed,
    )
