"""The rule engine: facts → findings, by the rules of the knowledge base.

`core` holds the evaluator registry and the one evaluation loop, `labs` the lab judgement
every rule shares, `contract` the check of every rule against its evaluator; the evaluators
are grouped by clinical area and register themselves by name when imported here.
"""

from knowledge.engine.core import EVALUATORS, EngineError, evaluate, evaluate_orders
from knowledge.engine.electrolytes import (
    hypoparathyroidism,
    low_analyte,
    low_calcium,
    missing_labs,
)
from knowledge.engine.general import data_unavailable, lifestyle
from knowledge.engine.medications import (
    depleting_medication,
    draft_medication,
    suspect_medication,
)
from knowledge.engine.neurology import known_conditions, red_flags

__all__ = [
    "EVALUATORS",
    "EngineError",
    "data_unavailable",
    "depleting_medication",
    "draft_medication",
    "evaluate",
    "evaluate_orders",
    "hypoparathyroidism",
    "known_conditions",
    "lifestyle",
    "low_analyte",
    "low_calcium",
    "missing_labs",
    "red_flags",
    "suspect_medication",
]
