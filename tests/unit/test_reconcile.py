"""Reconciliation of uncertain send units (SQLite and a real PostgreSQL): pending units whose reports arrived."""

from __future__ import annotations

from datetime import timedelta

from helpers import REPORT_T0, report, report_time
from sqlalchemy import text

from airflow_provider_messagecentral.campaign.keys import make_campaign_key
from airflow_provider_messagecentral.reports.store import ReportStore, tables

T0 = REPORT_T0
rep = report
at = report_time
SENT = ["919816100001", "919816100002"]  # an answered unit
UNCERTAIN = ["919816100003", "919816100004", "919816100005"]  # a unit whose answer was lost


def campaign(store: ReportStore) -> str:
    """A campaign with one answered unit ``c0`` (sent at T0) and one unit ``c1`` left pending at T0 + 1 min."""
    key = make_campaign_key("dag", "run-1", "send")
    store.ensure_campaign(key, dag_id="dag", run_id="run-1", task_id="send", kind="bulk")
    store.mark_pending(key, "c0", len(SENT), mobiles=SENT, sent_at=T0)
    store.mark_accepted(key, "c0", transaction_id="tx-0", verification_id="v0", response={}, mobiles=SENT, sent_at=T0)
    store.mark_pending(key, "c1", len(UNCERTAIN), mobiles=UNCERTAIN, sent_at=T0 + timedelta(minutes=1))
    return key


def counts(store: ReportStore, key: str) -> tuple[int, int, int]:
    """(recipients, delivered, failed) of the campaign's summary."""
    summary = store.campaign_summary(key)
    assert summary is not None
    return summary["recipients"], summary["delivered"], summary["failed"]


def test_pending_recipients_are_not_counted_without_reports(store: ReportStore) -> None:
    key = campaign(store)
    store.ingest([rep("r0", "DELIVRD", mobile=SENT[0], submitDate=at(1))], [])
    assert store.reconcile(key) == {}
    assert counts(store, key) == (2, 1, 0)
    unit = store.get_units(key)["c1"]
    assert (unit.state, unit.evidence, unit.reconciled) == ("pending", None, False)
    assert store.get_units(key)["c0"].evidence == "response"
    assert store.campaign_funnel(key, store.campaign_summary(key))["reconciled"] == 0  # type: ignore[arg-type]


def test_reports_for_a_pending_unit_reconcile_it_once(store: ReportStore) -> None:
    key = campaign(store)
    store.ingest(
        [
            rep("r3", "DELIVRD", mobile=UNCERTAIN[0], submitDate=at(1.5), doneDate=at(2)),
            rep("r4", "UNDELIV", mobile=UNCERTAIN[1], submitDate=at(1.5), doneDate=at(3)),
        ],
        [],
    )
    assert store.reconcile(key) == {"c1": 3}
    unit = store.get_units(key)["c1"]
    assert (unit.state, unit.evidence, unit.reconciled, unit.recipients) == ("accepted", "delivery_reports", True, 3)
    assert counts(store, key) == (5, 1, 1)  # all three recipients counted; the third has no report yet
    assert store.get_campaign(key)["recipients"] == 5  # type: ignore[index]
    items = {i["mobile"]: i for i in store.campaign_reports(key)["items"]}
    assert items[UNCERTAIN[0]]["matched_by"] == "mobile" and items[UNCERTAIN[0]]["status"] == "DELIVRD"
    assert items[UNCERTAIN[2]]["status"] is None and items[UNCERTAIN[2]]["transaction_id"] is None

    assert store.reconcile(key) == {}  # idempotent
    assert counts(store, key) == (5, 1, 1)
    # later reports of the reconciled recipients match them as any report does
    store.ingest([rep("r5", "EXPIRED", mobile=UNCERTAIN[2], submitDate=at(1.5), doneDate=at(60))], [])
    assert counts(store, key) == (5, 1, 2)
    summary = store.campaign_summary(key)
    assert store.campaign_funnel(key, summary)["reconciled"] == 3  # type: ignore[arg-type]


def test_summary_and_units_reads_reconcile_lazily(store: ReportStore) -> None:
    key = campaign(store)
    store.ingest([rep("r3", "DELIVRD", mobile=UNCERTAIN[0], submitDate=at(2))], [])
    assert counts(store, key) == (5, 1, 0)  # campaign_summary reconciled first
    assert store.get_units(key)["c1"].reconciled

    other = campaign_of(store, "send_b")
    store.mark_pending(other, "c9", 1, mobiles=["919816100009"], sent_at=T0)
    store.ingest([rep("r9", "DELIVRD", mobile="919816100009", submitDate=at(0.5))], [])
    assert store.get_units(other)["c9"].reconciled  # get_units reconciled first

    third = campaign_of(store, "send_c")
    store.mark_pending(third, "c8", 1, mobiles=["919816100008"], sent_at=T0)
    store.ingest([rep("r8", "DELIVRD", mobile="919816100008", submitDate=at(0.5))], [])
    listed = {c["campaign"]: c["recipients"] for c in store.list_campaigns()["items"]}
    assert listed[third] == 1  # the dashboard's campaign list reconciled first


def campaign_of(store: ReportStore, task_id: str) -> str:
    key = make_campaign_key("dag", "run-1", task_id)
    store.ensure_campaign(key, dag_id="dag", run_id="run-1", task_id=task_id, kind="bulk")
    return key


def test_reports_outside_the_units_window_are_no_evidence(store: ReportStore) -> None:
    key = campaign(store)  # c1 was tried at T0 + 1 min: its window is [T0, T0 + 1 min + 3 days]
    store.ingest(
        [
            rep("early", "DELIVRD", mobile=UNCERTAIN[0], submitDate=at(-0.5)),  # before the attempt - 1 min
            rep("late", "DELIVRD", mobile=UNCERTAIN[1], submitDate=at(60 * 24 * 3 + 2)),  # after + 3 days
            rep("other", "DELIVRD", mobile="917000000000", submitDate=at(2)),  # not a recipient of c1
        ],
        [],
    )
    assert store.reconcile(key) == {}
    assert counts(store, key)[0] == 2 and store.get_units(key)["c1"].state == "pending"
    store.ingest([rep("edge", "DELIVRD", mobile=UNCERTAIN[2], submitDate=at(0))], [])  # attempt - 1 min: inside
    assert store.reconcile(key) == {"c1": 3}


def test_a_later_answer_replaces_the_reconciled_recipients(store: ReportStore) -> None:
    key = campaign(store)
    store.ingest([rep("r3", "DELIVRD", mobile=UNCERTAIN[0], submitDate=at(2))], [])
    assert store.reconcile(key) == {"c1": 3}
    # a concurrent try's answer for the same unit is recorded after all: counted once, by its answer
    store.mark_accepted(
        key,
        "c1",
        transaction_id="tx-1",
        verification_id="v1",
        response={},
        mobiles=UNCERTAIN,
        sent_at=T0 + timedelta(minutes=1),
    )
    unit = store.get_units(key)["c1"]
    assert (unit.state, unit.evidence, unit.transaction_id) == ("accepted", "response", "tx-1")
    assert counts(store, key) == (5, 1, 0) and store.get_campaign(key)["recipients"] == 5  # type: ignore[index]


def test_a_reconciled_unit_stays_accepted_and_failed_units_are_never_reconciled(store: ReportStore) -> None:
    key = campaign(store)
    store.ingest([rep("r3", "DELIVRD", mobile=UNCERTAIN[0], submitDate=at(2))], [])
    assert store.reconcile(key) == {"c1": 3}
    store.mark_pending(key, "c1", 3, mobiles=UNCERTAIN)
    store.mark_failed(key, "c1", "late error")
    assert store.get_units(key)["c1"].reconciled and counts(store, key)[0] == 5

    store.mark_pending(key, "c2", 1, mobiles=["919816100007"], sent_at=T0)
    store.mark_failed(key, "c2", "[705] insufficient balance")  # refused: it was not sent
    store.ingest([rep("r7", "DELIVRD", mobile="919816100007", submitDate=at(1))], [])
    assert store.reconcile(key) == {} and store.get_units(key)["c2"].state == "failed"


def test_a_pending_first_attempt_widens_the_window_for_later_sends(store: ReportStore) -> None:
    """The unit left pending is the campaign's first attempt; the rest is accepted two hours later."""
    key = campaign_of(store, "send")
    store.mark_pending(key, "c1", len(UNCERTAIN), mobiles=UNCERTAIN, sent_at=T0)
    later = T0 + timedelta(hours=2)
    store.mark_pending(key, "c0", len(SENT), mobiles=SENT, sent_at=later)
    store.mark_accepted(key, "c0", transaction_id="tx", verification_id=None, response={}, mobiles=SENT, sent_at=later)
    row = store.get_campaign(key)
    assert row is not None and row["window_start"] == T0 - timedelta(minutes=1)
    assert row["first_send_at"] == later  # send times are those of answered sends
    store.ingest([rep("r3", "DELIVRD", mobile=UNCERTAIN[0], submitDate=at(0.2))], [])
    assert counts(store, key) == (5, 1, 0)


def test_upgrading_a_version_2_store_keeps_units_and_reconciles_new_ones(store_url: str) -> None:
    old = ReportStore(store_url, migrate=False)
    assert old.migrate(target=2) == 2
    with old.engine.begin() as conn:  # the ledger as schema version 2 defined it
        for column in ("pending_recipients", "evidence"):
            conn.execute(text(f"ALTER TABLE {tables.ledger.name} DROP COLUMN {column}"))
        conn.execute(
            text(
                f"INSERT INTO {tables.ledger.name} (campaign_key, unit_key, state, attempts, recipients, "
                "created_at, updated_at) VALUES ('mc-old', 'u0', 'pending', 1, 2, :t, :t)"
            ),
            {"t": T0},
        )
    old.dispose()

    store = ReportStore(store_url)
    try:
        assert store.schema_version() == tables.LATEST_VERSION
        unit = store.get_units("mc-old")["u0"]
        assert (unit.state, unit.evidence) == ("pending", None)
        assert store.reconcile("mc-old") == {}  # a pending unit of version 2 remembers no recipients
        key = campaign(store)
        store.ingest([rep("r3", "DELIVRD", mobile=UNCERTAIN[0], submitDate=at(2))], [])
        assert store.reconcile(key) == {"c1": 3}
    finally:
        store.dispose()


def test_dashboard_counts_reconciled_recipients(store: ReportStore) -> None:
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from airflow_provider_messagecentral.reports.dashboard import dashboard_router

    key = campaign(store)
    store.ingest([rep("r3", "DELIVRD", mobile=UNCERTAIN[0], submitDate=at(2))], [])
    app = FastAPI()
    app.include_router(dashboard_router(lambda: store))
    client = TestClient(app)
    listing = client.get("/dashboard")
    assert f'data-campaign="{key}"' in listing.text and '<td class="num">5</td>' in listing.text
    page = client.get(f"/dashboard/campaigns/{key}").text
    assert 'data-stage="accepted" data-count="5"' in page and 'data-reconciled="3"' in page
