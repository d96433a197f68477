"""A campaign sent to the sandbox, then one delivery sensor per mode waiting on the reports it calls back."""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG

from airflow_provider_messagecentral.operators.messagecentral import MessageCentralBulkSendOperator
from airflow_provider_messagecentral.sensors.messagecentral import MessageCentralDeliverySensor

NUMBERS = [f"98163{i:05d}" for i in range(12)]

with DAG(
    dag_id="mc_sensor_end_to_end",
    schedule=None,
    start_date=datetime(2024, 1, 1),
    catchup=False,
    tags=["messagecentral-tests"],
) as end_to_end_dag:
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
            min_delivered_ratio=1.0,
            max_failed_ratio=0.0,
            poke_interval=1,
            timeout=120,
            **mode_kwargs,  # type: ignore[arg-type]
        )
