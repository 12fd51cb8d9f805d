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


def spool_and_crash(database_url: str, spool_dir: str, count: int) -> None:
    """Queue `count` card records with a writer that never gets to write them, then end
    the process the hard way (no atexit, no flush), as a killed worker would."""
    import os
    import uuid
    from datetime import UTC, datetime

    from cds_hooks.store import Store
    from cds_hooks.store.store import CardRecord
    from cds_hooks.store.writer import RecordWriter
    from tests.cds_hooks.conftest import make_card

    store = Store(database_url)
    writer = RecordWriter(store, spool_dir, flush_interval=3600, batch_size=count + 1)
    for _ in range(count):
        writer.submit(
            CardRecord.of_response(
                service_id="lip-twitch-patient-view",
                hook="patient-view",
                hook_instance=str(uuid.uuid4()),
                cards=[make_card()],
                issued_at=datetime.now(UTC),
            )
        )
    os._exit(0)


def post_hooks(database_url: str, patient_key: str, count: int, start: Any, results: Any) -> None:
    """Build an app in this process, wait for the others, then make `count` patient-view
    calls; put (status, hookInstance, cards) of each on `results`."""
    from cds_hooks import create_app
    from cds_hooks.cli.demo import hook_request, load_demo

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
    patient = load_demo("low-potassium-meq")
    start.wait(timeout=60)
    answers = []
    for _ in range(count):
        body = hook_request(patient)
        response = client.post("/cds-services/lip-twitch-patient-view", json=body)
        cards = len(response.json["cards"]) if response.status_code == 200 else 0
        answers.append((response.status_code, body["hookInstance"], cards))
    _close_store(app)
    results.put(answers)


def submit_records(database_url: str, spool_dir: str, count: int, start: Any, results: Any) -> None:
    """A record writer in this process, fed `count` records at the pace of the caller."""
    import uuid
    from datetime import UTC, datetime

    from cds_hooks.store import Store
    from cds_hooks.store.store import CardRecord
    from cds_hooks.store.writer import RecordWriter
    from tests.cds_hooks.conftest import make_card

    store = Store(database_url)
    writer = RecordWriter(store, spool_dir)
    start.wait(timeout=60)
    uuids = []
    for _ in range(count):
        record = CardRecord.of_response(
            service_id="lip-twitch-patient-view",
            hook="patient-view",
            hook_instance=str(uuid.uuid4()),
            cards=[make_card(), make_card("other-kind", "R1")],
            issued_at=datetime.now(UTC),
        )
        assert writer.submit(record)
        uuids.extend(record.card_uuids)
    writer.close(timeout=30)
    store.dispose()
    results.put((writer.stats.written, writer.pending, uuids))


def _close_store(app: Any) -> None:
    """Write what waits and let go of the database, as a worker does at exit."""
    rt = app.extensions["lipcds"]
    writer = getattr(rt, "writer", None)
    if writer is not None:
        writer.close(timeout=30)
    rt.store.dispose()
