"""
The example DAGs a user copies (example_dags/): they parse without import errors, and each runs end to end
with ``dag.test()`` against the sandbox, checked on what the sandbox received and what the report store holds.
"""

from __future__ import annotations

import csv
import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from airflow_runs import states, xcoms
from helpers import REPO, airflow_cli

from airflow_provider_messagecentral.reports.store import get_store

pytestmark = pytest.mark.integration

EXAMPLES = REPO / "example_dags"
AUDIENCE = EXAMPLES / "data" / "audience.csv"
EXAMPLE_DAG_IDS = {
    "messagecentral_campaign",
    "messagecentral_bulk_numbers",
    "messagecentral_single_mapped",
    "messagecentral_alerting",
    "messagecentral_crm_update",
    "messagecentral_approval",
    "messagecentral_deadline",
}
CAMPAIGN_TEXT = "Hi {var1}, your Rs {var2} cashback is waiting for you. Shop by midnight: example.com/sale"


def audience_rows() -> list[dict[str, str]]:
    with AUDIENCE.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_example_dags_have_no_import_errors(airflow_db: Path) -> None:
    env = {"AIRFLOW__CORE__DAGS_FOLDER": str(EXAMPLES)}
    errors = airflow_cli("dags", "list-import-errors", "--local", "--output", "json", env=env)
    assert errors.returncode == 0, errors.stderr[-3000:]
    assert json.loads(errors.stdout.strip().splitlines()[-1]) == []


def test_example_dags_parse_and_document_themselves() -> None:
    try:
        from airflow.dag_processing.dagbag import DagBag
    except ImportError:  # Airflow 3.1
        from airflow.models.dagbag import DagBag  # type: ignore[no-redef]

    bag = DagBag(dag_folder=str(EXAMPLES))
    assert bag.import_errors == {}
    assert set(bag.dag_ids) == EXAMPLE_DAG_IDS
    for dag_id in EXAMPLE_DAG_IDS:
        source = (EXAMPLES / f"{dag_id}.py").read_text(encoding="utf-8")
        docstring = source.split('"""')[1]
        assert "messagecentral_default" in docstring, f"{dag_id}: say which connection it needs"
    campaign = bag.dags["messagecentral_campaign"]
    timetable = campaign.timetable  # Airflow 3.1's names its cron and zone summary and _timezone
    assert (getattr(timetable, "expression", None) or timetable.summary) == "30 9 * * *"
    assert str(getattr(timetable, "timezone", None) or timetable._timezone) == "Asia/Kolkata"


def test_campaign_texts_every_customer_once_and_reports_the_stored_delivery_summary(
    load_example: Any, sandbox: Any, mc_conn: Any, receiver: Any
) -> None:
    dag = load_example("messagecentral_campaign")
    # The promotional window is lifted so the run works at any hour; the DAG dry-runs unless told to send.
    dag_run = dag.test(run_conf={"send_window": "off", "messagecentral_dry_run": False})
    assert set(states(dag_run).values()) == {"success"}, states(dag_run)
    values = xcoms(dag.dag_id, dag_run.run_id)

    # Every audience row was texted exactly once, with its own placeholders filled in, in one workbook send.
    rows = audience_rows()
    messages = sandbox.messages()
    texted = Counter(m["mobile"] for m in messages)
    assert len(messages) == len(rows) == 1000
    assert set(texted.values()) == {1}
    text_by_mobile = {m["mobile"][-10:]: m["text"] for m in messages}
    assert text_by_mobile == {row["mobile"]: CAMPAIGN_TEXT.format(**row) for row in rows}
    [request] = sandbox.requests()
    assert request["kind"] == "file"
    assert request["params"]["messageType"] == "PROMOTIONAL"

    send = values[("send_campaign", -1)]
    assert (send["recipients"], send["accepted"], send["invalid"], send["duplicates"]) == (1000, 1000, 0, 0)
    campaign = send["campaign"]

    # The sensor succeeded on stored reports (a snapshot: reports keep arriving after it), and the report
    # task handed its summary on unchanged.
    sensed = values[("wait_for_delivery", -1)]
    assert values[("report", -1)] == sensed
    assert sensed["campaign"] == campaign and sensed["recipients"] == 1000
    assert sensed["delivered_ratio"] >= 0.85 and sensed["failed_ratio"] <= 0.15

    # Once the sandbox has called back every report, the store holds one final (or UNKNOWN) status per customer.
    assert sandbox.flush_callbacks(timeout=60)["flushed"]
    stored = get_store(str(mc_conn.reports_url)).campaign_summary(campaign)
    assert stored is not None
    assert stored["recipients"] == 1000
    assert sum(stored["by_status"].values()) == 1000
    assert stored["delivered"] >= sensed["delivered"] and stored["failed"] >= sensed["failed"]
    assert stored["pending"] == stored["by_status"].get("UNKNOWN", 0)
    assert sandbox.stats()["callbacks_sent"] == 1000
    if stored["final"] == sensed["final"]:  # every report was in when the sensor looked
        assert stored == sensed


def test_bulk_numbers_sends_one_text_to_every_number_in_chunks(load_example: Any, sandbox: Any, mc_conn: Any) -> None:
    dag = load_example("messagecentral_bulk_numbers")
    dag_run = dag.test()
    assert states(dag_run) == {("send_notice", -1): "success"}

    numbers = [row["mobile"] for row in audience_rows()]
    requests = sandbox.requests()
    assert [r["kind"] for r in requests] == ["bulk"] * 4
    assert [len(r["recipients"]) for r in requests] == [250] * 4
    assert {r["params"]["messageType"] for r in requests} == {"TRANSACTIONAL"}
    messages = sandbox.messages()
    assert sorted(m["mobile"] for m in messages) == sorted(f"91{n}" for n in numbers)
    [text] = {m["text"] for m in messages}
    assert text.startswith("Service notice: net banking is under maintenance on ")
    assert "{{" not in text

    send = xcoms(dag.dag_id, dag_run.run_id)[("send_notice", -1)]
    assert (send["recipients"], send["accepted"], send["chunks"], send["invalid"]) == (1000, 1000, 4, 0)


def test_single_mapped_texts_each_order_from_its_own_mapped_task(load_example: Any, sandbox: Any, mc_conn: Any) -> None:
    dag = load_example("messagecentral_single_mapped")
    dag_run = dag.test()
    task_states = states(dag_run)
    assert set(task_states.values()) == {"success"}, task_states
    mapped = sorted(i for (task_id, i) in task_states if task_id == "notify_customer")
    assert mapped == [0, 1, 2, 3]

    requests = sandbox.requests()
    assert [r["kind"] for r in requests] == ["single"] * 4
    assert {r["params"]["messageType"] for r in requests} == {"TRANSACTIONAL"}
    texts = {m["mobile"]: m["text"] for m in sandbox.messages()}
    assert texts == {
        "919816111111": "Hi Asha, your order OD-10231 has shipped and arrives tomorrow.",
        "917715131105": "Hi Ravi, your order OD-10232 has shipped and arrives in 2 days.",
        "919871234567": "Hi Meera, your order OD-10233 has shipped and arrives tomorrow.",
        "918826543210": "Hi Karan, your order OD-10234 has shipped and arrives in 3 days.",
    }
    values = xcoms(dag.dag_id, dag_run.run_id)
    campaigns = {values[("notify_customer", i)]["campaign"] for i in mapped}
    assert len(campaigns) == 4  # one campaign (and ledger) per mapped task instance
    assert all(values[("notify_customer", i)]["accepted"] == 1 for i in mapped)


def test_alerting_texts_oncall_naming_the_failed_task(load_example: Any, sandbox: Any, mc_conn: Any) -> None:
    dag = load_example("messagecentral_alerting")
    dag_run = dag.test(run_conf={"feed_age_hours": 26})  # a stale feed: the check fails
    assert str(dag_run.state) == "failed"
    assert states(dag_run) == {("check_orders_feed", -1): "failed", ("publish_dashboard", -1): "upstream_failed"}

    [alert] = sandbox.messages()
    assert alert["mobile"] == "919816100000"
    assert alert["text"].startswith("ALERT messagecentral_alerting: task check_orders_feed failed (run ")
    assert dag_run.run_id in alert["text"]
    assert alert["text"].endswith("try 1)")
    [request] = sandbox.requests()
    assert request["params"]["messageType"] == "TRANSACTIONAL"
