"""The rule engine: facts → findings, by the rules of the knowledge base.

`core` holds the evaluator registry and the one evaluation loop, `labs` the lab judgement
every rule shares; the evaluators are grouped by clinical area (`general`, `electrolytes`,
`medications`, `neurology`) and register themselves by name when imported here.
"""

from knowledge.engine import electrolytes, general, medications, neurology
from knowledge.engine.core import EVALUATORS, EngineError, evaluate, evaluate_orders

__all__ = [
    "EVALUATORS",
    "EngineError",
    "electrolytes",
    "evaluate",
    "evaluate_orders",
    "general",
    "medications",
    "neurology",
]
