"""The writer and the replay fallback are counted in /metrics."""

from __future__ import annotations

from cds_hooks import create_app
from cds_hooks.cli.demo import hook_request, load_demo
from cds_hooks.runtime import runtime
from tests.cds_hooks.conftest import PATIENT_KEY


def metric(text: str, series: str) -> float:
    """The value of one series (name with its labels) in the text exposition format."""
    for line in text.splitlines():
        key, _, value = line.rpartition(" ")
        if key == series:
            return float(value)
    raise AssertionError(f"{series} not in /metrics")


def test_written_records_and_the_pending_gauge_are_in_metrics(tmp_path):
    app = create_app(
        {
            "env": "test",
            "auth_mode": "disabled",
            "database_url": f"sqlite:///{tmp_path / 'lipcds.db'}",
            "patient_id_key": PATIENT_KEY,
        }
    )
    rt = runtime(app)
    rt.writer.flush_interval = 3600
    client = app.test_client()
    for _ in range(3):
        response = client.post(
            "/cds-services/lip-twitch-patient-view",
            json=hook_request(load_demo("low-potassium-meq")),
        )
        assert response.status_code == 200
    waiting = client.get("/metrics").get_data(as_text=True)
    assert metric(waiting, "lipcds_store_pending_records") == 3
    assert rt.writer.flush(timeout=20)
    written = client.get("/metrics").get_data(as_text=True)
    assert metric(written, "lipcds_store_pending_records") == 0
    assert metric(written, 'lipcds_store_records_total{event="written"}') == 3
    rt.store.dispose()
