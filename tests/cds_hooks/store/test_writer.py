"""The record writer: batches off the request path, a spool that outlives the process and
the database, and nothing lost without being counted and said."""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from cds_hooks.store import Store
from cds_hooks.store.store import CardRecord
from cds_hooks.store.writer import (
    REJECTED_FILE,
    SEGMENT_SUFFIX,
    RecordWriter,
    spool_directory,
)
from tests.cds_hooks.conftest import POSTGRES, count_rows, make_card
from tests.cds_hooks.store.workers import spool_and_crash
from tests.support.tcp_proxy import TcpProxy

SERVICE = "lip-twitch-patient-view"


def a_record(cards: int | list = 1, **overrides) -> CardRecord:
    if isinstance(cards, int):
        cards = [make_card(f"kind-{i}", f"R{i}") for i in range(cards)]
    values = {
        "service_id": SERVICE,
        "hook": "patient-view",
        "hook_instance": str(uuid.uuid4()),
        "cards": cards,
        "issued_at": datetime(2026, 11, 2, 9, 30, tzinfo=UTC),
        "patient_hash": "0" * 64,
    }
    values.update(overrides)
    return CardRecord.of_response(**values)


def segments(directory: Path) -> list[Path]:
    return sorted(p for p in directory.iterdir() if p.name.endswith(SEGMENT_SUFFIX))


def spooled_lines(directory: Path) -> int:
    return sum(len(p.read_bytes().splitlines()) for p in segments(directory))


@pytest.fixture
def writers():
    """Writers made by a test, closed at its end."""
    made: list[RecordWriter] = []

    def make(store: Store, spool: Path | None, **options) -> RecordWriter:
        options.setdefault("retry_initial", 0.05)
        options.setdefault("retry_max", 0.3)
        writer = RecordWriter(store, spool, **options)
        made.append(writer)
        return writer

    yield make
    for writer in made:
        writer.close(timeout=1)


@pytest.fixture
def proxy():
    with TcpProxy(("127.0.0.1", 5432)) as proxy:
        yield proxy


@pytest.fixture
def proxied_store(store, proxy):
    """The migrated test database, reached through the proxy."""
    if store.dialect != "postgresql":
        pytest.skip("the proxy stands in front of PostgreSQL")
    url = make_url(store.engine.url.render_as_string(hide_password=False)).set(port=proxy.port)
    proxied = Store(url.render_as_string(hide_password=False), cooldown_seconds=0.1)
    yield proxied
    proxied.dispose()


def test_records_are_written_in_batches_with_their_suggestions(store, writers, tmp_path):
    writer = writers(store, tmp_path / "spool", batch_size=50)
    records = [a_record(cards=2) for _ in range(120)]
    for record in records:
        assert writer.submit(record)
    assert writer.flush(timeout=20)
    assert count_rows(store, "issued_card") == 240
    assert count_rows(store, "issued_suggestion") == 240
    assert writer.pending == 0
    assert writer.stats.written == 120
    assert writer.stats.batches < 120  # batched, not one transaction per record
    assert segments(tmp_path / "spool") == []  # written records leave the spool


def test_a_record_written_twice_is_kept_once(store, writers, tmp_path):
    writer = writers(store, tmp_path / "spool")
    record = a_record(cards=3)
    writer.submit(record)
    writer.submit(record)
    assert writer.flush(timeout=20)
    assert count_rows(store, "issued_card") == 3
    assert count_rows(store, "issued_suggestion") == 3


def test_each_record_is_on_disk_before_the_database_has_it(store, writers, tmp_path):
    writer = writers(store, tmp_path / "spool", flush_interval=3600, batch_size=1000)
    for _ in range(7):
        writer.submit(a_record())
    assert spooled_lines(tmp_path / "spool") == 7
    assert count_rows(store, "issued_card") == 0
    assert writer.pending == 7


@pytest.mark.parametrize("database_url", [POSTGRES], indirect=True)
def test_records_wait_while_the_database_refuses_and_are_written_when_it_returns(
    proxied_store, store, proxy, writers, tmp_path, caplog
):
    writer = writers(proxied_store, tmp_path / "spool", flush_interval=0.05)
    proxy.refuse()
    with caplog.at_level(logging.WARNING, logger="lipcds.store.writer"):
        for _ in range(20):
            assert writer.submit(a_record())
        assert not writer.flush(timeout=1.5)
        assert writer.pending == 20
        assert writer.stats.failures >= 1
        assert spooled_lines(tmp_path / "spool") == 20
        proxy.pass_()
        assert writer.flush(timeout=20)
    assert count_rows(store, "issued_card") == 20
    messages = [r.getMessage() for r in caplog.records]
    assert any("card records not written" in m and "retried" in m for m in messages), messages
    assert any("database back" in m for m in messages), messages


@pytest.mark.parametrize("database_url", [POSTGRES], indirect=True)
def test_a_frozen_database_holds_the_writer_only_for_its_budget(
    proxied_store, store, proxy, writers, tmp_path
):
    writer = writers(proxied_store, tmp_path / "spool", flush_interval=0.05, batch_budget=1.0)
    writer.submit(a_record())
    assert writer.flush(timeout=20)  # a pooled connection exists now
    proxy.freeze()
    for _ in range(5):
        assert writer.submit(a_record())  # the request side never waits for the database
    assert not writer.flush(timeout=2.5)
    assert writer.stats.failures >= 1
    proxy.pass_()
    assert writer.flush(timeout=30)
    assert count_rows(store, "issued_card") == 6


def test_a_process_killed_with_records_waiting_leaves_them_to_the_next(store, writers, tmp_path):
    spool = tmp_path / "spool"
    url = store.engine.url.render_as_string(hide_password=False)
    context = multiprocessing.get_context("spawn")
    child = context.Process(target=spool_and_crash, args=(url, str(spool), 25))
    child.start()
    child.join(timeout=120)
    assert child.exitcode == 0
    assert count_rows(store, "issued_card") == 0  # the child never wrote them
    assert spooled_lines(spool) == 25
    writer = writers(store, spool)
    assert writer.drain(timeout=20)
    assert writer.stats.adopted == 25
    assert count_rows(store, "issued_card") == 25
    assert segments(spool) == []


def test_a_living_writers_spool_is_never_adopted(store, writers, tmp_path):
    spool = tmp_path / "spool"
    first = writers(store, spool, flush_interval=3600, batch_size=1000)
    first.submit(a_record())
    second = writers(store, spool)
    second.start()
    assert second.stats.adopted == 0
    assert first.pending == 1


def test_a_cut_last_line_is_kept_aside_and_the_rest_written(store, writers, tmp_path):
    spool = tmp_path / "spool"
    spool.mkdir()
    good = json.dumps(a_record().to_json())
    (spool / f"records-1-1-00000000{SEGMENT_SUFFIX}").write_text(good + "\n" + good[:40])
    writer = writers(store, spool)
    assert writer.drain(timeout=20)
    assert count_rows(store, "issued_card") == 1
    assert writer.stats.rejected == 1
    kept = (spool / REJECTED_FILE).read_text().splitlines()
    assert len(kept) == 1 and "unreadable line 2" in kept[0]


@pytest.mark.parametrize("database_url", [POSTGRES], indirect=True)
def test_a_record_the_database_refuses_is_kept_aside_and_the_batch_written(
    store, writers, tmp_path, caplog
):
    spool = tmp_path / "spool"
    writer = writers(store, spool, flush_interval=3600, batch_size=1000)
    bad = a_record(hook_instance="x" * 200)  # the column holds 128 characters
    for record in [a_record(), bad, a_record()]:
        writer.submit(record)
    with caplog.at_level(logging.ERROR, logger="lipcds.store.writer"):
        assert writer.flush(timeout=20)
    assert count_rows(store, "issued_card") == 2
    assert writer.stats.rejected == 1
    kept = [json.loads(line) for line in (spool / REJECTED_FILE).read_text().splitlines()]
    assert kept[0]["record"]["hook_instance"] == bad.hook_instance
    assert any(bad.hook_instance in r.getMessage() for r in caplog.records)


def test_a_full_queue_refuses_new_records_and_says_so(store, writers, tmp_path, caplog):
    writer = writers(store, tmp_path / "spool", flush_interval=3600, batch_size=1000, max_pending=3)
    records = [a_record() for _ in range(5)]
    with caplog.at_level(logging.ERROR, logger="lipcds.store.writer"):
        accepted = [writer.submit(r) for r in records]
    assert accepted == [True, True, True, False, False]
    assert writer.stats.refused == 2
    message = next(r.getMessage() for r in caplog.records if "queue full" in r.getMessage())
    assert records[3].hook_instance in message
    assert writer.flush(timeout=20)
    assert count_rows(store, "issued_card") == 3


def test_write_now_finds_waiting_records_of_this_and_other_processes(store, writers, tmp_path):
    spool = tmp_path / "spool"
    other = writers(store, spool, flush_interval=3600, batch_size=1000)  # another worker
    mine = writers(store, spool, flush_interval=3600, batch_size=1000)
    theirs, ours, unrelated = a_record(), a_record(), a_record()
    other.submit(theirs)
    other.submit(unrelated)
    mine.submit(ours)
    wanted = [theirs.card_uuids[0], ours.card_uuids[0]]
    assert mine.write_now(SERVICE, wanted) == 2
    with store.engine.connect() as connection:
        found = set(connection.execute(text("SELECT card_uuid FROM issued_card")).scalars())
    assert found == set(wanted)
    assert mine.write_now("another-service", [unrelated.card_uuids[0]]) == 0


def test_without_a_spool_records_wait_in_memory(store, writers):
    writer = writers(store, None)
    writer.submit(a_record())
    assert writer.flush(timeout=20)
    assert count_rows(store, "issued_card") == 1


def test_each_database_has_its_own_spool_directory(tmp_path):
    first = spool_directory("postgresql+psycopg://u:secret@db1/lipcds", tmp_path)
    second = spool_directory("postgresql+psycopg://u:secret@db2/lipcds", tmp_path)
    assert first != second and first.parent == second.parent == tmp_path.resolve()
    assert "secret" not in str(first)
    assert spool_directory(f"sqlite:///{tmp_path}/a.db") == (tmp_path / "a.db-spool").resolve()
    assert spool_directory("sqlite:///:memory:") is None


def test_closing_writes_what_waits(store, tmp_path):
    writer = RecordWriter(store, tmp_path / "spool", flush_interval=3600, batch_size=1000)
    for _ in range(4):
        writer.submit(a_record())
    writer.close(timeout=10)
    assert count_rows(store, "issued_card") == 4
    assert segments(tmp_path / "spool") == []
    assert not writer.submit(a_record())  # closed: refused, counted
    assert writer.stats.refused == 1


def test_spool_files_are_private(store, writers, tmp_path):
    writer = writers(store, tmp_path / "spool", flush_interval=3600, batch_size=1000)
    writer.submit(a_record())
    (segment,) = segments(tmp_path / "spool")
    assert os.stat(segment).st_mode & 0o077 == 0


def test_the_pending_count_is_reported_as_it_changes(store, writers, tmp_path):
    seen: list[int] = []
    writer = writers(
        store, tmp_path / "spool", flush_interval=3600, batch_size=1000, on_pending=seen.append
    )
    writer.submit(a_record())
    writer.submit(a_record())
    assert seen == [1, 2]
    assert writer.flush(timeout=20)
    assert seen[-1] == 0 and writer.pending == 0


def test_order_select_cards_still_waiting_count_as_shown(store, writers, tmp_path):
    from cds_hooks.store.writer import ShownCardsWithWaiting

    spool = tmp_path / "spool"
    other = writers(store, spool, flush_interval=3600, batch_size=1000)  # another worker
    mine = writers(store, spool, flush_interval=3600, batch_size=1000)
    card = make_card("hypokalemia-workup", "R3")
    card["extension"]["org.lipcds.evidence"]["concerns"] = "MedicationRequest/1"
    shadow_card = make_card("shadow-kind", "R4")
    other.submit(a_record(hook="order-select", cards=[card], encounter_id="enc-1"))
    mine.submit(
        a_record(hook="order-select", cards=[shadow_card], encounter_id="enc-1", shadow=True)
    )
    mine.submit(a_record(hook="order-select", cards=[make_card()], encounter_id="enc-2"))
    shown = ShownCardsWithWaiting(store, mine).shown_at_order_select(encounter_id="enc-1")
    assert shown == {("MedicationRequest/1", "hypokalemia-workup")}
