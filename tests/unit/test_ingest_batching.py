"""
Group commit (reports/store/group_commit.py, reports/store/attribution.py): concurrent callbacks share
transactions, each request gets the answer it would have got committed alone in arrival order, and a
failed transaction acknowledges nothing of it.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import requests
from helpers import REPORT_T0, report, report_time
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import event, select
from sqlalchemy.exc import IntegrityError, OperationalError

from airflow_provider_messagecentral.campaign.keys import make_campaign_key
from airflow_provider_messagecentral.reports.models import DeliveryReport, IngestResult
from airflow_provider_messagecentral.reports.server import ReceiverServer
from airflow_provider_messagecentral.reports.store import ReportStore, get_store
from airflow_provider_messagecentral.reports.store import group_commit as gc_module
from airflow_provider_messagecentral.reports.store import tables as t
from airflow_provider_messagecentral.reports.store.attribution import BatchAttribution, IngestRequest
from airflow_provider_messagecentral.reports.store.group_commit import GroupCommit, _HeldConnection

SECRET = "unit-callback-secret-0123456789"
at = report_time


def _counts(result: IngestResult) -> tuple[int, int, int]:
    return result.stored, result.duplicates, result.ignored_stale


def _rows(store: ReportStore) -> dict[str, tuple[Any, ...]]:
    r = t.reports.c
    with store.engine.connect() as conn:
        return {
            row[0]: tuple(row[1:])
            for row in conn.execute(select(r.message_id, r.status, r.done_date, r.submit_date, r.error_code))
        }


class _Gate:
    """Holds the first transaction of a store's writer until released, so the next callbacks queue up."""

    def __init__(self, store: ReportStore) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()
        self._real = store.ingest_batch
        self.sizes: list[int] = []
        store.ingest_batch = self._held  # type: ignore[method-assign]

    def _held(self, requests: Any, connection: Any = None) -> list[IngestResult]:
        self.sizes.append(len(requests))
        if len(self.sizes) == 1:
            self.entered.set()
            assert self.release.wait(30)
        return self._real(requests, connection)


# --------------------------------------------------------------------------- attribution (pure)


def test_each_request_is_answered_as_if_committed_alone_in_arrival_order() -> None:
    final = report("m1", "DELIVRD", doneDate=at(5))
    requests_ = [
        IngestRequest([report("m1", "UNKNOWN", doneDate=at(1))]),
        IngestRequest([final]),
        IngestRequest([report("m1", "DELIVRD", doneDate=at(5))]),  # the same status again
        IngestRequest([report("m1", "UNKNOWN", doneDate=at(9))]),  # non-final after final
        IngestRequest([report("m2", "UNDELIV"), report("m2", "UNDELIV"), report("m2", "UNKNOWN")]),
    ]
    results, winners, stored = BatchAttribution(requests_).settle({})
    assert [_counts(r) for r in results] == [(1, 0, 0), (1, 0, 0), (0, 1, 0), (0, 0, 1), (1, 1, 1)]
    assert winners["m1"] is final and winners["m2"].status == "UNDELIV"
    assert [(r.messageId, r.status) for r in stored] == [("m1", "UNKNOWN"), ("m1", "DELIVRD"), ("m2", "UNDELIV")]


def test_a_batch_that_changes_nothing_has_no_winner() -> None:
    held = BatchAttribution([IngestRequest([report("m1", "DELIVRD", doneDate=at(5))])]).settle({}).winners["m1"]
    from airflow_provider_messagecentral.reports.store.precedence import Standing

    results, winners, stored = BatchAttribution(
        [IngestRequest([held]), IngestRequest([report("m1", "UNKNOWN")])]
    ).settle({"m1": Standing.of(held)})
    assert [_counts(r) for r in results] == [(0, 1, 0), (0, 0, 1)] and winners == {} and stored == []


# --------------------------------------------------------------------------- one transaction == one after another

statuses = st.sampled_from(["DELIVRD", "UNDELIV", "EXPIRED", "UNKNOWN", "ACCEPTD"])
minutes = st.one_of(st.none(), st.integers(0, 4))
one_report = st.builds(
    lambda mid, status, done, submit: {"messageId": mid, "status": status, "doneDate": done, "submitDate": submit},
    st.sampled_from(["m1", "m2", "m3"]),
    statuses,
    minutes,
    minutes,
)
batches = st.lists(st.lists(one_report, min_size=1, max_size=4), min_size=1, max_size=6)


def _validated(docs: list[dict[str, Any]]) -> list[DeliveryReport]:
    out = []
    for doc in docs:
        dates = {k: (None if doc[k] is None else at(doc[k])) for k in ("doneDate", "submitDate")}
        mobile = {"m1": "919800000001", "m2": "919800000002", "m3": "919800000003"}[doc["messageId"]]
        out.append(report(doc["messageId"], doc["status"], mobile=mobile, **dates))
    return out


def test_one_batch_answers_and_stores_what_one_request_after_another_would(tmp_path: Path) -> None:
    """
    For arbitrary requests (duplicates, out-of-order and replaced reports of a few messages, on top of an
    already stored state), ingest_batch gives every request the counts that committing them one after
    another gives, and leaves every message (and its recipient) with the same status. Only the dates of a
    message can differ, in one documented case: the batch replaces its stored status and comes back to it.
    """
    mobiles = ["919800000001", "919800000002", "919800000003"]
    counter = iter(range(10_000))

    @settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(st.lists(one_report, max_size=3), batches)
    def check(before: list[dict[str, Any]], docs: list[list[dict[str, Any]]]) -> None:
        n = next(counter)
        one, alone = ReportStore(f"sqlite:///{tmp_path}/a{n}.db"), ReportStore(f"sqlite:///{tmp_path}/b{n}.db")
        keys = []
        for s in (one, alone):
            key = make_campaign_key("dag", f"run{n}", "send")
            s.ensure_campaign(key, dag_id="dag", run_id=f"run{n}", task_id="send", kind="bulk")
            s.mark_accepted(
                key, "u", transaction_id=None, verification_id=None, response={}, mobiles=mobiles, sent_at=REPORT_T0
            )
            if before:
                s.ingest(_validated(before), [])
            keys.append(key)
        held = {mid: row for mid, row in _rows(one).items()}
        requests_ = [IngestRequest(_validated(d), [json.dumps(d)]) for d in docs]
        batched = [_counts(r) for r in one.ingest_batch(requests_)]
        sequential = [_counts(alone.ingest(list(r.reports), list(r.raw_bodies))) for r in requests_]
        assert batched == sequential
        got, want = _rows(one), _rows(alone)
        assert {m: v[0] for m, v in got.items()} == {m: v[0] for m, v in want.items()}
        for mid, row in got.items():
            if row != want[mid]:  # the documented difference: the stored row is kept, with its dates
                assert row == held[mid] and row[0] == want[mid][0]
        assert one.campaign_summary(keys[0])["by_status"] == alone.campaign_summary(keys[1])["by_status"]  # type: ignore[index]
        assert one.stats()["raw_reports"] == alone.stats()["raw_reports"] == len(docs)
        one.dispose()
        alone.dispose()

    check()


def _recipients(store: ReportStore, key: str) -> dict[str, tuple[Any, ...]]:
    rc = t.recipients.c
    with store.engine.connect() as conn:
        rows = conn.execute(
            select(rc.mobile, rc.status, rc.report_message_id, rc.match_kind).where(rc.campaign_key == key)
        )
        return {row[0]: tuple(row[1:]) for row in rows}


@pytest.mark.postgres
@pytest.mark.integration
def test_postgresql_batches_store_what_sqlite_stores_one_request_after_another(pg_url: str, tmp_path: Path) -> None:
    """
    PostgreSQL writes a batch in set-based statements (reports/store/ingest_pg.py); SQLite committing the same
    requests one after another is the reference. Arbitrary batches (several reports of one message or one
    mobile, reports without a mobile, recipients sent with the report's id or matched by mobile, on top of
    a stored state) get the same answers and leave every message and recipient with the same status and match.
    """
    pg = ReportStore(pg_url)
    counter = iter(range(10_000))

    @settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(st.lists(one_report, max_size=3), batches, st.lists(st.booleans(), min_size=3, max_size=3))
    def check(before: list[dict[str, Any]], docs: list[list[dict[str, Any]]], no_mobile: list[bool]) -> None:
        n = next(counter)
        mobile = {f"m{i}": f"9198{n:05d}{i:03d}" for i in (1, 2, 3)}
        mobile["m3"] = mobile["m2"]  # two messages to one number: several updates of one recipient per batch

        def validated(items: list[dict[str, Any]]) -> list[DeliveryReport]:
            out = []
            for doc in items:
                dates = {k: (None if doc[k] is None else at(doc[k])) for k in ("doneDate", "submitDate")}
                i = int(doc["messageId"][1])
                number = None if no_mobile[i - 1] and i != 3 else mobile[doc["messageId"]]
                out.append(report(f"e{n}-{doc['messageId']}", doc["status"], mobile=number, **dates))
            return out

        alone = ReportStore(f"sqlite:///{tmp_path}/ref{n}.db")
        keys = []
        for s in (pg, alone):
            key = make_campaign_key("dag", f"run{n}", "send")
            s.ensure_campaign(key, dag_id="dag", run_id=f"run{n}", task_id="send", kind="bulk")
            for i in (1, 2):  # sent one by one: the transaction id is the report's message id
                s.mark_accepted(
                    key,
                    f"u{i}",
                    transaction_id=f"e{n}-m{i}",
                    verification_id=None,
                    response={},
                    mobiles=[mobile[f"m{i}"]],
                    sent_at=REPORT_T0,
                )
            if before:
                s.ingest(validated(before), [])
            keys.append(key)
        requests_ = [IngestRequest(validated(d), [json.dumps(d)]) for d in docs]
        batched = [_counts(r) for r in pg.ingest_batch(requests_)]
        sequential = [_counts(alone.ingest(list(r.reports), list(r.raw_bodies))) for r in requests_]
        assert batched == sequential
        mine = {m: v[0] for m, v in _rows(pg).items() if m.startswith(f"e{n}-")}
        assert mine == {m: v[0] for m, v in _rows(alone).items()}
        assert _recipients(pg, keys[0]) == _recipients(alone, keys[1])
        alone.dispose()

    try:
        check()
    finally:
        pg.dispose()


# --------------------------------------------------------------------------- the writer


def _post_concurrently(url: str, bodies: list[Any]) -> list[requests.Response]:
    answers: list[requests.Response | None] = [None] * len(bodies)

    def post(i: int) -> None:
        answers[i] = requests.post(f"{url}/callback/{SECRET}", json=bodies[i], timeout=60)

    threads = [threading.Thread(target=post, args=(i,)) for i in range(len(bodies))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(90)
    assert all(a is not None for a in answers)
    return [a for a in answers if a is not None]


def _doc(mid: str, status: str = "DELIVRD", **fields: Any) -> dict[str, Any]:
    return {"messageId": mid, "status": status, "errorCode": 0, "mobile": "919816111111", **fields}


def _wait(predicate: Any, timeout: float = 30) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def test_concurrent_callbacks_share_transactions_and_are_answered_once_committed(store_url: str) -> None:
    """
    While the writer commits one callback, 24 more arrive: they are committed in one transaction, none is
    answered before it committed, and each gets its own counts (the order among concurrent callbacks is the
    order they reached the queue).
    """
    store = get_store(store_url)
    gate = _Gate(store)
    commits: list[int] = []

    def on_commit(_conn: Any) -> None:
        commits.append(1)

    bodies: list[Any] = [_doc(f"m{i}", doneDate=at(1)) for i in range(20)]
    bodies += [_doc("dup", doneDate=at(1))] * 3 + [[_doc("late", "UNKNOWN"), _doc("late", doneDate=at(2))]]
    with ReceiverServer(store_url, SECRET) as server:
        first = threading.Thread(target=_post_concurrently, args=(server.url, [_doc("first")]))
        first.start()
        assert gate.entered.wait(30)
        box: list[list[requests.Response]] = []
        others = threading.Thread(target=lambda: box.append(_post_concurrently(server.url, bodies)))
        others.start()
        assert _wait(lambda: len(store.group_commit._queue) == len(bodies))
        assert store.stats()["reports"] == 0 and not box  # nothing committed, nothing answered
        event.listen(store.engine, "commit", on_commit)
        try:
            gate.release.set()
            first.join(30)
            others.join(90)
        finally:
            event.remove(store.engine, "commit", on_commit)
    answers = box[0]
    assert [a.status_code for a in answers] == [200] * len(bodies)
    assert gate.sizes == [1, len(bodies)] and len(commits) == 2  # 25 callbacks, 2 transactions
    assert [a.json() for a in answers[:20]] == [{"stored": 1, "duplicates": 0, "ignored_stale": 0}] * 20
    assert sorted(tuple(a.json().values()) for a in answers[20:23]) == [(0, 1, 0), (0, 1, 0), (1, 0, 0)]
    assert answers[23].json() == {"stored": 1, "duplicates": 0, "ignored_stale": 1}
    assert store.stats()["reports"] == 23 and store.stats()["raw_reports"] == len(bodies) + 1
    assert store.get_report("late")["status"] == "DELIVRD"  # type: ignore[index]


def _refuse_lost_reports(store: ReportStore) -> None:
    """A real database error inside the transaction: a trigger refuses report rows named ``lost-...``."""
    with store.engine.begin() as conn:
        if store.dialect == "sqlite":
            conn.exec_driver_sql(
                "CREATE TRIGGER refuse_lost BEFORE INSERT ON mc_reports WHEN substr(NEW.message_id, 1, 5) = 'lost-' "
                "BEGIN SELECT RAISE(ABORT, 'refused'); END"
            )
        else:
            conn.exec_driver_sql(
                "CREATE FUNCTION refuse_lost() RETURNS trigger AS $$ BEGIN IF left(NEW.message_id, 5) = 'lost-' "
                "THEN RAISE EXCEPTION 'refused'; END IF; RETURN NEW; END $$ LANGUAGE plpgsql"
            )
            conn.exec_driver_sql(
                "CREATE TRIGGER refuse_lost BEFORE INSERT ON mc_reports FOR EACH ROW EXECUTE FUNCTION refuse_lost()"
            )


def test_a_failed_transaction_acknowledges_none_of_its_callbacks(store_url: str) -> None:
    """
    The database fails while a batch of 12 callbacks is written (after their raw bodies and some reports
    were): all 12 get 503, none of them is kept, and the callbacks before and after are not affected.
    """
    store = get_store(store_url)
    _refuse_lost_reports(store)
    gate = _Gate(store)
    bodies: list[Any] = [[_doc(f"a-{i}"), _doc(f"lost-{i}")] for i in range(12)]
    with ReceiverServer(store_url, SECRET) as server:
        first = threading.Thread(target=_post_concurrently, args=(server.url, [_doc("first")]))
        first.start()
        assert gate.entered.wait(30)
        box: list[list[requests.Response]] = []
        others = threading.Thread(target=lambda: box.append(_post_concurrently(server.url, bodies)))
        others.start()
        assert _wait(lambda: len(store.group_commit._queue) == len(bodies))
        gate.release.set()
        first.join(30)
        others.join(90)
        after = _post_concurrently(server.url, [_doc("after")])
    assert [a.status_code for a in box[0]] == [503] * len(bodies)
    assert all(a.json() == {"detail": "report store unavailable"} for a in box[0])
    assert after[0].status_code == 200
    assert store.stats()["reports"] == 2 and store.stats()["raw_reports"] == 2  # "first" and "after" only


class _FakeStore:
    """The writer's view of a store: ``ingest_batch`` fails as told, and records the batches it was given."""

    masked_url = "fake://"

    def __init__(self, error: Exception | None, culprit: str = "") -> None:
        self.error, self.culprit, self.batches = error, culprit, []  # type: list[list[str]]

    def writer_connection(self) -> None:
        return None

    def ingest_batch(self, requests_: list[IngestRequest], connection: Any = None) -> list[IngestResult]:
        mids = [r.reports[0].messageId for r in requests_]
        self.batches.append(mids)
        if self.error is not None and (not self.culprit or self.culprit in mids):
            raise self.error
        return [IngestResult(stored=1) for _ in requests_]


def _queued_then_committed(store: Any, n: int) -> list[Any]:
    """``n`` callbacks queued while the writer is stopped, then committed: each one's outcome."""
    writer = GroupCommit(store)

    async def run() -> list[Any]:
        writer._thread = threading.current_thread()  # the writer looks busy: callbacks only queue
        calls = [asyncio.ensure_future(writer.ingest([report(f"r{i}", "DELIVRD")], ["{}"])) for i in range(n)]
        await asyncio.sleep(0)
        writer._thread = None
        writer._commit(writer._take(), _HeldConnection(store))
        return list(await asyncio.gather(*calls, return_exceptions=True))

    return asyncio.run(run())


def test_a_database_failure_fails_the_whole_batch_and_a_data_error_only_its_culprit() -> None:
    down = _FakeStore(OperationalError("COMMIT", {}, Exception("server closed the connection")))
    outcomes = _queued_then_committed(down, 6)
    assert all(isinstance(o, OperationalError) for o in outcomes) and len(down.batches) == 1
    poisoned = _FakeStore(IntegrityError("INSERT", {}, Exception("refused")), culprit="r2")
    outcomes = _queued_then_committed(poisoned, 6)
    assert isinstance(outcomes[2], IntegrityError)
    assert [o.stored for i, o in enumerate(outcomes) if i != 2] == [1] * 5
    assert poisoned.batches == [[f"r{i}" for i in range(6)]] + [[f"r{i}"] for i in range(6)]


def test_the_writer_answers_every_event_loop_and_stops_when_idle(store: ReportStore, monkeypatch: Any) -> None:
    """Callbacks from several event loops (threads) share the writer; it stops idle and starts again."""
    monkeypatch.setattr(gc_module, "TUNE_GARBAGE_COLLECTOR", False)
    writer = GroupCommit.of(store)
    assert store.group_commit is writer and GroupCommit.of(store) is writer
    writer.idle_seconds = 0.05
    results: dict[int, list[IngestResult]] = {}

    def loop(n: int) -> None:
        async def many() -> list[IngestResult]:
            return list(
                await asyncio.gather(*(writer.ingest([report(f"l{n}-{i}", "DELIVRD")], ["{}"]) for i in range(30)))
            )

        results[n] = asyncio.run(many())

    threads = [threading.Thread(target=loop, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert all(_counts(r) == (1, 0, 0) for n in range(4) for r in results[n])
    assert writer.requests == 120 and writer.transactions < 120
    assert _wait(lambda: writer._thread is None)  # stopped once idle
    assert _counts(asyncio.run(writer.ingest([report("again", "UNKNOWN")], []))) == (1, 0, 0)
    assert store.stats()["reports"] == 121


@pytest.mark.postgres
@pytest.mark.integration
def test_the_writer_keeps_its_connection_and_replaces_one_the_database_closed(pg_url: str, monkeypatch: Any) -> None:
    """
    Between transactions the writer keeps its connection (no pool checkout or ping each time); when PostgreSQL
    closed it meanwhile (restart, idle timeout), the next callback is still stored, on a new connection.
    """
    monkeypatch.setattr(gc_module, "TUNE_GARBAGE_COLLECTOR", False)
    store = ReportStore(pg_url)
    try:
        writer = GroupCommit(store)
        writer.linger_seconds = 0.5  # the writer keeps its connection while callbacks keep coming
        backends: list[int] = []

        async def ingest(mid: str) -> IngestResult:
            return await writer.ingest([report(mid, "DELIVRD")], ["{}"])

        def backend() -> int:
            with store.engine.connect() as conn:
                rows = conn.exec_driver_sql(
                    "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
                    " AND application_name = '' AND state = 'idle'"
                ).all()
            return int(rows[0][0]) if len(rows) == 1 else -1

        async def run() -> list[IngestResult]:
            results = [await ingest("first"), await ingest("second")]
            backends.append(backend())
            with store.engine.connect() as conn:
                conn.exec_driver_sql(f"SELECT pg_terminate_backend({backends[0]})")
            results.append(await ingest("after-the-kill"))
            backends.append(backend())
            return results

        results = asyncio.run(run())
        assert [_counts(r) for r in results] == [(1, 0, 0)] * 3
        assert backends[0] > 0 and backends[1] > 0 and backends[0] != backends[1]  # a new connection after the kill
        assert writer.transactions == 3 and store.stats()["reports"] == 3
    finally:
        store.dispose()


def test_a_connection_that_lost_its_prepared_statements_prepares_them_again(pg_url: str) -> None:
    """
    PostgreSQL ingest runs statements prepared once per connection; psycopg deallocates every prepared statement
    of a connection after a rollback when it had prepared some of its own. The next batch on that connection
    prepares them again and is stored, and a recipient update still finds its recipient.
    """
    store = ReportStore(pg_url)
    try:
        key = make_campaign_key("dag", "run", "send")
        store.ensure_campaign(key, dag_id="dag", run_id="run", task_id="send", kind="bulk")
        store.mark_accepted(
            key,
            "c1",
            transaction_id="tx-1",
            verification_id=None,
            response={},
            mobiles=["919816111111"],
            sent_at=REPORT_T0,
        )
        with store.writer_connection() as conn:
            [first] = store.ingest_batch([IngestRequest([report("m1", "DELIVRD", mobile=None)], ["{}"], None)], conn)
            conn.exec_driver_sql("DEALLOCATE ALL")
            conn.commit()
            later = report("m2", "DELIVRD", submitDate=report_time(1))
            [second] = store.ingest_batch([IngestRequest([later], ["{}"], None)], conn)
        assert (_counts(first), _counts(second)) == ((1, 0, 0), (1, 0, 0))
        assert store.get_report("m2")["status"] == "DELIVRD"  # type: ignore[index]
        assert store.campaign_summary(key)["delivered"] == 1  # type: ignore[index]
    finally:
        store.dispose()
