"""
Deployment-test DAG (tests/deploy/test_lifecycle_deployed.py): ``messagecentral_deadline`` with a deadline short
enough to test. The run takes ``seconds`` (default 25); its deadline is 5 seconds after it was queued, so the
scheduler marks it missed and the triggerer awaits ``MessageCentralNotifier`` (its ``async_notify``), which texts
on-call through the sandbox while the run carries on.

Connection: ``messagecentral_default`` (the cluster's). No schedule.
"""

from __future__ import annotations

import time
from datetime import timedelta

import pendulum
from airflow.sdk import DAG, AsyncCallback, DeadlineAlert, DeadlineReference, Param, get_current_context, task

from airflow_provider_messagecentral.notifications.messagecentral import MessageCentralNotifier

with DAG(
    dag_id="deploy_deadline_oncall",
    schedule=None,
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    params={"seconds": Param(25, type="number", minimum=0)},
    deadline=DeadlineAlert(
        reference=DeadlineReference.DAGRUN_QUEUED_AT,
        interval=timedelta(seconds=5),
        callback=AsyncCallback(
            MessageCentralNotifier,
            kwargs={
                "mobile_numbers": ["+919816100009"],
                "message": "LATE {{ dag_run.dag_id }}: run {{ dag_run.dag_run_id }} past {{ deadline.deadline_time }}",
            },
        ),
    ),
    tags=["deploy-test"],
) as dag:

    @task
    def slow_export() -> None:
        time.sleep(get_current_context()["params"]["seconds"])

    slow_export()
