"""What a service handler is given and what it returns."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from cds_hooks.sites import Site
from fhir_mapping.records import KeyData
from knowledge.kb import KnowledgeBase, ServiceDefinition
from knowledge.model import Evaluation
from knowledge.policy import Policy


class ShownCards(Protocol):
    """Which cards order-select already showed in an encounter (the store answers it)."""

    def shown_at_order_select(
        self, *, encounter_id: str, issuer: str | None = None, tenant: str | None = None
    ) -> set[tuple[str | None, str]]: ...


@dataclass
class HookCall:
    """A validated hook request with its resolved data, handed to the service's handler."""

    service: ServiceDefinition
    hook_instance: str
    context: dict[str, Any]  # validated, snake_case keys (patient_id, draft_orders, ...)
    data: dict[str, KeyData]
    now: datetime
    kb: KnowledgeBase
    site: Site  # the calling site's policy, switched-off rules and shadow flag
    fhir_server: str | None = None
    tenant: str | None = None
    issuer: str | None = None
    shown_cards: ShownCards | None = None

    @property
    def policy(self) -> Policy:
        return self.site.policy

    @property
    def disabled_rules(self) -> frozenset[str]:
        return self.site.disabled_rules


@dataclass
class HookResult:
    """What a handler returns: the cards, and the evaluation behind them for the record."""

    cards: list[dict[str, Any]]
    evaluation: Evaluation | None = None

    def response(self) -> dict[str, Any]:
        return {"cards": self.cards}


Handler = Callable[[HookCall], HookResult]
# Told of every answered call before the response goes out (the card recorder is one).
ResultListener = Callable[[HookCall, HookResult], None]
