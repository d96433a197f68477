"""
Text the on-call engineer when a task fails: ``MessageCentralNotifier`` as an ``on_failure_callback``.

``check_orders_feed`` stands for a data-quality check: it fails when the orders feed is older than
``FEED_LIMIT_HOURS``. The feed's age is the ``feed_age_hours`` param here (your check would measure it), so a
plain trigger passes and texts nobody, and triggering with ``{"feed_age_hours": 26}`` shows the alert: the
check fails and the on-call number receives an SMS naming the DAG, the failing task, the run and the try. The
notifier renders its text with the task's context (``ti``, ``dag``, ``run_id`` ...: no logical date needed),
sends it as TRANSACTIONAL, and never raises: a failed alert is logged and cannot hide the task's own failure.

Attach the notifier to the tasks that matter, or to every task through ``default_args``. (A DAG-level
``on_failure_callback`` works in deployments; under ``dag.test()`` Airflow 3.3 cannot render a DAG-level
notifier's templates, so this example stays task-level.)

Connection: ``messagecentral_default`` (type ``messagecentral``). Put your on-call number in ``ONCALL`` (or a
Variable: ``mobile_numbers="{{ var.value.oncall_mobile }}"``). No schedule: unpausing it texts nobody; trigger
it by hand (UI, ``airflow dags trigger`` or the REST API).
"""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG, Param, get_current_context, task

from airflow_provider_messagecentral.notifications.messagecentral import MessageCentralNotifier

ONCALL = ["+919816100000"]
FEED_LIMIT_HOURS = 6

alert_oncall = MessageCentralNotifier(
    mobile_numbers=ONCALL,
    message="ALERT {{ dag.dag_id }}: task {{ ti.task_id }} failed (run {{ run_id }}, try {{ ti.try_number }})",
)

with DAG(
    dag_id="messagecentral_alerting",
    description="An SMS to on-call when a task fails (trigger with feed_age_hours > 6 to see it)",
    schedule=None,
    start_date=pendulum.datetime(2024, 1, 1, tz="Asia/Kolkata"),
    catchup=False,
    params={"feed_age_hours": Param(2, type="number", minimum=0, description="age of the orders feed (hours)")},
    tags=["messagecentral", "example"],
) as dag:

    @task(on_failure_callback=alert_oncall, retries=0)
    def check_orders_feed() -> None:
        """A data-quality check: fails (and so texts on-call) when the orders feed is too old."""
        age = get_current_context()["params"]["feed_age_hours"]
        if age > FEED_LIMIT_HOURS:
            raise ValueError(
                f"orders feed is {age:g} hours old (limit {FEED_LIMIT_HOURS} hours): the upstream export did not run"
            )

    @task
    def publish_dashboard() -> None:
        """Runs only when the feed check passed."""

    check_orders_feed() >> publish_dashboard()
