"""
Issue 17, pulled delivery reports, for real: the sandbox over HTTP, Airflow's ``dag.test()``, SQLite and
PostgreSQL. A campaign whose sensors use ``report_source="api"`` succeeds with no receiver running at all;
with ``"both"`` and callbacks that come duplicated and out of order, every message ends as one row at its
final status; the demo runs with ``--no-callbacks``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import REPO, sandbox_connection, wait_until

from airflow_provider_messagecentral.reports.server import ReceiverServer
from airflow_provider_messagecentral.reports.store import get_store

pytestmark = pytest.mark.integration

DAG_FILE = Path(__file__).parent / "dags" / "pulled_reports.py"
SECRET = "pulled-reports-callback-secret-0123456789"
SENSORS = ("wait_poke", "wait_reschedule", "wait_deferrable")
MIX = "DELIVRD=0.75,UNDELIV=0.25"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def reports_url(request: pytest.FixtureRequest, mc_conn: Any, sandbox: Any, monkeypatch: pytest.MonkeyPatch) -> str:
    """The connection's report store: the mc_conn SQLite file, or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return str(mc_conn.reports_url)
    url = str(request.getfixturevalue("pg_url"))
    monkeypatch.setenv(
        "AIRFLOW_CONN_MESSAGECENTRAL_DEFAULT", json.dumps(sandbox_connection(sandbox.url, reports_url=url))
    )
    return url


@pytest.fixture
def receiver(reports_url: str, sandbox: Any) -> Iterator[ReceiverServer]:
    """The callback receiver, writing where the connection says, the sandbox's callbacks pointed at it."""
    with ReceiverServer(None, SECRET) as server:
        sandbox.configure(
            callback_url=f"{server.url}/callback/{SECRET}",
            callback_delay=0.5,
            status_mix=MIX,
            duplicates=0.5,
            out_of_order=0.5,
            seed=17,
        )
        yield server
        sandbox.configure(callback_url=None)


def run_campaign(load_dag_file: Any, monkeypatch: pytest.MonkeyPatch, source: str) -> dict[str, Any]:
    """Run the DAG with every sensor on ``source``; the XComs by task."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    monkeypatch.setenv("MC_TEST_REPORT_SOURCE", source)
    dag = load_dag_file(DAG_FILE).pulled_dag
    dr = dag.test()
    states = {ti.task_id: str(ti.state) for ti in dr.get_task_instances()}
    assert states == {"send": "success", **dict.fromkeys(SENSORS, "success")}
    with create_session() as session:
        rows = session.scalars(
            select(XComModel).where(
                XComModel.dag_id == dag.dag_id, XComModel.run_id == dr.run_id, XComModel.key == "return_value"
            )
        ).all()
        return {row.task_id: XComModel.deserialize_value(row) for row in rows}


def pull_once(reports_url: str, campaign: str) -> None:
    """One more pull, as the sensor makes it (the sensors stop at their target)."""
    from airflow_provider_messagecentral.reports.pulled import ReportPuller
    from airflow_provider_messagecentral.triggers.messagecentral import hook_fetch

    assert ReportPuller(reports_url, campaign, hook_fetch("messagecentral_default")).pull() is not None


def sandbox_fates(sandbox: Any) -> dict[str, str]:
    """``mobile -> final status`` as the sandbox decided it (what its callbacks carry and its reports list)."""
    return {f"{o.country_code}{o.national}": o.status for o in sandbox.state.outcomes()}


def test_api_reports_with_no_receiver_end_the_campaign(
    load_dag_file: Any, sandbox: Any, reports_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    sandbox.configure(callback_url=None, callback_delay=0.5, status_mix=MIX, seed=17)
    xcoms = run_campaign(load_dag_file, monkeypatch, "api")
    campaign = xcoms["send"]["campaign"]
    for task_id in SENSORS:
        summary = xcoms[task_id]
        assert summary["campaign"] == campaign and summary["recipients"] == 12
        assert summary["delivered_ratio"] >= 0.5
    assert sandbox.stats()["callbacks_sent"] == 0  # nothing was posted: every report was pulled
    pull_once(reports_url, campaign)
    store = get_store(reports_url)
    items = store.campaign_reports(campaign)["items"]
    assert {item["mobile"]: item["status"] for item in items} == sandbox_fates(sandbox)
    summary = store.campaign_summary(campaign)
    assert summary is not None and summary["pending"] == 0
    failed = sum(1 for status in sandbox_fates(sandbox).values() if status != "DELIVRD")
    assert summary["failed"] == failed
    assert sum(n for _status, _code, n in store.failures_by_error_code(campaign)) == failed  # the dashboard's table


def test_both_sources_keep_one_row_per_message_at_its_final_status(
    load_dag_file: Any, sandbox: Any, receiver: ReceiverServer, reports_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    xcoms = run_campaign(load_dag_file, monkeypatch, "both")
    campaign = xcoms["send"]["campaign"]
    assert wait_until(lambda: sandbox.stats()["callbacks_pending"] == 0, timeout=30)
    assert sandbox.stats()["callbacks_sent"] >= 12
    pull_once(reports_url, campaign)
    store = get_store(reports_url)
    ids = {m["mobile"]: m["message_id"] for m in sandbox.messages()}
    items = store.campaign_reports(campaign)["items"]
    assert len(items) == 12
    # One row per message, under the callback's message id, at the status the sandbox decided.
    assert {item["mobile"]: (item["message_id"], item["status"]) for item in items} == {
        mobile: (ids[mobile], status) for mobile, status in sandbox_fates(sandbox).items()
    }
    assert store.stats()["reports"] == 12
    for mobile, message_id in ids.items():
        stored = store.get_report(message_id)
        assert stored is not None and stored["final"] and stored["mobile"] == mobile


def demo_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "MESSAGECENTRAL"))}


def test_the_demo_runs_with_no_callbacks(tmp_path: Path) -> None:
    demo_dir, summary_file = tmp_path / "demo", tmp_path / "summary.json"
    result = subprocess.run(
        [
            *(sys.executable, str(REPO / "scripts" / "demo.py"), "--no-callbacks", "--recipients", "100"),
            *("--demo-dir", str(demo_dir), "--summary-json", str(summary_file)),
        ],
        capture_output=True,
        text=True,
        timeout=240,
        env=demo_env(),
        check=False,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    out = result.stdout
    printed = json.loads(summary_file.read_text())
    counts = printed["summary"]
    assert f"Campaign {printed['campaign']} (DAG messagecentral_campaign) completed" in out
    assert "starting the receiver" not in out
    assert printed["callbacks"] == 0 and printed["sent"] == counts["recipients"] == 100
    assert counts["delivered"] >= 85 * counts["recipients"] // 100  # the sensor's target, reached on pulled reports
    assert counts["pending"] == counts["by_status"].get("UNKNOWN", 0)  # the final pull brought every due report
    assert f"reports      {printed['pulled']:,} delivery reports pulled from MessageCentral (no callbacks)" in out
    assert get_store(f"sqlite:///{demo_dir / 'reports.db'}").campaign_summary(printed["campaign"]) == counts
