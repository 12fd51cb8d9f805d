"""The app the browser tests open: development mode, authentication off, a SQLite store."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flask import Flask

from cds_hooks.app import create_app

PATIENT_KEY = "browser-test-patient-key-0123456789"


def build_app(store_dir: Path, **settings: Any) -> Flask:
    return create_app(
        {
            "env": "development",
            "auth_mode": "disabled",
            "database_url": f"sqlite:///{store_dir / 'lipcds.db'}",
            "patient_id_key": PATIENT_KEY,
            **settings,
        }
    )
