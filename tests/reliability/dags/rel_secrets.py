"""
A campaign through every send operator and the delivery sensor, plus a task on a connection with a wrong
password: the reliability suite scans everything this DAG leaves behind for secrets.
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG

from airflow_provider_messagecentral.operators.messagecentral import (
    MessageCentralBulkSendOperator,
    MessageCentralFileSendOperator,
    MessageCentralSendOperator,
)
from airflow_provider_messagecentral.sensors.messagecentral import MessageCentralDeliverySensor

with DAG(
    dag_id="mc_rel_secrets",
    schedule=None,
    start_date=datetime(2024, 1, 1),
    catchup=False,
    tags=["messagecentral-tests"],
) as secrets_dag:
    single = MessageCentralSendOperator(
        task_id="single",
        mobile_number="9816100001",
        message="Your OTP for {{ dag.dag_id }} is 123456",
        message_type="OTP",
        send_window=None,
    )
    bulk = MessageCentralBulkSendOperator(
        task_id="bulk",
        phone_numbers=[f"98164{i:05d}" for i in range(30)],
        message="Sale on {{ ds }}: 20% off",
        chunk_size=10,
        send_window=None,
    )
    workbook = MessageCentralFileSendOperator(
        task_id="file",
        message="Hi ##var1##, your balance is ##var2##",
        rows=[{"mobile": f"98165{i:05d}", "var1": f"Customer {i}", "var2": str(i * 10)} for i in range(5)],
        send_window=None,
    )
    wait = MessageCentralDeliverySensor(
        task_id="wait",
        campaign=bulk.output,
        min_delivered_ratio=1.0,
        poke_interval=1,
        timeout=60,
        mode="poke",
    )
    bulk >> wait
    MessageCentralSendOperator(
        task_id="wrong_password",
        mobile_number="9816100002",
        message="This is never sent",
        messagecentral_conn_id="mc_wrong_password",
        send_window=None,
    )
