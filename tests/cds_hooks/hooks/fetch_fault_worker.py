"""A lipcds worker in its own process, calling patient-view with fetch-on-miss.

    python -m tests.cds_hooks.hooks.fetch_fault_worker PORT DB_DIR FAULT...

Every call goes to the fake FHIR server's base for one fault (tests/fakefhir.py). Prints
one JSON object: the peak resident memory (ru_maxrss) after warming up, and for each
fault the answer's status, whether its body was JSON, the seconds it took, the peak
memory after it, and how many fetch threads were still alive a second later. A process
of its own, so the peak is this worker's and no other test's.
"""

from __future__ import annotations

import json
import resource
import sys
import threading
import time
import uuid

from cds_hooks.app import create_app

DEADLINE = 1.0


def peak_kib() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux


def main(argv: list[str]) -> None:
    port, db_dir, faults = int(argv[0]), argv[1], argv[2:]
    bases = [f"http://127.0.0.1:{port}/{fault}" for fault in ["ok", *faults]]
    app = create_app(
        {
            "env": "development",
            "auth_mode": "disabled",
            "database_url": f"sqlite:///{db_dir}/worker.db",
            "fhir_allowed_servers": bases,
            "fhir_insecure_servers": bases,
            "fhir_deadline_seconds": DEADLINE,
            "fhir_read_timeout": 2.0,
        }
    )
    client = app.test_client()

    def call(base: str) -> dict:
        started = time.monotonic()
        response = client.post(
            "/cds-services/lip-twitch-patient-view",
            json={
                "hook": "patient-view",
                "hookInstance": str(uuid.uuid4()),
                "fhirServer": base,
                "context": {"userId": "Practitioner/dr-1", "patientId": "p1"},
            },
        )
        elapsed = time.monotonic() - started
        return {
            "status": response.status_code,
            "json": response.is_json and response.get_json(silent=True) is not None,
            "seconds": round(elapsed, 3),
            "peak_kib": peak_kib(),
        }

    for _ in range(3):  # warm up: imports, the knowledge base, the store, one good fetch
        warm = call(bases[0])
    report = {"deadline": DEADLINE, "warm": warm, "baseline_kib": peak_kib(), "faults": {}}
    for fault, base in zip(faults, bases[1:], strict=True):
        report["faults"][fault] = call(base)
        report["faults"][fault]["threads_after"] = fetch_threads_after(1.0)
    print(json.dumps(report))


def fetch_threads_after(seconds: float) -> int:
    """FHIR fetch threads still alive `seconds` after the answer (0: none kept reading)."""
    end = time.monotonic() + seconds
    while True:
        alive = [t for t in threading.enumerate() if t.name.startswith("lipcds-fhir")]
        if not alive or time.monotonic() > end:
            return len(alive)
        time.sleep(0.02)


if __name__ == "__main__":
    main(sys.argv[1:])
