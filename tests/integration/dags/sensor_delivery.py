"""DAGs for the delivery sensor's integration tests: one sensor per mode, the campaign key from the run conf."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from airflow.sdk import DAG

from airflow_provider_messagecentral.sensors.messagecentral import MessageCentralDeliverySensor


def sensor_dag(name: str, **sensor_kwargs: object) -> DAG:
    with DAG(
        dag_id=f"mc_sensor_{name}",
        schedule=None,
        start_date=datetime(2024, 1, 1),
        catchup=False,
        params={"campaign": ""},
        tags=["messagecentral-tests"],
    ) as dag:
        kwargs: dict[str, Any] = {
            "min_delivered_ratio": 0.9,
            "max_failed_ratio": 0.2,
            "poke_interval": 1,
            "timeout": 60,
        }
        kwargs.update(sensor_kwargs)
        MessageCentralDeliverySensor(task_id="wait_for_delivery", campaign="{{ params.campaign }}", **kwargs)
    return dag


poke_dag = sensor_dag("poke", mode="poke")
reschedule_dag = sensor_dag("reschedule", mode="reschedule")
deferrable_dag = sensor_dag("deferrable", deferrable=True)
# Times out quickly: the trigger's own deadline must end the wait under dag.test() too.
deferrable_soft_fail_dag = sensor_dag("deferrable_soft_fail", deferrable=True, timeout=3, soft_fail=True)
