"""An app with the ops parts installed, for the ops tests."""

from __future__ import annotations

import pytest

from cds_hooks import create_app
from cds_hooks.ops import metrics as ops_metrics
from cds_hooks.ops import observe, openapi
from cds_hooks.runtime import runtime

CONFIG = {
    "env": "development",
    "auth_mode": "disabled",
    "database_url": "sqlite://",
    "patient_id_key": "k" * 64,
}


def ops_app(**overrides):
    app = create_app({**CONFIG, **overrides})
    if "metrics" not in app.blueprints:
        rt = runtime(app)
        metrics = ops_metrics.Metrics(rt.kb.services, rt.kb.version)
        observe.install_observation(app, metrics)

        def noted(call, result):
            observe.note_hook_instance(call.hook_instance)
            observe.note_cards(result.cards)

        rt.listeners.append(noted)
        ops_metrics.install_metrics(app, metrics)
        openapi.install_openapi(
            app,
            version="test",
            service_ids=rt.kb.services,
            hooks={s.hook for s in rt.kb.services.values()},
        )
    return app


@pytest.fixture
def app():
    built = ops_app()
    yield built
    store = runtime(built).store
    if store is not None:
        store.dispose()
