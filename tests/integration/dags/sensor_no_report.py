"""DAGs for the no-report warning: a campaign with accepted sends and not one report, a short warning delay."""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG

from airflow_provider_messagecentral.sensors.messagecentral import MessageCentralDeliverySensor


def no_report_dag(name: str, **sensor_kwargs: object) -> DAG:
    with DAG(
        dag_id=f"mc_sensor_no_report_{name}",
        schedule=None,
        start_date=datetime(2024, 1, 1),
        catchup=False,
        params={"campaign": ""},
        tags=["messagecentral-tests"],
    ) as dag:
        MessageCentralDeliverySensor(
            task_id="wait_for_delivery",
            campaign="{{ params.campaign }}",
            poke_interval=1,
            timeout=5,
            soft_fail=True,
            no_report_warning_after=2,
            **sensor_kwargs,  # type: ignore[arg-type]
        )
    return dag


poke_dag = no_report_dag("poke", mode="poke")
deferrable_dag = no_report_dag("deferrable", deferrable=True)
