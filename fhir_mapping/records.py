"""The data of one prefetch key, in one of three states, however it reached us.

A prefetch value, or a FHIR search made on a miss, ends up as a `KeyData`: the resources
it holds (raw JSON dicts, not yet validated), or why there are none. `EMPTY` and
`UNAVAILABLE` are kept apart all the way to the rules (DESIGN.md, Decisions).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from knowledge.model import DataState


@dataclass(frozen=True)
class KeyData:
    key: str
    state: DataState
    resources: tuple[dict, ...] = ()
    problem: str | None = None  # why UNAVAILABLE, or what was dropped; never holds a token
    issues: tuple[str, ...] = field(default_factory=tuple)  # entries skipped, said in the cards

    @classmethod
    def unavailable(cls, key: str, problem: str) -> KeyData:
        return cls(key, DataState.UNAVAILABLE, problem=problem)
