"""Process entry points for the concurrency tests (importable under the spawn start method)."""

from __future__ import annotations

from typing import Any


def post_feedback(
    database_url: str, patient_key: str, items: list[dict[str, Any]], start: Any, results: Any
) -> None:
    """Build an app in this process, wait for the others, then post each item as its own
    request; put the statuses on `results`."""
    from cds_hooks import create_app

    app = create_app(
        {
            "env": "test",
            "auth_mode": "disabled",
            "database_url": database_url,
            "patient_id_key": patient_key,
            "log_level": "WARNING",
        }
    )
    client = app.test_client()
    start.wait(timeout=60)  # every process posts at the same time, not one after another
    statuses = [
        client.post(
            "/cds-services/lip-twitch-patient-view/feedback", json={"feedback": [item]}
        ).status_code
        for item in items
    ]
    app.extensions["lipcds"].store.dispose()
    results.put(statuses)
