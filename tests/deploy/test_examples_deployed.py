"""
Every example DAG on the real deployment (``scripts/cluster.sh``: CeleryExecutor with two workers, Redis,
PostgreSQL, api-server with the plugin, scheduler, dag-processor, triggerer), triggered through the REST API
exactly as a user does: unpause, then ``POST /api/v2/dags/{dag_id}/dagRuns`` with ``"logical_date": null``.

The module's fixture unpauses and triggers all of them at once (they share the two workers, as in production),
watches the campaign's deferred sensor while it waits, and collects the runs; the tests then check what each
run did, what the sandbox received and what the report store (fed by the api-server's receiver) holds.
"""

from __future__ import annotations

import csv
import re
import time
from collections import Counter
from datetime import datetime, timedelta
from typing import Any

import pytest
from deploy_support import FIGURES, Api
from helpers import REPO
from mc_cluster import Cluster

from airflow_provider_messagecentral.reports.store import get_store

pytestmark = pytest.mark.deploy

CAMPAIGN, BULK, MAPPED, ALERTING = (
    "messagecentral_campaign",
    "messagecentral_bulk_numbers",
    "messagecentral_single_mapped",
    "messagecentral_alerting",
)
EXAMPLES = (CAMPAIGN, BULK, MAPPED, ALERTING)
# What a user passes to send the campaign now (the example dry-runs unless told otherwise; the promotional
# window would defer it outside 09:00-21:00 IST).
CAMPAIGN_CONF = {"messagecentral_dry_run": False, "send_window": "off"}
STALE_FEED = {"feed_age_hours": 26}
# Reports arrive this long after a send (real ones trickle in over minutes): the sensor finds none at its first
# check and must defer to the triggerer.
CALLBACK_DELAY = 20.0
ONCALL = "919816100000"
ORDERS = {
    "919816111111": "Hi Asha, your order OD-10231 has shipped and arrives tomorrow.",
    "917715131105": "Hi Ravi, your order OD-10232 has shipped and arrives in 2 days.",
    "919871234567": "Hi Meera, your order OD-10233 has shipped and arrives tomorrow.",
    "918826543210": "Hi Karan, your order OD-10234 has shipped and arrives in 3 days.",
}
CAMPAIGN_TEXT = "Hi {var1}, your Rs {var2} cashback is waiting for you. Shop by midnight: example.com/sale"


def audience() -> list[dict[str, str]]:
    with (REPO / "example_dags" / "data" / "audience.csv").open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def kind(text: str) -> str:
    """Which example sent a message, from its text."""
    if text.startswith("ALERT "):
        return ALERTING
    if text.startswith("Service notice"):
        return BULK
    if "your order" in text:
        return MAPPED
    if "cashback" in text:
        return CAMPAIGN
    return "other"


@pytest.fixture(scope="module")
def deployed(cluster: Cluster, api: Api) -> dict[str, Any]:
    """Unpause and trigger every example (REST, null logical date); wait for every run, the scheduled one too."""
    started = time.monotonic()
    api.wait_for_dags(set(EXAMPLES))
    api.sandbox("POST", "reset")
    api.sandbox("POST", "config", json={"callback_delay": CALLBACK_DELAY})
    for dag_id in EXAMPLES:
        api.unpause(dag_id)
    runs = {
        CAMPAIGN: api.trigger(CAMPAIGN, CAMPAIGN_CONF),
        BULK: api.trigger(BULK),
        MAPPED: api.trigger(MAPPED),
        ALERTING: api.trigger(ALERTING),
        "alerting_stale": api.trigger(ALERTING, STALE_FEED),
    }
    # Watch the campaign's sensor while it waits: its states, and the triggerer job that ran its trigger.
    sensor_states: list[str | None] = []
    triggerer_jobs: list[dict[str, Any]] = []

    def watch_sensor() -> None:
        ti = api.task_instance(CAMPAIGN, runs[CAMPAIGN], "wait_for_delivery")
        if not sensor_states or sensor_states[-1] != ti["state"]:
            sensor_states.append(ti["state"])
        if ti.get("triggerer_job"):
            triggerer_jobs.append(ti["triggerer_job"])

    finished = {CAMPAIGN: api.wait_run(CAMPAIGN, runs[CAMPAIGN], timeout=300, on_poll=watch_sensor)}
    for name, run_id in runs.items():
        dag_id = ALERTING if name == "alerting_stale" else name
        finished[name] = api.wait_run(dag_id, run_id, timeout=240)
    # Unpausing the daily campaign made Airflow schedule its latest interval at once (catchup=False).
    deadline = time.monotonic() + 120
    while not (scheduled := [r for r in api.runs(CAMPAIGN) if r["run_type"] == "scheduled"]):
        assert time.monotonic() < deadline, "unpausing messagecentral_campaign scheduled no run"
        time.sleep(1)
    finished["campaign_scheduled"] = api.wait_run(CAMPAIGN, scheduled[0]["dag_run_id"], timeout=240)
    runs["campaign_scheduled"] = scheduled[0]["dag_run_id"]
    # Every report the sandbox owes has reached the api-server's receiver.
    api.sandbox("POST", "callbacks/flush", params={"timeout": 120, "expedite": True}, timeout=150)
    api.sandbox("POST", "config", json={"callback_delay": 0.5})
    FIGURES["examples_seconds"] = round(time.monotonic() - started, 1)
    return {
        "runs": runs,
        "finished": finished,
        "messages": api.sandbox("GET", "messages"),
        "stats": api.sandbox("GET", "stats"),
        "sensor_states": sensor_states,
        "triggerer_jobs": triggerer_jobs,
    }


def test_every_example_dag_succeeds_when_triggered_through_the_rest_api(deployed: dict[str, Any], api: Api) -> None:
    finished = deployed["finished"]
    for name in (*EXAMPLES, "campaign_scheduled"):
        assert finished[name]["state"] == "success", (name, finished[name])
        dag_id = CAMPAIGN if name == "campaign_scheduled" else name
        states = {
            (t["task_id"], t["map_index"]): t["state"] for t in api.task_instances(dag_id, deployed["runs"][name])
        }
        expected = {"success"} if name != "campaign_scheduled" else {"success", "skipped"}
        assert set(states.values()) <= expected, (name, states)
    assert finished[CAMPAIGN]["logical_date"] is None and finished[BULK]["logical_date"] is None
    # The alerting example's stale-feed run fails on purpose (that is what pages on-call).
    stale = deployed["runs"]["alerting_stale"]
    assert finished["alerting_stale"]["state"] == "failed"
    states = {t["task_id"]: t["state"] for t in api.task_instances(ALERTING, stale)}
    assert states == {"check_orders_feed": "failed", "publish_dashboard": "upstream_failed"}


def test_each_audience_member_is_texted_exactly_once(deployed: dict[str, Any], api: Api) -> None:
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for message in deployed["messages"]:
        by_kind.setdefault(kind(message["text"]), []).append(message)
    rows = audience()
    # Nothing but what the deliberate triggers sent: the scheduled (dry) campaign run and the healthy alerting
    # run texted nobody.
    assert {k: len(v) for k, v in by_kind.items()} == {CAMPAIGN: 1000, BULK: 1000, MAPPED: 4, ALERTING: 1}

    campaign = Counter(m["mobile"] for m in by_kind[CAMPAIGN])
    assert set(campaign.values()) == {1} and len(campaign) == len(rows)
    texts = {m["mobile"][-10:]: m["text"] for m in by_kind[CAMPAIGN]}
    assert texts == {row["mobile"]: CAMPAIGN_TEXT.format(**row) for row in rows}

    bulk = Counter(m["mobile"] for m in by_kind[BULK])
    assert set(bulk.values()) == {1} and sorted(bulk) == sorted(f"91{row['mobile']}" for row in rows)
    [notice] = {m["text"] for m in by_kind[BULK]}
    # No logical date: the maintenance date is the day after the run was triggered.
    run_after = datetime.fromisoformat(deployed["finished"][BULK]["run_after"].replace("Z", "+00:00"))
    assert f"on {(run_after + timedelta(days=1)).date().isoformat()} from 01:00" in notice, notice

    assert {m["mobile"]: m["text"] for m in by_kind[MAPPED]} == ORDERS
    assert len(by_kind[MAPPED]) == 4

    [alert] = by_kind[ALERTING]
    assert alert["mobile"] == ONCALL
    assert alert["text"].startswith("ALERT messagecentral_alerting: task check_orders_feed failed (run ")
    assert deployed["runs"]["alerting_stale"] in alert["text"]


def test_unpausing_the_daily_campaign_rehearses_and_texts_nobody(deployed: dict[str, Any], api: Api) -> None:
    run_id = deployed["runs"]["campaign_scheduled"]
    preview = api.xcom(CAMPAIGN, run_id, "send_campaign")
    assert preview["dry_run"] is True and preview["recipients"] == 1000 and preview["accepted"] == 0
    states = {t["task_id"]: t["state"] for t in api.task_instances(CAMPAIGN, run_id)}
    assert states == {
        "build_audience": "success",
        "send_campaign": "success",
        "wait_for_delivery": "skipped",
        "report": "skipped",
    }


def test_the_delivery_sensor_deferred_and_completed_in_the_triggerer(deployed: dict[str, Any], api: Api) -> None:
    run_id = deployed["runs"][CAMPAIGN]
    assert "deferred" in deployed["sensor_states"], deployed["sensor_states"]
    assert deployed["sensor_states"][-1] == "success"
    assert deployed["triggerer_jobs"], "no triggerer job ever held the sensor's trigger"
    assert {job["job_type"] for job in deployed["triggerer_jobs"]} == {"TriggererJob"}
    sensor = api.task_instance(CAMPAIGN, run_id, "wait_for_delivery")
    assert sensor["state"] == "success" and sensor["try_number"] == 1  # resumed after the trigger, not retried
    summary = api.xcom(CAMPAIGN, run_id, "wait_for_delivery")
    assert summary["recipients"] == 1000 and summary["delivered_ratio"] >= 0.85
    assert api.xcom(CAMPAIGN, run_id, "report") == summary
    # The try's log, as the UI shows it, holds the trigger's part: it ran in the triggerer and fired the event
    # the resumed sensor returned.
    log = api.task_log(CAMPAIGN, run_id, "wait_for_delivery", 1)
    assert "Pausing task as DEFERRED. " in log, log
    assert "Trigger fired event" in log and "trigger completed" in log, log
    assert log.index("Pausing task as DEFERRED. ") < log.index("Trigger fired event")


def test_mapped_sends_ran_on_both_workers_each_with_its_own_token(deployed: dict[str, Any], api: Api) -> None:
    tis = api.task_instances(MAPPED, deployed["runs"][MAPPED])
    mapped = [t for t in tis if t["map_index"] >= 0]
    assert sorted(t["map_index"] for t in mapped if t["task_id"] == "notify_customer") == [0, 1, 2, 3]
    hosts = Counter(t["hostname"] for t in mapped)
    FIGURES["mapped_task_hosts"] = dict(hosts)
    assert set(hosts) == {"worker1", "worker2"}, hosts
    # Each task instance is its own process: one token request per sending task process (campaign 1, bulk 1,
    # 4 mapped sends, 1 alert). The scheduled dry run requested none.
    assert deployed["stats"]["token_requests"] == 7, deployed["stats"]


def test_reports_reach_the_api_server_receiver_and_summary_and_dashboard_need_a_login(
    deployed: dict[str, Any], api: Api, cluster: Cluster
) -> None:
    campaign = api.xcom(CAMPAIGN, deployed["runs"][CAMPAIGN], "send_campaign")["campaign"]
    assert re.fullmatch(r"mc-[0-9a-f]{20}", campaign)
    stored = get_store(cluster.reports_url).campaign_summary(campaign)
    assert stored is not None and stored["recipients"] == 1000
    assert sum(stored["by_status"].values()) == 1000  # every callback went through the api-server's receiver

    base = f"{cluster.api_url}/messagecentral"
    anonymous = api.http.get(f"{base}/campaigns/{campaign}/summary")
    assert anonymous.status_code in (401, 403), anonymous.text
    summary = api.http.get(f"{base}/campaigns/{campaign}/summary", headers=api.auth)
    assert summary.status_code == 200, summary.text
    assert summary.json() == stored
    for path in ("/dashboard", f"/dashboard/campaigns/{campaign}"):
        assert api.http.get(f"{base}{path}").status_code in (401, 403)
        page = api.http.get(f"{base}{path}", headers=api.auth)
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html"), page.text[:500]
        assert campaign in page.text
    # The callback path needs its secret, not a login.
    assert api.http.post(f"{base}/callback/not-the-secret", json={}).status_code == 401
