"""
Done-when of issue 5: a campaign sent to the sandbox with callbacks pointed at the receiver ends with the
sensor succeeding on real stored reports, in all three sensor modes, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from helpers import sandbox_connection

from airflow_provider_messagecentral.client.store_url import mask_url
from airflow_provider_messagecentral.reports.server import ReceiverServer
from airflow_provider_messagecentral.reports.store import get_store

pytestmark = pytest.mark.integration

DAG_FILE = Path(__file__).parent / "dags" / "sensor_end_to_end.py"
SECRET = "sensor-e2e-callback-secret-0123456789"
SENSORS = ("wait_poke", "wait_reschedule", "wait_deferrable")


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def reports_url(request: pytest.FixtureRequest, mc_conn: Any, sandbox: Any, monkeypatch: pytest.MonkeyPatch) -> str:
    """The connection's report store: the mc_conn SQLite file, or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return str(mc_conn.reports_url)
    url = str(request.getfixturevalue("pg_url"))
    conn = sandbox_connection(sandbox.url, reports_url=url)
    monkeypatch.setenv("AIRFLOW_CONN_MESSAGECENTRAL_DEFAULT", json.dumps(conn))
    return url


@pytest.fixture
def receiver(reports_url: str, sandbox: Any) -> Iterator[ReceiverServer]:
    """
    The callback receiver with the sandbox's callbacks pointed at it. It is given no store: it writes to the
    one the ``messagecentral_default`` connection names, where the send's ledger and the sensors read.
    """
    with ReceiverServer(None, SECRET) as server:
        # Duplicates and stale UNKNOWNs after the final status: the store must count each recipient once.
        sandbox.configure(
            callback_url=f"{server.url}/callback/{SECRET}",
            callback_delay=0.5,
            status_mix="DELIVRD=1",
            duplicates=0.3,
            out_of_order=0.3,
            seed=5,
        )
        yield server
        sandbox.configure(callback_url=None)


def test_sent_campaign_ends_with_every_sensor_mode_succeeding(
    load_dag_file: Any, sandbox: Any, receiver: ReceiverServer, reports_url: str
) -> None:
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    dag = load_dag_file(DAG_FILE).end_to_end_dag
    dr = dag.test()
    states = {ti.task_id: str(ti.state) for ti in dr.get_task_instances()}
    assert states == {"send": "success", **dict.fromkeys(SENSORS, "success")}

    with create_session() as session:
        rows = session.scalars(
            select(XComModel).where(
                XComModel.dag_id == dag.dag_id, XComModel.run_id == dr.run_id, XComModel.key == "return_value"
            )
        ).all()
        xcoms = {row.task_id: XComModel.deserialize_value(row) for row in rows}
    campaign = xcoms["send"]["campaign"]
    for task_id in SENSORS:
        summary = xcoms[task_id]
        assert summary["campaign"] == campaign
        assert (summary["recipients"], summary["delivered"], summary["failed"]) == (12, 12, 0)
        assert summary["delivered_ratio"] == 1.0
    # The reports really came through the receiver into the connection's store.
    assert sandbox.stats()["callbacks_sent"] >= 12
    health = httpx.get(f"{receiver.url}/health", timeout=10).json()
    assert (health["store_from"], health["store"]) == ("connection messagecentral_default", mask_url(reports_url))
    assert get_store(reports_url).campaign_summary(campaign) == xcoms["wait_poke"]
