"""ReportStore.ingest under concurrency: lock order, deadlock retry, and what reaches the recipients."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from helpers import REPORT_T0, report, report_time
from sqlalchemy import select, text, update
from sqlalchemy.exc import OperationalError

from airflow_provider_messagecentral.campaign.keys import make_campaign_key
from airflow_provider_messagecentral.reports.models import DeliveryReport
from airflow_provider_messagecentral.reports.store import ReportStore
from airflow_provider_messagecentral.reports.store import tables as t
from airflow_provider_messagecentral.reports.store.ingest import INGEST_ATTEMPTS

T0 = REPORT_T0


@pytest.fixture
def pg_store(pg_url: str) -> Iterator[ReportStore]:
    s = ReportStore(pg_url)
    yield s
    s.dispose()


rep = report
at = report_time


class _Deadlock(Exception):
    sqlstate = "40P01"


def test_a_deadlocked_ingest_is_run_again(store: ReportStore, mocker: Any) -> None:
    """PostgreSQL aborts one of two deadlocked transactions: ingest runs it again instead of answering 503."""
    real = store._ingest_tx
    calls = {"n": 0}

    def flaky(*args: Any) -> None:
        calls["n"] += 1
        if calls["n"] == 1:
            raise OperationalError("UPDATE mc_reports ...", {}, _Deadlock("deadlock detected"))
        real(*args)

    mocker.patch.object(store, "_ingest_tx", side_effect=flaky)
    result = store.ingest([rep("m1", "DELIVRD", submitDate=at(1)), rep("m1", "UNKNOWN")], ["[]"])
    assert calls["n"] == 2
    assert (result.stored, result.duplicates, result.ignored_stale) == (1, 0, 1)  # counted once, not twice
    assert store.get_report("m1")["status"] == "DELIVRD"  # type: ignore[index]
    assert store.stats()["raw_reports"] == 1  # the aborted attempt left nothing behind


def test_a_deadlock_that_persists_and_other_errors_are_raised(store: ReportStore, mocker: Any) -> None:
    deadlock = OperationalError("UPDATE mc_reports ...", {}, _Deadlock("deadlock detected"))
    patched = mocker.patch.object(store, "_ingest_tx", side_effect=deadlock)
    mocker.patch("airflow_provider_messagecentral.reports.store.ingest.time.sleep")
    with pytest.raises(OperationalError):
        store.ingest([rep("m1", "DELIVRD")], [])
    assert patched.call_count == INGEST_ATTEMPTS
    patched.reset_mock()
    patched.side_effect = OperationalError("INSERT ...", {}, Exception("disk full"))
    with pytest.raises(OperationalError):
        store.ingest([rep("m1", "DELIVRD")], [])
    assert patched.call_count == 1


def _wait_for_lock_wait(store: ReportStore, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    with store.engine.connect() as conn:
        while time.monotonic() < deadline:
            waiting = conn.execute(
                text(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND wait_event_type = 'Lock'"
                )
            ).scalar()
            conn.rollback()
            if waiting:
                return
            time.sleep(0.02)
    raise AssertionError("the ingest never waited for the held row lock")


@pytest.mark.postgres
@pytest.mark.integration
def test_ingest_locks_reports_in_message_id_order(pg_store: ReportStore) -> None:
    """
    A batch arriving as [m-b, m-a] locks m-a before m-b. Another transaction holding m-a and then asking for
    m-b gets it at once: before the fix the batch held m-b while waiting for m-a, and PostgreSQL broke the
    resulting deadlock by aborting one side (the receiver answered 503).
    """
    pg_store.ingest([rep("m-a", "UNKNOWN"), rep("m-b", "UNKNOWN")], [])
    batch = [rep("m-b", "DELIVRD", doneDate=at(5)), rep("m-a", "DELIVRD", doneDate=at(5))]
    errors: list[BaseException] = []
    with pg_store.engine.connect() as other:
        other.execute(text("SELECT 1 FROM mc_reports WHERE message_id = 'm-a' FOR UPDATE"))

        def run() -> None:
            try:
                pg_store.ingest(batch, [])
            except BaseException as err:  # reported below
                errors.append(err)

        worker = threading.Thread(target=run)
        worker.start()
        try:
            _wait_for_lock_wait(pg_store)
            # m-b is still free: the batch waits for m-a without holding m-b.
            other.execute(text("SELECT 1 FROM mc_reports WHERE message_id = 'm-b' FOR UPDATE NOWAIT"))
        finally:
            other.rollback()
            worker.join(30)
    assert not errors, errors
    assert pg_store.get_report("m-a")["status"] == "DELIVRD"  # type: ignore[index]
    assert pg_store.get_report("m-b")["status"] == "DELIVRD"  # type: ignore[index]


@pytest.mark.postgres
@pytest.mark.integration
def test_overlapping_batches_in_opposite_orders_all_succeed(pg_store: ReportStore) -> None:
    """Eight threads ingest the same 100 messages, each in its own order, for a few rounds: none fails."""
    key = make_campaign_key("dag", "run", "send")
    pg_store.ensure_campaign(key, dag_id="dag", run_id="run", task_id="send", kind="bulk")
    mobiles = [f"9198{i:08d}" for i in range(100)]
    pg_store.mark_accepted(
        key, "u", transaction_id=None, verification_id=None, response={}, mobiles=mobiles, sent_at=T0
    )
    errors: list[BaseException] = []
    for round_ in range(3):
        batches = []
        for sender in range(8):
            order = list(range(100))
            if sender % 2:
                order.reverse()
            order = order[sender:] + order[:sender]
            status = "UNKNOWN" if (sender + round_) % 3 == 0 else "DELIVRD"
            batches.append(
                [rep(f"r{round_}-{i}", status, mobile=mobiles[i], submitDate=at(1), doneDate=at(sender)) for i in order]
            )

        def run(batch: list[DeliveryReport]) -> None:
            try:
                pg_store.ingest(batch, [])
            except BaseException as err:  # reported below
                errors.append(err)

        threads = [threading.Thread(target=run, args=(b,)) for b in batches]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
    assert not errors, errors[:3]
    for round_ in range(3):
        assert {pg_store.get_report(f"r{round_}-{i}")["status"] for i in range(100)} == {"DELIVRD"}  # type: ignore[index]
    summary = pg_store.campaign_summary(key)
    assert summary is not None and summary["by_status"] == {"DELIVRD": 100}


def _campaign(store: ReportStore, mobiles: list[str], tx: str | None = None) -> str:
    key = make_campaign_key("dag", "run", "send")
    store.ensure_campaign(key, dag_id="dag", run_id="run", task_id="send", kind="bulk")
    store.mark_accepted(key, "u", transaction_id=tx, verification_id=None, response={}, mobiles=mobiles, sent_at=T0)
    return key


def _recipient(store: ReportStore, mobile: str) -> tuple[Any, ...]:
    rc = t.recipients.c
    with store.engine.connect() as conn:
        row = conn.execute(select(rc.status, rc.report_message_id, rc.done_date).where(rc.mobile == mobile)).one()
    return tuple(row)


@pytest.mark.postgres
@pytest.mark.integration
def test_a_report_refused_by_a_concurrent_final_status_does_not_reach_the_recipient(pg_store: ReportStore) -> None:
    """
    While one transaction stores m1's final DELIVRD (not yet committed), a batch with a stale UNKNOWN for m1
    arrives and waits for it. Once DELIVRD commits, the upsert's guard refuses UNKNOWN, and the recipient
    keeps DELIVRD. Before the fix the UNKNOWN batch had judged itself a winner from an earlier read and
    copied UNKNOWN onto the recipient anyway (118 of 25,600 recipients stayed non-final under load).
    """
    mobile = "919816111111"
    key = _campaign(pg_store, [mobile])
    unknown = rep("m1", "UNKNOWN", mobile=mobile, submitDate=at(1), doneDate=at(2))
    done: list[Any] = []
    with pg_store.engine.connect() as other:
        sql = pg_store._ingest_sql
        row = sql.report_row(rep("m1", "DELIVRD", mobile=mobile, submitDate=at(1), doneDate=at(5)), T0)
        sql.add_new(sql.cursor(other), [row])
        other.execute(
            update(t.recipients)
            .where(t.recipients.c.mobile == mobile)
            .values(report_message_id="m1", match_kind="mobile", match_date=T0, status="DELIVRD", done_date=T0)
        )
        worker = threading.Thread(target=lambda: done.append(pg_store.ingest([unknown], [])))
        worker.start()
        try:
            _wait_for_lock_wait(pg_store)
        finally:
            other.commit()
            worker.join(30)
    assert len(done) == 1 and (done[0].stored, done[0].ignored_stale) == (0, 1)
    assert pg_store.get_report("m1")["status"] == "DELIVRD"  # type: ignore[index]
    assert pg_store.campaign_summary(key)["by_status"] == {"DELIVRD": 1}  # type: ignore[index]


@pytest.mark.parametrize(
    ("held", "incoming"),
    [
        (("DELIVRD", at(2)), ("UNKNOWN", at(30))),  # a final status is never replaced by a non-final one
        (("UNDELIV", at(10)), ("EXPIRED", at(5))),  # an older report never replaces a newer one
        (("UNKNOWN", at(10)), ("ACCEPTD", at(5))),
    ],
)
@pytest.mark.parametrize("tx", [None, "m1"], ids=["by-mobile", "by-id"])
def test_recipient_update_itself_keeps_precedence(
    store: ReportStore, held: tuple[str, str], incoming: tuple[str, str], tx: str | None
) -> None:
    """Even handed a 'winner' that lost (as a stale read would), the recipient update refuses to regress."""
    mobile = "919816111111"
    _campaign(store, [mobile], tx=tx)
    store.ingest([rep("m1", held[0], mobile=mobile, submitDate=at(1), doneDate=held[1])], [])
    assert _recipient(store, mobile)[:2] == (held[0], "m1")
    stale = rep("m1", incoming[0], mobile=mobile, submitDate=at(1), doneDate=incoming[1])
    with store._write() as conn:
        store._match_reports(conn, [stale], T0)
    assert _recipient(store, mobile)[:2] == (held[0], "m1")
    # Without a mobile the id match (one recipient) is guarded the same way.
    if tx is not None:
        with store._write() as conn:
            store._match_reports(conn, [rep("m1", incoming[0], mobile=None, doneDate=incoming[1])], T0)
        assert _recipient(store, mobile)[:2] == (held[0], "m1")


def test_counts_stored_duplicates_and_stale_from_what_the_database_did(store: ReportStore) -> None:
    mobile = "919816111111"
    key = _campaign(store, [mobile])
    store.ingest([rep("m1", "DELIVRD", mobile=mobile, submitDate=at(1), doneDate=at(5))], [])
    result = store.ingest(
        [
            rep("m1", "DELIVRD", mobile=mobile, submitDate=at(1), doneDate=at(5)),  # duplicate
            rep("m1", "UNKNOWN", mobile=mobile, submitDate=at(1), doneDate=at(9)),  # stale (in batch)
            rep("m2", "UNKNOWN", mobile="917715131105", submitDate=at(1)),  # new
        ],
        [],
    )
    assert (result.stored, result.duplicates, result.ignored_stale) == (1, 1, 1)
    result = store.ingest([rep("m1", "UNKNOWN", mobile=mobile, submitDate=at(1), doneDate=at(9))], [])
    assert (result.stored, result.duplicates, result.ignored_stale) == (0, 0, 1)
    assert store.campaign_summary(key)["by_status"] == {"DELIVRD": 1}  # type: ignore[index]
