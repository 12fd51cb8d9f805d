"""The app as `create_app` builds it, for the ops tests."""

from __future__ import annotations

import pytest

from cds_hooks import create_app
from cds_hooks.runtime import runtime

CONFIG = {
    "env": "development",
    "auth_mode": "disabled",
    "database_url": "sqlite://",
    "patient_id_key": "k" * 64,
}


def ops_app(**overrides):
    return create_app({**CONFIG, **overrides})


@pytest.fixture
def app():
    built = ops_app()
    yield built
    store = runtime(built).store
    if store is not None:
        store.dispose()
