"""Pulled delivery reports in the store (SQLite and a real PostgreSQL): matching, idempotence, precedence."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Callable
from datetime import datetime, timedelta

import pytest
from helpers import REPORT_T0, report, report_time
from sqlalchemy import select

from airflow_provider_messagecentral.campaign.keys import make_campaign_key
from airflow_provider_messagecentral.client.pulled import PulledReport
from airflow_provider_messagecentral.reports.store import ReportStore, tables
from airflow_provider_messagecentral.reports.store.pulled import pulled_key

T0 = REPORT_T0
NUMBERS = ["919816100001", "919816100002", "919816100003"]


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def pulled(mobile: str, status: str, created: float = 0.0, done: float | None = 1.0, **kw: str) -> PulledReport:
    """A pulled row of a message created ``created`` minutes after T0 (delivered ``done`` minutes after)."""
    return PulledReport(
        mobile=mobile,
        status=status,
        error_code=kw.get("error_code", "0"),
        created_at=at(created),
        delivered_at=None if done is None else at(done),
        sender_id="UTOMOB",
        message_body=kw.get("body", "Sale ends today"),
    )


def campaign(store: ReportStore, run: str = "run-1", sent: float = 0.0, numbers: list[str] = NUMBERS) -> str:
    key = make_campaign_key("dag", run, "send")
    store.ensure_campaign(key, dag_id="dag", run_id=run, task_id="send", kind="bulk")
    store.mark_accepted(
        key, "c0", transaction_id=f"tx-{run}", verification_id="v", response={}, mobiles=numbers, sent_at=at(sent)
    )
    return key


def statuses(store: ReportStore, key: str) -> dict[str, str | None]:
    page = store.campaign_reports(key, page_size=1000)
    return {item["mobile"]: item["status"] for item in page["items"]}


def report_rows(store: ReportStore, mobile: str) -> list[tuple[str, str]]:
    r = tables.reports.c
    with store.engine.connect() as conn:
        rows = conn.execute(select(r.message_id, r.status).where(r.mobile == mobile).order_by(r.message_id)).all()
    return [(mid, status) for mid, status in rows]


def test_pulled_reports_count_in_the_campaign_summary(store: ReportStore) -> None:
    key = campaign(store)
    result = store.store_pulled(
        [pulled(NUMBERS[0], "DELIVRD"), pulled(NUMBERS[1], "UNDELIV", error_code="5"), pulled(NUMBERS[2], "UNKNOWN")]
    )
    assert (result.stored, result.matched, result.skipped) == (3, 3, 0)
    summary = store.campaign_summary(key)
    assert summary is not None
    assert (summary["delivered"], summary["failed"], summary["pending"]) == (1, 1, 1)
    items = {item["mobile"]: item for item in store.campaign_reports(key)["items"]}
    assert items[NUMBERS[1]]["error_code"] == 5
    assert items[NUMBERS[0]]["matched_by"] == "mobile"
    assert store.failures_by_error_code(key) == [("UNDELIV", 5, 1)]


def test_polling_the_same_rows_again_changes_nothing(store: ReportStore) -> None:
    key = campaign(store)
    rows = [pulled(n, "DELIVRD") for n in NUMBERS]
    store.store_pulled(rows)
    before = store.stats()
    again = store.store_pulled(rows)
    assert (again.stored, again.duplicates, again.matched) == (0, 3, 0)
    assert store.stats() == before
    assert store.campaign_summary(key)["delivered"] == 3  # type: ignore[index]


def test_a_later_poll_moves_a_message_forward_never_back(store: ReportStore) -> None:
    key = campaign(store)
    store.store_pulled([pulled(NUMBERS[0], "UNKNOWN", done=None)])
    assert statuses(store, key)[NUMBERS[0]] == "UNKNOWN"
    store.store_pulled([pulled(NUMBERS[0], "DELIVRD", done=2)])
    assert statuses(store, key)[NUMBERS[0]] == "DELIVRD"
    stale = store.store_pulled([pulled(NUMBERS[0], "UNKNOWN", done=3)])  # a final status is never undone
    assert stale.ignored_stale == 1
    assert statuses(store, key)[NUMBERS[0]] == "DELIVRD"
    assert report_rows(store, NUMBERS[0]) == [(pulled_key(pulled(NUMBERS[0], "DELIVRD")), "DELIVRD")]


def test_a_number_outside_the_campaign_window_is_not_attributed(store: ReportStore) -> None:
    key = campaign(store, sent=0)
    early = pulled(NUMBERS[0], "DELIVRD", created=-30)  # half an hour before the first send
    late = pulled(NUMBERS[1], "DELIVRD", created=5 * 24 * 60)  # five days after the last send
    stranger = pulled("919999900000", "DELIVRD")  # never texted by the campaign
    result = store.store_pulled([early, late, stranger])
    assert (result.stored, result.matched) == (3, 0)  # kept, like a callback that matches nothing (yet)
    assert store.campaign_summary(key)["pending"] == 3  # type: ignore[index]


def test_a_row_without_a_creation_date_is_skipped(store: ReportStore) -> None:
    campaign(store)
    result = store.store_pulled([PulledReport(mobile=NUMBERS[0], status="DELIVRD")])
    assert (result.stored, result.skipped) == (0, 1)


def test_a_pulled_row_lands_on_the_callback_of_its_message(store: ReportStore) -> None:
    """Callback first (UNKNOWN, with a messageId), then the pulled final state: one row, the final status."""
    key = campaign(store)
    store.ingest([report("m-1", "UNKNOWN", mobile=NUMBERS[0], submitDate=report_time(0))], [])
    store.store_pulled([pulled(NUMBERS[0], "DELIVRD", created=0, done=2)])
    assert statuses(store, key)[NUMBERS[0]] == "DELIVRD"
    assert report_rows(store, NUMBERS[0]) == [("m-1", "DELIVRD")]
    assert store.get_report("m-1")["final"] is True  # type: ignore[index]
    # ... and a pulled UNKNOWN of a message whose callback said DELIVRD changes nothing
    store.ingest([report("m-2", "DELIVRD", mobile=NUMBERS[1], submitDate=report_time(0), doneDate=report_time(1))], [])
    result = store.store_pulled([pulled(NUMBERS[1], "UNKNOWN", created=0, done=None)])
    assert result.ignored_stale == 1
    assert statuses(store, key)[NUMBERS[1]] == "DELIVRD"
    assert report_rows(store, NUMBERS[1]) == [("m-2", "DELIVRD")]


def test_a_late_callback_never_takes_a_recipient_back_and_the_next_poll_folds_it(store: ReportStore) -> None:
    """Pulled first (DELIVRD), then a late UNKNOWN callback of the same message, then another poll."""
    key = campaign(store)
    row = pulled(NUMBERS[0], "DELIVRD", created=0, done=2)
    store.store_pulled([row])
    store.ingest([report("m-1", "UNKNOWN", mobile=NUMBERS[0], submitDate=report_time(0))], [])
    assert statuses(store, key)[NUMBERS[0]] == "DELIVRD"
    store.ingest([report("m-1", "DELIVRD", mobile=NUMBERS[0], submitDate=report_time(0), doneDate=report_time(2))], [])
    assert statuses(store, key)[NUMBERS[0]] == "DELIVRD"
    store.store_pulled([row])  # the next poll: the pulled row is merged into the callback's report
    assert report_rows(store, NUMBERS[0]) == [("m-1", "DELIVRD")]
    items = {item["mobile"]: item for item in store.campaign_reports(key)["items"]}
    assert (items[NUMBERS[0]]["message_id"], items[NUMBERS[0]]["status"]) == ("m-1", "DELIVRD")
    assert store.campaign_summary(key)["recipients"] == 3  # type: ignore[index]


def test_a_callback_of_a_final_status_replaces_a_pulled_pending_one(store: ReportStore) -> None:
    key = campaign(store)
    store.store_pulled([pulled(NUMBERS[0], "UNKNOWN", created=0, done=None)])
    store.ingest([report("m-1", "UNDELIV", mobile=NUMBERS[0], submitDate=report_time(0), doneDate=report_time(3))], [])
    assert statuses(store, key)[NUMBERS[0]] == "UNDELIV"


def test_a_number_texted_again_later_takes_the_newer_message(store: ReportStore) -> None:
    """Two messages to one number in the window (different creation times): the latest one counts, as for callbacks."""
    key = campaign(store)
    store.store_pulled([pulled(NUMBERS[0], "UNDELIV", created=0), pulled(NUMBERS[0], "DELIVRD", created=60)])
    assert statuses(store, key)[NUMBERS[0]] == "DELIVRD"
    assert len(report_rows(store, NUMBERS[0])) == 2


def test_pulled_reports_match_recipients_recorded_after_them(store: ReportStore) -> None:
    store.store_pulled([pulled(NUMBERS[0], "DELIVRD", created=0.5)])
    key = campaign(store, sent=0)
    assert statuses(store, key)[NUMBERS[0]] == "DELIVRD"


def test_pulled_reports_reconcile_an_uncertain_unit(store: ReportStore) -> None:
    key = make_campaign_key("dag", "run-u", "send")
    store.ensure_campaign(key, dag_id="dag", run_id="run-u", task_id="send", kind="bulk")
    store.mark_pending(key, "c0", len(NUMBERS), mobiles=NUMBERS, sent_at=at(0))
    start, _end = store.pull_window(key)
    assert start <= at(0)
    store.store_pulled([pulled(NUMBERS[0], "DELIVRD", created=0.2)])
    unit = store.get_units(key)["c0"]
    assert (unit.state, unit.evidence) == ("accepted", "delivery_reports")
    summary = store.campaign_summary(key)
    assert summary is not None and (summary["recipients"], summary["delivered"]) == (3, 1)


def test_the_pull_window_starts_at_the_oldest_open_send(store: ReportStore) -> None:
    key = campaign(store, sent=0)
    with pytest.raises(LookupError, match="not recorded"):
        store.pull_window("mc-unknown")
    start, end = store.pull_window(key, margin=timedelta(minutes=10))
    assert start == at(-10)
    assert end > datetime.now() - timedelta(days=1)  # now plus the margin (naive UTC)
    store.store_pulled([pulled(n, "DELIVRD") for n in NUMBERS])
    later = campaign(store, run="run-2", sent=60, numbers=["919816100009"])
    assert store.pull_window(later, margin=timedelta(0))[0] == at(60)
    assert store.pull_window(key, margin=timedelta(0))[0] == at(0)  # all final: from the last send


def test_overlapping_campaigns_both_count_a_pulled_report(store: ReportStore) -> None:
    first = campaign(store, run="run-1", sent=0, numbers=[NUMBERS[0]])
    second = campaign(store, run="run-2", sent=1, numbers=[NUMBERS[0]])
    store.store_pulled([pulled(NUMBERS[0], "DELIVRD", created=1)])
    assert statuses(store, first)[NUMBERS[0]] == statuses(store, second)[NUMBERS[0]] == "DELIVRD"
    assert len(report_rows(store, NUMBERS[0])) == 1


def test_both_sources_of_one_message_end_as_one_row_under_the_callbacks_id(store: ReportStore) -> None:
    """Pulled first; the callback's doneDate is a little earlier (clocks, rounding), so the recipient keeps the
    pulled report; the next poll moves it onto the callback's report: one row per message."""
    key = campaign(store)
    rows = [pulled(n, "DELIVRD", created=0, done=2) for n in NUMBERS]
    store.store_pulled(rows)
    store.ingest(
        [
            report(f"m-{i}", "DELIVRD", mobile=n, submitDate=report_time(0), doneDate=report_time(1.9))
            for i, n in enumerate(NUMBERS)
        ],
        [],
    )
    assert store.stats()["reports"] == 6  # for now: the pulled rows and the callbacks
    result = store.store_pulled(rows)
    assert (result.stored, result.matched) == (0, 3)
    assert store.stats()["reports"] == 3
    items = store.campaign_reports(key)["items"]
    assert sorted((item["message_id"], item["status"]) for item in items) == [(f"m-{i}", "DELIVRD") for i in range(3)]
    assert store.store_pulled(rows).matched == 0  # and it stays so


def test_polls_and_callbacks_committed_at_once_end_as_one_final_row_per_message(store: ReportStore) -> None:
    """A poll and callbacks for the same numbers in concurrent transactions (PostgreSQL: row locks, retries)."""
    numbers = [f"9198162{i:05d}" for i in range(120)]
    key = campaign(store, numbers=numbers)
    rows = [pulled(n, "DELIVRD", created=0, done=2) for n in numbers]
    callbacks = [
        [
            report(f"m-{n}", "UNKNOWN", mobile=n, submitDate=report_time(0)),
            report(f"m-{n}", "DELIVRD", mobile=n, submitDate=report_time(0), doneDate=report_time(2)),
        ]
        for n in numbers
    ]
    errors: list[BaseException] = []

    def run(work: Callable[[], object]) -> None:
        try:
            work()
        except BaseException as err:
            errors.append(err)

    def poll() -> None:
        for start in range(0, len(rows), 10):
            store.store_pulled(rows[start : start + 10])

    def post() -> None:
        for body in callbacks:
            store.ingest(body, [])

    threads = [threading.Thread(target=run, args=(work,)) for work in (poll, post, poll)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert errors == []
    store.store_pulled(rows)  # the next poll
    items = store.campaign_reports(key, page_size=1000)["items"]
    assert {(item["message_id"], item["status"]) for item in items} == {(f"m-{n}", "DELIVRD") for n in numbers}
    assert store.stats()["reports"] == len(numbers)


def test_a_failed_row_without_delivered_at_is_dated_by_its_last_update(store: ReportStore) -> None:
    key = campaign(store)
    failed = PulledReport(mobile=NUMBERS[0], status="UNDELIV", error_code="5", created_at=at(0), updated_at=at(3))
    store.store_pulled([failed])
    items = {item["mobile"]: item for item in store.campaign_reports(key)["items"]}
    assert (items[NUMBERS[0]]["status"], items[NUMBERS[0]]["done_date"]) == ("UNDELIV", "2023-11-02T14:02:00+00:00")
    # the callback of the same message (the same status: nothing to replace) names it from the next poll on
    store.ingest([report("m-1", "UNDELIV", mobile=NUMBERS[0], submitDate=report_time(0), doneDate=report_time(1))], [])
    store.store_pulled([failed])
    assert report_rows(store, NUMBERS[0]) == [("m-1", "UNDELIV")]
    items = {item["mobile"]: item for item in store.campaign_reports(key)["items"]}
    assert (items[NUMBERS[0]]["message_id"], items[NUMBERS[0]]["status"]) == ("m-1", "UNDELIV")


def test_the_store_still_loads_without_airflow() -> None:
    """The receiver and the CLI import the store: pulled reports must not bring Airflow in (its logging to stdout)."""
    code = "import sys, airflow_provider_messagecentral.reports.store; print('airflow' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert result.stdout.strip() == "False"
