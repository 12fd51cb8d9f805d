"""What the operations layer adds to a hook call: its metrics and its log line.

    .venv/bin/python bench/ops_overhead.py [--calls 300] [--threads 4]

In one process, in prometheus-client's multiprocess mode (as under gunicorn):
1. the median time of a whole patient-view call (bench/workload.py's ~250-resource
   request) through Flask's test client, observation included;
2. the median time of what observation does for one call on its own: the request id and
   call fields, counting the call and its cards, observing the duration, and writing the
   call's JSON log line (to /dev/null), first from one thread, then from --threads
   threads at once (prometheus-client takes one lock per value update: this is where
   contention would show).
It prints both and the ratio (2 / 1). A report, not a test: it prints and exits 0.
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a script from anywhere


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--threads", type=int, default=4)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="lipcds-bench-metrics-") as directory:
        from cds_hooks.ops.metrics import prepare_multiprocess_dir

        prepare_multiprocess_dir(directory)
        from bench.workload import SERVICE, full_prefetch_request
        from cds_hooks import create_app
        from cds_hooks.ops import logs
        from cds_hooks.ops.metrics import Metrics
        from cds_hooks.runtime import runtime

        with open(os.devnull, "w") as devnull:
            logs.configure_logging("INFO", "json", devnull)
            app = create_app(
                {
                    "env": "development",
                    "auth_mode": "disabled",
                    "database_url": f"sqlite:///{directory}/store.db",
                    "patient_id_key": "k" * 64,
                }
            )
            client = app.test_client()
            request = full_prefetch_request()
            cards: list = []
            for _ in range(5):  # warm-up
                cards = client.post(f"/cds-services/{SERVICE}", json=request).get_json()["cards"]
            call_times = []
            for _ in range(args.calls):
                request["hookInstance"] = str(uuid.uuid4())
                started = time.perf_counter()
                answer = client.post(f"/cds-services/{SERVICE}", json=request)
                call_times.append(time.perf_counter() - started)
                assert answer.status_code == 200, answer.get_data(as_text=True)[:200]
            store = runtime(app).store
            if store is not None:
                store.dispose()

            metrics = Metrics([SERVICE], "bench")
            log = logging.getLogger("lipcds.calls")

            def observe_once() -> float:
                started = time.perf_counter()
                token = logs.begin_call(logs.request_id_from(None))
                logs.bind(service=SERVICE, hook_instance=str(uuid.uuid4()), issuer="https://ehr")
                metrics.hook_call(SERVICE, 200, 0.012)
                metrics.cards_returned(SERVICE, cards)
                log.info("hook call answered 200, %d cards in %.1f ms", len(cards), 12.0)
                logs.end_call(token)
                return time.perf_counter() - started

            for _ in range(50):
                observe_once()
            alone = [observe_once() for _ in range(args.calls)]
            contended: list[float] = []
            lock = threading.Lock()

            def worker() -> None:
                mine = [observe_once() for _ in range(args.calls)]
                with lock:
                    contended.extend(mine)

            threads = [threading.Thread(target=worker) for _ in range(args.threads)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        logging.getLogger().handlers.clear()

    call = statistics.median(call_times) * 1000
    one = statistics.median(alone) * 1000
    many = statistics.median(contended) * 1000
    print(f"hook call (observation included), median of {args.calls}: {call:8.3f} ms")
    print(
        f"observation of one call, 1 thread:                {one:8.3f} ms  "
        f"({one / call:.2%} of a call)"
    )
    print(
        f"observation of one call, {args.threads} threads at once:      {many:8.3f} ms  "
        f"({many / call:.2%} of a call)"
    )
    print(f"cards per call: {len(cards)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
