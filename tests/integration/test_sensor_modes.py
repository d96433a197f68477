"""The delivery sensor inside real Airflow (dag.test()): poke, reschedule and deferrable, on stored reports."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_messagecentral.campaign.keys import make_campaign_key
from airflow_provider_messagecentral.reports.models import DeliveryReport
from airflow_provider_messagecentral.reports.store import get_store

pytestmark = pytest.mark.integration

DAG_FILE = Path(__file__).parent / "dags" / "sensor_delivery.py"
TASK = "wait_for_delivery"


@pytest.fixture
def dags(load_dag_file: Any, mc_conn: Any) -> Any:
    return load_dag_file(DAG_FILE)


def seed(url: str, name: str, n: int) -> tuple[str, list[str]]:
    store = get_store(url)
    key = make_campaign_key("sensor-it", name, "send")
    store.ensure_campaign(key, dag_id="sensor-it", run_id=name, task_id="send", kind="bulk")
    mobiles = [f"9198162{i:05d}" for i in range(n)]
    store.mark_accepted(
        key, "c0", transaction_id=f"tx-{name}", verification_id="v", response={}, mobiles=mobiles, sent_at=None
    )
    return key, mobiles


def report(url: str, pairs: list[tuple[str, str]]) -> None:
    now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
    docs = [{"messageId": f"m-{m}-{s}", "status": s, "mobile": m, "submitDate": now} for m, s in pairs]
    get_store(url).ingest([DeliveryReport.model_validate(d) for d in docs], [])


def arrive_after_first_read(monkeypatch: pytest.MonkeyPatch, url: str, pairs: list[tuple[str, str]]) -> list[str]:
    """Store ``pairs`` right after the sensor's first look at the store; return who read, in order."""
    import airflow_provider_messagecentral.sensors.messagecentral as sensor_module
    import airflow_provider_messagecentral.triggers.messagecentral as trigger_module

    reads: list[str] = []

    def wrap(original: Any, where: str) -> Any:
        def read(store_url: str, campaign: str) -> Any:
            summary = original(store_url, campaign)
            reads.append(where)
            if len(reads) == 1:
                report(url, pairs)
            return summary

        return read

    monkeypatch.setattr(sensor_module, "read_summary", wrap(sensor_module.read_summary, "worker"))
    monkeypatch.setattr(trigger_module, "read_summary", wrap(trigger_module.read_summary, "trigger"))
    return reads


def run(dag: Any, campaign: str) -> tuple[str, Any]:
    """dag.test() the DAG; the sensor's final state and its XCom."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    dr = dag.test(run_conf={"campaign": campaign})
    [ti] = [ti for ti in dr.get_task_instances() if ti.task_id == TASK]
    with create_session() as session:
        row = session.scalar(
            select(XComModel).where(
                XComModel.dag_id == dag.dag_id,
                XComModel.run_id == dr.run_id,
                XComModel.task_id == TASK,
                XComModel.key == "return_value",
            )
        )
        value = XComModel.deserialize_value(row) if row is not None else None
    return str(ti.state), value


@pytest.mark.parametrize("mode", ["poke", "reschedule", "deferrable"])
def test_sensor_succeeds_once_reports_arrive(
    dags: Any, mc_conn: Any, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    url = mc_conn.reports_url
    key, mobiles = seed(url, mode, 10)
    report(url, [(m, "DELIVRD") for m in mobiles[:5]])
    # The rest arrive after the first look, so every mode really pokes again / reschedules / defers.
    reads = arrive_after_first_read(monkeypatch, url, [(m, "DELIVRD") for m in mobiles[5:9]])
    state, xcom = run(getattr(dags, f"{mode}_dag"), key)
    assert state == "success"
    assert reads[0] == "worker"
    assert reads[-1] == ("trigger" if mode == "deferrable" else "worker")
    assert xcom["campaign"] == key
    assert (xcom["recipients"], xcom["delivered"], xcom["pending"]) == (10, 9, 1)
    assert xcom["delivered_ratio"] == 0.9


def test_deferred_sensor_fails_on_the_failed_ratio(dags: Any, mc_conn: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    url = mc_conn.reports_url
    key, mobiles = seed(url, "fail", 10)
    report(url, [(m, "DELIVRD") for m in mobiles[:2]])
    reads = arrive_after_first_read(monkeypatch, url, [(m, "UNDELIV") for m in mobiles[2:5]])
    state, xcom = run(dags.deferrable_dag, key)
    assert reads == ["worker", "trigger"]
    assert state == "failed"
    assert xcom is None


def test_deferred_sensor_times_out_and_soft_fails(dags: Any, mc_conn: Any) -> None:
    url = mc_conn.reports_url
    key, mobiles = seed(url, "timeout", 4)
    report(url, [(mobiles[0], "DELIVRD")])
    state, _ = run(dags.deferrable_soft_fail_dag, key)
    assert state == "skipped"


@pytest.mark.parametrize("mode", ["poke", "deferrable"])
def test_no_report_at_all_logs_one_warning_naming_the_store(
    load_dag_file: Any, mc_conn: Any, capfd: pytest.CaptureFixture[str], airflow_home: Path, mode: str
) -> None:
    """Sends accepted, the callback URL never registered: one warning in the task's log, not one per poke."""
    import time

    dags = load_dag_file(Path(__file__).parent / "dags" / "sensor_no_report.py")
    url = mc_conn.reports_url
    key, _ = seed(url, f"silent-{mode}", 6)
    started = time.time()
    state, _ = run(getattr(dags, f"{mode}_dag"), key)
    assert state == "skipped"  # soft_fail: the sensor timed out, nothing came
    out, err = capfd.readouterr()
    logs = [p for p in (airflow_home / "logs").rglob("*") if p.is_file() and p.stat().st_mtime >= started - 1]
    text = "\n".join([out, err, *(p.read_text("utf-8", "replace") for p in logs)])
    warnings = [line for line in text.splitlines() if "not one delivery report has reached" in line]
    assert len(warnings) == 1, warnings
    assert f"campaign {key}: 6 recipients were accepted" in warnings[0]
    assert url in warnings[0] and "callback URL is not registered with MessageCentral" in warnings[0]
