"""A campaign sent to the sandbox, then delivery sensors that pull the reports (report_source "api" / "both")."""

from __future__ import annotations

import os
from datetime import datetime

from airflow.sdk import DAG

from airflow_provider_messagecentral.operators.messagecentral import MessageCentralBulkSendOperator
from airflow_provider_messagecentral.sensors.messagecentral import MessageCentralDeliverySensor

NUMBERS = [f"98164{i:05d}" for i in range(12)]
SOURCE = os.environ.get("MC_TEST_REPORT_SOURCE", "api")

with DAG(
    dag_id="mc_pulled_reports",
    schedule=None,
    start_date=datetime(2024, 1, 1),
    catchup=False,
    tags=["messagecentral-tests"],
) as pulled_dag:
    send = MessageCentralBulkSendOperator(
        task_id="send", phone_numbers=NUMBERS, message="Your parcel is on its way", chunk_size=5, send_window=None
    )
    for name, mode_kwargs in (
        ("poke", {"mode": "poke"}),
        ("reschedule", {"mode": "reschedule"}),
        ("deferrable", {"deferrable": True}),
    ):
        send >> MessageCentralDeliverySensor(
            task_id=f"wait_{name}",
            campaign=send.output,
            min_delivered_ratio=0.5,
            report_source=SOURCE,
            pull_interval=1,
            pull_page_size=5,
            poke_interval=1,
            timeout=120,
            **mode_kwargs,  # type: ignore[arg-type]
        )
