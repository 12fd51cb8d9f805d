"""Feedback posted at once from several processes: nothing lost, nothing doubled."""

from __future__ import annotations

import multiprocessing

from tests.store.conftest import PATIENT_KEY, count_rows, make_card, record
from tests.store.workers import post_feedback

PROCESSES = 4
PER_PROCESS = 50


def test_feedback_from_several_processes_loses_nothing(store, database_url):
    total = PROCESSES * PER_PROCESS
    cards = [make_card(f"kind-{i % 3}", f"R{i % 3}", suggestions=0) for i in range(total)]
    record(store, cards)
    items = [
        {
            "card": card["uuid"],
            "outcome": "overridden",
            "overrideReason": {"userComment": f"item {i}"},
            "outcomeTimestamp": "2026-11-21T10:15:00Z",
        }
        for i, card in enumerate(cards)
    ]
    batches = [items[p::PROCESSES] for p in range(PROCESSES)]
    # Each process also re-sends the first items of its neighbour: concurrent duplicates.
    batches = [batch + batches[(p + 1) % PROCESSES][:5] for p, batch in enumerate(batches)]
    context = multiprocessing.get_context("spawn")
    start, results = context.Barrier(PROCESSES), context.Queue()
    processes = [
        context.Process(
            target=post_feedback, args=(database_url, PATIENT_KEY, batch, start, results)
        )
        for batch in batches
    ]
    for process in processes:
        process.start()
    statuses = [results.get(timeout=120) for _ in processes]
    for process in processes:
        process.join(timeout=30)
        assert process.exitcode == 0
    assert all(status == 200 for batch in statuses for status in batch), statuses
    assert count_rows(store, "feedback") == total
