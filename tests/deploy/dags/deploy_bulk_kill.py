"""
Deployment-test DAG (tests/deploy/test_worker_kill.py): a bulk send to ``recipients`` numbers, 100 per request,
retried once by Airflow. The test SIGKILLs the send's task process while MessageCentral (the sandbox) holds
the answer to one request, then checks that Airflow's retry finished the campaign without texting anyone twice.

Connection: ``messagecentral_default`` (the cluster's). No schedule.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import DAG, Param, get_current_context, task

from airflow_provider_messagecentral.operators.messagecentral import MessageCentralBulkSendOperator

with DAG(
    dag_id="deploy_bulk_kill",
    schedule=None,
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    params={"recipients": Param(20_000, type="integer", minimum=1)},
    default_args={"retries": 1, "retry_delay": timedelta(seconds=2)},
    tags=["deploy-test"],
) as dag:

    @task
    def audience() -> list[str]:
        """``recipients`` distinct Indian mobile numbers: 9800000000, 9800000001, ..."""
        return [f"98{i:08d}" for i in range(get_current_context()["params"]["recipients"])]

    MessageCentralBulkSendOperator(
        task_id="send",
        phone_numbers=audience(),
        message="Festival offer: 30% off everything until Sunday",
        message_type="TRANSACTIONAL",
        chunk_size=100,
        on_uncertain="skip",  # never double-text: a chunk whose answer was lost is reported, not resent
        send_window=None,
    )
