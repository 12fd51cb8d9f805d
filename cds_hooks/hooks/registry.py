"""The services this endpoint offers, keyed by service id, each with its handler.

A service of the knowledge base (`knowledge/data/services.yaml`) is offered only when a
handler is registered for its id here; one without a handler stops start-up.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from cds_hooks.config import ConfigError
from cds_hooks.hooks.call import Handler
from cds_hooks.hooks.orders import order_select, order_sign
from cds_hooks.hooks.patient_view import patient_view
from knowledge.kb import KnowledgeBase, ServiceDefinition

HANDLERS: Mapping[str, Handler] = {
    "lip-twitch-patient-view": patient_view,
    "lip-twitch-order-select": order_select,
    "lip-twitch-order-sign": order_sign,
}


@dataclass(frozen=True)
class Service:
    definition: ServiceDefinition
    handler: Handler


class ServiceRegistry:
    """Service id → definition and handler."""

    def __init__(self, services: Mapping[str, Service]):
        self._services = dict(services)

    @classmethod
    def build(
        cls, kb: KnowledgeBase, handlers: Mapping[str, Handler] = HANDLERS
    ) -> ServiceRegistry:
        missing = sorted(set(kb.services) - set(handlers))
        if missing:
            raise ConfigError(
                f"knowledge base services without a handler: {', '.join(missing)} "
                f"(handled: {', '.join(sorted(handlers))})"
            )
        return cls({sid: Service(d, handlers[sid]) for sid, d in kb.services.items()})

    def get(self, service_id: str) -> Service | None:
        return self._services.get(service_id)

    def __contains__(self, service_id: object) -> bool:
        return service_id in self._services

    def __iter__(self) -> Iterator[Service]:
        return iter(self._services.values())

    def __len__(self) -> int:
        return len(self._services)
