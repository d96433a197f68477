"""
Text the on-call engineer when a task fails: ``MessageCentralNotifier`` as an ``on_failure_callback``.

``check_orders_feed`` stands for a data-quality check; here it fails on purpose, so that triggering the DAG
shows the alert: the on-call number receives an SMS naming the DAG, the failing task, the run and the try.
The notifier renders its text with the task's context (``ti``, ``dag``, ``run_id``, ``ds`` ...), sends it as
TRANSACTIONAL, and never raises: a failed alert is logged and cannot hide the task's own failure.

Attach the notifier to the tasks that matter, or to every task through ``default_args``. (A DAG-level
``on_failure_callback`` works in deployments; under ``dag.test()`` Airflow 3.3 cannot render a DAG-level
notifier's templates, so this example stays task-level.)

Connection: ``messagecentral_default`` (type ``messagecentral``). Put your on-call number in ``ONCALL`` (or a
Variable: ``mobile_numbers="{{ var.value.oncall_mobile }}"``). Trigger it by hand (no schedule).
"""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG, task

from airflow_provider_messagecentral.notifications.messagecentral import MessageCentralNotifier

ONCALL = ["+919816100000"]

alert_oncall = MessageCentralNotifier(
    mobile_numbers=ONCALL,
    message="ALERT {{ dag.dag_id }}: task {{ ti.task_id }} failed (run {{ run_id }}, try {{ ti.try_number }})",
)

with DAG(
    dag_id="messagecentral_alerting",
    description="An SMS to on-call when a task fails (the check fails on purpose)",
    schedule=None,
    start_date=pendulum.datetime(2024, 1, 1, tz="Asia/Kolkata"),
    catchup=False,
    tags=["messagecentral", "example"],
) as dag:

    @task(on_failure_callback=alert_oncall, retries=0)
    def check_orders_feed() -> None:
        """A data-quality check that fails on purpose, to show the alert."""
        raise ValueError("orders feed is 26 hours old (limit 6 hours): the upstream export did not run")

    @task
    def publish_dashboard() -> None:
        """Never runs in this example: its upstream check fails."""

    check_orders_feed() >> publish_dashboard()
