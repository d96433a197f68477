"""
Campaigns as asset events, on real Airflow (``dag.test()``, SQLite metadata DB) against the sandbox: the delivery
sensor's event carries the summary, Airflow queues the downstream DAG, which reads the campaign from
``triggering_asset_events`` and updates the (stand-in) CRM with who got the message.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import pytest
from airflow_runs import asset_events, queued_for, runs_consume_queued_asset_events, states, unpause, xcoms

from airflow_provider_messagecentral.reports.store import get_store

pytestmark = pytest.mark.integration

DELIVERED = "messagecentral_cashback_delivered"
CRM = "messagecentral_crm_update"
SEND_NOW = {"send_window": "off", "messagecentral_dry_run": False, "audience_limit": 200}


def test_a_delivered_campaign_emits_its_summary_and_the_crm_update_runs_on_it(
    load_example: Any, sandbox: Any, mc_conn: Any, receiver: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MESSAGECENTRAL_EXAMPLE_CRM_DIR", str(tmp_path))
    crm = load_example(CRM)
    campaign = load_example("messagecentral_campaign")
    idle = crm.test()  # writes both DAGs to the metadata DB; no event consumed: nothing to update
    assert xcoms(CRM, idle.run_id)[("update_crm", -1)] == []
    unpause(CRM)

    run = campaign.test(run_conf=SEND_NOW)
    assert set(states(run).values()) == {"success"}, states(run)
    values = xcoms(campaign.dag_id, run.run_id)
    sent, sensed = values[("send_campaign", -1)], values[("wait_for_delivery", -1)]

    # The event, read back from the metadata DB: the sensor's XCom summary, and its stage.
    [event] = asset_events(DELIVERED, run.run_id)
    assert (event["dag_id"], event["task_id"]) == ("messagecentral_campaign", "wait_for_delivery")
    assert event["extra"] == {**sensed, "stage": "delivered"}
    assert event["extra"]["campaign"] == sent["campaign"] and event["extra"]["recipients"] == 200
    assert event["extra"]["delivered_ratio"] >= 0.85 and set(event["extra"]["by_status"]) <= {
        "DELIVRD",
        "UNDELIV",
        "EXPIRED",
        "REJECTD",
        "UNKNOWN",
    }
    assert queued_for(CRM), "Airflow did not queue a run of the DAG scheduled on the asset"

    # The downstream run consumes the event (as the scheduler's asset-triggered run would) once every report is in.
    assert sandbox.flush_callbacks(timeout=60)["flushed"]
    with runs_consume_queued_asset_events(monkeypatch):
        crm_run = crm.test()
    assert states(crm_run) == {("update_crm", -1): "success"}
    [update] = xcoms(CRM, crm_run.run_id)[("update_crm", -1)]
    assert update["campaign"] == sent["campaign"]
    stored = get_store(str(mc_conn.reports_url)).campaign_reports(sent["campaign"], page_size=1000, search="DELIVRD")
    with open(update["file"], newline="", encoding="utf-8") as handle:
        written = list(csv.DictReader(handle))
    assert sorted(row["mobile"] for row in written) == sorted(item["mobile"] for item in stored["items"])
    assert update["delivered"] == stored["total"] >= sensed["delivered"]
    assert {row["status"] for row in written} == {"DELIVRD"}


def test_a_dry_run_emits_no_delivered_event(load_example: Any, sandbox: Any, mc_conn: Any) -> None:
    campaign = load_example("messagecentral_campaign")
    run = campaign.test(run_conf={"send_window": "off", "audience_limit": 5})  # the DAG rehearses by default
    assert states(run)[("wait_for_delivery", -1)] == "skipped"
    assert asset_events(DELIVERED, run.run_id) == []
    assert sandbox.messages() == []
