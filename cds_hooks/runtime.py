"""The typed parts of a running service, built once by `cds_hooks.app.create_app`."""

from __future__ import annotations

from dataclasses import dataclass, field

from flask import Flask
from sqlalchemy import Engine

from cds_hooks.config import Settings
from cds_hooks.hooks.call import ResultListener, ShownCards
from cds_hooks.hooks.gate import CpuGate
from cds_hooks.hooks.prefetch import Fetcher
from cds_hooks.hooks.registry import ServiceRegistry
from cds_hooks.security.auth import TokenVerifier
from cds_hooks.security.replay import ReplayGuard
from cds_hooks.sites import SiteRegistry
from cds_hooks.store import Store
from cds_hooks.store.writer import RecordWriter, ShownCardsWithWaiting
from knowledge import KnowledgeBase
from knowledge.policy import Policy

_EXTENSION = "lipcds"


@dataclass
class Runtime:
    """What the service needs on every request."""

    settings: Settings
    kb: KnowledgeBase
    policy: Policy  # the deployment's thresholds; a site may move them (`sites`)
    sites: SiteRegistry
    services: ServiceRegistry
    store: Store | None = None
    fetcher: Fetcher | None = None  # fetch-on-miss from allow-listed FHIR servers
    verifier: TokenVerifier | None = None  # None when authentication is disabled
    replay_guard: ReplayGuard | None = None
    writer: RecordWriter | None = None  # card records on their way to the store
    listeners: list[ResultListener] = field(default_factory=list)
    gate: CpuGate = field(default_factory=CpuGate)  # one hook computation at a time

    def shown_cards(self) -> ShownCards | None:
        """What order-select showed: the store, and the records still waiting for it."""
        if self.store is None or self.writer is None:
            return self.store
        return ShownCardsWithWaiting(self.store, self.writer)

    def engines(self) -> list[Engine]:
        """The database engines this runtime holds (the store's, the replay guard's)."""
        found = [self.store.engine] if self.store is not None else []
        guard_engine = getattr(self.replay_guard, "engine", None)
        if isinstance(guard_engine, Engine) and guard_engine not in found:
            found.append(guard_engine)
        return found


def attach(app: Flask, rt: Runtime) -> None:
    app.extensions[_EXTENSION] = rt


def runtime(app: Flask) -> Runtime:
    """The runtime `create_app` attached to `app`."""
    return app.extensions[_EXTENSION]


def find_runtime(app: object) -> Runtime | None:
    """The runtime of `app`, or None for an app `create_app` did not build."""
    rt = getattr(app, "extensions", {}).get(_EXTENSION)
    return rt if isinstance(rt, Runtime) else None
