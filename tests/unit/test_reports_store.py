"""The report store on SQLite and on a real PostgreSQL: ledger, precedence, matching, summaries, schema."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pytest
from helpers import REPORT_T0, report, report_time
from sqlalchemy import text

from airflow_provider_messagecentral.campaign.keys import make_campaign_key
from airflow_provider_messagecentral.reports.store import (
    ReportStore,
    default_store_url,
    get_store,
    resolve_store_url,
    tables,
)
from airflow_provider_messagecentral.reports.store.pulled_write import RECIPIENT_COLUMNS

T0 = REPORT_T0


# --------------------------------------------------------------------------- helpers


rep = report
at = report_time


def campaign(store: ReportStore, task_id: str = "send", kind: str = "bulk") -> str:
    key = make_campaign_key("dag", "run-1", task_id)
    store.ensure_campaign(key, dag_id="dag", run_id="run-1", task_id=task_id, kind=kind)
    return key


def accept(store: ReportStore, key: str, unit: str, mobiles: list[str], tx: str, sent: datetime = T0) -> None:
    store.mark_pending(key, unit, len(mobiles))
    store.mark_accepted(
        key,
        unit,
        transaction_id=tx,
        verification_id="v-" + tx,
        response={"transactionId": tx},
        mobiles=mobiles,
        sent_at=sent,
    )


# --------------------------------------------------------------------------- keys and URLs


def test_campaign_key_is_deterministic_short_and_url_safe() -> None:
    key = make_campaign_key("dag", "manual__2024-01-01T00:00:00+00:00", "send", 3)
    assert key == make_campaign_key("dag", "manual__2024-01-01T00:00:00+00:00", "send", 3)
    assert key != make_campaign_key("dag", "manual__2024-01-01T00:00:00+00:00", "send", 4)
    assert key.startswith("mc-") and len(key) == 23
    assert all(c in "0123456789abcdef" for c in key[3:])


def test_store_urls(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("AIRFLOW_HOME", str(tmp_path))
    assert default_store_url() == f"sqlite:///{tmp_path.resolve()}/messagecentral_reports.db"
    assert resolve_store_url() == default_store_url()
    assert resolve_store_url("postgres://u:pw@db:5432/x") == "postgresql+psycopg://u:pw@db:5432/x"
    assert resolve_store_url("postgresql://u@db/x") == "postgresql+psycopg://u@db/x"
    monkeypatch.setenv("AIRFLOW_CONN_MC_REPORTS", "postgres://user:s3cret@dbhost:5433/reports")
    assert resolve_store_url(reports_conn_id="mc_reports") == "postgresql+psycopg://user:s3cret@dbhost:5433/reports"
    store = ReportStore("postgresql+psycopg://user:s3cret@dbhost:5433/reports", migrate=False)
    assert "s3cret" not in repr(store) and "s3cret" not in store.masked_url


def test_get_store_caches_one_store_per_url(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'r.db'}"
    assert get_store(url) is get_store(url)


# --------------------------------------------------------------------------- ledger


def test_ledger_pending_accepted_failed(store: ReportStore) -> None:
    key = campaign(store)
    store.mark_pending(key, "chunk-0", 2)
    store.mark_pending(key, "chunk-1", 1)
    units = store.get_units(key)
    assert units["chunk-0"].state == "pending" and units["chunk-0"].attempts == 1
    store.mark_pending(key, "chunk-0", 2)
    store.mark_accepted(
        key,
        "chunk-0",
        transaction_id="tx-0",
        verification_id="v-0",
        response={"transactionId": "tx-0", "authToken": "never-stored", "data": {"secret_key": "x", "ok": 1}},
        mobiles=["919816111111", "917715131105"],
        sent_at=T0,
    )
    store.mark_failed(key, "chunk-1", "[1001] invalid number for chunk-1")
    units = store.get_units(key)
    assert units["chunk-0"].state == "accepted"
    assert units["chunk-0"].attempts == 2
    assert units["chunk-0"].transaction_id == "tx-0" and units["chunk-0"].recipients == 2
    assert units["chunk-0"].response == {"transactionId": "tx-0", "data": {"ok": 1}}
    assert units["chunk-1"].state == "failed" and "invalid number" in (units["chunk-1"].error or "")
    # a failed unit may be tried again; an accepted unit never goes back to pending or failed
    store.mark_pending(key, "chunk-1", 1)
    store.mark_pending(key, "chunk-0", 2)
    store.mark_failed(key, "chunk-0", "late error")
    units = store.get_units(key)
    assert units["chunk-1"].state == "pending" and units["chunk-1"].attempts == 2
    assert units["chunk-0"].state == "accepted" and units["chunk-0"].error is None


def test_mark_accepted_twice_does_not_double_count(store: ReportStore) -> None:
    key = campaign(store)
    accept(store, key, "c0", ["919816111111", "917715131105"], "tx-0")
    accept(store, key, "c0", ["919816111111", "917715131105"], "tx-0")
    accept(store, key, "c1", ["919999999999"], "tx-1", sent=T0 + timedelta(minutes=5))
    summary = store.campaign_summary(key)
    assert summary is not None and summary["recipients"] == 3
    listed = store.list_campaigns()["items"][0]
    assert listed["recipients"] == 3
    assert listed["first_send_at"] == "2023-11-02T13:59:00+00:00"
    assert listed["last_send_at"] == "2023-11-02T14:04:00+00:00"


def test_mark_accepted_needs_a_campaign(store: ReportStore) -> None:
    with pytest.raises(LookupError, match="ensure_campaign"):
        store.mark_accepted("mc-unknown", "u", transaction_id="t", verification_id=None, response={}, mobiles=["91"])


# --------------------------------------------------------------------------- precedence


def test_duplicate_changes_nothing(store: ReportStore) -> None:
    first = rep("m1", "DELIVRD", submitDate=at(1), doneDate=at(2))
    assert store.ingest([first], ["{}"]).stored == 1
    again = store.ingest([rep("m1", "DELIVRD", submitDate=at(1), doneDate=at(9))], ["{}"])
    assert (again.stored, again.duplicates, again.ignored_stale) == (0, 1, 0)
    report = store.get_report("m1")
    assert report is not None and report["done_date"] == "2023-11-02T14:01:00+00:00"


def test_final_status_is_never_overwritten_by_unknown(store: ReportStore) -> None:
    store.ingest([rep("m1", "DELIVRD", submitDate=at(1), doneDate=at(2))], [])
    result = store.ingest([rep("m1", "UNKNOWN", submitDate=at(1), doneDate=at(30))], [])
    assert result.ignored_stale == 1 and result.stored == 0
    assert store.get_report("m1")["status"] == "DELIVRD"  # type: ignore[index]


def test_unknown_is_replaced_by_a_final_status_even_if_dated_earlier(store: ReportStore) -> None:
    store.ingest([rep("m1", "UNKNOWN", submitDate=at(1), doneDate=at(5))], [])
    assert store.ingest([rep("m1", "UNDELIV", submitDate=at(1), doneDate=at(2), errorCode=34)], []).stored == 1
    report = store.get_report("m1")
    assert report is not None and (report["status"], report["error_code"]) == ("UNDELIV", 34)


def test_older_report_never_overwrites_a_newer_one(store: ReportStore) -> None:
    store.ingest([rep("m1", "DELIVRD", submitDate=at(1), doneDate=at(10))], [])
    assert store.ingest([rep("m1", "EXPIRED", submitDate=at(1), doneDate=at(5))], []).ignored_stale == 1
    assert store.get_report("m1")["status"] == "DELIVRD"  # type: ignore[index]
    assert store.ingest([rep("m1", "UNDELIV", submitDate=at(1), doneDate=at(12))], []).stored == 1
    assert store.get_report("m1")["status"] == "UNDELIV"  # type: ignore[index]


def test_out_of_order_batch_keeps_the_final_status(store: ReportStore) -> None:
    batch = [
        rep("m1", "DELIVRD", submitDate=at(1), doneDate=at(2)),
        rep("m1", "UNKNOWN", submitDate=at(1)),
        rep("m1", "DELIVRD", submitDate=at(1), doneDate=at(2)),
        rep("m2", "ACCEPTD", mobile="917715131105", vendor={"x": 1}),
    ]
    result = store.ingest(batch, ['[{"messageId": "m1"}]'], remote="10.0.0.1")
    assert (result.stored, result.duplicates, result.ignored_stale) == (2, 1, 1)
    assert store.get_report("m1")["status"] == "DELIVRD"  # type: ignore[index]
    m2 = store.get_report("m2")
    assert m2 is not None and m2["status"] == "ACCEPTD" and not m2["final"] and m2["extra"] == {"vendor": {"x": 1}}
    assert store.stats()["raw_reports"] == 1
    assert store.get_report("nope") is None


# --------------------------------------------------------------------------- matching and summaries


def test_single_send_matches_by_message_id(store: ReportStore) -> None:
    key = campaign(store, kind="single")
    accept(store, key, "single", ["919816111111"], "a2e87214-d18c-4a2e-b7f4-802c4465a9b9")
    # submitted far outside the window: the id still matches
    store.ingest([rep("a2e87214-d18c-4a2e-b7f4-802c4465a9b9", "DELIVRD", submitDate="2024-05-01 00:00:00")], [])
    summary = store.campaign_summary(key)
    assert summary == {
        "campaign": key,
        "recipients": 1,
        "delivered": 1,
        "failed": 0,
        "pending": 0,
        "final": 1,
        "by_status": {"DELIVRD": 1},
        "delivered_ratio": 1.0,
        "failed_ratio": 0.0,
    }
    assert store.campaign_reports(key)["items"][0]["matched_by"] == "id"


def test_bulk_send_matches_by_mobile_inside_the_window_only(store: ReportStore) -> None:
    key = campaign(store)
    accept(store, key, "c0", ["919816111111", "917715131105", "919999999999", "918888888888"], "tx-bulk")
    store.ingest(
        [
            rep("r1", "DELIVRD", mobile="919816111111", submitDate=at(0.5), doneDate=at(1)),
            rep("r2", "UNDELIV", mobile="917715131105", submitDate=at(2), doneDate=at(3)),
            rep("r3", "DELIVRD", mobile="919999999999", submitDate=at(-5)),  # before first send - 1 min
            rep("r4", "DELIVRD", mobile="918888888888", submitDate=at(60 * 24 * 3 + 5)),  # after last + 3 days
            rep("r5", "DELIVRD", mobile="917000000000", submitDate=at(1)),  # not a recipient
        ],
        [],
    )
    summary = store.campaign_summary(key)
    assert summary is not None
    assert (summary["recipients"], summary["delivered"], summary["failed"], summary["pending"]) == (4, 1, 1, 2)
    assert summary["by_status"] == {"DELIVRD": 1, "UNDELIV": 1}
    assert summary["delivered_ratio"] == 0.25 and summary["failed_ratio"] == 0.25


def test_mobile_match_takes_the_latest_report_and_follows_its_updates(store: ReportStore) -> None:
    key = campaign(store)
    accept(store, key, "c0", ["919816111111"], "tx-bulk")
    store.ingest([rep("late", "UNKNOWN", submitDate=at(10))], [])
    store.ingest([rep("early", "DELIVRD", submitDate=at(1), doneDate=at(2))], [])  # older: does not replace
    assert store.campaign_summary(key)["by_status"] == {"UNKNOWN": 1}  # type: ignore[index]
    store.ingest([rep("late", "EXPIRED", submitDate=at(10), doneDate=at(600))], [])
    summary = store.campaign_summary(key)
    assert summary is not None and summary["by_status"] == {"EXPIRED": 1} and summary["failed"] == 1


def test_reports_that_arrive_before_the_send_is_recorded_still_match(store: ReportStore) -> None:
    key = campaign(store, kind="single")
    store.ingest([rep("tx-fast", "DELIVRD", submitDate=at(0))], [])
    store.ingest([rep("other", "UNDELIV", mobile="917715131105", submitDate=at(0))], [])
    accept(store, key, "c0", ["919816111111"], "tx-fast")
    accept(store, key, "c1", ["917715131105"], "tx-other")
    summary = store.campaign_summary(key)
    assert summary is not None and summary["by_status"] == {"DELIVRD": 1, "UNDELIV": 1}


def test_a_number_in_two_overlapping_campaigns_counts_for_both(store: ReportStore) -> None:
    first, second = campaign(store, "send_a"), campaign(store, "send_b")
    accept(store, first, "c0", ["919816111111"], "tx-a")
    accept(store, second, "c0", ["919816111111"], "tx-b", sent=T0 + timedelta(minutes=1))
    store.ingest([rep("r1", "DELIVRD", submitDate=at(1))], [])
    assert store.campaign_summary(first)["delivered"] == 1  # type: ignore[index]
    assert store.campaign_summary(second)["delivered"] == 1  # type: ignore[index]


def test_unknown_campaign_has_no_summary(store: ReportStore) -> None:
    assert store.campaign_summary("mc-00000000000000000000") is None


def test_campaign_reports_pages_and_search(store: ReportStore) -> None:
    key = campaign(store)
    mobiles = [f"9198161111{i:02d}" for i in range(25)]
    accept(store, key, "c0", mobiles, "tx")
    store.ingest([rep("r-7", "UNDELIV", mobile=mobiles[7], submitDate=at(1))], [])
    page = store.campaign_reports(key, page=3, page_size=10)
    assert page["total"] == 25 and len(page["items"]) == 5 and page["page"] == 3
    assert [i["mobile"] for i in page["items"]] == mobiles[20:]
    assert store.campaign_reports(key, search="UNDELIV")["items"][0]["message_id"] == "r-7"
    assert store.campaign_reports(key, search="r-7")["total"] == 1
    assert store.campaign_reports(key, search="+91 98161111 2")["total"] == 5
    assert store.campaign_reports(key, search="pending")["total"] == 24
    assert store.campaign_reports(key, search="%")["total"] == 0


# --------------------------------------------------------------------------- suppression


def test_suppression_list(store: ReportStore) -> None:
    assert store.add_suppressed(["+91 98161 11111", "917715131105"], reason="STOP") == 2
    assert store.add_suppressed(["919816111111"]) == 0
    assert store.suppressed_among(["919816111111", "919999999999"]) == {"919816111111"}
    listing = store.list_suppressed(page=1, page_size=1)
    assert listing["total"] == 2 and listing["items"][0]["mobile"] == "917715131105"
    assert listing["items"][0]["reason"] == "STOP"
    assert store.remove_suppressed(["919816111111", "910000000000"]) == 1
    assert store.suppressed_among(["919816111111"]) == set()


# --------------------------------------------------------------------------- schema versions


def test_upgrading_an_old_schema_keeps_every_report(store_url: str) -> None:
    old = ReportStore(store_url, migrate=False)
    assert old.schema_version() == 0
    assert old.migrate(target=1) == 1
    key = campaign(old)
    accept(old, key, "c0", ["919816111111"], "tx")
    old.ingest([rep("m1", "DELIVRD", submitDate=at(1))], ["{}"])
    old.dispose()

    reopened = ReportStore(store_url)
    assert reopened.schema_version() == tables.LATEST_VERSION
    assert reopened.get_report("m1")["status"] == "DELIVRD"  # type: ignore[index]
    assert reopened.campaign_summary(key)["delivered"] == 1  # type: ignore[index]
    assert reopened.add_suppressed(["919816111111"]) == 1
    again = ReportStore(store_url)  # reopening an up-to-date schema is a no-op
    assert again.schema_version() == tables.LATEST_VERSION
    assert again.stats()["reports"] == 1
    reopened.dispose()
    again.dispose()


def _recipient_indexes_and_options(store: ReportStore) -> tuple[dict[str, list[str]], list[str]]:
    """The recipients table's indexes (name -> columns) and, on PostgreSQL, its storage options."""
    from sqlalchemy import inspect

    with store.engine.connect() as conn:
        names = {
            index["name"]: list(index["column_names"]) for index in inspect(conn).get_indexes(tables.recipients.name)
        }
        options: list[str] = []
        if store.dialect == "postgresql":
            reloptions = conn.execute(
                text("SELECT reloptions FROM pg_class WHERE relname = :name"), {"name": tables.recipients.name}
            ).scalar()
            options = list(reloptions or [])
    return names, options


def test_copying_a_report_onto_a_recipient_writes_no_index_on_postgresql(store_url: str) -> None:
    """
    Schema version 4: on PostgreSQL nothing indexes what a report changes on its recipient (a HOT update, with
    room left in every page), for a new store and for one upgraded from version 3; SQLite keeps the covering
    index of the summary. Summaries count the same either way.
    """
    old = ReportStore(store_url, migrate=False)
    assert old.migrate(target=3) == 3
    names, _ = _recipient_indexes_and_options(old)
    assert "mc_recipients_campaign_status_idx" in names or old.dialect == "postgresql"
    if old.dialect == "postgresql":  # what version 3 created on PostgreSQL
        with old.engine.begin() as conn:
            conn.execute(
                text(
                    f"CREATE INDEX mc_recipients_campaign_status_idx ON {tables.recipients.name} (campaign_key, status)"
                )
            )
    key = campaign(old)
    accept(old, key, "c0", ["919816111111", "919816111112"], "tx")
    old.dispose()

    store = ReportStore(store_url)
    try:
        assert store.schema_version() == tables.LATEST_VERSION
        names, options = _recipient_indexes_and_options(store)
        if store.dialect == "postgresql":
            assert "mc_recipients_campaign_status_idx" not in names
            assert options == [f"fillfactor={tables.RECIPIENTS_FILLFACTOR}"]
            # What copying a report onto a recipient changes (callbacks and pulled reports alike) is in no index.
            assert not set(RECIPIENT_COLUMNS) & {column for columns in names.values() for column in columns}
        else:
            assert "mc_recipients_campaign_status_idx" in names
        store.ingest([rep("m1", "DELIVRD", mobile="919816111111", submitDate=at(1))], ["{}"])
        summary = store.campaign_summary(key)
        assert summary is not None and (summary["delivered"], summary["recipients"]) == (1, 2)
    finally:
        store.dispose()


def test_a_new_postgresql_store_has_no_status_index(store: ReportStore) -> None:
    names, options = _recipient_indexes_and_options(store)
    if store.dialect == "postgresql":
        assert "mc_recipients_campaign_status_idx" not in names
        assert options == [f"fillfactor={tables.RECIPIENTS_FILLFACTOR}"]
    else:
        assert names["mc_recipients_campaign_status_idx"] == ["campaign_key", "status"]
