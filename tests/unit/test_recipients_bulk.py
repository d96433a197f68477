"""
Recording a large accepted unit (SQLite and a real PostgreSQL): every recipient row, the reports that arrived
before the send matched onto them, and the suppression table consulted in one query per batch.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from helpers import REPORT_T0, report, report_time

from airflow_provider_messagecentral.campaign.keys import make_campaign_key
from airflow_provider_messagecentral.reports.store import ReportStore
from airflow_provider_messagecentral.safety.suppression import SuppressionList

T0 = REPORT_T0
rep = report
at = report_time
#: More numbers than one ``IN`` list or one suppression batch held: the set-based reads must see them all.
NUMBERS = [f"9198160{i:05d}" for i in range(3_000)]


def campaign(store: ReportStore, task_id: str = "send") -> str:
    key = make_campaign_key("dag", "run-1", task_id)
    store.ensure_campaign(key, dag_id="dag", run_id="run-1", task_id=task_id, kind="file")
    return key


def accept(store: ReportStore, key: str, mobiles: list[str], tx: str | None = "tx-big") -> None:
    store.mark_pending(key, "part-1", len(mobiles), mobiles=mobiles, sent_at=T0)
    store.mark_accepted(
        key, "part-1", transaction_id=tx, verification_id="v-1", response={}, mobiles=mobiles, sent_at=T0
    )


def recipients(store: ReportStore, key: str) -> dict[str, dict[str, Any]]:
    """Every recipient of the campaign as the reports page shows it: ``mobile -> item``."""
    items: list[dict[str, Any]] = []
    number = 1
    while True:
        page = store.campaign_reports(key, page=number, page_size=1_000)
        items.extend(page["items"])
        if len(items) >= page["total"] or not page["items"]:
            return {item["mobile"]: item for item in items}
        number += 1


def early_reports(store: ReportStore) -> None:
    """Reports that arrive before the send is recorded (a fast callback beats the task's bookkeeping)."""
    store.ingest(
        [
            rep("r-in", "DELIVRD", mobile=NUMBERS[10], submitDate=at(0.5)),
            rep("r-old", "DELIVRD", mobile=NUMBERS[2500], submitDate=at(1)),
            rep("r-new", "UNDELIV", mobile=NUMBERS[2500], submitDate=at(2)),  # the latest one wins
            rep("r-before", "DELIVRD", mobile=NUMBERS[1700], submitDate=at(-5)),  # before the window
            rep("r-after", "DELIVRD", mobile=NUMBERS[1200], submitDate=at(60 * 24 * 3 + 5)),  # after it
            rep("r-other", "DELIVRD", mobile="917000000000", submitDate=at(1)),  # not a recipient
            rep("tx-big", "EXPIRED", mobile=NUMBERS[2999], submitDate="2024-05-01 00:00:00"),  # by id: any date
        ],
        [],
    )


def test_a_large_unit_records_every_recipient_with_the_reports_that_came_first(store: ReportStore) -> None:
    key = campaign(store)
    early_reports(store)
    accept(store, key, NUMBERS)
    rows = recipients(store, key)
    assert sorted(rows) == sorted(NUMBERS)
    matched = {mobile: (item["matched_by"], item["status"], item["message_id"]) for mobile, item in rows.items()}
    assert {m: v for m, v in matched.items() if v[0] is not None} == {
        NUMBERS[10]: ("mobile", "DELIVRD", "r-in"),
        NUMBERS[2500]: ("mobile", "UNDELIV", "r-new"),
        NUMBERS[2999]: ("id", "EXPIRED", "tx-big"),
    }
    plain = rows[NUMBERS[0]]
    assert (plain["transaction_id"], plain["unit"], plain["status"]) == ("tx-big", "part-1", None)
    assert plain["sent_at"] == rows[NUMBERS[2500]]["sent_at"] == T0.isoformat() + "+00:00"
    assert rows[NUMBERS[2500]]["submit_date"] is not None and rows[NUMBERS[0]]["submit_date"] is None
    summary = store.campaign_summary(key)
    assert summary is not None
    assert (summary["recipients"], summary["by_status"]) == (3_000, {"DELIVRD": 1, "UNDELIV": 1, "EXPIRED": 1})


def test_recording_a_large_unit_again_replaces_its_rows_and_reports_after_it_still_match(store: ReportStore) -> None:
    key = campaign(store)
    early_reports(store)
    accept(store, key, NUMBERS)
    accept(store, key, NUMBERS)  # a retried bookkeeping call: no double count
    store.ingest([rep("r-late", "DELIVRD", mobile=NUMBERS[5], submitDate=at(3))], [])
    summary = store.campaign_summary(key)
    assert summary is not None
    assert (summary["recipients"], summary["delivered"], summary["failed"]) == (3_000, 2, 2)
    assert len(recipients(store, key)) == 3_000


def test_a_unit_without_transaction_id_matches_by_mobile_only(store: ReportStore) -> None:
    key = campaign(store)
    early_reports(store)
    accept(store, key, NUMBERS[:2000], tx=None)
    rows = recipients(store, key)
    assert {m for m, item in rows.items() if item["status"]} == {NUMBERS[10]}
    assert rows[NUMBERS[0]]["transaction_id"] is None


def test_a_recipient_listed_twice_gets_two_rows_with_the_same_match(store: ReportStore) -> None:
    key = campaign(store)
    early_reports(store)
    accept(store, key, [NUMBERS[10], NUMBERS[11], NUMBERS[10]])
    page = store.campaign_reports(key)["items"]
    assert [(i["mobile"], i["status"]) for i in page] == [
        (NUMBERS[10], "DELIVRD"),
        (NUMBERS[10], "DELIVRD"),
        (NUMBERS[11], None),
    ]
    assert store.campaign_summary(key)["recipients"] == 3  # type: ignore[index]


def test_suppression_table_is_looked_up_in_batches_and_an_empty_one_is_not(store: ReportStore) -> None:
    audience = [*NUMBERS, "919816111111"]
    argument = SuppressionList(frozenset({NUMBERS[7]}), store, origin="suppression list")
    assert argument.lookup(audience) == {NUMBERS[7]}  # the table is empty: only the argument's numbers
    assert store.any_suppressed() is False
    store.add_suppressed([NUMBERS[0], NUMBERS[1999], "919816111111"], reason="STOP")
    assert store.any_suppressed() is True
    assert store.suppressed_among(audience) == {NUMBERS[0], NUMBERS[1999], "919816111111"}
    fresh = SuppressionList(frozenset({NUMBERS[7]}), store, origin="suppression list")
    assert fresh.lookup(audience) == {NUMBERS[0], NUMBERS[7], NUMBERS[1999], "919816111111"}
    assert fresh.lookup([NUMBERS[1999], NUMBERS[3]]) == {NUMBERS[1999]}
    assert store.suppressed_among([]) == set()


def test_an_early_report_in_another_campaigns_window_matches_both(store: ReportStore) -> None:
    first, second = campaign(store, "send_a"), campaign(store, "send_b")
    early_reports(store)
    accept(store, first, NUMBERS[:20])
    store.mark_accepted(
        second,
        "part-1",
        transaction_id="tx-b",
        verification_id=None,
        response={},
        mobiles=NUMBERS[:20],
        sent_at=T0 + timedelta(minutes=1),
    )
    assert store.campaign_summary(first)["delivered"] == 1  # type: ignore[index]
    assert store.campaign_summary(second)["delivered"] == 1  # type: ignore[index]
