"""The pages through Flask's test client: a development app with its SQLite store."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.browser.server import build_app


@pytest.fixture
def app(tmp_path: Path) -> Any:
    return build_app(tmp_path)


@pytest.fixture
def client(app: Any) -> Any:
    return app.test_client()
