"""Several processes at once (as gunicorn workers are): nothing lost, nothing doubled."""

from __future__ import annotations

import multiprocessing

import pytest
from sqlalchemy import text

from tests.cds_hooks.conftest import PATIENT_KEY, count_rows, make_card, record
from tests.cds_hooks.store.workers import post_feedback, post_hooks, submit_records

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


def _run_processes(target, args_of, count: int) -> list:
    context = multiprocessing.get_context("spawn")
    start, results = context.Barrier(count), context.Queue()
    processes = [
        context.Process(target=target, args=(*args_of(p), start, results)) for p in range(count)
    ]
    for process in processes:
        process.start()
    answers = [results.get(timeout=180) for _ in processes]
    for process in processes:
        process.join(timeout=60)
        assert process.exitcode == 0
    return answers


HOOK_CALLS = 25


def test_hook_calls_from_several_processes_leave_one_record_each(store, database_url):
    answers = _run_processes(
        post_hooks, lambda _p: (database_url, PATIENT_KEY, HOOK_CALLS), PROCESSES
    )
    calls = [answer for batch in answers for answer in batch]
    assert len(calls) == PROCESSES * HOOK_CALLS
    assert all(status == 200 and cards > 0 for status, _, cards in calls), calls
    with store.engine.connect() as connection:
        recorded = dict(
            connection.execute(
                text("SELECT hook_instance, count(*) FROM issued_card GROUP BY hook_instance")
            ).all()
        )
    assert recorded == {hook_instance: cards for _, hook_instance, cards in calls}


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_record_writers_in_several_processes_write_every_record(store, database_url, tmp_path):
    spool = str(tmp_path / "spool")
    answers = _run_processes(submit_records, lambda _p: (database_url, spool, 100), PROCESSES)
    assert [(written, pending) for written, pending, _ in answers] == [(100, 0)] * PROCESSES
    with store.engine.connect() as connection:
        found = list(connection.execute(text("SELECT card_uuid FROM issued_card")).scalars())
    issued = [uuid for _, _, uuids in answers for uuid in uuids]
    assert sorted(found) == sorted(issued)
    assert len(found) == PROCESSES * 100 * 2
